"""The status writer's fold: restartCount survives a bridge restart (seeded from the pod)."""

from __future__ import annotations

from typing import Any

from k8sbridge.kubelet import pods as kubelet_pods
from k8sbridge.mesos import types as mesos_types
from k8sbridge.model import ids


def test_restart_count_is_carried_from_the_last_written_status() -> None:
    writer = kubelet_pods.PodStatusWriter(kube=None)  # type: ignore[arg-type]  # no writes here
    pod: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": "Running",
                   "containerStatuses": [{"name": "main", "restartCount": 4}]},
    }
    status = mesos_types.TaskStatus(
        task_id=ids.TaskId("u1.4.main"), state="TASK_RUNNING", timestamp=100.0,
        source="SOURCE_MASTER", reason="REASON_RECONCILIATION",
    )
    writer.task_status(pod=pod, status=status, container="main", attempt=4, agent=None,
                       ack=None)
    rendered = writer._render(writer._state["u1"], now=101.0)
    (cs,) = rendered["containerStatuses"]
    assert cs["restartCount"] == 4
    assert "running" in cs["state"]
