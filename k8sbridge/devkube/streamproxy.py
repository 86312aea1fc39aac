"""``pods/exec``, ``pods/attach`` and ``pods/portforward``: the client's stream carried to the
kubelet of the pod's node, as kube-apiserver >= 1.31 carries these connect subresources:

- a WebSocket offering ``v5.channel.k8s.io`` to exec/attach is translated to SPDY/3.1 towards
  the kubelet (``streamtranslate``, KEP-4006);
- a WebSocket offering ``SPDY/3.1+portforward.k8s.io`` to portforward is tunnelled: the kubelet
  is upgraded to SPDY and the bytes carried as they are (``spdytunnel.tunnel``);
- a SPDY upgrade from the client (older kubectls) is carried byte for byte
  (``spdytunnel.pass_through``);
- any other WebSocket (v4 exec, the official Python client's port-forward protocol) is relayed
  message by message to the kubelet's WebSocket, as the upgrade-aware proxy does.

Why message by message rather than bytes after the upgrade for the last: the upstream handshake must
complete first (so a kubelet's refusal -- a container that is not running, a bad query --
reaches the client as a ``Status`` with its message, not as a broken upgrade), and the
subprotocol the kubelet picked is then the one offered to the client. The kubelet is reached
as for logs (``logproxy``): its node's InternalIP and ``daemonEndpoints`` port, over TLS with
devkube's kubelet client certificate. The query is rewritten as kube-apiserver does:
``stdin``/``stdout``/``stderr``/``tty`` become the kubelet's ``input``/``output``/``error``/
``tty``, ``command`` is kept, ``ports`` becomes ``port``. Who may do it: every authenticated
user (devkube's authorization is AlwaysAllow; kube-apiserver asks for ``create`` on the
subresource).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from k8sbridge.devkube import errors, httpio, logproxy, registry, spdytunnel, streamtranslate

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
    if upgrade not in ("websocket", "spdy/3.1"):
        raise errors.bad_request(
            f"pods/{sub} needs an upgrade to WebSocket or SPDY/3.1 (got "
            f"{upgrade or 'a plain request'})")
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
    query = kubelet_query(sub, request.query)
    spdy_url = f"{url}?{urllib.parse.urlencode(query)}" if query else url
    if upgrade == "spdy/3.1":
        return await spdytunnel.pass_through(request, url=spdy_url, ssl_context=ctx.kubelet_ssl)
    if sub == "portforward" and any(p.startswith(spdytunnel.TUNNEL_PREFIX) for p in offered):
        return await spdytunnel.tunnel(request, url=spdy_url, ssl_context=ctx.kubelet_ssl)
    if sub != "portforward" and streamtranslate.V5 in offered:
        asked = {k for k, _ in query}
        return await streamtranslate.translate(
            request, url=spdy_url, ssl_context=ctx.kubelet_ssl, stdin="input" in asked,
            stdout="output" in asked, stderr="error" in asked, tty="tty" in asked)
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            upstream = await session.ws_connect(
                url, params=query, protocols=offered,
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
