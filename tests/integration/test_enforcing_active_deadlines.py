"""``activeDeadlineSeconds``: a pod active on its node longer than that fails with
``DeadlineExceeded`` (the kubelet's reason and message) and its containers are stopped."""

from __future__ import annotations

from typing import Any

from k8sbridge import app
from tests.integration.conftest import eventually


async def test_a_pod_past_its_deadline_fails_and_its_container_stops(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bounded", "namespace": "default"},
        "spec": {"activeDeadlineSeconds": 3, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": "busybox",
                                 "command": ["sleep", "300"]}]},
    })

    async def failed() -> dict[str, Any] | None:
        pod = await kube.get_pod("default", "bounded")
        status = pod.get("status") or {}
        (cs,) = status.get("containerStatuses") or [{}]
        done = status.get("phase") == "Failed" and "terminated" in (cs.get("state") or {})
        return pod if done else None

    pod = await eventually(failed, what="the pod Failed with its container stopped")
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert pod["status"]["message"] == (
        "Pod was active on the node longer than the specified deadline")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    live = [t for t in embedded.bridge.scheduler.tasks.values()
            if t.pod_uid == pod["metadata"]["uid"] and not t.terminal]
    assert live == []

    async def recorded() -> bool:
        events = await kube.get("/api/v1/namespaces/default/events")
        return any(e.get("reason") == "DeadlineExceeded"
                   and (e.get("involvedObject") or {}).get("name") == "bounded"
                   for e in events.get("items") or [])

    await eventually(recorded, what="a DeadlineExceeded event")
