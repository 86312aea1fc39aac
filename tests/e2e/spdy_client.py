"""A small SPDY/3.1 client for tests: what kube-apiserver (client-go's SPDY executor) does
towards a kubelet -- an HTTP/1.1 upgrade, then one stream per channel -- with the product's
framing (``kubelet.api_spdy``), over a raw TLS connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from typing import Any

from k8sbridge.kubelet import api_spdy


class Client:
    """One upgraded connection: streams by type, what arrived on each, whether each ended."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames_in = api_spdy.Reader()
        self.frames_out = api_spdy.Writer()
        self.next_id = 1
        self.ids: dict[str, int] = {}
        self.data: dict[str, bytes] = {}
        self.ended: set[str] = set()
        self.replied: set[str] = set()
        self.goaway = False
        self.closed = False

    @classmethod
    async def upgrade(cls, host: str, port: int, path: str, *, token: str,
                      protocols: tuple[str, ...] = ("v4.channel.k8s.io",),
                      ) -> tuple[int, str, Client | None]:
        """(status, the response's head and body when refused, the client when upgraded)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: Upgrade\r\n"
                f"Upgrade: SPDY/3.1\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n")
        head += "".join(f"X-Stream-Protocol-Version: {p}\r\n" for p in protocols)
        writer.write((head + "\r\n").encode())
        raw = await reader.readuntil(b"\r\n\r\n")
        status = int(raw.split(b" ", 2)[1])
        if status != 101:
            body = await reader.read(65536)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            return status, (raw + body).decode(errors="replace"), None
        return status, raw.decode(), cls(reader, writer)

    async def open(self, kind: str) -> None:
        """Open the stream of ``kind`` (its SYN_REPLY is awaited by ``until``)."""
        stream, self.next_id = self.next_id, self.next_id + 2
        self.ids[kind] = stream
        self.data[kind] = b""
        self.writer.write(self.frames_out.syn_stream(stream, {"streamType": kind}))
        await self.writer.drain()

    async def send(self, kind: str, data: bytes, *, fin: bool = False) -> None:
        self.writer.write(self.frames_out.data(self.ids[kind], data, fin=fin))
        await self.writer.drain()

    async def raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_some(self) -> bool:
        """Read and file what arrives; False at the end of the connection."""
        data = await self.reader.read(65536)
        if not data:
            self.closed = True
            return False
        kinds = {v: k for k, v in self.ids.items()}
        for frame in self.frames_in.feed(data):
            kind = kinds.get(frame.stream, "")
            if frame.kind == api_spdy.SYN_REPLY:
                self.replied.add(kind)
            elif frame.kind == 0:
                self.data[kind] = self.data.get(kind, b"") + frame.data
                if frame.fin:
                    self.ended.add(kind)
            elif frame.kind == api_spdy.RST_STREAM:
                self.ended.add(kind)
            elif frame.kind == api_spdy.GOAWAY:
                self.goaway = True
        return True

    async def until_closed(self, timeout: float = 30) -> None:
        """Read until the server ends the connection, then close ours."""
        async with asyncio.timeout(timeout):
            while await self.read_some():
                pass
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()

    async def until(self, check: Any, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                if not await self.read_some():
                    return

    def status(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data.get("error") or b"{}")
        return value

