"""Garbage collection of the sandboxes and checkpoints of finished containers, as Mesos' agent
does it (``slave/gc.cpp`` and ``Slave::checkDiskUsage``).

Why: every finished container leaves its run directory (the task's files, stdout, stderr) and
its checkpoint under ``meta``; without collection an agent that runs many short pods fills
its disk (2,350 run directories after 80 minutes in the audit). Mesos' rule, kept here:

- a finished container's run directory is touched and scheduled for removal ``--gc_delay``
  later (1 week by default); after a restart, what is found finished is scheduled by its
  modification time (``gc_delay - (now - mtime)``), so its age survives the restart;
- every ``--disk_watch_interval`` (1 minute) the agent measures the disk of its work dir
  (``fs::usage``: used blocks / all blocks) and removes at once what is older than
  ``max age = gc_delay * max(0, 1 - gc_disk_headroom - usage)`` (``Slave::age``; headroom 0.1):
  the fuller the disk, the sooner sandboxes go;
- an executor's directory goes with its last run, a framework's with its last executor, in the
  sandbox tree and in ``meta`` alike; never while a container of it is live.

The agent decides what is finished and live (``Owner``); this module keeps the schedule and
removes files.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["GarbageCollector", "disk_usage", "max_allowed_age"]

WEEK = 7 * 24 * 3600.0


def max_allowed_age(*, gc_delay: float, headroom: float, usage: float) -> float:
    """``Slave::age``: how old a scheduled directory may get at this disk ``usage`` (0..1)."""
    return gc_delay * max(0.0, 1.0 - headroom - usage)


def disk_usage(path: Path) -> float:
    """stout's ``fs::usage``: the used fraction of the file system holding ``path``."""
    st = os.statvfs(path)
    if st.f_blocks == 0:
        return 0.0
    return (st.f_blocks - st.f_bfree) / st.f_blocks


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """One finished container's directories: its sandbox run dir and its meta run dir."""

    container_id: str
    framework_id: str
    executor_id: str
    sandbox: Path  # .../frameworks/<fid>/executors/<eid>/runs/<cid>
    meta: Path | None  # the same under meta/, or None (no checkpoint)


class GarbageCollector:
    """The schedule of finished runs and their removal (see the module docstring).

    ``live_executor(fid, eid)`` and ``live_framework(fid)`` say whether the agent runs a
    container of that executor or framework now; ``may_remove(run)`` says whether the agent is
    done with a run (no status update still waiting for its acknowledgement): when not, the
    removal is put off by ``retry`` seconds.
    """

    def __init__(self, *, gc_delay: float, headroom: float, work_dir: Path,
                 live_executor: Callable[[str, str], bool],
                 live_framework: Callable[[str], bool],
                 may_remove: Callable[[Run], bool], retry: float = 10.0) -> None:
        self._delay = gc_delay
        self._headroom = headroom
        self._work_dir = work_dir
        self._live_executor = live_executor
        self._live_framework = live_framework
        self._may_remove = may_remove
        self._retry = retry
        self._heap: list[tuple[float, int, Run]] = []
        self._scheduled: dict[str, float] = {}  # container id -> removal time
        self._seq = 0
        self._wake = asyncio.Event()
        self.removed: list[str] = []  # container ids whose directories went (newest last)
        self.max_age = gc_delay
        self._prune_until = 0.0  # what is due before this goes at once (the disk is filling)

    def schedule(self, run: Run, *, finished_at: float | None = None) -> None:
        """Remove ``run`` ``gc_delay`` after ``finished_at`` (now: the sandbox is touched, as
        Mesos' agent does, so a restart sees the same age)."""
        if finished_at is None:
            finished_at = time.time()
            try:
                os.utime(run.sandbox, (finished_at, finished_at))
            except OSError:
                pass  # never created (a launch that failed early): its meta still goes
        due = finished_at + self._delay
        if self._scheduled.get(run.container_id, float("inf")) <= due:
            return
        self._scheduled[run.container_id] = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, run))
        self._wake.set()

    def scheduled(self) -> int:
        return len(self._scheduled)

    async def run(self, *, stop: asyncio.Event, disk_watch_interval: float) -> None:
        """Collect what is due; check the disk every ``disk_watch_interval``."""
        next_disk_check = time.monotonic()
        while not stop.is_set():
            if time.monotonic() >= next_disk_check:
                self._check_disk()
                next_disk_check = time.monotonic() + disk_watch_interval
            await self._collect(until=time.time())
            wait = next_disk_check - time.monotonic()
            if self._heap:
                wait = min(wait, self._heap[0][0] - time.time())
            self._wake.clear()
            try:
                async with asyncio.timeout(max(0.01, wait)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _check_disk(self) -> None:
        try:
            usage = disk_usage(self._work_dir)
        except OSError as e:
            log.error("agent gc: failed to get disk usage of %s: %s", self._work_dir, e)
            return
        self.max_age = max_allowed_age(gc_delay=self._delay, headroom=self._headroom,
                                       usage=usage)
        log.info("agent gc: current disk usage %.2f%%; max allowed age %.0fs",
                 100 * usage, self.max_age)
        # Mesos' gc->prune(gc_delay - age): what is due within that window is removed now.
        self._prune_until = time.time() + (self._delay - self.max_age)

    async def _collect(self, *, until: float) -> None:
        until = max(until, self._prune_until)
        while self._heap and self._heap[0][0] <= until:
            due, _, run = heapq.heappop(self._heap)
            if self._scheduled.get(run.container_id) != due:
                continue  # rescheduled
            if not self._may_remove(run):  # try again later (the same key in both tables)
                later = time.time() + self._retry
                self._scheduled[run.container_id] = later
                self._seq += 1
                heapq.heappush(self._heap, (later, self._seq, run))
                continue
            del self._scheduled[run.container_id]
            await asyncio.to_thread(_remove_runs, run)
            self._remove_parents(run)
            self.removed.append(run.container_id)
            del self.removed[:-1000]
            log.info("agent gc: removed the sandbox and checkpoint of container %s (executor "
                     "%s of framework %s)", run.container_id, run.executor_id, run.framework_id)

    def _remove_parents(self, run: Run) -> None:
        """The executor's directories when this was its last run; then the framework's.
        Synchronous on the agent's loop, so no launch can interleave with the liveness check."""
        if not run.executor_id or self._live_executor(run.framework_id, run.executor_id):
            return  # (a whole directory of an old agent id has no parents to tidy)
        roots = [run.sandbox] + ([run.meta] if run.meta is not None else [])
        for root in roots:
            executor_dir = root.parent.parent  # .../executors/<eid>
            runs = executor_dir / "runs"
            if _only_latest_link(runs):
                shutil.rmtree(executor_dir, ignore_errors=True)
            if self._live_framework(run.framework_id):
                continue
            framework_dir = executor_dir.parent.parent  # .../frameworks/<fid>
            executors = framework_dir / "executors"
            if not executors.exists() or not any(executors.iterdir()):
                shutil.rmtree(framework_dir, ignore_errors=True)


def _only_latest_link(runs: Path) -> bool:
    try:
        return all(entry.name == "latest" or entry.name.startswith(".latest.")
                   for entry in runs.iterdir())
    except FileNotFoundError:
        return True


def _remove_runs(run: Run) -> None:
    for path in (run.sandbox, run.meta):
        if path is None:
            continue
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("agent gc: cannot remove %s: %s", path, e)
