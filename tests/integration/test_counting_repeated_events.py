"""A crash-looping pod's repeated events are counted, not repeated (issue 17): the bridge's
kubelet records the second BackOff as a PATCH of the first Event, as a kubelet's recorder does,
so real kubectl shows COUNT 2 in ``get events`` and ``(x2 over ...)`` in ``describe``."""

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
                          capture_output=True, text=True, timeout=30, check=True).stdout


async def test_a_crash_loops_back_off_events_are_one_counted_event(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "looper", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": "busybox",
                                 "command": ["sh", "-c", "exit 1"]}]},
    })

    async def back_offs() -> list[dict[str, Any]] | None:
        listed = await kube.get("/api/v1/namespaces/default/events")
        found = [e for e in listed["items"]
                 if e["involvedObject"]["name"] == "looper" and e["reason"] == "BackOff"]
        return found if found and found[0].get("count", 1) >= 2 else None

    # back-off 10 s after the first exit, then 20 s: the second BackOff comes after ~10 s
    [event] = await eventually(back_offs, timeout=60, what="a BackOff event counted twice")
    assert event["type"] == "Warning" and event["source"]["component"] == "kubelet"
    assert event["lastTimestamp"] > event["firstTimestamp"]
    table = await asyncio.to_thread(
        _kubectl, embedded.kubeconfig, "get", "events", "--field-selector",
        "involvedObject.name=looper,reason=BackOff", "-o",
        "custom-columns=REASON:.reason,COUNT:.count", "--no-headers")
    [(reason, count)] = [line.split() for line in table.splitlines() if line.strip()]
    assert reason == "BackOff" and int(count) >= 2
    described = await asyncio.to_thread(_kubectl, embedded.kubeconfig, "describe", "pod",
                                         "looper")
    assert re.search(r"BackOff +\S+ \(x\d+ over \S+\) +kubelet +Back-off restarting",
                     described), described
    await kube.delete("/api/v1/namespaces/default/pods/looper", grace_period_seconds=0)
