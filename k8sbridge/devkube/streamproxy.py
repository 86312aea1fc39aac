"""``pods/exec``, ``pods/attach`` and ``pods/portforward``: the client's WebSocket relayed to
the kubelet of the pod's node, as kube-apiserver proxies these connect subresources.

Why message by message rather than bytes after the upgrade: the upstream handshake must
complete first (so a kubelet's refusal -- a container that is not running, a bad query --
reaches the client as a ``Status`` with its message, not as a broken upgrade), and the
subprotocol the kubelet picked is then the one offered to the client. The kubelet is reached
as for logs (``logproxy``): its node's InternalIP and ``daemonEndpoints`` port, over TLS with
devkube's kubelet client certificate. The query is rewritten as kube-apiserver does:
``stdin``/``stdout``/``stderr``/``tty`` become the kubelet's ``input``/``output``/``error``/
``tty``, ``command`` is kept, ``ports`` becomes ``port``. Who may do it: every authenticated
user (devkube's authorization is AlwaysAllow; kube-apiserver asks for ``create`` on the
subresource). SPDY upgrades (kubectl's fallback) are refused with a 400 that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from k8sbridge.devkube import errors, httpio, logproxy, registry

__all__ = ["proxy_stream"]

log = logging.getLogger(__name__)

MAX_MESSAGE = 4 * 1024 * 1024
_FLAGS = (("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty"))
_TRUE = ("1", "true", "True")
_KUBELET_PATH = {"exec": "exec", "attach": "attach", "portforward": "portForward"}


def kubelet_query(sub: str, query: Any) -> list[tuple[str, str]]:
    """The kubelet's query for a client's ``pods/<sub>`` query (``request.query``)."""
    out: list[tuple[str, str]] = []
    if sub == "portforward":
        for raw in query.getall("ports", []) + query.getall("port", []):
            out.extend(("port", p) for p in str(raw).split(",") if p)
        return out
    for theirs, ours in _FLAGS:
        if query.get(theirs) in _TRUE or query.get(ours) in _TRUE:
            out.append((ours, "1"))
    if sub == "exec":
        out.extend(("command", c) for c in query.getall("command", []))
    return out


async def proxy_stream(request: web.Request, *, ctx: httpio.Context, sub: str, ns: str,
                       name: str) -> web.StreamResponse:
    """Relay the client's WebSocket for ``pods/<sub>`` to the pod's kubelet."""
    if request.method not in ("GET", "POST"):
        raise errors.method_not_allowed(f"pods/{sub} only supports GET and POST")
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade != "websocket":
        raise errors.bad_request(
            f"pods/{sub} needs a WebSocket upgrade (v5.channel.k8s.io, v4.channel.k8s.io); "
            f"devkube does not proxy {upgrade or 'plain'} requests (SPDY)")
    pod = ctx.reg.current(registry.POD_KIND, ns, name)
    path = f"/{_KUBELET_PATH[sub]}/{ns}/{name}"
    if sub != "portforward":
        container = logproxy.pick_container(pod, name, request.query.get("container"))
        path += f"/{container}"
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        raise errors.bad_request(
            f"cannot {sub} into a container in a completed pod; current phase is "
            f"{pod['status']['phase']}")
    url = logproxy.kubelet_base(ctx, pod, name) + path
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
               if p.strip()]
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            upstream = await session.ws_connect(
                url, params=kubelet_query(sub, request.query), protocols=offered,
                ssl=ctx.kubelet_ssl, max_msg_size=MAX_MESSAGE, autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            raise errors.ApiError(code=e.status if e.status >= 400 else 500,
                                  reason="BadRequest" if e.status < 500 else "InternalError",
                                  message=f"error from the kubelet: {e.message}") from e
        except (aiohttp.ClientError, OSError) as e:
            raise errors.ApiError(code=500, reason="InternalError",
                                  message=f'error dialing the kubelet "{url}": {e}') from e
        async with upstream:
            client = web.WebSocketResponse(
                protocols=[upstream.protocol] if upstream.protocol else (),
                max_msg_size=MAX_MESSAGE, autoping=True)
            await client.prepare(request)
            await _relay(client, upstream, ctx.stop)
            return client


async def _relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse,
                 stop: asyncio.Event) -> None:
    """Both directions until either side closes (or devkube stops); then close the other."""
    async def down() -> None:
        async for message in upstream:
            if message.type == WSMsgType.BINARY:
                await client.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await client.send_str(message.data)

    async def up() -> None:
        async for message in client:
            if message.type == WSMsgType.BINARY:
                await upstream.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await upstream.send_str(message.data)

    tasks = [asyncio.create_task(down()), asyncio.create_task(up()),
             asyncio.create_task(stop.wait())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(
                    result, ConnectionResetError | RuntimeError):
                log.info("stream proxy: %r", result)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await client.close()
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await upstream.close()
