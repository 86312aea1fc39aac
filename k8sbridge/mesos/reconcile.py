"""Task reconciliation as Mesos documents it (``docs/reconciliation.md``).

Why a helper: after every (re-)subscription a framework must find out what really happened to
its tasks while it was away, and periodically catch drift. The documented algorithm is easy to
get subtly wrong (acking master replies, giving up too early, reconciling concurrently):

1. **explicit**: ``start = now``; send RECONCILE for every task we know; wait with truncated
   exponential backoff; drop every task that got *any* update after ``start``; repeat until none
   is left (tasks on an agent that is recovering get no answer, so we keep asking);
2. **implicit**: RECONCILE with an empty list; the master answers with the latest state of
   every task it knows for us. Tasks in those answers that the caller does not know are
   reported (``on_unknown_task``) so the caller can kill or adopt them.

Replies come as ordinary UPDATE events (source MASTER, REASON_RECONCILIATION, no uuid, so they
are never acknowledged). The helper only observes them through ``Framework.add_update_listener``;
the framework's own handler still sees every update. One reconciliation runs at a time: ``run``
is a single task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from k8sbridge.mesos import errors, types
from k8sbridge.mesos.framework import Framework
from k8sbridge.model.ids import AgentId, TaskId

__all__ = ["ReconcileReport", "Reconciler"]

log = logging.getLogger(__name__)

KnownTasks = Callable[[], Mapping[TaskId, AgentId | None]]
UnknownTaskCallback = Callable[[types.TaskStatus], Awaitable[None] | None]


@dataclasses.dataclass(frozen=True, slots=True)
class ReconcileReport:
    rounds: int  # RECONCILE calls of the explicit phase
    unanswered: tuple[TaskId, ...]  # explicit phase gave up (max_rounds) before these answered
    unknown_to_caller: tuple[types.TaskStatus, ...]  # implicit phase: tasks the caller lacks


class Reconciler:
    """Runs explicit-then-implicit reconciliation after each subscription and every ``period``."""

    def __init__(
            self,
            *,
            framework: Framework,
            known_tasks: KnownTasks,
            on_unknown_task: UnknownTaskCallback | None = None,
            initial_backoff: float = 1.0,
            max_backoff: float = 60.0,
            max_rounds: int | None = None,  # None: keep asking (as the documentation says)
            implicit_window: float = 5.0,  # how long answers to an implicit RECONCILE are awaited
            period: float = 900.0,  # implicit reconciliation every 15 minutes
            _clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._framework = framework
        self._known_tasks = known_tasks
        self._on_unknown = on_unknown_task
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._max_rounds = max_rounds
        self._implicit_window = implicit_window
        self._period = period
        self._clock = _clock
        self._last_update: dict[TaskId, float] = {}
        self._seen_since: dict[TaskId, types.TaskStatus] = {}
        self._collect_from: float | None = None
        self._progress = asyncio.Event()
        self.reports: list[ReconcileReport] = []
        framework.add_update_listener(self.observe)

    def observe(self, status: types.TaskStatus) -> None:
        """Update listener: remember when each task was last heard of."""
        now = self._clock()
        self._last_update[status.task_id] = now
        if self._collect_from is not None:
            self._seen_since[status.task_id] = status
        self._progress.set()

    async def explicit(self) -> tuple[int, tuple[TaskId, ...]]:
        """Phase 1: ask for each known task until each has answered; (rounds, unanswered)."""
        start = self._clock()
        self._last_update.clear()  # only updates after ``start`` count (and memory stays bounded)
        remaining = dict(self._known_tasks())
        delay = self._initial_backoff
        rounds = 0
        while remaining:
            if self._max_rounds is not None and rounds >= self._max_rounds:
                log.warning("reconciliation gave up on %d task(s): %s", len(remaining),
                            sorted(remaining)[:10])
                break
            rounds += 1
            log.info("explicit reconciliation round %d for %d task(s)", rounds, len(remaining))
            await self._framework.reconcile(remaining)
            deadline = self._clock() + delay
            while True:
                remaining = {
                    t: a for t, a in remaining.items() if self._last_update.get(t, -1.0) < start
                }
                left = deadline - self._clock()
                if not remaining or left <= 0:
                    break
                self._progress.clear()
                try:
                    async with asyncio.timeout(left):
                        await self._progress.wait()
                except TimeoutError:
                    pass
            delay = min(delay * 2, self._max_backoff)
        return rounds, tuple(sorted(remaining))

    async def implicit(self) -> tuple[types.TaskStatus, ...]:
        """Phase 2: RECONCILE everything; report tasks the master knows and the caller does not."""
        self._seen_since = {}
        self._collect_from = self._clock()
        try:
            await self._framework.reconcile(None)
            await asyncio.sleep(self._implicit_window)
        finally:
            self._collect_from = None
        known = self._known_tasks()
        unknown = tuple(s for t, s in sorted(self._seen_since.items()) if t not in known)
        for status in unknown:
            log.warning(
                "the master knows task %s (%s) that this framework does not",
                status.task_id,
                status.state,
            )
            if self._on_unknown is not None:
                result = self._on_unknown(status)
                if inspect.isawaitable(result):
                    await result
        return unknown

    async def reconcile(self) -> ReconcileReport:
        rounds, unanswered = await self.explicit()
        unknown = await self.implicit()
        report = ReconcileReport(rounds=rounds, unanswered=unanswered, unknown_to_caller=unknown)
        self.reports.append(report)
        return report

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        """Reconcile after every subscription, then implicitly every ``period``, until ``stop``."""
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            done_for = 0
            ready.set()
            while not stop.is_set():
                waiter = asyncio.ensure_future(
                    self._framework.wait_for_subscription(after=done_for)
                )
                done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    waiter.cancel()
                    break
                done_for = waiter.result()
                await self._guarded(self.reconcile(), stopper)
                while not stop.is_set() and self._framework.subscription == done_for:
                    timer: asyncio.Future[Any] = asyncio.ensure_future(
                        asyncio.sleep(self._period)
                    )
                    newer: asyncio.Future[Any] = asyncio.ensure_future(
                        self._framework.wait_for_subscription(after=done_for)
                    )
                    finished, pending = await asyncio.wait(
                        {timer, newer, stopper}, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in pending - {stopper}:
                        task.cancel()
                    if timer in finished and self._framework.subscription == done_for:
                        await self._guarded(self.implicit(), stopper)
        finally:
            stopper.cancel()

    async def _guarded(self, work: Awaitable[object], stopper: asyncio.Future[Any]) -> None:
        task: asyncio.Future[Any] = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()
            return
        try:
            task.result()
        except errors.MesosError as e:
            # The stream dropped mid-way: the next subscription starts a fresh reconciliation.
            log.warning("reconciliation interrupted: %s", e)
