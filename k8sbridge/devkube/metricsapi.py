"""``metrics.k8s.io/v1beta1`` (PodMetrics, NodeMetrics) from the kubelets' ``/stats/summary``,
as metrics-server serves them, so that ``kubectl top pod|node`` works on devkube.

Why read on request rather than scrape every 15 s like metrics-server: devkube is a local
control plane and nobody may ever ask; a request reads each distinct kubelet endpoint of the
Nodes once (over TLS with devkube's kubelet client certificate, as for logs). A pod's figures
are its containers' ``usageNanoCores`` and ``workingSetBytes``; a kubelet that has no cpu rate
yet (it needs two samples) is read once more half a second later. A Node's figures are the sum
of the pods bound to it (the bridge's kubelet serves many Nodes from one endpoint, so the
summary's own node entry says nothing per Node). Pods without figures are left out, as
metrics-server leaves them out.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

import aiohttp
from aiohttp import web

from k8sbridge.devkube import errors, httpio, logproxy, registry

__all__ = ["GROUP_VERSION", "RESOURCES", "serve"]

log = logging.getLogger(__name__)

GROUP_VERSION = "metrics.k8s.io/v1beta1"
RESOURCES = (
    {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics",
     "verbs": ["get", "list"]},
    {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics",
     "verbs": ["get", "list"]},
)
Obj = dict[str, Any]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usage(cpu_nanos: int, memory: int) -> Obj:
    return {"cpu": f"{cpu_nanos}n", "memory": f"{memory // 1024}Ki"}


async def _summaries(ctx: httpio.Context) -> list[Obj]:
    """Each distinct kubelet endpoint's pods (entries of its /stats/summary)."""
    bases: set[str] = set()
    for stored in ctx.reg.store.items("/nodes"):
        node = stored.obj
        with_addresses = {"spec": {"nodeName": node["metadata"]["name"]}}
        try:
            bases.add(logproxy.kubelet_base(ctx, with_addresses, node["metadata"]["name"]))
        except errors.ApiError:
            continue
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def one(base: str) -> list[Obj]:
            for attempt in range(2):
                try:
                    async with session.get(f"{base}/stats/summary",
                                           ssl=ctx.kubelet_ssl) as reply:
                        body = await reply.json() if reply.status == 200 else {}
                except (aiohttp.ClientError, OSError, ValueError) as e:
                    log.info("metrics: %s/stats/summary: %s", base, e)
                    return []
                pods = [p for p in body.get("pods") or [] if isinstance(p, dict)]
                rated = all("usageNanoCores" in (c.get("cpu") or {})
                            for p in pods for c in p.get("containers") or [])
                if rated or attempt:
                    return pods
                await asyncio.sleep(0.6)
            return []

        found = await asyncio.gather(*(one(b) for b in sorted(bases)))
    return [p for part in found for p in part]


def _pod_metrics(entry: Obj) -> Obj | None:
    ref = entry.get("podRef") or {}
    containers = []
    for c in entry.get("containers") or []:
        cpu = (c.get("cpu") or {}).get("usageNanoCores")
        memory = (c.get("memory") or {}).get("workingSetBytes")
        if cpu is None or memory is None:
            continue
        containers.append({"name": c.get("name"), "usage": _usage(int(cpu), int(memory))})
    if not containers:
        return None
    return {"kind": "PodMetrics", "apiVersion": GROUP_VERSION,
            "metadata": {"name": ref.get("name"), "namespace": ref.get("namespace"),
                         "creationTimestamp": _now()},
            "timestamp": _now(), "window": "10s", "containers": containers}


def _parse_cpu(value: str) -> int:
    return int(value[:-1]) if value.endswith("n") else 0


def _parse_memory(value: str) -> int:
    return int(value[:-2]) * 1024 if value.endswith("Ki") else 0


async def serve(request: web.Request, *, ctx: httpio.Context, rest: list[str]) -> web.Response:
    """``/apis/metrics.k8s.io/v1beta1/...``: nodes[/name], pods, namespaces/NS/pods[/name]."""
    if request.method != "GET":
        raise errors.method_not_allowed(f"{request.method} is not supported on metrics")
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] not in ("pods", "nodes") or len(rest) > 2 or (
            rest[0] == "nodes" and namespace is not None):
        raise errors.ApiError(code=404, reason="NotFound",
                              message="the server could not find the requested resource")
    plural, name = rest[0], rest[1] if len(rest) == 2 else None
    pods = [m for e in await _summaries(ctx) if (m := _pod_metrics(e)) is not None]
    if plural == "pods":
        items = [p for p in pods if (namespace is None or p["metadata"]["namespace"] ==
                                     namespace) and name in (None, p["metadata"]["name"])]
        if name is not None:
            if not items:
                raise errors.not_found(plural="pods", group="metrics.k8s.io", name=name)
            return httpio.json_response(items[0])
        return httpio.json_response({"kind": "PodMetricsList", "apiVersion": GROUP_VERSION,
                                     "metadata": {}, "items": items})
    totals: dict[str, list[int]] = {}
    for stored in ctx.reg.store.items("/nodes"):
        totals[stored.obj["metadata"]["name"]] = [0, 0]
    for p in pods:
        pod = ctx.reg.store.get(registry.POD_KIND.store_key, p["metadata"]["namespace"],
                                p["metadata"]["name"])
        node = ((pod or {}).get("spec") or {}).get("nodeName")
        if node in totals:
            for c in p["containers"]:
                totals[node][0] += _parse_cpu(c["usage"]["cpu"])
                totals[node][1] += _parse_memory(c["usage"]["memory"])
    items = [{"kind": "NodeMetrics", "apiVersion": GROUP_VERSION,
              "metadata": {"name": n, "creationTimestamp": _now()}, "timestamp": _now(),
              "window": "10s", "usage": _usage(cpu, memory)}
             for n, (cpu, memory) in sorted(totals.items()) if name in (None, n)]
    if name is not None:
        if not items:
            raise errors.not_found(plural="nodes", group="metrics.k8s.io", name=name)
        return httpio.json_response(items[0])
    return httpio.json_response({"kind": "NodeMetricsList", "apiVersion": GROUP_VERSION,
                                 "metadata": {}, "items": items})
