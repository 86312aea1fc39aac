"""The launch side of a pod's life: which attempt runs, when the next may launch, deletion.

Why here and not in the offer loop: the loop used to keep five tables of its own about each
pod's life (the current attempt, when the next attempt may launch, whether that relaunch
restarts only sidecars, the attempt whose init phases run, whether the pod is being
deleted). They are facts of the pod's life, so the lifecycle owns them: one ``LaunchLife``
per pod, kept in ``Lives``. The offer loop executes (it places, binds, launches and kills)
and records here what it did; it keeps only execution bookkeeping of its own (held offers,
the pending queue's order, timers, explanations). Pure: values and one dictionary, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Literal

from k8sbridge.model import ids

__all__ = ["LaunchLife", "Lives", "PodLaunch", "RelaunchStep", "relaunch_step"]

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
class LaunchLife:
    """What the launch side knows about one pod."""

    launch: PodLaunch | None = None  # the attempt launched now (None: none, or it ended)
    relaunch_at: float | None = None  # when the next attempt may launch (the loop's clock)
    sidecar_relaunch: bool = False  # that relaunch restarts sidecars only
    phase_attempt: int | None = None  # the attempt whose init phases run
    deleting: bool = False  # being deleted: kill, then delete the object, then forget


_NOTHING = LaunchLife()


class Lives:
    """uid -> ``LaunchLife``: the one place that says which attempt a pod is on, when it may
    launch next and whether it is being deleted. A pod about which nothing is known has no
    entry (memory per pod)."""

    def __init__(self) -> None:
        self._lives: dict[str, LaunchLife] = {}

    def __len__(self) -> int:
        return len(self._lives)

    def get(self, uid: str) -> LaunchLife:
        return self._lives.get(uid, _NOTHING)

    def _put(self, uid: str, life: LaunchLife) -> None:
        if life == _NOTHING:
            self._lives.pop(uid, None)
        else:
            self._lives[uid] = life

    # -- the attempt launched now ---------------------------------------------------------

    def launch(self, uid: str) -> PodLaunch | None:
        return self.get(uid).launch

    def launches(self) -> Iterator[tuple[str, PodLaunch]]:
        """(uid, launch) of every pod with a launched attempt, in the order they launched."""
        for uid, life in self._lives.items():
            if life.launch is not None:
                yield uid, life.launch

    def launched(self, launch: PodLaunch) -> None:
        life = self.get(launch.uid)
        if life.launch is None:
            self._lives.pop(launch.uid, None)  # (it goes last among the launched)
        self._put(launch.uid, dataclasses.replace(life, launch=launch))

    def launch_ended(self, uid: str) -> None:
        self._put(uid, dataclasses.replace(self.get(uid), launch=None))

    # -- the next attempt ------------------------------------------------------------------

    def relaunch(self, uid: str, at: float, *, sidecars_only: bool) -> None:
        """The lifecycle decided a restart: the next attempt may launch at ``at``."""
        self._put(uid, dataclasses.replace(
            self.get(uid), relaunch_at=at, sidecar_relaunch=sidecars_only
        ))

    def relaunch_dues(self) -> list[float]:
        return [life.relaunch_at for life in self._lives.values() if life.relaunch_at is not None]

    def take_due_relaunches(self, now: float) -> list[tuple[str, bool]]:
        """(uid, sidecars only) of every relaunch due at ``now``, earliest first; they are
        cleared (each is executed once)."""
        due = sorted(
            ((life.relaunch_at, uid, life.sidecar_relaunch)
             for uid, life in self._lives.items()
             if life.relaunch_at is not None and life.relaunch_at <= now),
            key=lambda item: item[0],
        )
        for _, uid, _ in due:
            self._put(uid, dataclasses.replace(
                self.get(uid), relaunch_at=None, sidecar_relaunch=False
            ))
        return [(uid, sidecar) for _, uid, sidecar in due]

    # -- init phases -----------------------------------------------------------------------

    def attempt_to_launch(self, uid: str, *, init_phase: bool, next_attempt: int) -> int:
        """The attempt a launch uses, and remember it: the init phases of one attempt share
        its number (their task ids differ by container), so a phase after the first reuses
        the attempt they run in; the first phase and the app group take ``next_attempt``."""
        known = self.phase_attempt(uid)
        attempt = known if init_phase and known is not None else next_attempt
        self.set_phase_attempt(uid, attempt if init_phase else None)
        return attempt

    def phase_attempt(self, uid: str) -> int | None:
        return self.get(uid).phase_attempt

    def set_phase_attempt(self, uid: str, attempt: int | None) -> None:
        self._put(uid, dataclasses.replace(self.get(uid), phase_attempt=attempt))

    # -- deletion --------------------------------------------------------------------------

    def deleting(self, uid: str) -> bool:
        return self.get(uid).deleting

    def being_deleted(self) -> list[str]:
        return [uid for uid, life in self._lives.items() if life.deleting]

    def start_deleting(self, uid: str) -> None:
        self._put(uid, dataclasses.replace(self.get(uid), deleting=True))

    def forget(self, uid: str) -> None:
        """The pod's life here is over (deleted, every task ended)."""
        self._lives.pop(uid, None)


def relaunch_step(*, sidecars_only: bool, others_live: bool) -> RelaunchStep:
    """What a relaunch that fell due does. ``others_live``: a task other than a sidecar's
    still runs. ``"stale"``: the attempt is still running (nothing to do); ``"anew"``: the
    attempt ended, the pod is launched again; ``"beside"``: a sidecar restarts beside the
    running app containers (its init phase is the first unfinished one again)."""
    if others_live:
        return "beside" if sidecars_only else "stale"
    return "anew"
