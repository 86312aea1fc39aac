"""/stats/summary carries each pod's and container's cpu and memory from the Mesos agent.

A two-container pod (one task group: the busy container burns a core and holds ~30 MB, the other
sleeps) runs on the embedded kernel; the kubelet API's Summary must report both levels, with
usageNanoCores from two samples and the busy container using clearly more cpu than the idle one.
A quiet pod on the same agent shares that agent's container daemon but not its cpu: each pod
counts its own processes only.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp

from k8sbridge import app
from tests.integration.conftest import eventually

_BUSY = "b = bytearray(30 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])\nwhile True: pass"


async def test_summary_reports_pod_and_container_cpu_and_memory(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "burner", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "busy", "image": "python", "command": ["python3", "-c", _BUSY]},
            {"name": "idle", "image": "busybox", "command": ["sleep", "300"]},
        ]},
    })
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    assert embedded.api_ca_file is not None
    pki = embedded.api_ca_file.parent
    ctx.load_cert_chain(pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key")
    url = f"https://127.0.0.1:{embedded.bridge.kubelet_port}/stats/summary"

    async def summary(name: str = "burner") -> dict[str, Any] | None:
        async with aiohttp.ClientSession() as http, http.get(url, ssl=ctx) as r:
            assert r.status == 200
            body = await r.json()
        for pod in body["pods"]:
            if pod["podRef"]["name"] == name:
                return dict(pod)
        return None

    async def burner_node() -> str:
        return str(((await kube.get_pod("default", "burner")).get("spec") or {})
                   .get("nodeName") or "")

    node = await eventually(burner_node, what="the burner bound to a node")
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "quiet", "namespace": "default"},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [
            {"name": "c", "image": "busybox", "command": ["sleep", "300"]}]},
    })

    async def measured() -> dict[str, Any] | None:
        pod = await summary()
        if pod is None or "cpu" not in pod:
            return None
        by_name = {c["name"]: c for c in pod["containers"]}
        busy = by_name.get("busy", {})
        if busy.get("memory", {}).get("rssBytes", 0) < 30 * 1024 * 1024:
            return None
        return pod

    first = await eventually(measured, what="usage figures for the pod")
    assert first["cpu"]["usageCoreNanoSeconds"] > 0
    await asyncio.sleep(1.0)
    pod = await summary()
    assert pod is not None
    by_name = {c["name"]: c for c in pod["containers"]}
    assert set(by_name) == {"busy", "idle"}
    busy, idle = by_name["busy"], by_name["idle"]
    assert busy["cpu"]["usageNanoCores"] > 200_000_000  # a spinning loop: most of a core
    assert idle["cpu"]["usageNanoCores"] < busy["cpu"]["usageNanoCores"] / 4
    assert busy["memory"]["workingSetBytes"] >= busy["memory"]["rssBytes"] > 30 * 1024 * 1024
    # The pod (executor container) and its tasks are sampled milliseconds apart: allow a tick.
    assert pod["cpu"]["usageCoreNanoSeconds"] >= busy["cpu"]["usageCoreNanoSeconds"] - 50_000_000
    # The pod's memory comes from its cgroup where writable (charged anonymous memory), the
    # containers' from /proc (resident pages, shared library pages included): not summable.
    assert pod["memory"]["rssBytes"] > 30 * 1024 * 1024
    assert pod["memory"]["usageBytes"] >= pod["memory"]["rssBytes"]
    assert pod["cpu"]["usageNanoCores"] > 200_000_000
    async def quiet_measured() -> dict[str, Any] | None:
        got = await summary("quiet")
        return got if got is not None and "usageNanoCores" in got.get("cpu", {}) else None

    quiet = await eventually(quiet_measured, what="usage figures for the quiet pod")
    assert quiet["cpu"]["usageNanoCores"] < 100_000_000, quiet["cpu"]  # not the burner's core
    await kube.delete("/api/v1/namespaces/default/pods/burner", grace_period_seconds=0)
    await kube.delete("/api/v1/namespaces/default/pods/quiet", grace_period_seconds=0)
