"""A pod's deletion, as the kubelet does it: stop every container, then remove the object.

Why here: the order is a decision about the pod's life. ``deletionTimestamp`` set → KILL every
live task with the pod's grace (``deletionGracePeriodSeconds``, else
``terminationGracePeriodSeconds``, else 30 s; 0 when the object is already gone, a force
delete) — the app containers first, the sidecars only once no other container runs (as
Kubernetes ≥ 1.29 stops sidecars after the app containers); once every task has ended, DELETE
the object with grace 0 and its uid, and forget the pod. The offer loop executes the intents.

A pod deleted while its agent is unreachable (the node lifecycle controller evicts it, or a
user deletes it) is handled as a kubelet cut off from its node would be: the pod stays
Terminating — its task cannot be stopped, and removing the object would let a second copy run
beside it unseen — until the agent is back (the kill, repeated with back-off by the offer
loop's ``scheduler.kills``, lands; the task ends; the object is deleted) or until someone
force-deletes it (the task is then one no pod owns, killed the same way when its agent is
back). Nothing else waits on it: a deletion advances only on its own tasks' updates, and its
ReplicaSet's replacement is placed on the other agents like any pending pod.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from k8sbridge.lifecycle import intents
from k8sbridge.lifecycle.record import facts_of
from k8sbridge.model import ids

__all__ = ["DEFAULT_GRACE_SECONDS", "TaskView", "grace_of", "step"]

DEFAULT_GRACE_SECONDS = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class TaskView:
    """One task of the pod as the loop knows it."""

    task_id: ids.TaskId
    container: str
    terminal: bool
    killing: bool = False


def grace_of(pod: Mapping[str, Any] | None) -> float:
    """The seconds a container gets between SIGTERM and SIGKILL when the pod is deleted."""
    if pod is None:
        return 0.0  # the pod object is gone (force delete): kill at once
    raw = (pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
    if raw is None:
        raw = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    try:
        return max(0.0, float(raw)) if raw is not None else DEFAULT_GRACE_SECONDS
    except (TypeError, ValueError):
        return DEFAULT_GRACE_SECONDS


def step(
    *, pod: Mapping[str, Any] | None, tasks: Sequence[TaskView]
) -> tuple[intents.Intent, ...]:
    """What the deletion of ``pod`` (None: its object is gone) needs next, given its tasks.

    Nothing while only tasks already being killed are live (their updates call again)."""
    live = [t for t in tasks if not t.terminal]
    if not live:
        return (intents.DeletePod(), intents.Forget()) if pod is not None else (intents.Forget(),)
    sidecars = facts_of(pod).sidecars if pod is not None else frozenset()
    others = [t for t in live if t.container not in sidecars]
    if pod is not None and others:
        live = others  # sidecars stop after the app (and init) containers
    grace = grace_of(pod)
    return tuple(intents.Kill(t.task_id, grace=grace) for t in live if not t.killing)
