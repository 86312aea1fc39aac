"""Every Kubernetes API call can be timed by verb (the hook request-latency metrics hang on)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from k8sbridge.devkube import main as devkube_main
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def _config_map(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": "v"}}


async def test_each_call_reports_its_verb_status_and_time(tmp_path: Path) -> None:
    config = devkube_main.DevkubeConfig(
        port=0, kubeconfig=tmp_path / "kubeconfig", controllers=False
    )
    timings: list[kube_client.RequestTiming] = []
    async with devkube_main.running(config) as dk:
        kube = kube_client.KubeClient.from_kubeconfig(
            path=dk.kubeconfig, connections=1, observer=timings.append
        )
        try:
            await kube.create(CONFIGMAPS, _config_map("timed"))
            await kube.get_config_map("default", "timed")
            await kube.patch(f"{CONFIGMAPS}/timed", {"data": {"k": "w"}})
            with pytest.raises(kube_errors.NotFound):
                await kube.get_config_map("default", "missing")
            # two calls at once on one thread: the second one waits its turn, and says so
            await asyncio.gather(kube.get(CONFIGMAPS), kube.get(CONFIGMAPS))
            await kube.delete(f"{CONFIGMAPS}/timed")
        finally:
            await kube.close()
    assert [(t.verb, t.path, t.status) for t in timings] == [
        ("POST", CONFIGMAPS, 201),
        ("GET", f"{CONFIGMAPS}/timed", 200),
        ("PATCH", f"{CONFIGMAPS}/timed", 200),
        ("GET", f"{CONFIGMAPS}/missing", 404),
        ("GET", CONFIGMAPS, 200),
        ("GET", CONFIGMAPS, 200),
        ("DELETE", f"{CONFIGMAPS}/timed", 200),
    ]
    assert all(t.seconds > 0 for t in timings)
    first, second = timings[4], timings[5]
    assert second.queued >= first.seconds * 0.5, (first, second)  # it waited for the connection


async def test_no_reply_is_timed_without_a_status_and_a_broken_observer_is_only_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: x, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: x, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: x, user: x}}]\n"
    )
    timings: list[kube_client.RequestTiming] = []

    def observer(timing: kube_client.RequestTiming) -> None:
        timings.append(timing)
        raise RuntimeError("metrics backend is down")

    client = kube_client.KubeClient.from_kubeconfig(path=kubeconfig, connections=1,
                                                    observer=observer, timeout=2.0)
    try:
        with caplog.at_level(logging.ERROR, logger="k8sbridge.kube.client"), \
                pytest.raises(kube_errors.TransportError):
            await client.get("/api/v1/pods")
    finally:
        await client.close()
    assert [(t.verb, t.path, t.status) for t in timings] == [("GET", "/api/v1/pods", None)]
    assert "the request observer failed on GET /api/v1/pods" in caplog.text
