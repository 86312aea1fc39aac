"""The pod status writer: the sole writer of ``pod.status`` for pods on our nodes.

Why a separate component with its own workers: task updates arrive in bursts (a Deployment of
100 pods starts at once) and each becomes one PATCH. Updates are coalesced per pod (keyed,
level-triggered: a pod queued twice is written once, from its latest state), written by a few
concurrent workers, and **acknowledged to Mesos only after the write succeeded** — an update
that was never shown to Kubernetes is re-sent by the agent.

What happens to a pod is decided by the pure lifecycle (``k8sbridge/lifecycle/``): each task
update, scheduling outcome and refused launch becomes a lifecycle event, and this writer only
executes the intents ``lifecycle.machine.apply`` answers with: write the status (rendered by
the pure ``kubelet/statusmap.py``), acknowledge after the write, record events, ask the
scheduler for the next attempt (``relaunch(uid, delay, containers)``, after the crash
back-off), stop sidecars (``kill(uid, task_id)``) and read termination messages
(``kubelet/termination.py``: the write showing the ended container waits at most
``MESSAGE_HOLD_SECONDS`` for them, the rest follow). The records live in the one
``lifecycle.store.PodStore`` this writer shares with the offer loop (one record per pod).
Scheduling outcomes (``PodScheduled=False`` with the explanation, Scheduled and
FailedScheduling events) are written here too, so there is one writer per pod.

What it costs the API server, and why so little: a burst of N pods is N bindings and, per pod,
two status writes (STARTING, which must be written before it is acknowledged, and RUNNING).
The binding already shows ``PodScheduled=True`` (the API server's binding sets it), so a
just-bound pod is written only if no task update arrives within ``creating_after`` seconds (a
slow launch still shows ``ContainerCreating`` soon, as a kubelet's would). Those writes go one
at a time and only while no other status write is queued, in flight or just finished (a pod
waits at most ``CREATING_DEFER_SECONDS``), so in a burst the task update's own write usually
covers them.
Writes that carry acknowledgements go first (Mesos holds a task's next update until the
previous one is acknowledged), oldest update first: they are ordered by the time the agent
made the update, not by when it arrived, so a task's TASK_RUNNING (made with its TASK_STARTING,
sent only once that is acknowledged) is written before the STARTING updates of tasks launched
after it instead of queueing behind all of them (in a burst each pod paid two full queue
waits; measured in ``docs/bench/bridge.md``, eleventh session). Events are best-effort, as a
kubelet's event recorder is: they yield to status writes too (until ``EVENT_DEFER_SECONDS``
after they were queued), and a full event queue drops new events rather than holding memory or
API-server capacity. A pod is never written twice at once (the later state could land first).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import heapq
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors
from k8sbridge.kubelet import statusmap
from k8sbridge.kubelet import termination as kubelet_termination
from k8sbridge.lifecycle import events as lc_events
from k8sbridge.lifecycle import intents as lc_intents
from k8sbridge.lifecycle import machine
from k8sbridge.lifecycle import store as lifecycle_store
from k8sbridge.lifecycle.record import PodRecord
from k8sbridge.model import ids
from k8sbridge.model import tasks as model_tasks

__all__ = ["PodStatusWriter", "view_of"]

log = logging.getLogger(__name__)

EVENT_DEFER_SECONDS = 5.0  # the longest an event yields to status writes
QUIET_SECONDS = 0.5  # the writer counts as busy this long after a status write
CREATING_DEFER_SECONDS = 30.0  # the longest a ContainerCreating write yields to other writes
EVENT_QUEUE_LIMIT = 1000  # client-go's maxQueuedEvents: beyond it new events are dropped
# the scheduler's events and their actions, as kube-scheduler records them (events.k8s.io/v1)
SCHEDULER_ACTIONS = {"FailedScheduling": "Scheduling", "Scheduled": "Binding"}
CREATING_AFTER_SECONDS = 1.0  # a bound pod with no task update by then shows ContainerCreating
# the longest a container's termination write waits for its message (then it goes without,
# and the message follows in a write of its own)
MESSAGE_HOLD_SECONDS = 2.0
# concurrent status writes: as many as the kube client's default connections (16). With 8, a
# 1,000-pod burst's 2,000 ack-carrying writes queued ~2 s each at ~25 ms a PATCH while the API
# server had room for more (docs/bench/bridge.md, eleventh session)
WORKERS = 16

# write priorities (lower goes first)
_ACKS = 0  # the write carries Mesos acknowledgements
_STATUS = 1  # any other status change
_CREATING = 2  # the delayed ContainerCreating write of a just-bound pod (not queued)

RawPod = dict[str, Any]
Ack = Callable[[], Awaitable[None]]
Relaunch = Callable[[str, float, tuple[str, ...]], None]  # uid, delay, containers
Kill = Callable[[str, ids.TaskId], None]


def view_of(status: Any) -> model_tasks.TaskStatusView:
    """A ``TaskStatusView`` from the Mesos client's parsed ``TaskStatus``."""
    check = None
    raw_check = status.check_status
    if isinstance(raw_check, dict) and raw_check.get("type"):
        check = model_tasks.CheckResult(
            type=str(raw_check["type"]),
            exit_code=(raw_check.get("command") or {}).get("exit_code"),
            http_status=(raw_check.get("http") or {}).get("status_code"),
            tcp_succeeded=(raw_check.get("tcp") or {}).get("succeeded"),
        )
    return model_tasks.TaskStatusView(
        task_id=ids.TaskId(str(status.task_id)),
        state=str(status.state),
        timestamp=float(status.timestamp or 0.0) or time.time(),
        reason=status.reason,
        message=str(status.message or ""),
        source=status.source,
        healthy=status.healthy,
        check=check,
        uuid=status.uuid,
        agent_id=status.agent_id,
        executor_id=status.executor_id,
        container_id=ids.ContainerId(status.container_id) if status.container_id else None,
        ip_addresses=tuple(status.ip_addresses or ()),
    )


@dataclasses.dataclass(slots=True)
class _PodState:
    """The writer's side of one pod: what writing needs. The pod's record is the lifecycle's,
    in the store shared with the offer loop (``record`` reads it there)."""

    uid: str
    pod: RawPod
    lives: lifecycle_store.PodStore
    acks: list[Ack] = dataclasses.field(default_factory=list)
    acks_made: float = 0.0  # when the agent made the oldest update of ``acks`` (epoch)
    # the uuids ``acks`` acknowledge: an agent's re-sent copy of an update whose write is still
    # queued needs no second ACKNOWLEDGE (the first goes once the status is written)
    ack_uuids: tuple[str, ...] = ()
    # the status last written, until the API server shows it in the pod (then the pod's own
    # status is the reference, and this copy is let go: memory per pod)
    written: Any = None
    signature: bytes | None = None  # of the status last written
    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    since: float | None = None  # when the oldest task status not yet written arrived

    @property
    def record(self) -> PodRecord:
        return self.lives.record(self.uid)


class PodStatusWriter:
    """Implements the scheduler loop's ``PodSink``; a component (``run(stop=, ready=)``)."""

    def __init__(
        self,
        *,
        kube: kube_client.KubeClient,
        workers: int = WORKERS,
        relaunch: Relaunch | None = None,
        kill: Kill | None = None,
        creating_after: float = CREATING_AFTER_SECONDS,
        event_queue_limit: int = EVENT_QUEUE_LIMIT,
        lives: lifecycle_store.PodStore | None = None,  # the pods' records (app.py shares it)
        read_message: kubelet_termination.Read | None = None,  # termination messages
    ) -> None:
        self._kube = kube
        # each pod's one record (``lifecycle.store``), shared with the offer loop: the writer
        # keeps what ``machine.apply`` answers there
        self._lives = lifecycle_store.PodStore() if lives is None else lives
        self._relaunch = relaunch
        self._kill = kill
        self._read_message = read_message
        self._reading: set[asyncio.Task[None]] = set()  # termination messages being read
        self._workers = workers
        self._creating_after = creating_after
        self._state: dict[str, _PodState] = {}
        # (priority, when, sequence, uid), priorities _ACKS < _STATUS < _CREATING; "when" is
        # the oldest pending update's making for _ACKS (``_enqueue``), the queueing otherwise
        self._queue: asyncio.PriorityQueue[tuple[int, float, int, str]] = \
            asyncio.PriorityQueue()
        self._queued: dict[str, int] = {}  # uid -> the best priority it is queued with
        self._seq = 0
        self._writing = 0  # status writes in flight
        self._last_status_write = -1e9  # when the last write (not ContainerCreating) ended
        self._in_flight: set[str] = set()  # uids whose status write is in flight
        self._again: dict[str, int] = {}  # uid -> priority: asked for during its write
        self._creating: collections.deque[tuple[float, str]] = collections.deque()  # (due, uid)
        self._creating_added = asyncio.Event()
        self._wakes: list[tuple[float, str]] = []  # (epoch, uid): the lifecycle's timers
        # seconds from a task status arriving to its pod's status written (metrics.py)
        self.on_status_written: Callable[[float], None] | None = None
        self._wake_added = asyncio.Event()
        # (involved object, type, reason, message, host, when it was queued (monotonic),
        # when it happened (epoch: the Event's time and name))
        self._events: asyncio.Queue[
            tuple[dict[str, Any], str, str, str, str | None, float, float]
        ] = asyncio.Queue(maxsize=event_queue_limit)
        self._events_dropped = 0
        self._acking: set[asyncio.Task[None]] = set()  # acknowledgements on their way
        # what was written, by priority (benchmarks and tests read it)
        self.writes: collections.Counter[str] = collections.Counter()

    @property
    def events_dropped(self) -> int:
        return self._events_dropped

    # -- PodSink ---------------------------------------------------------------------------

    def observe(self, pod: RawPod) -> None:
        """The latest version of a pod (the scheduler's watch): the state keeps this one
        instead of an older copy, and lets its written status go once the pod shows it."""
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        state = self._state.get(uid)
        if state is None:
            return
        self._changed(uid, state, pod)
        if state.written is not None and (
            statusmap.signature(pod.get("status")) == state.signature
        ):
            state.written = None

    def _entry(self, pod: RawPod) -> tuple[str, _PodState]:
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        state = self._state.get(uid)
        if state is None:
            self._lives.start_status(uid, PodRecord.new(pod))
            state = self._state[uid] = _PodState(uid=uid, pod=pod, lives=self._lives)
        else:
            self._changed(uid, state, pod)
        return uid, state

    def _changed(self, uid: str, state: _PodState, pod: RawPod) -> None:
        """A newer version of the pod: the lifecycle reads its facts (a moved deadline may
        ask for a timer, or be past already)."""
        if pod is not state.pod:
            state.pod = pod
            self._apply(uid, state, lc_events.PodChanged(pod=pod))

    def _apply(
        self, uid: str, state: _PodState, event: lc_events.Event, *, ack: Ack | None = None
    ) -> None:
        """Feed the lifecycle one event and execute what it answers."""
        now = time.time()
        record, intents = machine.apply(state.record, event, now)
        self._lives.set_record(uid, record)
        reads = [i for i in intents if isinstance(i, lc_intents.ReadTerminationMessage)]
        if reads and self._read_message is not None:
            # the write that shows the ended container waits (briefly) for its message
            task = asyncio.create_task(kubelet_termination.read_all(
                reads, read=self._read_message, hold=MESSAGE_HOLD_SECONDS,
                take=functools.partial(self._take_message, uid),
                release=functools.partial(self._release, uid)))
            self._reading.add(task)
            task.add_done_callback(self._reading.discard)
        write = False  # queued after the loop: the write's priority depends on its acks
        for intent in intents:
            if isinstance(intent, lc_intents.RecordEvent):
                state.events.append((intent.type, intent.reason, intent.message))
            elif isinstance(intent, lc_intents.Acknowledge):
                uuid = event.status.uuid if isinstance(event, lc_events.TaskUpdated) else None
                if ack is not None and not (uuid and uuid in state.ack_uuids):
                    if not state.acks and isinstance(event, lc_events.TaskUpdated):
                        state.acks_made = event.status.timestamp
                    state.acks.append(ack)
                    state.ack_uuids += (uuid,) if uuid else ()
            elif isinstance(intent, lc_intents.WriteStatus):
                write = not reads or self._read_message is None
            elif isinstance(intent, lc_intents.ReadTerminationMessage):
                pass  # read above
            elif isinstance(intent, lc_intents.Relaunch):
                if self._relaunch is not None:
                    self._relaunch(uid, max(0.0, intent.at - now), intent.containers)
            elif isinstance(intent, lc_intents.Kill):
                if self._kill is not None:
                    self._kill(uid, intent.task_id)
            elif isinstance(intent, lc_intents.WakeAt):
                heapq.heappush(self._wakes, (intent.at, uid))
                self._wake_added.set()
            else:  # deleting a pod is the offer loop's (``lifecycle.deletion``)
                log.warning("pod %s: the status writer does not execute %s", uid, intent)
        if write:
            self._enqueue(uid)

    def _take_message(self, uid: str, want: lc_intents.ReadTerminationMessage,
                      message: str) -> None:
        state = self._state.get(uid)
        if state is not None:
            self._apply(uid, state, lc_events.TerminationMessage(
                container=want.container, task_id=want.task_id, message=message))

    def _release(self, uid: str) -> None:
        """The write held for termination messages goes now."""
        if uid in self._state:
            self._enqueue(uid)

    def _enqueue(self, uid: str, *, priority: int = _STATUS) -> None:
        """Queue a write of the pod's latest state (once, however often it is asked for).

        Writes that carry acknowledgements go first. Mesos sends a task's next update only
        once the previous one is acknowledged, and we acknowledge only after the write: a
        STARTING write stuck behind a thousand Scheduled writes holds back that task's
        RUNNING update. A pod queued as ordinary and then given an ack moves up. Among them
        the oldest update goes first (when the agent made it: a RUNNING that waited for its
        STARTING's round trip is older than the STARTING updates that arrived meanwhile).
        """
        state = self._state.get(uid)
        when = time.time()
        if state is not None and state.acks:
            priority = _ACKS
            when = state.acks_made or when
        current = self._queued.get(uid)
        if current is not None and current <= priority:
            return
        self._queued[uid] = priority
        self._seq += 1
        self._queue.put_nowait((priority, when, self._seq, uid))

    def task_status(
        self, *, pod: RawPod, status: Any, container: str, attempt: int, agent: Any,
        ack: Ack | None,
    ) -> None:
        uid, state = self._entry(pod)
        if state.since is None:
            state.since = time.monotonic()
        view = status if isinstance(status, model_tasks.TaskStatusView) else view_of(status)
        event = lc_events.TaskUpdated(
            container=container, attempt=attempt, status=view,
            needs_ack=ack is not None,
            host_ip=str(getattr(agent, "host_ip", "") or "") if agent is not None else "",
            node_name=str(getattr(agent, "node_name", "") or "") if agent is not None else "",
        )
        self._apply(uid, state, event, ack=ack)

    def unschedulable(self, *, pod: RawPod, message: str) -> None:
        uid, state = self._entry(pod)
        self._apply(uid, state, lc_events.Unschedulable(message=message))

    def scheduled(self, *, pod: RawPod, node_name: str) -> None:
        """The pod was bound to ``node_name``. The binding itself shows it scheduled, so no
        write now: the first task update writes the pod; if none comes within
        ``creating_after`` seconds, the pod is written as it stands (ContainerCreating)."""
        uid, state = self._entry(pod)
        self._apply(uid, state, lc_events.Scheduled(node_name=node_name))
        self._creating.append((time.monotonic() + self._creating_after, uid))
        self._creating_added.set()

    def _busy(self) -> bool:
        """Status writes are queued or in flight, or one finished less than
        ``QUIET_SECONDS`` ago (in a burst the next updates are on their way)."""
        return bool(self._writing or self._queued) or (
            time.monotonic() - self._last_status_write < QUIET_SECONDS
        )

    async def _creating_timer(self) -> None:
        """Write the ContainerCreating status of pods bound ``creating_after`` seconds ago
        that no task update has written since: one at a time, and only while no other
        status write is queued or in flight (a pod waits at most ``CREATING_DEFER_SECONDS``
        for that). In a burst the task update's own write usually comes first and covers it.
        """
        while True:
            if not self._creating:
                self._creating_added.clear()
                await self._creating_added.wait()
                continue
            due, uid = self._creating[0]
            now = time.monotonic()
            if now < due:
                await asyncio.sleep(due - now)
                continue
            state = self._state.get(uid)
            if state is None or state.record.runtimes or state.record.failure is not None:
                self._creating.popleft()  # a task update (or a refused launch) shows it
                continue
            if self._busy() and now < due + CREATING_DEFER_SECONDS:
                await asyncio.sleep(0.05)
                continue
            self._creating.popleft()
            await self._write_one(uid, priority=_CREATING)

    async def _wake_timer(self) -> None:
        """Hand the lifecycle a ``Tick`` when a time it asked for (``WakeAt``) has come."""
        while True:
            if not self._wakes:
                self._wake_added.clear()
                await self._wake_added.wait()
                continue
            at, uid = self._wakes[0]
            delay = at - time.time()
            if delay > 0:
                self._wake_added.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake_added.wait()  # an earlier timer may come meanwhile
                continue
            heapq.heappop(self._wakes)
            state = self._state.get(uid)
            if state is not None:
                self._apply(uid, state, lc_events.Tick())

    def launch_failed(self, *, pod: RawPod, reason: str, message: str) -> None:
        uid, state = self._entry(pod)
        self._apply(uid, state, lc_events.LaunchRefused(reason=reason, message=message))

    def _render(self, state: _PodState, *, now: float) -> dict[str, Any]:
        record = state.record
        previous = state.written or state.pod.get("status") or {}
        if record.unschedulable is not None and not record.runtimes:
            return statusmap.pending_status(record.unschedulable, previous, now)
        pod = dict(state.pod)
        pod["status"] = previous
        spec = pod.get("spec") or {}
        if record.node_name and not spec.get("nodeName"):
            # bound by us, but the watch has not brought the bound pod yet: it is scheduled
            # (rendering it unbound would flap PodScheduled False -> True)
            pod["spec"] = {**spec, "nodeName": record.node_name}
        return dict(
            statusmap.pod_status(
                pod=pod,
                containers=record.runtimes,
                now=now,
                host_ip=record.host_ip or None,
                start_time=record.started,
                pod_ips=record.pod_ips,  # the task statuses' (statusmap falls back)
                failed=(
                    ("DeadlineExceeded", machine.DEADLINE_MESSAGE)
                    if record.deadline_exceeded else None
                ),
            )
        )

    def forget(self, uid: str) -> None:
        if self._state.pop(uid, None) is not None:
            self._lives.forget_status(uid)

    # -- the component -----------------------------------------------------------------------

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(self._workers)]
        workers += [asyncio.create_task(self._event_poster()) for _ in range(2)]
        workers.append(asyncio.create_task(self._creating_timer()))
        workers.append(asyncio.create_task(self._wake_timer()))
        ready.set()
        try:
            await stop.wait()
        finally:
            for w in [*workers, *self._reading]:
                w.cancel()
            await asyncio.gather(*workers, *self._reading, return_exceptions=True)
            if self._acking:  # written statuses: let their acknowledgements go out
                await asyncio.wait(set(self._acking), timeout=2.0)
            for t in list(self._acking):
                t.cancel()

    async def _worker(self) -> None:
        while True:
            priority, _, _, uid = await self._queue.get()
            if self._queued.get(uid) != priority:
                continue  # superseded by an entry with a better priority
            del self._queued[uid]
            await self._write_one(uid, priority=priority)

    async def _write_one(self, uid: str, *, priority: int) -> None:
        """Write one pod's status, never two writes of the same pod at once (the later
        state could otherwise land first): a pod asked for while its write is in flight is
        queued again when that write is done."""
        if uid in self._in_flight:
            self._again[uid] = min(priority, self._again.get(uid, priority))
            return
        self._in_flight.add(uid)
        self._writing += 1
        try:
            await self._write(uid, priority=priority)
        except kube_errors.KubeError as e:
            log.warning("writing status of pod %s failed (retrying): %s", uid, e)
            await asyncio.sleep(0.5)
            self._again[uid] = min(priority, self._again.get(uid, priority))
        except Exception:  # a mapping bug must not stop every other pod's status
            log.exception("writing status of pod %s failed", uid)
        finally:
            self._writing -= 1
            if priority < _CREATING:
                self._last_status_write = time.monotonic()
            self._in_flight.discard(uid)
        again = self._again.pop(uid, None)
        if again is not None and uid in self._state:
            self._enqueue(uid, priority=min(again, _STATUS))

    async def _write(self, uid: str, *, priority: int = _STATUS) -> None:
        state = self._state.get(uid)
        if state is None:
            return
        acks, state.acks = state.acks, []
        acks_made, ack_uuids, state.ack_uuids = state.acks_made, state.ack_uuids, ()
        events, state.events = state.events, []
        pod = state.pod
        meta = pod.get("metadata") or {}
        now = time.time()
        status = self._render(state, now=now)
        signature = statusmap.signature(status)
        try:
            if signature != state.signature:
                await self._kube.patch_pod_status(
                    namespace=str(meta.get("namespace") or "default"),
                    name=str(meta.get("name")),
                    uid=uid,
                    status=status,
                    # (a ContainerCreating write is not BACKGROUND: it holds the pod, and a
                    # task update's write waits for it, behind every queued event)
                    priority=kube_client.URGENT if acks else kube_client.NORMAL,
                )
                state.written = status
                state.signature = signature
                self.writes[
                    "acknowledged" if acks else "creating" if priority == _CREATING else "status"
                ] += 1
        except (kube_errors.NotFound, kube_errors.Conflict):
            log.info("pod %s/%s is gone; dropping its status", meta.get("namespace"),
                     meta.get("name"))
            if self._state.pop(uid, None) is not None:
                self._lives.forget_status(uid)
        except kube_errors.KubeError:
            state.acks[:0] = acks  # not written: keep the acks for the retry
            state.acks_made = acks_made if acks else state.acks_made
            state.ack_uuids = ack_uuids + state.ack_uuids
            state.events[:0] = events
            raise
        if state.since is not None and self.on_status_written is not None:
            self.on_status_written(time.monotonic() - state.since)
        state.since = None
        if acks:
            # The status is written: acknowledge in the background, so this worker goes on
            # to the next pod instead of waiting a master round trip per update (a burst of
            # 1,000 RUNNING updates would otherwise queue behind those round trips).
            task = asyncio.create_task(self._acknowledge(uid, acks))
            self._acking.add(task)
            task.add_done_callback(self._acking.discard)
        if events:
            involved = {k: meta.get(k) for k in ("name", "namespace", "uid", "resourceVersion")}
        for i, (etype, reason, message) in enumerate(events):
            # the pod's events in the order they happened (1 us apart within one write): the
            # Event's time and name, so they list in that order however the posters race
            happened = now + i * 1e-6
            item = (involved, etype, reason, message, state.record.node_name or None,
                    time.monotonic(), happened)
            try:
                self._events.put_nowait(item)
            except asyncio.QueueFull:
                # as a kubelet's event recorder does under pressure: drop, and say so (once
                # per thousand, not once per event)
                if self._events_dropped % 1000 == 0:
                    log.warning("event queue full (%d queued): dropping %s for %s "
                                "(%d dropped so far)", self._events.qsize(), reason,
                                meta.get("name"), self._events_dropped + 1)
                self._events_dropped += 1

    async def _acknowledge(self, uid: str, acks: list[Ack]) -> None:
        for ack in acks:
            try:
                await ack()
            except Exception as e:  # the agent re-sends an unacknowledged update
                log.warning("acknowledging an update of pod %s failed: %s", uid, e)

    async def _event_poster(self) -> None:
        """Events go out after the statuses, on their own workers: a status never waits.

        They share the API client's connections (and the API server) with the status
        writes; while status writes are queued or in flight an event yields to them until it
        is ``EVENT_DEFER_SECONDS`` old (counted from when it was queued, not per event: under
        a steady stream of status writes a backlog then drains at the posting rate instead of
        every event waiting its own full deferral). In a burst events are late, and beyond the
        queue's limit dropped, but never starved.
        """
        while True:
            meta, etype, reason, message, host, queued, happened = await self._events.get()
            while self._busy() and time.monotonic() < queued + EVENT_DEFER_SECONDS:
                await asyncio.sleep(0.05)
            await self._kube.post_event(
                involved={"apiVersion": "v1", "kind": "Pod", "metadata": meta},
                reason=reason,
                message=message,
                type_=etype,
                component="k8sbridge" if reason in SCHEDULER_ACTIONS else "kubelet",
                host=host,
                at=happened,
                action=SCHEDULER_ACTIONS.get(reason),
            )

