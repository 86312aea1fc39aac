"""The kubelet HTTPS API: health, pods, clear errors, exec/attach/port-forward not supported."""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

from k8sbridge import app
from tests.integration.conftest import eventually


async def test_stats_summary_lists_running_pods(embedded: app.EmbeddedTargets) -> None:
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "busy", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "main", "image": "busybox", "command": ["sleep", "300"]}]},
    })
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    _as_api_server(ctx, embedded)  # anonymous is off: authenticate as devkube does
    url = f"https://127.0.0.1:{embedded.bridge.kubelet_port}/stats/summary"

    async def listed() -> dict[str, Any] | None:
        async with aiohttp.ClientSession() as http, http.get(url, ssl=ctx) as r:
            body = await r.json()
        for pod in body["pods"]:
            if pod["podRef"]["name"] == "busy":
                return dict(pod)
        return None

    pod = await eventually(listed, what="the pod in the summary")
    assert pod["podRef"]["namespace"] == "default" and pod["startTime"]
    # The embedded agent's /containers statistics carry limits only (no usage counters), so
    # cpu/memory appear only against agents that report Mesos ResourceStatistics usage.
    assert "memory" not in pod or pod["memory"]["rssBytes"] >= 0
    await kube.delete("/api/v1/namespaces/default/pods/busy", grace_period_seconds=0)


async def test_kubelet_api_answers_over_tls(embedded: app.EmbeddedTargets) -> None:
    port = embedded.bridge.kubelet_port
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # self-signed, as the API server treats kubelets
    _as_api_server(ctx, embedded)  # anonymous is off: authenticate as devkube does
    base = f"https://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/healthz", ssl=ctx) as r:
            assert r.status == 200 and await r.text() == "ok"
        async with http.get(base + "/pods", ssl=ctx) as r:
            body = await r.json()
            assert body["kind"] == "PodList"
        async with http.get(base + "/runningpods/", ssl=ctx) as r:
            assert (await r.json())["kind"] == "PodList"
        async with http.get(base + "/stats/summary", ssl=ctx) as r:
            assert "pods" in await r.json()
        async with http.get(base + "/containerLogs/default/nope/main", ssl=ctx) as r:
            assert r.status == 404 and "not available" in await r.text()
        async with http.get(base + "/containerLogs/default/nope/main?tailLines=-3",
                            ssl=ctx) as r:
            assert r.status == 400
        for path, why in (("/exec/default/p/c?command=ls", "at least 1 of stdin"),
                          ("/attach/default/p/c", "at least 1 of stdin"),
                          ("/portForward/default/p", "at least one port"),
                          ("/exec/default/p/c?command=ls&output=1", "WebSocket")):
            async with http.post(base + path, ssl=ctx) as r:
                assert r.status == 400 and why in await r.text()
        async with http.get(base + "/no/such/path", ssl=ctx) as r:
            assert r.status == 404
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz"):
            raise AssertionError("plain HTTP must not be served")
    except aiohttp.ClientError:
        pass


def _as_api_server(ctx: ssl.SSLContext, embedded: app.EmbeddedTargets) -> None:
    """Present devkube's kubelet client certificate (signed by the CA the kubelet trusts)."""
    assert embedded.api_ca_file is not None
    pki = embedded.api_ca_file.parent
    ctx.load_cert_chain(pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key")
