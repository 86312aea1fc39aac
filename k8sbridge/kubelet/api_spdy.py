"""SPDY/3.1 framing, the server's half, as far as the kubelet's port-forward protocol needs it:
kubectl port-forward speaks SPDY (tunnelled in a WebSocket with the subprotocol
``SPDY/3.1+portforward.k8s.io`` since kubectl 1.31, which an API server passes through).

What is read: SYN_STREAM (a new stream with its headers: ``streamType``, ``port``,
``requestID``), DATA (with FIN: the client's half-close), RST_STREAM, PING (answered),
GOAWAY; SETTINGS and WINDOW_UPDATE are read and ignored (the client does not hold back its
writes for window updates). What is written: SYN_REPLY, DATA (FIN closes our half), PING
replies. Header blocks are one zlib stream per direction primed with SPDY/3's dictionary (the
``spdy-py`` package's copy of the specification's bytes).
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

from spdy import dictionary

__all__ = ["Frame", "Reader", "Writer", "FrameError"]

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)
FLAG_FIN = 0x01
MAX_FRAME = 1 << 24
MAX_HEADER_BLOCK = 256 * 1024


class FrameError(Exception):
    """The byte stream is not SPDY/3 (the connection must end)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """A control frame (``kind`` > 0) or a DATA frame (``kind`` 0)."""

    kind: int
    stream: int
    flags: int
    data: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


def _headers(block: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        (count,) = struct.unpack_from("!I", block, 0)
        at = 4
        for _ in range(count):
            (size,) = struct.unpack_from("!I", block, at)
            name = block[at + 4:at + 4 + size].decode("latin-1")
            at += 4 + size
            (size,) = struct.unpack_from("!I", block, at)
            value = block[at + 4:at + 4 + size].decode("latin-1")
            at += 4 + size
            out[name.lower()] = value.split("\0")[0]
    except struct.error as e:
        raise FrameError(f"a malformed header block: {e}") from e
    return out


class Reader:
    """Feed bytes, get whole frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=dictionary.zdict)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                break
            head = bytes(self._buffer[:8])
            body = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            frames.append(self._frame(head, body))
        return frames

    def _frame(self, head: bytes, body: bytes) -> Frame:
        flags = head[4]
        if not head[0] & 0x80:  # DATA
            stream = int.from_bytes(head[:4], "big") & 0x7FFFFFFF
            return Frame(kind=0, stream=stream, flags=flags, data=body)
        version = int.from_bytes(head[:2], "big") & 0x7FFF
        kind = int.from_bytes(head[2:4], "big")
        if version != VERSION:
            raise FrameError(f"SPDY version {version}, not 3")
        stream = int.from_bytes(body[:4], "big") & 0x7FFFFFFF if len(body) >= 4 else 0
        if kind in (SYN_STREAM, SYN_REPLY, HEADERS):
            block = body[10:] if kind == SYN_STREAM else body[4:]
            try:
                raw = self._inflate.decompress(block, MAX_HEADER_BLOCK)
            except zlib.error as e:
                raise FrameError(f"a header block that does not inflate: {e}") from e
            return Frame(kind=kind, stream=stream, flags=flags, headers=_headers(raw))
        return Frame(kind=kind, stream=stream, flags=flags, data=body)


class Writer:
    """Encodes frames (one header compression context for the connection)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zdict=dictionary.zdict)

    @staticmethod
    def _control(kind: int, flags: int, body: bytes) -> bytes:
        return struct.pack("!HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body)) + body

    def syn_reply(self, stream: int, *, fin: bool = False) -> bytes:
        block = struct.pack("!I", 0)
        packed = self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0,
                             struct.pack("!I", stream) + packed)

    @staticmethod
    def data(stream: int, data: bytes, *, fin: bool = False) -> bytes:
        return struct.pack("!II", stream, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data

    def ping(self, ping_id: bytes) -> bytes:
        return self._control(PING, 0, ping_id[:4])

    def rst_stream(self, stream: int, status: int = 5) -> bytes:  # 5: CANCEL
        return self._control(RST_STREAM, 0, struct.pack("!II", stream, status))
