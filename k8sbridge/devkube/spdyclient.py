"""A SPDY/3.1 client connection to a kubelet, as kube-apiserver opens one (client-go's SPDY
round tripper over moby/spdystream): an HTTP/1.1 ``POST`` with ``Connection: Upgrade``,
``Upgrade: SPDY/3.1`` and the stream protocols offered in ``X-Stream-Protocol-Version``; on 101
the connection carries SPDY frames.

Why devkube has its own (the kubelet API has a server's half in ``kubelet.api_spdy``): the
stand-in shares no code with what it tests, so a framing bug on one side is not hidden by the
same bug on the other. Only what the API server's side needs: SYN_STREAM (client streams have
odd ids), DATA, FIN, RST_STREAM, PING answers, GOAWAY; SETTINGS and WINDOW_UPDATE are ignored
(spdystream does no flow control). Header blocks: one zlib stream per direction primed with
SPDY/3's dictionary (``spdy-py``'s copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import zlib
from urllib.parse import urlsplit

from spdy import dictionary

__all__ = ["Connection", "Refused", "Stream", "dial", "open_raw"]

_VERSION = 3
_SYN_STREAM, _SYN_REPLY, _RST_STREAM, _PING, _GOAWAY = 1, 2, 3, 6, 7
_FIN = 0x01
_MAX_FRAME = 16 * 1024 * 1024
_MAX_HEAD = 64 * 1024


class Refused(Exception):
    """The kubelet answered the upgrade with something else than 101."""

    def __init__(self, status: int, head: bytes, body: bytes) -> None:
        super().__init__(f"{status}: {body.decode(errors='replace').strip()}")
        self.status = status
        self.head = head
        self.body = body


class ProtocolError(Exception):
    """What the kubelet sent is not SPDY/3."""


async def open_raw(url: str, *, ssl_context: ssl.SSLContext, protocols: list[str],
                   method: str = "POST"
                   ) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send the upgrade request; (the 101's head, reader, writer) or ``Refused``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context,
                                                   limit=_MAX_HEAD)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = (f"{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n"
            f"Upgrade: SPDY/3.1\r\nContent-Length: 0\r\n")
    head += "".join(f"X-Stream-Protocol-Version: {p}\r\n" for p in protocols)
    writer.write((head + "\r\n").encode("latin-1"))
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
        status = int(raw.split(b" ", 2)[1])
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
            IndexError) as e:
        writer.close()
        raise Refused(502, b"", f"no HTTP answer to the upgrade: {e}".encode()) from e
    if status != 101:
        length = 0
        for line in raw.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        body = b""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            body = await reader.readexactly(min(length, _MAX_HEAD)) if length else b""
        writer.close()
        raise Refused(status, raw, body)
    return raw, reader, writer


def negotiated(head: bytes) -> str:
    """The ``X-Stream-Protocol-Version`` of a 101's head ("" when absent)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"x-stream-protocol-version":
            return value.strip().decode("latin-1")
    return ""


class Stream:
    """One stream the client opened: what arrives on it, until its end (None)."""

    def __init__(self, ident: int) -> None:
        self.id = ident
        self.replied = asyncio.Event()
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.ended = False

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.incoming.put_nowait(None)
        self.replied.set()  # a reset stream is not waited for

    async def read(self) -> bytes | None:
        return None if self.ended and self.incoming.empty() else await self.incoming.get()


class Connection:
    """The frames of one upgraded connection (the client's side)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 protocol: str) -> None:
        self.protocol = protocol
        self._reader = reader
        self._writer = writer
        self._deflate = zlib.compressobj(zdict=dictionary.zdict)
        self._inflate = zlib.decompressobj(zdict=dictionary.zdict)
        self._streams: dict[int, Stream] = {}
        self._next = 1
        self._lock = asyncio.Lock()
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _send(self, frame: bytes) -> None:
        async with self._lock:
            if self._writer.is_closing():
                raise ConnectionResetError("the kubelet's connection is closed")
            self._writer.write(frame)
            await self._writer.drain()

    @staticmethod
    def _control(kind: int, flags: int, body: bytes) -> bytes:
        return struct.pack("!HHI", 0x8000 | _VERSION, kind, (flags << 24) | len(body)) + body

    async def open(self, headers: dict[str, str]) -> Stream:
        """A new stream with ``headers``, once the kubelet has replied."""
        stream = Stream(self._next)
        self._next += 2
        self._streams[stream.id] = stream
        raw = struct.pack("!I", len(headers))
        for name, value in headers.items():
            for part in (name.lower().encode("latin-1"), value.encode("latin-1")):
                raw += struct.pack("!I", len(part)) + part
        block = self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        await self._send(self._control(_SYN_STREAM, 0,
                                       struct.pack("!IIBB", stream.id, 0, 0, 0) + block))
        await stream.replied.wait()
        return stream

    async def write(self, stream: Stream, data: bytes, *, fin: bool = False) -> None:
        await self._send(struct.pack("!II", stream.id, ((_FIN if fin else 0) << 24)
                                     | len(data)) + data)

    async def _read(self) -> None:
        try:
            while True:
                head = await self._reader.readexactly(8)
                length = int.from_bytes(head[5:8], "big")
                if length > _MAX_FRAME:
                    raise ProtocolError(f"a frame of {length} bytes")
                body = await self._reader.readexactly(length)
                await self._frame(head, body)
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError, ssl.SSLError,
                zlib.error):
            pass
        finally:
            for stream in self._streams.values():
                stream.end()
            self.closed.set()

    async def _frame(self, head: bytes, body: bytes) -> None:
        flags = head[4]
        if not head[0] & 0x80:
            stream = self._streams.get(int.from_bytes(head[:4], "big") & 0x7FFFFFFF)
            if stream is not None and not stream.ended:
                if body:
                    stream.incoming.put_nowait(body)
                if flags & _FIN:
                    stream.end()
            return
        if int.from_bytes(head[:2], "big") & 0x7FFF != _VERSION:
            raise ProtocolError("not SPDY/3")
        kind = int.from_bytes(head[2:4], "big")
        ident = int.from_bytes(body[:4], "big") & 0x7FFFFFFF if len(body) >= 4 else 0
        if kind == _SYN_REPLY:
            self._inflate.decompress(body[4:])  # the headers (none of use), kept in step
            found = self._streams.get(ident)
            if found is not None:
                found.replied.set()
                if flags & _FIN:
                    found.end()
        elif kind == _RST_STREAM:
            found = self._streams.get(ident)
            if found is not None:
                found.end()
        elif kind == _PING:
            await self._send(self._control(_PING, 0, body[:4]))
        elif kind == _GOAWAY:
            pass  # the kubelet closes the connection next
        elif kind == _SYN_STREAM:
            self._inflate.decompress(body[10:])

    async def close(self) -> None:
        """As client-go's ``Close``: reset the streams still open, GOAWAY, hang up."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            for stream in self._streams.values():
                if not stream.ended:
                    await self._send(self._control(_RST_STREAM, 0,
                                                   struct.pack("!II", stream.id, 5)))
            await self._send(self._control(_GOAWAY, 0, struct.pack("!II", 0, 0)))
        self._writer.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def dial(url: str, *, ssl_context: ssl.SSLContext, protocols: list[str]) -> Connection:
    """Upgrade to SPDY at ``url`` (``Refused`` when the kubelet says no)."""
    head, reader, writer = await open_raw(url, ssl_context=ssl_context, protocols=protocols)
    return Connection(reader, writer, negotiated(head))
