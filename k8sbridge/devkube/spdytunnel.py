"""SPDY/3.1 connections carried to the kubelet byte for byte, as kube-apiserver's
upgrade-aware proxy and its tunnelling handler do.

Two cases. A client that upgrades to SPDY itself (kubectl before 1.30 for exec/attach/cp, before
1.31 for port-forward, or with ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`` /
``KUBECTL_PORT_FORWARD_WEBSOCKETS=false``): the same upgrade is made to the kubelet (its
``X-Stream-Protocol-Version`` offers kept), the kubelet's 101 and chosen protocol are answered
to the client, then bytes flow both ways. A WebSocket offering ``SPDY/3.1+portforward.k8s.io``
(kubectl >= 1.31 port-forward): the kubelet is upgraded to SPDY with ``portforward.k8s.io``,
the WebSocket accepted with the prefixed protocol the kubelet chose, and each binary message's
bytes go to the kubelet as they are, the kubelet's bytes back as binary messages. A kubelet's
refusal reaches the client as the kubelet's status and body.

Why by hand on devkube's side: aiohttp switches a connection's protocol only for WebSocket, so
after answering 101 to a SPDY upgrade the client's bytes are taken from the connection
(``set_parser``) rather than parsed as HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Coroutine
from typing import Any

from aiohttp import WSMsgType, web

from k8sbridge.devkube import spdyclient

__all__ = ["TUNNEL_PREFIX", "pass_through", "tunnel"]

log = logging.getLogger(__name__)

TUNNEL_PREFIX = "SPDY/3.1+"
_CHUNK = 64 * 1024
MAX_MESSAGE = 4 * 1024 * 1024


class _Incoming:
    """The client's bytes once the connection is ours (aiohttp's payload parser interface)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)


def _refusal(refused: spdyclient.Refused) -> web.Response:
    content_type = "text/plain"
    for line in refused.head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            content_type = value.strip().decode("latin-1").split(";")[0]
    return web.Response(status=refused.status, body=refused.body, content_type=content_type)


def _offered(request: web.Request) -> list[str]:
    return [p.strip() for v in request.headers.getall("X-Stream-Protocol-Version", [])
            for p in v.split(",") if p.strip()]


async def pass_through(request: web.Request, *, url: str,
                       ssl_context: ssl.SSLContext) -> web.StreamResponse:
    """A client's own SPDY upgrade, carried to the kubelet at ``url``."""
    try:
        head, reader, writer = await spdyclient.open_raw(url, ssl_context=ssl_context,
                                                         protocols=_offered(request))
    except spdyclient.Refused as e:
        return _refusal(e)
    incoming = _Incoming()
    request.protocol.set_parser(incoming)  # type: ignore[arg-type]
    response = web.StreamResponse(status=101, headers={"Connection": "Upgrade",
                                                       "Upgrade": "SPDY/3.1"})
    protocol = spdyclient.negotiated(head)
    if protocol:
        response.headers["X-Stream-Protocol-Version"] = protocol
    response.force_close()
    await response.prepare(request)

    async def up() -> None:
        while (data := await incoming.queue.get()) is not None:
            writer.write(data)
            await writer.drain()

    async def down() -> None:
        while data := await reader.read(_CHUNK):
            await response.write(data)

    await _both(up(), down())
    writer.close()
    if request.transport is not None:
        request.transport.close()
    return response


async def tunnel(request: web.Request, *, url: str,
                 ssl_context: ssl.SSLContext) -> web.StreamResponse:
    """A WebSocket carrying SPDY (``SPDY/3.1+portforward.k8s.io``) to the kubelet at ``url``."""
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
               if p.strip().startswith(TUNNEL_PREFIX)]
    if not offered:
        return web.Response(status=400,
                            text="unable to upgrade: no tunneling spdy protocols provided\n")
    try:
        head, reader, writer = await spdyclient.open_raw(
            url, ssl_context=ssl_context,
            protocols=[p[len(TUNNEL_PREFIX):] for p in offered])
    except spdyclient.Refused as e:
        return _refusal(e)
    chosen = spdyclient.negotiated(head)
    ws = web.WebSocketResponse(protocols=[TUNNEL_PREFIX + chosen] if chosen else (),
                               max_msg_size=MAX_MESSAGE, autoping=True)
    try:
        await ws.prepare(request)
    except BaseException:
        writer.close()
        raise

    async def up() -> None:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                writer.write(message.data)
                await writer.drain()

    async def down() -> None:
        while data := await reader.read(_CHUNK):
            await ws.send_bytes(data)

    await _both(up(), down())
    writer.close()
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await ws.close()
    return ws


async def _both(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the two directions until either ends; then stop the other."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception) and not isinstance(
                    result, ConnectionError | RuntimeError | OSError):
                log.info("SPDY tunnel: %r", result)
