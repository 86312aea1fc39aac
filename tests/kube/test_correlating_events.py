"""Events recorded as client-go's recorder records them (``kube.events``): a repeat is a patch of
the first Event (count + 1), ten different messages for one reason become one combined event,
and a flood about one object stops at the spam filter's burst; against devkube, then with
real kubectl (COUNT in ``get events``, ``(xN over ...)`` in ``describe``)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge.devkube import main as devkube_main
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import events


def _event(message: str = "Back-off restarting failed container main in pod p", *,
           reason: str = "BackOff", name: str = "p", stamp: str = "2026-01-01T00:00:00Z",
           ) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{name}.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "name": name,
                           "namespace": "default", "uid": f"uid-{name}"},
        "reason": reason, "message": message, "type": "Warning",
        "source": {"component": "kubelet", "host": "n1"},
        "reportingComponent": "kubelet", "reportingInstance": "n1",
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    }


def test_a_repeat_is_a_patch_of_the_first_event() -> None:
    correlator = events.EventCorrelator()
    first = correlator.correlate(_event(stamp="2026-01-01T00:00:00Z"), now=0.0)
    assert first is not None and first.patch is None
    again = _event(stamp="2026-01-01T00:00:10Z")
    again["metadata"]["name"] = "p.2"
    second = correlator.correlate(again, now=10.0)
    assert second is not None and second.key == first.key
    assert second.event["metadata"]["name"] == "p.1"
    assert second.event["firstTimestamp"] == "2026-01-01T00:00:00Z"
    assert second.patch == {"count": 2, "lastTimestamp": "2026-01-01T00:00:10Z",
                            "message": again["message"]}
    third = correlator.correlate(_event(), now=20.0)
    assert third is not None and third.patch is not None and third.patch["count"] == 3


def test_the_tenth_similar_message_within_ten_minutes_is_combined() -> None:
    correlator = events.EventCorrelator()
    writes = [correlator.correlate(_event(f"message {i}"), now=float(i)) for i in range(12)]
    assert all(w is not None for w in writes)
    assert [w.patch is None for w in writes if w] == [True] * 10 + [False, False]
    combined = writes[9]
    assert combined is not None
    assert combined.event["message"] == events.COMBINED_PREFIX + "message 9"
    last = writes[11]
    assert last is not None and last.patch is not None
    assert last.patch["count"] == 3
    assert last.patch["message"] == events.COMBINED_PREFIX + "message 11"
    # ten minutes later the similar messages count from zero again
    fresh = correlator.correlate(_event("message 12"), now=11.0 + 601.0)
    assert fresh is not None and fresh.event["message"] == "message 12"


def test_the_spam_filter_lets_25_through_then_one_per_five_minutes() -> None:
    correlator = events.EventCorrelator()
    passed = [correlator.correlate(_event(reason=f"R{i}"), now=0.0) for i in range(30)]
    assert sum(p is not None for p in passed) == 25
    assert correlator.skipped == 5
    assert correlator.correlate(_event(reason="Late"), now=100.0) is None
    assert correlator.correlate(_event(reason="Later"), now=301.0) is not None
    # another object has its own bucket
    assert correlator.correlate(_event(name="q"), now=0.0) is not None


@pytest.fixture
async def devkube(tmp_path: Path) -> AsyncIterator[devkube_main.Devkube]:
    config = devkube_main.DevkubeConfig(
        port=0, kubeconfig=tmp_path / "kubeconfig", controllers=False)
    async with devkube_main.running(config) as dk:
        yield dk


async def test_kubectl_shows_the_count_of_a_repeated_event(
    devkube: devkube_main.Devkube,
) -> None:
    kube = kube_client.KubeClient.from_kubeconfig(path=devkube.kubeconfig, connections=2)
    try:
        pod = await kube.request("POST", "/api/v1/namespaces/default/pods", body={
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crasher"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}})
        start = time.time() - 120.0  # first two minutes ago, the last now
        for i in range(5):
            await kube.post_event(
                involved=pod, reason="BackOff", type_="Warning", component="kubelet",
                host="n1", at=start + 30 * i,
                message="Back-off restarting failed container main in pod crasher")
        listed = await kube.request("GET", "/api/v1/namespaces/default/events")
    finally:
        await kube.close()
    assert [(e["reason"], e["count"]) for e in listed["items"]] == [("BackOff", 5)]
    stored = listed["items"][0]
    assert stored["lastTimestamp"] > stored["firstTimestamp"]

    def run(*args: str) -> str:
        return subprocess.run(["kubectl", "--kubeconfig", str(devkube.kubeconfig), *args],
                              capture_output=True, text=True, check=True, timeout=30).stdout

    async def kubectl(*args: str) -> str:  # in a thread: devkube runs in this event loop
        return await asyncio.to_thread(run, *args)

    table = await kubectl("get", "events", "-o", "custom-columns=REASON:.reason,COUNT:.count")
    assert table.split() == ["REASON", "COUNT", "BackOff", "5"]
    described = await kubectl("describe", "pod", "crasher")
    assert "(x5 over 2m" in described, described
