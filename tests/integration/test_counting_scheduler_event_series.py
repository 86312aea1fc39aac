"""The bridge's scheduler explains a pod that fits nowhere, then again with new words, and the
two FailedScheduling events are one events.k8s.io/v1 Event with ``series.count`` 2, as
kube-scheduler's recorder makes them (issue 17): seen through events.k8s.io/v1, through
core/v1 (the same stored object, its series), and by real kubectl (COUNT 2, ``(x2 over``)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import Any

from k8sbridge import app
from tests.integration.conftest import eventually


def _kubectl(kubeconfig: Path, *args: str) -> str:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=60, check=True).stdout


async def test_a_pod_explained_twice_has_one_failed_scheduling_series(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "main", "image": "busybox", "command": ["sleep", "300"],
             "resources": {"requests": {"cpu": "100", "memory": "32Mi"}}}]},
    })

    async def failed_scheduling(least: int) -> dict[str, Any] | None:
        listed = await kube.get("/apis/events.k8s.io/v1/namespaces/default/events")
        found = [e for e in listed["items"] if e["regarding"]["name"] == "huge"
                 and e["reason"] == "FailedScheduling"]
        assert len(found) <= 1, found  # never a second object
        count = (found[0].get("series") or {}).get("count", 1) if found else 0
        return found[0] if count >= least else None

    first = await eventually(lambda: failed_scheduling(1), what="a FailedScheduling event")
    assert "series" not in first and first["action"] == "Scheduling"
    assert first["note"].startswith("0/3 nodes are available: 3 Insufficient cpu"), first
    # the scheduler explains a pod again when a pass over every agent's offers says something
    # new (``Scheduler``: not a thing a test can bring about in seconds); it hands the new
    # explanation to the status writer, as here
    pod = await kube.get_pod("default", "huge")
    newer = "0/3 nodes are available: 3 Insufficient cpu (requested 100, largest offer 6)."
    embedded.bridge.writer.unschedulable(pod=pod, message=newer)
    event = await eventually(lambda: failed_scheduling(2), timeout=60,
                             what="the FailedScheduling event counted twice")
    assert event["series"]["count"] == 2 and event["note"] == first["note"]
    assert event["reportingController"] == "k8sbridge"
    pod = await kube.get_pod("default", "huge")
    [condition] = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert condition["message"] == newer  # the newer explanation; the note stays the first

    core = await kube.get(f"/api/v1/namespaces/default/events/{event['metadata']['name']}")
    assert core["series"]["count"] == 2 and core["involvedObject"]["name"] == "huge"
    table = await asyncio.to_thread(
        _kubectl, embedded.kubeconfig, "get", "events", "--field-selector",
        "involvedObject.name=huge,reason=FailedScheduling", "-o", "wide", "--no-headers")
    [row] = table.splitlines()
    assert re.search(r" 2 +huge\.[0-9a-f]+$", row), row
    listed = await asyncio.to_thread(_kubectl, embedded.kubeconfig, "events", "--for",
                                     "pod/huge")
    assert re.search(r"\(x2 over \S+\) +Warning +FailedScheduling +Pod/huge", listed), listed
    await kube.delete("/api/v1/namespaces/default/pods/huge", grace_period_seconds=0)
