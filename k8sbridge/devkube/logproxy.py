"""``pods/log``: find the pod's kubelet and stream its containerLogs endpoint to the client.

Why: ``kubectl logs`` (and ``-f``) go through the API server, which picks the container the way
kube-apiserver does (the default-container annotation, the only container, or a 400 naming the
choices), reaches the node's kubelet at its advertised address and port over TLS with the
apiserver's kubelet client certificate, and relays the stream until either side hangs up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import web

from k8sbridge.devkube import errors, httpio, registry

log = logging.getLogger(__name__)


def pick_container(pod: dict[str, Any], name: str, requested: str | None) -> str:
    """The container a request means, as kube-apiserver picks it: the one named, else the
    default-container annotation, else the only container (400 naming the choices)."""
    spec = pod.get("spec") or {}
    containers = [c.get("name") for c in (spec.get("initContainers") or []) +
                  (spec.get("containers") or []) + (spec.get("ephemeralContainers") or [])]
    container = requested
    if not container:
        annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(
            "kubectl.kubernetes.io/default-container")
        if annotated:
            container = str(annotated)
        elif len(spec.get("containers") or []) == 1:
            container = str(spec["containers"][0].get("name"))
        else:
            names = " ".join(str(c.get("name")) for c in spec.get("containers") or [])
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{names}]"
            )
    if container not in containers:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    return container


def kubelet_base(ctx: httpio.Context, pod: dict[str, Any], name: str) -> str:
    """``https://<address>:<port>`` of the kubelet of the pod's node: its InternalIP (else
    ExternalIP, else Hostname) and ``daemonEndpoints.kubeletEndpoint.Port``."""
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    node = ctx.reg.store.get("/nodes", "", node_name)
    if node is None:
        raise errors.not_found(plural="nodes", group="", name=node_name)
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    address = next((addresses[t] for t in ("InternalIP", "ExternalIP", "Hostname")
                    if addresses.get(t)), None)
    if not address:
        raise errors.bad_request(f"node {node_name} has no address to reach its kubelet")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get(
        "Port", 10250)
    host = f"[{address}]" if ":" in str(address) else str(address)
    return f"https://{host}:{port}"


async def proxy_log(
    request: web.Request, *, ctx: httpio.Context, ns: str, name: str
) -> web.StreamResponse:
    """Stream ``pods/log`` from the kubelet of the pod's node (its containerLogs endpoint)."""
    if request.method != "GET":
        raise errors.method_not_allowed("pods/log only supports GET")
    pod = ctx.reg.current(registry.POD_KIND, ns, name)
    container = pick_container(pod, name, request.query.get("container"))
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if cs.get("name") == container and waiting and not (cs.get("lastState") or {}):
            raise errors.bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: '
                f"{waiting.get('reason', '')}"
            )
    base = kubelet_base(ctx, pod, name)
    params = {k: v for k, v in request.query.items() if k != "container"}
    url = f"{base}/containerLogs/{ns}/{name}/{container}"
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            upstream = await session.get(url, params=params, ssl=ctx.kubelet_ssl)
        except aiohttp.ClientError as e:
            raise errors.ApiError(
                code=500, reason="InternalError", message=f'Get "{url}": {e}',
            ) from e
        try:
            if upstream.status != 200:
                text = (await upstream.text())[:2000]
                raise errors.ApiError(code=upstream.status if upstream.status >= 400 else 500,
                                      reason="InternalError" if upstream.status >= 500
                                      else "BadRequest", message=text.strip())
            response = web.StreamResponse(status=200)
            response.content_type = "text/plain"
            response.enable_chunked_encoding()
            await response.prepare(request)
            stop_wait = asyncio.ensure_future(ctx.stop.wait())
            try:
                while True:
                    read = asyncio.ensure_future(upstream.content.readany())
                    await asyncio.wait({read, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    if not read.done():
                        read.cancel()
                        break
                    chunk = read.result()
                    if not chunk:
                        break
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:
                # The log reader hung up (Ctrl-C on `kubectl logs -f`): normal, not an error.
                log.debug("pods/log client for %s/%s went away", ns, name)
            finally:
                stop_wait.cancel()
            return response
        finally:
            upstream.release()
