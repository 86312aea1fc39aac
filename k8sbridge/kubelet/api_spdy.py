"""SPDY/3.1 framing, as far as the kubelet's streaming protocols need it: exec and attach
(``v4.channel.k8s.io`` and older, what kube-apiserver >= 1.30 speaks to a kubelet after
translating kubectl's WebSocket, and what older API servers pass through from kubectl) and
port-forward (``portforward.k8s.io``, plain or tunnelled in a WebSocket).

What is read: SYN_STREAM (a new stream with its headers: ``streamType``, ``port``,
``requestID``), SYN_REPLY, DATA (with FIN: the peer's half-close), RST_STREAM, PING, GOAWAY;
SETTINGS and WINDOW_UPDATE are read and ignored, as the Go peers (moby/spdystream, which the
kubelet and kube-apiserver use) neither send nor honour windows. What is written: SYN_STREAM
(a client's, for tests), SYN_REPLY, DATA (FIN closes our half), RST_STREAM, PING replies,
GOAWAY. Header blocks are one zlib stream per direction primed with SPDY/3's dictionary (the
``spdy-py`` package's copy of the specification's bytes). A DATA frame longer than
``MAX_DATA`` or a control frame that is not SPDY/3 is a ``FrameError``: the connection ends.
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
MAX_DATA = 4 * 1024 * 1024  # a longer frame ends the connection (as a too-big WebSocket message)
MAX_HEADER_BLOCK = 256 * 1024
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR = 0, 1
RST_PROTOCOL_ERROR, RST_CANCEL = 1, 5


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
            if length > MAX_DATA:
                raise FrameError(f"a frame of {length} bytes (at most {MAX_DATA})")
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

    def _block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack("!I", len(headers))
        for name, value in headers.items():
            for part in (name.lower().encode("latin-1"), value.encode("latin-1")):
                raw += struct.pack("!I", len(part)) + part
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream: int, headers: dict[str, str], *, fin: bool = False) -> bytes:
        body = struct.pack("!IIBB", stream, 0, 0, 0) + self._block(headers)
        return self._control(SYN_STREAM, FLAG_FIN if fin else 0, body)

    def syn_reply(self, stream: int, *, fin: bool = False) -> bytes:
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0,
                             struct.pack("!I", stream) + self._block({}))

    def goaway(self, last_stream: int, status: int = GOAWAY_OK) -> bytes:
        return self._control(GOAWAY, 0, struct.pack("!II", last_stream, status))

    @staticmethod
    def data(stream: int, data: bytes, *, fin: bool = False) -> bytes:
        return struct.pack("!II", stream, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data

    def ping(self, ping_id: bytes) -> bytes:
        return self._control(PING, 0, ping_id[:4])

    def rst_stream(self, stream: int, status: int = RST_CANCEL) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack("!II", stream, status))
