"""restartPolicy on Mesos: a crashing container is relaunched as a new attempt with back-off."""

from __future__ import annotations

from typing import Any

from k8sbridge import app
from tests.integration.conftest import eventually


async def test_crash_loop_restarts_with_growing_count_and_back_off(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await kube.create(
        "/api/v1/namespaces/default/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "crasher", "namespace": "default"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {"name": "main", "image": "busybox",
                     "command": ["sh", "-c", "echo boom; exit 2"]}
                ],
            },
        },
    )

    async def status() -> dict[str, Any]:
        pod = await kube.get_pod("default", "crasher")
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        return dict(statuses[0])

    async def backing_off() -> dict[str, Any] | None:
        cs = await status()
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if cs.get("restartCount", 0) >= 1 and waiting.get("reason") == "CrashLoopBackOff":
            return cs
        return None

    cs = await eventually(backing_off, timeout=40, what="CrashLoopBackOff after a restart")
    last = cs["lastState"]["terminated"]
    assert last["exitCode"] == 2 and last["reason"] == "Error"
    assert "back-off 10s" in cs["state"]["waiting"]["message"]
    pod = await kube.get_pod("default", "crasher")
    assert pod["status"]["phase"] == "Running"  # restartPolicy Always keeps the pod Running
    attempts = {
        t.attempt for t in embedded.bridge.scheduler.tasks.values()
        if t.pod_uid == pod["metadata"]["uid"]
    }
    assert attempts >= {0, 1}
    await kube.delete("/api/v1/namespaces/default/pods/crasher", grace_period_seconds=0)
