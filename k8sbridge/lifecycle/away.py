"""Attempts that ended while the bridge was away: read from the pod's own written status.

Why here: whether a pod bound to our node without a live task must be launched (it never
started) or has *ended* (it ran; launching it again would run a ``restartPolicy: Never`` pod
twice) is a decision about its life. The pod's status names the attempt that ran (container
ids are ``mesos://<uid>.<attempt>.<container>``); each of its app containers gets a final
status — what the status already says if it had terminated, else ``TASK_GONE`` (the master no
longer knows the task) — and the machine's restart policy decides what follows. The offer loop
prefers the master's own last status of a completed task when it still has one.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from k8sbridge.model import ids, tasks

__all__ = ["VANISHED_MESSAGE", "final_from_written", "parse_task_id", "previous_attempt"]

VANISHED_MESSAGE = (
    "The container could not be located: its Mesos task {task} vanished while the bridge was "
    "away (the master no longer knows it)"
)


def parse_task_id(task_id: str) -> tuple[str, int, str] | None:
    """``(uid, attempt, container)`` of one of our task ids, else None."""
    parts = task_id.split(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


def previous_attempt(
    uid: str, pod: Mapping[str, Any]
) -> tuple[int, dict[str, Mapping[str, Any]]] | None:
    """The latest attempt whose app containers ran, per the pod's written status, with each
    container's written status; None when no app container of ours ever started."""
    spec = pod.get("spec") or {}
    names = {str(c.get("name")) for c in spec.get("containers") or []}
    by_attempt: dict[int, dict[str, Mapping[str, Any]]] = {}
    started: set[int] = set()
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if not isinstance(cs, dict):
            continue
        cid = str(cs.get("containerID") or "")
        if not cid.startswith("mesos://"):
            continue
        parsed = parse_task_id(cid[len("mesos://"):])
        if parsed is None or parsed[0] != uid or parsed[2] not in names:
            continue
        attempt = parsed[1]
        by_attempt.setdefault(attempt, {})[parsed[2]] = cs
        state = cs.get("state") or {}
        if isinstance(state, dict) and ("running" in state or "terminated" in state):
            started.add(attempt)
    best = max(started) if started else None
    if best is None or best < max(by_attempt, default=-1):
        return None  # a later attempt was launched and has not started yet: launch it
    return best, by_attempt[best]


def final_from_written(
    task_id: ids.TaskId,
    written: Mapping[str, Any] | None,
    *,
    agent_id: ids.AgentId | None,
    now: float,
) -> tasks.TaskStatusView:
    """The final status of a task the master no longer knows: what the pod's status already
    says if the container had terminated, else the task vanished (``TASK_GONE``)."""
    term = ((written or {}).get("state") or {}).get("terminated")
    if isinstance(term, dict):
        code = int(term.get("exitCode") or 0)
        return tasks.TaskStatusView(
            task_id=task_id,
            state="TASK_FINISHED" if code == 0 else "TASK_FAILED",
            message=str(term.get("message") or f"Command exited with status {code}"),
            source="SOURCE_EXECUTOR",
            agent_id=agent_id,
            timestamp=_epoch(term.get("finishedAt")) or now,
        )
    return tasks.TaskStatusView(
        task_id=task_id,
        state="TASK_GONE",
        message=VANISHED_MESSAGE.format(task=task_id),
        source="SOURCE_MASTER",
        reason="REASON_RECONCILIATION",
        agent_id=agent_id,
        timestamp=now,
    )


def _epoch(stamp: Any) -> float | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
