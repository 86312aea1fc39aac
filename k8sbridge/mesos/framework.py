"""The framework driver: one subscription kept alive, events delivered in order, calls typed.

Why a driver over the client: a production framework must survive leader changes, dropped
streams, silent masters and its own restarts without ever registering twice. ``Framework.run``
is one component (``run(*, stop, ready)``) made of two tasks that own their state:

* the **reader** subscribes (re-subscribing with the stored framework id, both fields set),
  watches heartbeats (nothing for ``heartbeat_misses`` × interval → reconnect), reconnects with
  capped exponential backoff and equal jitter, cut short when a master that was down accepts
  connections again (``pacing``), and puts events into a bounded queue;
* the **dispatcher** hands events one at a time to the handler and acknowledges an UPDATE only
  when it carries a ``uuid`` and only after the handler returned without raising.

Back-pressure: the queue holds ``queue_size`` events. When the handler falls that far behind,
the reader stops reading, so TCP pushes back on the master (which buffers, as for any slow
framework). The heartbeat watchdog only measures time spent *waiting for the master*, never
time spent waiting for queue space, so a slow handler does not cause reconnect storms. A handler
that raises is logged (its update is not acknowledged, so the agent re-sends it later).

The framework id is loaded from a ``FrameworkIdStore`` on start and saved on every SUBSCRIBED.
A framework the master removed (an operator TEARDOWN, or its failover timeout expired while it
was away) cannot come back under its id: Mesos answers SUBSCRIBE with ERROR "Framework has been
removed" (or sends that ERROR on the live stream) for ever, and its tasks are already killed.
Retrying with the old id is a crash loop (every restart failed until someone deleted the
stored id by hand). So by default (``reregister_when_removed``) the driver says so loudly,
forgets the old id, registers as a new framework and stores the new id; ``replacements`` records
each (old, new) pair and the next SUBSCRIBED carries the new id (the caller treats the old
framework's tasks as lost). With the setting off, ``run`` raises ``FrameworkUnknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from k8sbridge.mesos import calls, errors, events, types
from k8sbridge.mesos import raw as wire
from k8sbridge.mesos import raw_scheduler as swire
from k8sbridge.mesos.client import ClientConfig, EventStream, MesosClient
from k8sbridge.mesos.idstore import FileFrameworkIdStore, FrameworkIdStore, MemoryFrameworkIdStore
from k8sbridge.mesos.metrics import Metrics
from k8sbridge.mesos.pacing import Pacer, backoff_delay
from k8sbridge.mesos.transport import Transport
from k8sbridge.model import resources as res
from k8sbridge.model.ids import AgentId, ExecutorId, FrameworkId, OfferId, TaskId

__all__ = [
    "EventHandler",
    "FileFrameworkIdStore",
    "Framework",
    "FrameworkIdStore",
    "FrameworkSettings",
    "MemoryFrameworkIdStore",
    "backoff_delay",
]

log = logging.getLogger(__name__)

_UNKNOWN_FRAMEWORK_HINTS = ("removed", "unknown framework", "not found", "cannot be found")


class EventHandler(Protocol):
    """Receives every event in stream order; may take its time (the stream keeps flowing)."""

    async def __call__(self, event: events.Event) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class FrameworkSettings:
    framework_info: types.FrameworkInfo
    client: ClientConfig
    suppressed_roles: tuple[str, ...] = ()
    offer_constraints: wire.RawOfferConstraints | None = None
    backoff_initial: float = 0.5
    backoff_max: float = 8.0  # a master that stays down: one SUBSCRIBE every 4-8 s (``pacing``)
    probe_seconds: float = 1.0  # TCP probe of the masters while waiting (0: off; ``pacing``)
    heartbeat_misses: float = 5.0  # no event for misses × interval → reconnect
    queue_size: int = 1024
    auto_acknowledge: bool = True
    reregister_when_removed: bool = True  # False: run() raises FrameworkUnknown instead


def _retryable(error: errors.MesosError) -> bool:
    """Whether re-subscribing can help: everything but our own mistakes and a removed id. A 4xx
    reaches here only when *no* master accepted SUBSCRIBE (invalid FrameworkInfo, wrong
    credentials); other failures (5xx, resets, timeouts, garbage) are the master's: retried."""
    if isinstance(error, (errors.FrameworkUnknown, errors.SubscriptionFailed,
                          errors.ConfigError)):
        return False
    if isinstance(error, errors.ApiError):
        return error.status >= 500 or isinstance(error, errors.NotLeader)
    return True


def _looks_like_unknown_framework(message: str) -> bool:
    text = message.lower()
    return any(hint in text for hint in _UNKNOWN_FRAMEWORK_HINTS)


class Framework:
    """A Mesos v1 framework connection. Construct, then ``await run(stop=..., ready=...)``."""

    def __init__(
            self,
            *,
            settings: FrameworkSettings,
            handler: EventHandler | Callable[[events.Event], Awaitable[None]],
            id_store: FrameworkIdStore | None = None,
            metrics: Metrics | None = None,
            transport: Transport | None = None,  # shared with the operator client; None: own
            _rng: random.Random | None = None,  # None for real jitter; seeded in tests
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._store: FrameworkIdStore = (
            id_store if id_store is not None else MemoryFrameworkIdStore()
        )
        self.metrics = metrics if metrics is not None else Metrics()
        self._rng = _rng or random.Random()
        self._client = MesosClient(
            config=settings.client, metrics=self.metrics, transport=transport
        )
        self._pacer = Pacer(masters=self._client.transport.masters,
                            probe_seconds=settings.probe_seconds)
        self._framework_info = settings.framework_info
        self._suppressed_roles = settings.suppressed_roles
        self._offer_constraints = settings.offer_constraints
        self._framework_id: FrameworkId | None = settings.framework_info.id
        self._subscribed = asyncio.Event()
        self._queue: asyncio.Queue[tuple[int, events.Event]] = asyncio.Queue(
            maxsize=settings.queue_size
        )
        self._generation = 0  # bumped per subscription; stale updates are not acknowledged
        self._generation_changed = asyncio.Event()
        self._update_listeners: list[Callable[[types.TaskStatus], None]] = []
        self._torn_down = False
        self._cause = "initial"  # why the next SUBSCRIBED is needed (for the metric)
        self._logged_cause: str | None = None  # the failure cause last logged (once per cause)
        self.master: types.MasterInfo | None = None
        self.heartbeat_interval: float = events.DEFAULT_HEARTBEAT_INTERVAL
        self.replacements: list[tuple[FrameworkId, FrameworkId | None]] = []  # (removed, new)
        # Set once ``run`` returned or raised: a caller that waits for its ``stop`` alone would
        # hang after a fatal error.
        self.finished = asyncio.Event()

    # -- state -------------------------------------------------------------------------------

    @property
    def framework_id(self) -> FrameworkId | None:
        return self._framework_id

    @property
    def framework_info(self) -> types.FrameworkInfo:
        return self._framework_info.with_id(self._framework_id)

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    @property
    def transport(self) -> Transport:
        """The HTTP transport (leader, credentials, CA): share it with ``OperatorClient``."""
        return self._client.transport

    @property
    def leader(self) -> str | None:
        """``http(s)://host:port`` of the master we are subscribed to."""
        leader = self._client.leader
        return None if leader is None else str(leader).rstrip("/")

    async def wait_subscribed(self, *, timeout: float | None = None) -> FrameworkId:
        async with asyncio.timeout(timeout):
            await self._subscribed.wait()
        assert self._framework_id is not None
        return self._framework_id

    @property
    def subscription(self) -> int:
        """How many SUBSCRIBED events this instance got (0 = never subscribed)."""
        return self._generation

    async def wait_for_subscription(self, *, after: int) -> int:
        """Wait until a subscription newer than ``after`` is live; returns its number."""
        while self._generation <= after or not self._subscribed.is_set():
            await self._generation_changed.wait()
        return self._generation

    def add_update_listener(self, listener: Callable[[types.TaskStatus], None]) -> None:
        """Call ``listener`` (synchronously, before the handler) for every task status."""
        self._update_listeners.append(listener)

    # -- the component -----------------------------------------------------------------------

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        """Stay subscribed until ``stop``; ``ready`` once the first SUBSCRIBED arrived.

        Returns when ``stop`` is set; raises ``FrameworkUnknown``, ``SubscriptionFailed`` or a
        4xx ``ApiError`` of SUBSCRIBE (none of these heals by retrying).
        """
        self.finished.clear()
        try:
            await self._run(stop=stop, ready=ready)
        finally:
            self.finished.set()

    async def _run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        stored = self._store.load()
        if stored is not None:
            self._framework_id = stored
        async with self._client:
            reader = asyncio.create_task(self._read_loop(ready), name="mesos-reader")
            dispatcher = asyncio.create_task(self._dispatch_loop(), name="mesos-dispatcher")
            stopper = asyncio.create_task(stop.wait(), name="mesos-stop")
            try:
                done, _ = await asyncio.wait(
                    {reader, dispatcher, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                if reader in done:
                    # Deliver what was read before the end (e.g. the ERROR event) first.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5.0):
                            await self._queue.join()
                for task in done:
                    failure = None if task is stopper else task.exception()
                    if failure is not None:
                        raise failure
            finally:
                self._subscribed.clear()
                for task in (reader, dispatcher, stopper):
                    task.cancel()
                await asyncio.gather(reader, dispatcher, stopper, return_exceptions=True)

    async def _read_loop(self, ready: asyncio.Event) -> None:
        attempt = 0
        while True:
            generation = self._generation
            try:
                await self._subscribe_once(ready)
            except errors.FrameworkUnknown as e:
                if self._torn_down or not self._settings.reregister_when_removed:
                    if self._torn_down:  # our own TEARDOWN: nothing to come back to
                        return
                    raise
                self._subscribed.clear()
                self._forget_removed(e)
                attempt = 0
            except errors.MesosError as e:
                if not _retryable(e):
                    raise
                self._subscribed.clear()
                if self._torn_down:
                    log.info("framework %s torn down: stream closed", self._framework_id)
                    return
                self._note_failure(e, subscribed=self._generation != generation)
            if self._generation != generation:
                attempt = 0  # a stream that got SUBSCRIBED resets the backoff
            self._subscribed.clear()
            self.metrics.inc("reconnects")
            delay = backoff_delay(
                attempt,
                initial=self._settings.backoff_initial,
                cap=self._settings.backoff_max,
                rng=self._rng,
            )
            attempt += 1
            log.debug("re-subscribing in %.2fs (attempt %d)", delay, attempt)
            if await self._pacer.wait(delay):
                attempt = 0  # a master is back: start over, as Mesos' driver on a new leader

    def _forget_removed(self, error: errors.FrameworkUnknown) -> None:
        """The master removed our framework: forget its id, so the next SUBSCRIBE registers a
        new framework (whose id SUBSCRIBED then stores)."""
        old = self._framework_id
        self.metrics.inc("framework_removed")
        self._cause = "framework removed"
        if old is not None:
            self.replacements.append((old, None))
        log.warning("the master removed framework %s (%s): its tasks were killed; registering "
                    "as a new framework", old, error)
        self._framework_id = None

    def _note_failure(self, error: errors.MesosError, *, subscribed: bool) -> None:
        """Count the failure by cause; log it once per cause (not once per retry)."""
        cause = type(error).__name__
        self._cause = cause
        self.metrics.subscribe_failed(cause)
        if cause == self._logged_cause:
            log.debug("Mesos subscription still failing (%s): %s", cause, error)
            return
        self._logged_cause = cause
        what = "lost" if subscribed else "failed"
        log.warning("Mesos subscription %s (%s): %s; retrying across the masters with "
                    "back-off", what, cause, error)

    async def _subscribe_once(self, ready: asyncio.Event) -> None:
        stored = self._framework_id
        call = calls.subscribe(
            framework_info=self._framework_info.with_id(stored),
            suppressed_roles=self._suppressed_roles,
            offer_constraints=self._offer_constraints,
        )
        stream = await self._client.subscribe(call)
        async with stream:
            first = await stream.next_event(timeout=self._settings.client.call_timeout)
            self.metrics.event(events.event_type(first))
            if isinstance(first, events.Error):
                if stored is not None and _looks_like_unknown_framework(first.message):
                    raise errors.FrameworkUnknown(
                        f"the master no longer knows framework {stored}: {first.message}"
                    )
                raise errors.SubscriptionFailed(first.message)
            if not isinstance(first, events.Subscribed):
                raise errors.ProtocolError(
                    f"first event of a subscription is {events.event_type(first)}, not SUBSCRIBED"
                )
            if stored is not None and first.framework_id != stored:
                other = errors.FrameworkUnknown(
                    f"re-subscribed as {stored} but the master answered with {first.framework_id}")
                if not self._settings.reregister_when_removed:
                    raise other
                self._forget_removed(other)
            if self.replacements and self.replacements[-1][1] is None:
                self.replacements[-1] = (self.replacements[-1][0], first.framework_id)
                log.warning("registered as new framework %s (replacing the removed %s)",
                            first.framework_id, self.replacements[-1][0])
            self._framework_id = first.framework_id
            self._store.save(first.framework_id)
            self.master = first.master
            self.heartbeat_interval = first.heartbeat_interval_seconds
            self._generation += 1
            generation = self._generation
            self.metrics.subscribed(self._cause)
            self._cause = "stream ended"
            self._logged_cause = None
            log.info(
                "subscribed as framework %s to %s (stream %s, heartbeat %.1fs)",
                first.framework_id,
                stream.master,
                stream.stream_id,
                first.heartbeat_interval_seconds,
            )
            self._subscribed.set()
            self._pacer.subscribed()
            changed, self._generation_changed = self._generation_changed, asyncio.Event()
            changed.set()
            ready.set()
            await self._queue.put((generation, first))
            await self._pump(stream, generation)

    async def _pump(self, stream: EventStream, generation: int) -> None:
        watchdog = self.heartbeat_interval * self._settings.heartbeat_misses
        while True:
            event = await stream.next_event(timeout=watchdog)
            kind = events.event_type(event)
            self.metrics.event(kind)
            if isinstance(event, events.Heartbeat):
                continue
            if isinstance(event, events.UnknownEvent):
                log.warning("ignoring an event of unknown type %s", event.type)
                continue
            await self._queue.put((generation, event))  # blocks when full: back-pressure
            if isinstance(event, events.Error):
                if _looks_like_unknown_framework(event.message):
                    # Removed while subscribed (TEARDOWN by an operator): re-registering is
                    # the only way back (``_read_loop`` decides).
                    raise errors.FrameworkUnknown(
                        f"the master removed framework {self._framework_id}: {event.message}"
                    )
                # The master closes the stream after ERROR (e.g. "Framework failed over":
                # another instance took over). Re-subscribing would steal it back: stop here.
                raise errors.SubscriptionFailed(event.message)

    async def _dispatch_loop(self) -> None:
        while True:
            generation, event = await self._queue.get()
            try:
                await self._deliver(generation, event)
            finally:
                self._queue.task_done()

    async def _deliver(self, generation: int, event: events.Event) -> None:
        if isinstance(event, events.Update):
            for listener in self._update_listeners:
                try:
                    listener(event.status)
                except Exception:
                    log.exception("update listener failed on %s", event.status.task_id)
        try:
            await self._handler(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.metrics.inc("handler_errors")
            log.exception("event handler failed on %s", events.event_type(event))
            return
        if (
            isinstance(event, events.Update)
            and event.status.needs_ack
            and self._settings.auto_acknowledge
        ):
            if generation != self._generation:
                log.info("not acknowledging %s from an old subscription", event.status.task_id)
                return
            try:
                await self.acknowledge(event.status)
            except errors.MesosError as e:
                # The agent re-sends unacknowledged updates, so this heals by itself.
                log.warning("acknowledging %s failed: %s", event.status.task_id, e)

    # -- calls -------------------------------------------------------------------------------

    def _fid(self) -> FrameworkId:
        if self._framework_id is None or not self._subscribed.is_set():
            raise errors.ConnectionLost("not subscribed")
        return self._framework_id

    async def _call(self, call: swire.RawCall) -> None:
        await self._client.call(call)

    async def accept(
            self,
            offer_ids: Sequence[OfferId],
            operations: Sequence[wire.RawOperation],
            *,
            refuse_seconds: float | None = None,
    ) -> None:
        await self._call(
            calls.accept(
                framework_id=self._fid(),
                offer_ids=offer_ids,
                operations=operations,
                refuse_seconds=refuse_seconds,
            )
        )

    async def decline(
            self, offer_ids: Sequence[OfferId], *, refuse_seconds: float | None = None
    ) -> None:
        await self._call(
            calls.decline(
                framework_id=self._fid(), offer_ids=offer_ids, refuse_seconds=refuse_seconds
            )
        )

    async def accept_inverse_offers(
            self, inverse_offer_ids: Sequence[str], *, refuse_seconds: float | None = None
    ) -> None:
        await self._call(
            calls.accept_inverse_offers(
                framework_id=self._fid(),
                inverse_offer_ids=inverse_offer_ids,
                refuse_seconds=refuse_seconds,
            )
        )

    async def decline_inverse_offers(
            self, inverse_offer_ids: Sequence[str], *, refuse_seconds: float | None = None
    ) -> None:
        await self._call(
            calls.decline_inverse_offers(
                framework_id=self._fid(),
                inverse_offer_ids=inverse_offer_ids,
                refuse_seconds=refuse_seconds,
            )
        )

    async def revive(self, roles: Sequence[str] | None = None) -> None:
        await self._call(calls.revive(framework_id=self._fid(), roles=roles))
        if roles is None:
            self._suppressed_roles = ()
        else:
            self._suppressed_roles = tuple(r for r in self._suppressed_roles if r not in roles)

    async def suppress(self, roles: Sequence[str] | None = None) -> None:
        await self._call(calls.suppress(framework_id=self._fid(), roles=roles))
        # Remember it so a re-subscription keeps the roles suppressed.
        added = self._framework_info.roles if roles is None else tuple(roles)
        self._suppressed_roles = tuple(dict.fromkeys(self._suppressed_roles + added))

    async def kill(
            self,
            task_id: TaskId,
            *,
            agent_id: AgentId | None = None,
            grace_period_seconds: float | None = None,
    ) -> None:
        await self._call(
            calls.kill(
                framework_id=self._fid(),
                task_id=task_id,
                agent_id=agent_id,
                grace_period_seconds=grace_period_seconds,
            )
        )

    async def shutdown(self, *, executor_id: ExecutorId, agent_id: AgentId) -> None:
        await self._call(
            calls.shutdown(framework_id=self._fid(), executor_id=executor_id, agent_id=agent_id)
        )

    async def acknowledge(self, status: types.TaskStatus) -> None:
        """ACKNOWLEDGE ``status``; a no-op for updates without a uuid (they must not be acked)."""
        if not status.needs_ack:
            return
        await self._call(calls.acknowledge(framework_id=self._fid(), status=status))
        self.metrics.inc("acknowledged")

    async def acknowledge_operation_status(
            self, update: events.UpdateOperationStatus
    ) -> None:
        if update.uuid is None or update.agent_id is None or update.operation_id is None:
            return
        await self._call(
            calls.acknowledge_operation_status(
                framework_id=self._fid(),
                agent_id=update.agent_id,
                operation_id=update.operation_id,
                uuid=update.uuid,
                resource_provider_id=update.resource_provider_id,
            )
        )

    async def reconcile(self, tasks: Mapping[TaskId, AgentId | None] | None = None) -> None:
        await self._call(calls.reconcile(framework_id=self._fid(), tasks=tasks))

    async def message(self, *, agent_id: AgentId, executor_id: ExecutorId, data: bytes) -> None:
        await self._call(
            calls.message(
                framework_id=self._fid(), agent_id=agent_id, executor_id=executor_id, data=data
            )
        )

    async def request(self, requests: Sequence[tuple[AgentId | None, res.Resources]]) -> None:
        await self._call(calls.request(framework_id=self._fid(), requests=requests))

    async def update_framework(
            self,
            *,
            framework_info: types.FrameworkInfo | None = None,
            suppressed_roles: Sequence[str] | None = None,
            offer_constraints: wire.RawOfferConstraints | None = None,
    ) -> None:
        """UPDATE_FRAMEWORK (roles, capabilities, suppressed roles, offer constraints).

        Remembered on success, so a later re-subscription sends the updated values.
        """
        info = (framework_info or self._framework_info).with_id(self._fid())
        roles = tuple(self._suppressed_roles if suppressed_roles is None else suppressed_roles)
        constraints = (
            self._offer_constraints if offer_constraints is None else offer_constraints
        )
        await self._call(
            calls.update_framework(
                framework_info=info, suppressed_roles=roles, offer_constraints=constraints
            )
        )
        self._framework_info = info
        self._suppressed_roles = roles
        self._offer_constraints = constraints

    async def shape_offers(
            self, *, offer_constraints: wire.RawOfferConstraints,
            min_allocatable: Mapping[str, Sequence[Mapping[str, float]]] | None,
    ) -> None:
        """UPDATE_FRAMEWORK with new offer constraints and ``offer_filters`` (``{}`` and None:
        none), everything else as subscribed."""
        info = dataclasses.replace(self._framework_info, min_allocatable=min_allocatable)
        await self.update_framework(framework_info=info, offer_constraints=offer_constraints)

    async def teardown(self) -> None:
        """TEARDOWN: the master kills every task of this framework and forgets it.

        ``run`` then returns (instead of re-subscribing) once the master closes the stream.
        """
        call = calls.teardown(framework_id=self._fid())
        self._torn_down = True
        try:
            await self._call(call)
        except BaseException:
            self._torn_down = False
            raise
