"""An HTTP/1.1 upgrade to SPDY/3.1 on the kubelet API, as the kubelet's streaming server
answers it (``httpstream.Handshake`` then the SPDY response upgrader).

Why by hand: aiohttp switches a connection's protocol only for WebSocket; for ``Upgrade:
SPDY/3.1`` it would parse the client's frames as further HTTP requests. So the connection's
incoming bytes are taken over (``set_parser``, before the 101 is written: a SPDY client sends
nothing before it reads the 101) and the 101 is a response with no body, after which writes go
to the socket as they are. The connection is closed when the handler returns.

The handshake: the client's ``X-Stream-Protocol-Version`` values (several headers or a comma
list) in its order of preference, the first the server supports is chosen and echoed; none
supported is 403 with ``X-Accepted-Stream-Protocol-Versions``; the header missing is 400.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

__all__ = ["SPDY_31", "Upgraded", "is_spdy_upgrade", "negotiate"]

SPDY_31 = "SPDY/3.1"
PROTOCOL_HEADER = "X-Stream-Protocol-Version"
ACCEPTED_HEADER = "X-Accepted-Stream-Protocol-Versions"


def is_spdy_upgrade(request: web.Request) -> bool:
    connection = request.headers.get("Connection", "").lower()
    return "upgrade" in connection and SPDY_31.lower() in request.headers.get(
        "Upgrade", "").lower()


def negotiate(request: web.Request, supported: tuple[str, ...]) -> str | web.Response:
    """The protocol both sides speak, else the refusal to return."""
    values = request.headers.getall(PROTOCOL_HEADER, [])
    if not values:
        return web.Response(status=400, text=f"unable to upgrade: header {PROTOCOL_HEADER} "
                            f"does not exist in request with {len(request.headers)} headers\n")
    offered = [p.strip() for v in values for p in v.split(",") if p.strip()]
    for protocol in offered:
        if protocol in supported:
            return protocol
    response = web.Response(status=403, text=f"unable to upgrade: unable to negotiate "
                            f"protocol: client supports {offered}, server accepts "
                            f"{list(supported)}\n")
    for protocol in supported:
        response.headers.add(ACCEPTED_HEADER, protocol)
    return response


class _Incoming:
    """What aiohttp's protocol feeds once the connection is ours (its parser interface)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)


class Upgraded:
    """The connection after the 101: bytes in, bytes out."""

    def __init__(self, request: web.Request, response: web.StreamResponse,
                 incoming: _Incoming) -> None:
        self.request = request
        self.response = response
        self._incoming = incoming
        self._eof = False

    @classmethod
    async def accept(cls, request: web.Request, protocol: str) -> Upgraded:
        incoming = _Incoming()
        request.protocol.set_parser(incoming)  # type: ignore[arg-type]
        response = web.StreamResponse(status=101, headers={
            "Connection": "Upgrade", "Upgrade": SPDY_31, PROTOCOL_HEADER: protocol})
        response.force_close()
        await response.prepare(request)
        return cls(request, response, incoming)

    async def read(self) -> bytes:
        """The next bytes from the client; b"" once it has gone."""
        if self._eof:
            return b""
        data = await self._incoming.queue.get()
        if data is None:
            self._eof = True
            return b""
        return data

    async def write(self, data: bytes) -> bool:
        try:
            await self.response.write(data)
        except (ConnectionResetError, RuntimeError):
            return False
        return True

    def close(self) -> None:
        transport = self.request.transport
        if transport is not None:
            with contextlib.suppress(RuntimeError):
                transport.close()
        self._incoming.feed_eof()
