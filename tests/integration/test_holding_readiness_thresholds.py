"""A readiness probe's failureThreshold holds over Mesos checks, which report only changes: a
container whose probe fails once, briefly, stays Ready; one that keeps failing turns unready,
and not before the threshold could be reached (embedded kernel, devkube, the whole bridge)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from k8sbridge import app
from tests.integration.conftest import eventually


def _pod(flag: Path) -> dict[str, Any]:
    """The probe tests a file the test adds and removes on the host, seen by the container
    through a hostPath volume (its own root is a copy-on-write view that does not follow)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "steady", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "main", "image": "busybox", "command": ["sleep", "300"],
            "readinessProbe": {"exec": {"command": ["test", "-f", f"/flags/{flag.name}"]},
                               "periodSeconds": 1, "timeoutSeconds": 1,
                               "failureThreshold": 3},
            "volumeMounts": [{"name": "flags", "mountPath": "/flags"}],
        }], "volumes": [{"name": "flags", "hostPath": {"path": str(flag.parent)}}]},
    }


async def test_one_brief_failure_keeps_the_pod_ready_and_a_lasting_one_does_not(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = embedded.bridge.kube
    flag = tmp_path / "ready"
    flag.write_text("ok")
    await kube.create("/api/v1/namespaces/default/pods", _pod(flag))

    async def ready() -> bool:
        pod = await kube.get_pod("default", "steady")
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
        return bool(statuses[0].get("ready")) and conditions.get("Ready") == "True"

    await eventually(ready, what="Ready")

    async def unhealthy() -> bool:
        events = await kube.get("/api/v1/namespaces/default/events")
        return any(e["reason"] == "Unhealthy" and e["involvedObject"]["name"] == "steady"
                   and "Readiness" in e["message"] for e in events["items"])

    flag.unlink()  # one failing probe (they run every second), then passing again
    await asyncio.sleep(1.5)
    flag.write_text("ok")
    until = time.monotonic() + 8.0  # well past the 3-failure window (2 × (1 + 1) + 1 s)
    while time.monotonic() < until:
        assert await ready(), "a single failing probe made the container unready"
        await asyncio.sleep(0.1)
    await eventually(unhealthy, timeout=15, what="the failed probe's Unhealthy event")

    flag.unlink()  # failing for good: unready, once three probes could have failed
    removed = time.monotonic()

    async def unready() -> bool:
        return not await ready()

    await eventually(unready, timeout=30, what="unready after failing for good")
    assert time.monotonic() - removed >= 2.0  # not before the 2nd and 3rd probe could fail
    await kube.delete("/api/v1/namespaces/default/pods/steady", grace_period_seconds=0)
