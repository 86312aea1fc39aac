"""The launch side of a pod's life: which attempt runs, when the next may launch, deletion.

Why here and not in the offer loop: the loop used to keep five tables of its own about each
pod's life (the current attempt, when the next attempt may launch, whether that relaunch
restarts only sidecars, the attempt whose init phases run, whether the pod is being
deleted). They are facts of the pod's life, so the lifecycle owns them: one ``LaunchLife``
per pod, part of the pod's one record (``PodRecord.launch_side``, kept in
``lifecycle.store.PodStore``). The offer loop executes (it places, binds, launches and kills)
and records there what it did; it keeps only execution bookkeeping of its own (held offers,
the pending queue's order, timers, explanations). Pure: values, no I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from k8sbridge.model import ids

__all__ = ["LaunchLife", "PodLaunch", "PodSandbox", "RelaunchStep", "relaunch_step"]

RelaunchStep = Literal["stale", "anew", "beside"]


@dataclasses.dataclass(frozen=True, slots=True)
class PodLaunch:
    """One launched attempt of a pod (one task group on one agent)."""

    uid: str
    attempt: int
    agent_id: ids.AgentId
    node_name: str
    task_ids: tuple[ids.TaskId, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class PodSandbox:
    """A pod's sandbox on the pod network (``scheduler.launch``): a DEFAULT executor kept
    alive by a task of its own, which every later group of the pod joins, so the pod keeps
    one IP. ``executor``: the ExecutorInfo exactly as first sent (Mesos refuses a launch
    onto a running executor with any other)."""

    agent_id: ids.AgentId
    executor_id: str
    task_id: ids.TaskId
    executor: dict[str, Any] = dataclasses.field(hash=False, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class LaunchLife:
    """What the launch side knows about one pod."""

    launch: PodLaunch | None = None  # the attempt launched now (None: none, or it ended)
    relaunch_at: float | None = None  # when the next attempt may launch (the loop's clock)
    sidecar_relaunch: bool = False  # that relaunch restarts sidecars only
    phase_attempt: int | None = None  # the attempt whose init phases run
    deleting: bool = False  # being deleted: kill, then delete the object, then forget
    sandbox: PodSandbox | None = None  # its live sandbox, that its next launches join


def relaunch_step(*, sidecars_only: bool, others_live: bool) -> RelaunchStep:
    """What a relaunch that fell due does. ``others_live``: a task other than a sidecar's
    still runs. ``"stale"``: the attempt is still running (nothing to do); ``"anew"``: the
    attempt ended, the pod is launched again; ``"beside"``: a sidecar restarts beside the
    running app containers (its init phase is the first unfinished one again)."""
    if others_live:
        return "beside" if sidecars_only else "stale"
    return "anew"
