"""Attempts that ended while the bridge was away: read from the pod's own written status.

Why here: whether a pod bound to our node without a live task must be launched (it never
started) or has *ended* (it ran; launching it again would run a ``restartPolicy: Never`` pod
twice) is a decision about its life. The pod's status names the attempt that ran (container
ids are ``mesos://<task id>``, ``taskids``); each of its app containers gets a final
status — what the status already says if it had terminated, else ``TASK_GONE`` (the master no
longer knows the task) — and the machine's restart policy decides what follows. The offer loop
prefers the master's own last status of a completed task when it still has one.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from k8sbridge.lifecycle import taskids
from k8sbridge.model import ids, tasks

__all__ = [
    "VANISHED_MESSAGE", "attempt_task_ids", "final_from_written", "parse_task_id",
    "previous_attempt", "written_attempts",
]

VANISHED_MESSAGE = (
    "The container could not be located: its Mesos task {task} vanished while the bridge was "
    "away (the master no longer knows it)"
)


def parse_task_id(task_id: str) -> tuple[str, int, str] | None:
    """``(uid, attempt, container)`` of one of our task ids (either form, ``taskids``),
    else None."""
    name = taskids.parse(task_id)
    return None if name is None else (name.uid, name.attempt, name.container)


def written_attempts(uid: str, pod: Mapping[str, Any]) -> list[int]:
    """The attempts of ``uid`` that the pod's written status names (its containers' current
    and last states): the loop counts the next attempt past them, so attempts keep growing
    when the master and the bridge have forgotten the earlier tasks."""
    out: list[int] = []
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in (pod.get("status") or {}).get(key) or []:
            if not isinstance(cs, dict):
                continue
            last = (cs.get("lastState") or {}).get("terminated") or {}
            for cid in (cs.get("containerID"), last.get("containerID") if isinstance(
                    last, dict) else None):
                if isinstance(cid, str) and cid.startswith("mesos://"):
                    parsed = parse_task_id(cid[len("mesos://"):])
                    if parsed is not None and parsed[0] == uid:
                        out.append(parsed[1])
    return out


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


def attempt_task_ids(
    written: Mapping[str, Mapping[str, Any]], names: list[str]
) -> dict[str, ids.TaskId]:
    """The task id each of ``names`` had in the attempt ``written`` describes (its written
    ``containerID``; a container without one: its sibling's id with its own name)."""
    known = {
        name: str(cs.get("containerID"))[len("mesos://"):] for name, cs in written.items()
        if str(cs.get("containerID") or "").startswith("mesos://")
    }
    some = next(iter(known.values()), None)
    out: dict[str, ids.TaskId] = {}
    for name in names:
        tid = known.get(name) or (taskids.sibling(some, name) if some is not None else None)
        if tid is not None:
            out[name] = ids.TaskId(tid)
    return out


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
