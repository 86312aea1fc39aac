"""The election loop: acquire the Lease, renew it every retry period, fence, release.

Why a loop apart from the rules: ``election`` decides from a snapshot; this module paces the
tries (client-go's ``LeaderElector``: ``acquire`` retries every ``retry_period`` with jitter,
``renew`` every ``retry_period``), bounds each API call by the time left before the renew
deadline (a partitioned API server must not hold the leader past it), and tells the caller the
moment leadership is lost. It never decides what the bridge does as leader: ``app`` runs the
leader's components while ``hold`` returns nothing, and stops them (fencing) when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors
from k8sbridge.leader import election, lease

__all__ = ["ElectionError", "ElectionTiming", "LeaderElector"]

log = logging.getLogger(__name__)

JITTER = 1.2  # client-go's JitterFactor: acquire tries wait retry × [1, 1 + JITTER)


class ElectionError(RuntimeError):
    """The Lease cannot be ours by configuration (another framework's): a person must look."""


@dataclasses.dataclass(frozen=True, slots=True)
class ElectionTiming:
    lease_seconds: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class LeaderElector:
    """One replica's side of the election (one instance per process)."""

    def __init__(
        self,
        *,
        lock: lease.LeaseLock,
        identity: str,
        timing: ElectionTiming,
        framework: str = "",  # our Mesos framework name, recorded on the Lease
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], str] = kube_client.now_micro,
    ) -> None:
        self._lock = lock
        self.identity = identity
        self._timing = timing
        self._framework = framework
        self._clock = clock
        self._wall = wall
        self._observation: election.Observation | None = None
        self._last_read: lease.ReadLease | None = None
        self.leading = False
        self.last_renewed = 0.0  # monotonic time the last successful write was sent
        self.acquired_at: float | None = None
        self.observed_holder = ""

    async def _try(self, *, timeout: float) -> bool:
        """One read-decide-write round (client-go's tryAcquireOrRenew); True when we hold the
        Lease afterwards. API errors and a timeout count as not holding it."""
        sent = self._clock()
        try:
            async with asyncio.timeout(max(0.05, timeout)):
                read = await self._lock.read()
                now = self._clock()
                self._observation = election.observe(self._observation, read.record, now=now)
                self._last_read = read
                holder = read.record.holder if read.record is not None else ""
                if holder != self.observed_holder:
                    log.info("leader Lease %s/%s: holder is now %r", self._lock.namespace,
                             self._lock.name, holder)
                    self.observed_holder = holder
                decision = election.decide(
                    self._observation, identity=self.identity, now=now, wall=self._wall(),
                    lease_seconds=self._timing.lease_seconds, framework=self._framework,
                )
                if decision.action is election.Action.REFUSE:
                    raise ElectionError(decision.reason)
                if decision.action is election.Action.WAIT:
                    return False
                assert decision.record is not None
                if decision.action is election.Action.CREATE:
                    await self._lock.create(decision.record)
                else:
                    await self._lock.write(read, decision.record)
                if decision.acquiring:
                    log.info("%s: %s", self.identity, decision.reason)
        except errors.Conflict:
            log.info("leader Lease changed while we wrote it (409): reading it again")
            return False
        except (errors.KubeError, TimeoutError) as e:
            log.warning("leader Lease %s/%s: %s", self._lock.namespace, self._lock.name,
                        str(e) or "no answer in time")
            return False
        self._observation = None  # our own write: the next read is a change we made
        self.last_renewed = sent
        return True

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Try every retry period (with jitter) until we lead (True) or ``stop`` is set."""
        while not stop.is_set():
            if await self._try(timeout=self._timing.renew_deadline):
                self.leading = True
                self.acquired_at = self._clock()
                self.observed_holder = self.identity
                return True
            delay = election.next_try(
                self._observation, now=self._clock(), lease_seconds=self._timing.lease_seconds,
                jittered=self._timing.retry_period * (1 + random.random() * JITTER))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
        return False

    async def hold(self) -> None:
        """Renew every retry period; return when leadership is lost: no successful renewal
        within the renew deadline (the caller must stop acting now: fencing)."""
        timing = self._timing
        while True:
            await asyncio.sleep(timing.retry_period)
            while True:
                now = self._clock()
                if election.must_stop(last_renewed=self.last_renewed, now=now,
                                      renew_deadline=timing.renew_deadline):
                    self.leading = False
                    log.error("%s: could not renew the leader Lease within %gs: stepping down",
                              self.identity, timing.renew_deadline)
                    return
                left = self.last_renewed + timing.renew_deadline - now
                try:
                    renewed = await self._try(timeout=left)
                except ElectionError as e:
                    self.leading = False
                    log.error("%s: %s: stepping down", self.identity, e)
                    return
                if renewed:
                    break
                if self.observed_holder not in ("", self.identity):
                    self.leading = False
                    log.error("%s: the leader Lease is held by %r now: stepping down",
                              self.identity, self.observed_holder)
                    return
                await asyncio.sleep(min(timing.retry_period, max(0.0, left)))

    async def release(self) -> bool:
        """Give the Lease up if we still hold it (ReleaseOnCancel); True when released."""
        if not self.leading:
            return False
        self.leading = False
        try:
            async with asyncio.timeout(self._timing.renew_deadline):
                read = await self._lock.read()
                if read.record is None or read.record.holder != self.identity:
                    return False
                await self._lock.write(read, election.released(read.record, wall=self._wall()))
        except (errors.KubeError, TimeoutError) as e:
            log.warning("could not release the leader Lease: %s", str(e) or "no answer in time")
            return False
        log.info("%s: leader Lease released", self.identity)
        return True
