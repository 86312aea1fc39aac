"""The scheduler's events recorded as client-go's new events API records them
(``kube.eventseries``, ``kube.recorder``): an isolated event first, the second occurrence a
series of count 2 written at once, later ones counted and written when the series ends or is
refreshed; through events.k8s.io/v1 when discovery shows it (seen by real kubectl and the
official client through both APIs), core/v1 counts when it does not."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from kubernetes import client, config

from k8sbridge.devkube import main as devkube_main
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import eventseries


def _event(*, note: str = "0/3 nodes are available: 3 Insufficient cpu.",
           action: str = "Scheduling", rv: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "p.1", "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "type": "Warning",
        "reason": "FailedScheduling", "action": action, "note": note,
        "reportingController": "k8sbridge", "reportingInstance": "k8sbridge-host1",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "p", "uid": "u1",
                      "resourceVersion": rv},
    }


def test_the_second_occurrence_starts_a_series_the_later_ones_only_count() -> None:
    cache = eventseries.SeriesCache()
    first = cache.record(_event(), now=0.0)
    assert first is not None and first.patch is None and "series" not in first.event
    # the note and the pod's resourceVersion are not part of the key
    second = cache.record(_event(note="0/4 nodes are available", rv="7"), now=10.0)
    assert second is not None and second.key == first.key
    assert second.patch == {"series": {"count": 2,
                                       "lastObservedTime": eventseries.micro_time(10.0)}}
    assert second.event["metadata"]["name"] == "p.1"
    assert second.event["note"].startswith("0/3")  # the first one's, as client-go keeps it
    assert cache.record(_event(), now=20.0) is None
    assert cache.record(_event(), now=30.0) is None
    # another action is another event
    other = cache.record(_event(action="Binding"), now=30.0)
    assert other is not None and other.patch is None and other.key != first.key
    # refreshed as it stands; finished (final count) once not seen for six minutes
    [refreshed] = cache.refresh()
    assert refreshed.patch is not None and refreshed.patch["series"]["count"] == 4
    assert cache.finish(now=30.0 + eventseries.FINISH_SECONDS) == []
    [final] = cache.finish(now=31.0 + eventseries.FINISH_SECONDS)
    assert final.patch == {"series": {"count": 4,
                                      "lastObservedTime": eventseries.micro_time(30.0)}}
    assert len(cache) == 0  # the isolated Binding was forgotten too
    again = cache.record(_event(), now=1000.0)
    assert again is not None and again.patch is None


@pytest.fixture
async def devkube(tmp_path: Path) -> AsyncIterator[devkube_main.Devkube]:
    cfg = devkube_main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig",
                                     controllers=False)
    async with devkube_main.running(cfg) as dk:
        yield dk


def _kubectl(kubeconfig: Path, *args: str) -> str:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, check=True, timeout=30).stdout


async def _unplaceable_pod(kube: kube_client.KubeClient) -> dict[str, Any]:
    return await kube.request("POST", "/api/v1/namespaces/default/pods", body={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge"},
        "spec": {"containers": [{"name": "main", "image": "busybox",
                                 "resources": {"requests": {"cpu": "1000"}}}]}})


async def test_a_repeated_failed_scheduling_is_a_series_through_both_apis(
    devkube: devkube_main.Devkube,
) -> None:
    kube = kube_client.KubeClient.from_kubeconfig(path=devkube.kubeconfig, connections=2)
    try:
        pod = await _unplaceable_pod(kube)
        start = time.time() - 120.0
        for i, nodes in enumerate((3, 3, 4)):  # three passes, the last with another message
            pod["metadata"]["resourceVersion"] = str(100 + i)  # its status written between
            await kube.post_event(
                involved=pod, reason="FailedScheduling", type_="Warning", action="Scheduling",
                at=start + 60 * i,
                message=f"0/{nodes} nodes are available: {nodes} Insufficient cpu.")
        new = await kube.request("GET", "/apis/events.k8s.io/v1/namespaces/default/events")
        core = await kube.request("GET", "/api/v1/namespaces/default/events")
        # the third only counts until the series ends (client-go writes it then): flush now
        await kube.recorder.flush(kube.recorder.series.refresh())
        refreshed = await kube.request("GET", "/apis/events.k8s.io/v1/namespaces/default/events")
    finally:
        await kube.close()
    [event] = new["items"]
    assert event["reason"] == "FailedScheduling" and event["action"] == "Scheduling"
    assert event["reportingController"] == "k8sbridge"
    assert event["reportingInstance"].startswith("k8sbridge-")
    assert event["series"]["count"] == 2 and event["note"].startswith("0/3 nodes")
    assert "deprecatedCount" not in event
    [stored] = core["items"]
    assert stored["series"]["count"] == 2 and stored["involvedObject"]["name"] == "huge"
    assert stored["message"] == event["note"]
    [event] = refreshed["items"]
    assert event["series"]["count"] == 3

    table = await asyncio.to_thread(
        _kubectl, devkube.kubeconfig, "get", "events", "-o", "wide", "--no-headers")
    [row] = table.splitlines()
    assert re.match(r"\S+ +Warning +FailedScheduling +pod/huge +k8sbridge, k8sbridge-\S+ .* "
                    r"2m\d*s? +3 +huge\.", row), row
    listed = await asyncio.to_thread(_kubectl, devkube.kubeconfig, "events", "--for",
                                     "pod/huge")
    assert re.search(r"\(x3 over 2m\d*s?\) +Warning +FailedScheduling +Pod/huge", listed), listed

    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(devkube.kubeconfig))
    try:
        typed = await asyncio.to_thread(
            client.EventsV1Api(api_client).list_namespaced_event, "default")
    finally:
        api_client.close()
    [model] = typed.items
    assert model.series is not None and model.series.count == 3
    assert model.action == "Scheduling" and model.event_time is not None


@pytest.fixture
async def without_events_v1(
    tmp_path: Path,
) -> AsyncIterator[tuple[devkube_main.Devkube, Path]]:
    """devkube behind a proxy that answers 404 for events.k8s.io: an API server without it."""
    cfg = devkube_main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig",
                                     controllers=False, insecure_http=True)
    async with devkube_main.running(cfg) as dk, aiohttp.ClientSession() as session:

        async def forward(request: web.Request) -> web.Response:
            if request.path.startswith("/apis/events.k8s.io"):
                return web.json_response({"kind": "Status", "apiVersion": "v1", "code": 404,
                                          "status": "Failure", "reason": "NotFound",
                                          "message": "the server could not find the requested "
                                          "resource"}, status=404)
            async with session.request(
                request.method, dk.url + request.path_qs, data=await request.read(),
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            ) as reply:
                return web.Response(body=await reply.read(), status=reply.status,
                                    content_type=reply.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        kubeconfig = yaml.safe_load(dk.kubeconfig.read_text())
        kubeconfig["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{port}"
        proxied = tmp_path / "proxied"
        proxied.write_text(yaml.safe_dump(kubeconfig))
        try:
            yield dk, proxied
        finally:
            await runner.cleanup()


async def test_without_events_v1_the_scheduler_events_are_counted_in_core_v1(
    without_events_v1: tuple[devkube_main.Devkube, Path],
) -> None:
    _, kubeconfig = without_events_v1
    kube = kube_client.KubeClient.from_kubeconfig(path=kubeconfig, connections=2)
    try:
        pod = await _unplaceable_pod(kube)
        for _ in range(2):
            await kube.post_event(involved=pod, reason="FailedScheduling", type_="Warning",
                                  action="Scheduling", message="0/3 nodes are available")
        core = await kube.request("GET", "/api/v1/namespaces/default/events")
    finally:
        await kube.close()
    [event] = core["items"]
    assert event["count"] == 2 and "series" not in event
    assert event["source"] == {"component": "k8sbridge"}
