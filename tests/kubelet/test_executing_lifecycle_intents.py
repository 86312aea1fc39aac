"""The status writer executes what the lifecycle decides: relaunches (which containers, after
which delay) and kills go to the scheduler's callbacks; it decides nothing itself."""

from __future__ import annotations

import time
from typing import Any

from k8sbridge.kubelet import pods as kubelet_pods
from k8sbridge.model import ids, tasks

UID = "u1"


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "default", "uid": UID},
            "spec": {"nodeName": "n", "containers": [{"name": "app", "image": "busybox"}],
                     **spec}}


def _status(container: str, attempt: int, state: str, at: float, **kw: Any) -> Any:
    return tasks.TaskStatusView(task_id=ids.TaskId(f"{UID}.{attempt}.{container}"),
                                state=state, timestamp=at, **kw)


def _writer() -> tuple[kubelet_pods.PodStatusWriter, list[Any], list[Any]]:
    relaunches: list[Any] = []
    kills: list[Any] = []
    writer = kubelet_pods.PodStatusWriter(
        kube=None,  # type: ignore[arg-type]  # nothing is written here
        relaunch=lambda uid, delay, containers: relaunches.append((uid, delay, containers)),
        kill=lambda uid, task_id: kills.append((uid, str(task_id))),
    )
    return writer, relaunches, kills


def test_a_crash_and_a_refused_launch_ask_for_relaunches() -> None:
    writer, relaunches, _ = _writer()
    pod = _pod()
    for state in ("TASK_RUNNING", "TASK_FAILED"):
        writer.task_status(pod=pod, status=_status("app", 0, state, 1e9 + 1,
                                                   message="Command exited with status 1"),
                           container="app", attempt=0, agent=None, ack=None)
    assert relaunches == [(UID, 0.0, ("app",))]
    writer.task_status(pod=pod, status=_status("app", 1, "TASK_DROPPED", 1e9 + 2,
                                               reason="REASON_INVALID_OFFERS"),
                       container="app", attempt=1, agent=None, ack=None)
    assert relaunches[1] == (UID, 0.0, ("app",))


def test_a_sidecar_is_stopped_through_the_kill_callback() -> None:
    writer, _, kills = _writer()
    pod = _pod(restartPolicy="Never",
               initContainers=[{"name": "proxy", "image": "busybox", "restartPolicy": "Always"}])
    writer.task_status(pod=pod, status=_status("proxy", 0, "TASK_RUNNING", 1e9),
                       container="proxy", attempt=0, agent=None, ack=None)
    for state in ("TASK_RUNNING", "TASK_FINISHED"):
        writer.task_status(pod=pod, status=_status("app", 1, state, 1e9 + 1),
                           container="app", attempt=1, agent=None, ack=None)
    assert kills == [(UID, f"{UID}.0.proxy")]


def test_a_deadline_moved_into_the_past_kills_at_once() -> None:
    """activeDeadlineSeconds may be lowered on a live pod: the new version is applied with the
    real time, so a deadline already past fails the pod now (not at the next update)."""
    writer, _, kills = _writer()
    pod = _pod()
    writer.task_status(pod=pod, status=_status("app", 0, "TASK_RUNNING", time.time()),
                       container="app", attempt=0, agent=None, ack=None)
    began = {"startTime": "2020-01-01T00:00:00Z"}
    writer.observe({**pod, "spec": {**pod["spec"], "activeDeadlineSeconds": 60},
                    "status": began})
    assert kills == [(UID, f"{UID}.0.app")]
    assert writer._state[UID].record.deadline_exceeded
