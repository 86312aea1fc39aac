"""The one store of pod records: uid -> ``PodRecord``, shared by the status writer and the
offer loop.

Why one store: a pod's life used to be two records in two owners (the status writer's
``PodRecord`` and the offer loop's launch side). Now "which attempt is this pod on, when may
it launch next, is it being deleted, what are its containers doing" is answered by one
record. app.py makes one ``PodStore`` and gives it to both; they run on the same asyncio
event loop, and every method here is synchronous, so no locks.

Who writes what: the status writer stores what ``machine.apply`` answers (``set_record``) and
lets the status side go (``forget_status``); the offer loop records what it executed on the
launch side (``launched``, ``relaunch``, ``start_deleting``, ``forget`` ...). A pod about
which nothing is known has no entry (memory per pod). Pure: values and one dictionary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from k8sbridge.lifecycle.launches import LaunchLife, PodLaunch, PodSandbox
from k8sbridge.lifecycle.record import PodFacts, PodRecord

__all__ = ["PodStore"]

_NO_LAUNCH = LaunchLife()
# the record of a pod the status side knows nothing about (only its launch side, if any)
_BLANK = PodRecord(facts=PodFacts(uid="", name="", namespace=""))


class PodStore:
    """uid -> ``PodRecord``: the one record of each pod."""

    def __init__(self) -> None:
        self._records: dict[str, PodRecord] = {}
        # uids whose launch side has a relaunch time: the loop asks for due relaunches on
        # every pass and timeout, which scanned every record (3% of the bridge's CPU in a
        # 1,000-pod burst where none is due)
        self._relaunching: set[str] = set()

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, uid: object) -> bool:
        return uid in self._records

    def record(self, uid: str) -> PodRecord:
        return self._records.get(uid, _BLANK)

    def _put(self, uid: str, record: PodRecord) -> None:
        if record == _BLANK:
            self._records.pop(uid, None)
            self._relaunching.discard(uid)
            return
        self._records[uid] = record
        if record.launch_side.relaunch_at is None:
            self._relaunching.discard(uid)
        else:
            self._relaunching.add(uid)

    # -- the status side (the writer) ----------------------------------------------------

    def set_record(self, uid: str, record: PodRecord) -> None:
        """What ``machine.apply`` answered (it keeps the launch side it was given)."""
        self._put(uid, record)

    def start_status(self, uid: str, fresh: PodRecord) -> PodRecord:
        """The status side starts anew from ``fresh`` (``PodRecord.new``); the launch side
        stays as the loop recorded it."""
        record = dataclasses.replace(fresh, launch_side=self.get(uid))
        self._put(uid, record)
        return record

    def forget_status(self, uid: str) -> None:
        """The writer let the pod go; what the launch side knows stays."""
        self._put(uid, dataclasses.replace(_BLANK, launch_side=self.get(uid)))

    # -- the launch side (the offer loop) ------------------------------------------------

    def get(self, uid: str) -> LaunchLife:
        record = self._records.get(uid)
        return _NO_LAUNCH if record is None else record.launch_side

    def _put_life(self, uid: str, life: LaunchLife) -> None:
        self._put(uid, dataclasses.replace(self.record(uid), launch_side=life))

    def launch(self, uid: str) -> PodLaunch | None:
        return self.get(uid).launch

    def launches(self) -> Iterator[tuple[str, PodLaunch]]:
        """(uid, launch) of every pod with a launched attempt, in the order they launched."""
        for uid, record in self._records.items():
            if record.launch_side.launch is not None:
                yield uid, record.launch_side.launch

    def launched(self, launch: PodLaunch) -> None:
        record = self.record(launch.uid)
        if record.launch_side.launch is None:
            self._records.pop(launch.uid, None)  # (it goes last among the launched)
        self._put(launch.uid, dataclasses.replace(
            record, launch_side=dataclasses.replace(record.launch_side, launch=launch)
        ))

    def launch_ended(self, uid: str) -> None:
        self._put_life(uid, dataclasses.replace(self.get(uid), launch=None))

    def relaunch(self, uid: str, at: float, *, sidecars_only: bool) -> None:
        """The lifecycle decided a restart: the next attempt may launch at ``at``."""
        self._put_life(uid, dataclasses.replace(
            self.get(uid), relaunch_at=at, sidecar_relaunch=sidecars_only
        ))

    def relaunch_dues(self) -> list[float]:
        if not self._relaunching:
            return []
        return [
            r.launch_side.relaunch_at for r in self._records.values()
            if r.launch_side.relaunch_at is not None
        ]

    def take_due_relaunches(self, now: float) -> list[tuple[str, bool]]:
        """(uid, sidecars only) of every relaunch due at ``now``, earliest first; they are
        cleared (each is executed once)."""
        if not self._relaunching:
            return []
        due = sorted(
            ((r.launch_side.relaunch_at, uid, r.launch_side.sidecar_relaunch)
             for uid, r in self._records.items()
             if r.launch_side.relaunch_at is not None and r.launch_side.relaunch_at <= now),
            key=lambda item: item[0],
        )
        for _, uid, _ in due:
            self._put_life(uid, dataclasses.replace(
                self.get(uid), relaunch_at=None, sidecar_relaunch=False
            ))
        return [(uid, sidecar) for _, uid, sidecar in due]

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
        life = self.get(uid)
        if life.phase_attempt != attempt:  # (most launches: None stays None)
            self._put_life(uid, dataclasses.replace(life, phase_attempt=attempt))

    def sandbox(self, uid: str) -> PodSandbox | None:
        return self.get(uid).sandbox

    def set_sandbox(self, uid: str, sandbox: PodSandbox | None) -> None:
        self._put_life(uid, dataclasses.replace(self.get(uid), sandbox=sandbox))

    def forget_sandboxes(self) -> None:
        """No pod has a sandbox any more (their framework was removed with its executors)."""
        for uid in list(self._records):
            if self.get(uid).sandbox is not None:
                self.set_sandbox(uid, None)

    def deleting(self, uid: str) -> bool:
        return self.get(uid).deleting

    def being_deleted(self) -> list[str]:
        return [uid for uid, r in self._records.items() if r.launch_side.deleting]

    def start_deleting(self, uid: str) -> None:
        self._put_life(uid, dataclasses.replace(self.get(uid), deleting=True))

    def forget(self, uid: str) -> None:
        """The pod's launch side is over (deleted, every task ended); the status side goes
        with the writer's ``forget_status``."""
        self._put_life(uid, _NO_LAUNCH)
