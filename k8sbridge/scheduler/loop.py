"""The framework loop: pending pods + held offers → pure placement → commit (bind, then ACCEPT).

Why one task: every decision here reads and writes the same state (held offers, pending pods,
launched task groups, suppression). ``Scheduler.run`` is the single owner of that state; pod
watch events, Mesos events and timers all arrive as items on one inbox queue, so there are no
locks and no interleaving surprises. Kubernetes writes and Mesos calls are awaited from here
(bounded by the kube client's thread pool), status writes are handed to the kubelet's writer.

Crash-safe commit order — **bind first, then ACCEPT**, with task ids derived from the pod uid
(``<uid>.<attempt>.<container>``):

* killed before the bind: the pod is still unbound, nothing runs; it is placed again.
* killed after the bind, before the ACCEPT: the pod is bound to node N and no task exists.
  After the restart the loop first *reconciles* (``GET_TASKS`` on the master, then an implicit
  RECONCILE) and only then launches: it finds no task for the pod's uid and launches it on N's
  agent (a pod bound to one of our nodes without a task is launched there, which is also how
  pods bound by another scheduler run). Nothing runs twice, nothing is lost.
* killed after the ACCEPT: the task exists under its deterministic id; reconciliation adopts
  it and the pod is never launched again for that attempt. Even a racing second launch of the
  same attempt would carry the same task ids, which the master refuses while the first lives.

The opposite order (ACCEPT first) would leave a running task for an unbound pod after a crash;
recognising it is possible with the deterministic ids, but bind-first keeps the Kubernetes
object as the single record of intent, which is what other controllers read.

Attempts: one attempt of a pod is one task group on one agent. When the kubelet's status
writer decides a restart (restartPolicy, crash back-off) it asks for a relaunch; the pod becomes
pending again, bound to its node, and the next attempt's ids are ``attempt + 1``. Init
containers run before the app group as task groups of their own within the same attempt, one
at a time, each on the pod's node; the phase is derived from which init tasks have finished,
so it survives a bridge restart.

Good citizenship: offers not used by the plan are declined at once with a refuse filter;
offers are never held longer than ``offer_hold_seconds`` (while some pods do not fit, offers
are kept at most ``GATHER_SECONDS`` so the explanation sees every agent); SUPPRESS when nothing
is pending; REVIVE (at most every ``revive_min_interval_seconds``) when something becomes
pending.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from k8sbridge import settings as bridge_settings
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors
from k8sbridge.mesos import errors as mesos_errors
from k8sbridge.mesos import events as mesos_events
from k8sbridge.mesos import types as mesos_types
from k8sbridge.model import cluster, ids
from k8sbridge.model import pods as model_pods
from k8sbridge.model.resources import Resources
from k8sbridge.scheduler import feasible, launch, offers, plan, stack

__all__ = ["Driver", "PodSink", "Scheduler", "TaskRecord"]

log = logging.getLogger(__name__)

EXPLAIN_GRACE = 3.0  # seconds an explanation missing some agents' offers is held back
EXPLAIN_MIN_INTERVAL = 10.0  # an explanation is rewritten at most this often per pod
GATHER_SECONDS = 1.5  # how long offers are held waiting for the other agents' offers
RECONCILE_TIMEOUT_SECONDS = 30.0  # one GET_TASKS may take this long, then it failed
RECONCILE_RETRY_FIRST = 0.5  # a failed reconciliation is retried after this, doubling ...
RECONCILE_RETRY_MAX = 30.0  # ... up to this
UNRECONCILED_REFUSE_SECONDS = 2.0  # offers declined while unreconciled come back this soon

RawPod = dict[str, Any]


class Driver(Protocol):
    """The Mesos calls the loop makes (``k8sbridge.mesos.framework.Framework`` has them)."""

    @property
    def framework_id(self) -> ids.FrameworkId | None: ...

    async def accept(
        self,
        offer_ids: Sequence[ids.OfferId],
        operations: Sequence[Any],
        *,
        refuse_seconds: float | None = None,
    ) -> None: ...

    async def decline(
        self, offer_ids: Sequence[ids.OfferId], *, refuse_seconds: float | None = None
    ) -> None: ...

    async def revive(self, roles: Sequence[str] | None = None) -> None: ...

    async def suppress(self, roles: Sequence[str] | None = None) -> None: ...

    async def kill(
        self,
        task_id: ids.TaskId,
        *,
        agent_id: ids.AgentId | None = None,
        grace_period_seconds: float | None = None,
    ) -> None: ...

    async def acknowledge(self, status: mesos_types.TaskStatus) -> None: ...

    async def reconcile(
        self, tasks: Mapping[ids.TaskId, ids.AgentId | None] | None = None
    ) -> None: ...


class PodSink(Protocol):
    """Where pod-facing outcomes go (the kubelet's status writer implements it)."""

    def task_status(
        self, *, pod: RawPod, status: mesos_types.TaskStatus, container: str, attempt: int,
        agent: AgentRef | None, ack: Callable[[], Awaitable[None]] | None,
    ) -> None: ...

    def unschedulable(self, *, pod: RawPod, message: str) -> None: ...

    def scheduled(self, *, pod: RawPod, node_name: str) -> None: ...

    def launch_failed(self, *, pod: RawPod, reason: str, message: str) -> None: ...

    def forget(self, uid: str) -> None: ...

    def observe(self, pod: RawPod) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class AgentRef:
    agent_id: ids.AgentId
    hostname: str
    node_name: str
    host_ip: str


class AgentDirectory(Protocol):
    """What the node controller knows about agents (read-only)."""

    @property
    def agents(self) -> Mapping[ids.AgentId, Any]: ...

    def node_for_agent(self, agent_id: ids.AgentId) -> str | None: ...


@dataclasses.dataclass(slots=True)
class TaskRecord:
    task_id: ids.TaskId
    pod_uid: str
    attempt: int
    container: str
    agent_id: ids.AgentId | None
    state: str = "TASK_STAGING"
    killing: bool = False
    executor_id: str = ""

    @property
    def terminal(self) -> bool:
        return self.state in mesos_types.TERMINAL_STATES


@dataclasses.dataclass(slots=True)
class PodLaunch:
    """One launched attempt of a pod (one task group)."""

    uid: str
    attempt: int
    agent_id: ids.AgentId
    node_name: str
    task_ids: tuple[ids.TaskId, ...]


class Scheduler:
    """The bridge's framework loop (a component: ``run(stop=, ready=)``)."""

    def __init__(
        self,
        *,
        settings: bridge_settings.BridgeSettings,
        kube: kube_client.KubeClient,
        driver: Driver,
        sink: PodSink,
        agents: AgentDirectory,
        list_tasks: Callable[[], Awaitable[list[dict[str, Any]]]],
        _clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._kube = kube
        self._driver = driver
        self._sink = sink
        self._agents = agents
        self._list_tasks = list_tasks
        self._clock = _clock
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._mesos_queued = 0  # Mesos events in the inbox (see ``_forward_progress``)
        self._book = offers.OfferBook(hold_seconds=settings.mesos.offer_hold_seconds)
        self._pods: dict[str, RawPod] = {}  # uid -> latest raw pod we care about
        self._pending: dict[str, None] = {}  # uids, insertion-ordered
        self._tasks: dict[ids.TaskId, TaskRecord] = {}
        self._launches: dict[str, PodLaunch] = {}  # uid -> current attempt
        self._unschedulable: dict[str, str] = {}  # uid -> last message written
        self._pending_since: dict[str, float] = {}  # uid -> first unplaced pass
        self._relaunch_at: dict[str, float] = {}  # uid -> when its next attempt may launch
        self._explained_at: dict[str, float] = {}  # uid -> when its explanation was written
        self._phase_attempt: dict[str, int] = {}  # uid -> attempt whose init phases run
        self._deleting: set[str] = set()
        self._parsed: dict[str, tuple[str, model_pods.PodRequest]] = {}  # uid -> (rv, request)
        # seconds from a TASK_RUNNING's timestamp (set where the task started) to its arrival
        # here: the Mesos side's share of status propagation (benchmarks read it)
        self._running_delays: collections.deque[float] = collections.deque(maxlen=20_000)
        # the last status the master keeps for each of our terminal tasks (GET_TASKS)
        self._final_status: dict[ids.TaskId, mesos_types.TaskStatus] = {}
        self._subscribed = False
        self._reconciled = False
        self._reconcile_due: float | None = None  # a failed reconciliation is retried then
        self._reconcile_failures = 0
        self._reconcile_error = ""  # the last failure's cause (logged once per cause)
        self._pods_synced = False
        self._suppressed = False
        # A pod became pending (or a relaunch fell due, or resources came back) since the
        # last REVIVE: revive even when not suppressed, since REVIVE is what clears the
        # refuse filters of earlier declines (see ``_maybe_revive``).
        self._revive_wanted = False
        self._last_revive = -1e9
        self._pass_due: float | None = None
        self._names = set(settings.scheduler.scheduler_names)
        self._stack_settings = stack.StackSettings(
            strategy="binpack" if settings.scheduler.ranking == "binpack" else "spread",
            executor_overhead=(
                ("cpus", settings.scheduler.executor_cpus),
                ("mem", settings.scheduler.executor_mem),
                ("disk", settings.scheduler.executor_disk),
            ),
            seed=settings.scheduler.seed or 0,
            implicit_tolerations=_implicit_tolerations(settings),
        )
        self._defaults = model_pods.ContainerDefaults(
            cpus=settings.scheduler.default_cpus, mem=settings.scheduler.default_mem
        )

    # -- inputs (called from other tasks; they only enqueue) --------------------------------

    def on_pod_event(self, etype: str | None, raw: RawPod) -> None:
        self._inbox.put_nowait(("pod", (etype, raw)))

    async def on_mesos_event(self, event: Any) -> None:
        if isinstance(event, mesos_events.Update) and self._forward_progress(event.status):
            return
        self._mesos_queued += 1
        self._inbox.put_nowait(("mesos", event))

    def _forward_progress(self, status: mesos_types.TaskStatus) -> bool:
        """Hand a launched task's STARTING/RUNNING update to the status writer at once.

        Why not through the inbox: the loop awaits bindings and ACCEPTs (a burst binds
        hundreds of pods per pass), and Mesos sends a task's next update only once this one
        is written and acknowledged, so every wait here is paid twice per pod in status
        propagation. Such an update changes nothing the loop decides on (the task stays live,
        its pod's launch stays current), so it is folded here, synchronously (no await, so
        nothing interleaves), exactly as ``_on_update`` would. Anything else — and any update
        while another Mesos event is still queued, which keeps each task's order — goes
        through the inbox.
        """
        if status.state not in ("TASK_STARTING", "TASK_RUNNING") or self._mesos_queued:
            return False
        rec = self._tasks.get(status.task_id)
        if rec is None or rec.terminal or rec.killing:
            return False
        uid = rec.pod_uid
        pod = self._pods.get(uid)
        current = self._launches.get(uid)
        if pod is None or uid in self._deleting or current is None or (
            current.attempt != rec.attempt
        ) or _is_sidecar(pod, rec.container):
            return False  # (a sidecar's start advances the init phases: through the inbox)
        if status.state == "TASK_RUNNING" and status.timestamp:
            self._running_delays.append(time.time() - status.timestamp)
        self._note_status(rec, status)
        self._sink.task_status(
            pod=pod, status=status, container=rec.container, attempt=rec.attempt,
            agent=self._agent_ref(rec.agent_id) if rec.agent_id else None,
            ack=self._ack_for(status),
        )
        return True

    def _ack_for(self, status: mesos_types.TaskStatus) -> Callable[[], Awaitable[None]] | None:
        if not status.needs_ack:
            return None

        def ack() -> Awaitable[None]:
            return self._driver.acknowledge(status)

        return ack

    @staticmethod
    def _note_status(rec: TaskRecord, status: mesos_types.TaskStatus) -> None:
        rec.state = status.state
        if status.agent_id:
            rec.agent_id = status.agent_id
        if status.executor_id and not rec.executor_id:
            rec.executor_id = str(status.executor_id)

    def request_relaunch(self, uid: str, delay: float) -> None:
        """The lifecycle decided a restart (restartPolicy, crash back-off): relaunch later."""
        self._inbox.put_nowait(("relaunch", (uid, self._clock() + max(0.0, delay))))

    def request_kill(self, uid: str, task_id: ids.TaskId) -> None:
        """The lifecycle decided a task must stop (a sidecar after the app containers)."""
        self._inbox.put_nowait(("kill", (uid, task_id)))

    # -- views for tests and the kubelet API -----------------------------------------------

    @property
    def launches(self) -> Mapping[str, PodLaunch]:
        return self._launches

    @property
    def tasks(self) -> Mapping[ids.TaskId, TaskRecord]:
        return self._tasks

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(self._pending)

    @property
    def suppressed(self) -> bool:
        return self._suppressed

    @property
    def running_update_delays(self) -> Sequence[float]:
        return tuple(self._running_delays)

    # -- the kubelet API's view (PodLocator) ------------------------------------------------

    @property
    def framework_id(self) -> str | None:
        return self._driver.framework_id

    def locate(
        self, *, namespace: str, name: str, container: str, previous: bool
    ) -> tuple[str, str, str, bool] | None:
        """(agent id, executor id, task id, finished) of a container's current/previous run."""
        for uid, pod in self._pods.items():
            meta = pod.get("metadata") or {}
            if meta.get("name") != name or (meta.get("namespace") or "default") != namespace:
                continue
            runs = sorted(
                (r for r in self._tasks.values() if r.pod_uid == uid and r.container == container),
                key=lambda r: r.attempt,
            )
            if previous:
                runs = runs[:-1]
            if not runs:
                return None
            rec = runs[-1]
            if rec.agent_id is None:
                return None
            executor = rec.executor_id or launch.executor_id_for(uid=uid, attempt=rec.attempt)
            return str(rec.agent_id), executor, str(rec.task_id), rec.terminal
        return None

    def known_pods(self) -> list[dict[str, Any]]:
        return list(self._pods.values())

    def running_pods(self) -> list[dict[str, Any]]:
        return [p for uid, p in self._pods.items() if uid in self._launches]

    # -- the component -----------------------------------------------------------------------

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        await self._initial_pod_list()
        ready.set()
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                timeout = self._next_timeout()
                getter = asyncio.ensure_future(self._inbox.get())
                done, _ = await asyncio.wait(
                    {getter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    kind, item = getter.result()
                    await self._handle(kind, item)
                    while not self._inbox.empty():  # drain what is there before a pass
                        kind, item = self._inbox.get_nowait()
                        await self._handle(kind, item)
                else:
                    getter.cancel()
                await self._tick()
        finally:
            stopper.cancel()

    def _next_timeout(self) -> float:
        now = self._clock()
        waits = [self._settings.mesos.offer_hold_seconds]
        waits.extend(due - now for due in self._relaunch_at.values())
        if self._pass_due is not None:
            waits.append(max(0.0, self._pass_due - now))
        if self._reconcile_due is not None:
            waits.append(max(0.0, self._reconcile_due - now))
        return max(0.01, min(waits))

    async def _initial_pod_list(self) -> None:
        for attempt in range(30):
            try:
                for raw in await self._kube.list_pods():
                    self._observe_pod(None, raw)
                self._pods_synced = True
                return
            except kube_errors.KubeError as e:
                log.warning("listing pods failed (attempt %d): %s", attempt + 1, e)
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        raise kube_errors.TransportError("could not list pods at start")

    async def _handle(self, kind: str, item: Any) -> None:
        try:
            if kind == "pod":
                etype, raw = item
                self._observe_pod(etype, raw)
                await self._act_on_pod(str((raw.get("metadata") or {}).get("uid") or ""))
            elif kind == "mesos":
                self._mesos_queued -= 1
                await self._on_mesos(item)
            elif kind == "relaunch":
                uid, due = item
                self._relaunch_at[uid] = due
            elif kind == "kill":
                await self._kill_for_lifecycle(*item)
        except (kube_errors.KubeError, mesos_errors.MesosError) as e:
            log.warning("handling %s failed (will retry on the next event): %s", kind, e)
        except Exception:  # one bad event must not stop the loop for every other pod
            log.exception("handling a %s event failed (bug): the loop continues", kind)

    # -- pods ----------------------------------------------------------------------------

    def _is_ours(self, raw: RawPod) -> bool:
        spec = raw.get("spec") or {}
        node = spec.get("nodeName")
        if node:
            return self._is_our_node(str(node))
        return spec.get("schedulerName", "default-scheduler") in self._names

    def _is_our_node(self, node: str) -> bool:
        """One of our agents' Nodes, or one a launched pod runs on (hot: every pod event)."""
        for agent_id in self._agents.agents:
            if self._agents.node_for_agent(agent_id) == node:
                return True
        return any(launch_.node_name == node for launch_ in self._launches.values())

    def _request(self, uid: str, pod: RawPod) -> model_pods.PodRequest:
        """``parse_pod`` once per resourceVersion (passes would otherwise re-parse every
        pending and every placed pod each time; raises ``PodSpecError``)."""
        rv = str((pod.get("metadata") or {}).get("resourceVersion") or "")
        cached = self._parsed.get(uid)
        if cached is not None and cached[0] == rv and rv:
            return cached[1]
        request = model_pods.parse_pod(pod, defaults=self._defaults)
        self._parsed[uid] = (rv, request)
        return request

    def _observe_pod(self, etype: str | None, raw: RawPod) -> None:
        meta = raw.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid:
            return
        if etype != "DELETED":
            raw = compact_pod(raw)
            meta = raw.get("metadata") or {}
        if etype == "DELETED":
            self._pods.pop(uid, None)
            self._parsed.pop(uid, None)
            self._pending.pop(uid, None)
            self._unschedulable.pop(uid, None)
            self._pending_since.pop(uid, None)
            self._explained_at.pop(uid, None)
            if any(t.pod_uid == uid and not t.terminal for t in self._tasks.values()):
                self._deleting.add(uid)  # force-deleted: kill at once (no grace)
            else:
                self._launches.pop(uid, None)
                self._sink.forget(uid)
            return
        if not self._is_ours(raw) and uid not in self._launches:
            self._pods.pop(uid, None)
            self._parsed.pop(uid, None)
            self._pending.pop(uid, None)
            return
        self._pods[uid] = raw
        self._sink.observe(raw)  # the writer keeps this version, not an older one
        phase = (raw.get("status") or {}).get("phase")
        spec = raw.get("spec") or {}
        if meta.get("deletionTimestamp"):
            self._pending.pop(uid, None)
            self._deleting.add(uid)
            return
        if phase in ("Succeeded", "Failed"):
            self._pending.pop(uid, None)
            return
        if uid in self._launches:
            return
        if spec.get("nodeName") and not self._reconciled:
            return  # bound pods wait for reconciliation: their task may exist already
        if uid not in self._pending:
            self._pending[uid] = None
            self._revive_wanted = True
            self._want_pass()

    async def _act_on_pod(self, uid: str) -> None:
        if uid in self._deleting:
            await self._progress_deletion(uid)
        if self._pending and (self._suppressed or self._revive_wanted):
            await self._maybe_revive()

    async def _progress_deletion(self, uid: str) -> None:
        """deletionTimestamp → KILL (grace) → all terminal → DELETE grace 0 with uid."""
        pod = self._pods.get(uid)
        live = [t for t in self._tasks.values() if t.pod_uid == uid and not t.terminal]
        if live:
            grace: float | None = None
            if pod is not None:
                meta = pod.get("metadata") or {}
                spec = pod.get("spec") or {}
                raw_grace = meta.get("deletionGracePeriodSeconds")
                if raw_grace is None:
                    raw_grace = spec.get("terminationGracePeriodSeconds", 30)
                grace = float(raw_grace if raw_grace is not None else 30)
            else:
                grace = 0.0  # the pod object is gone (force delete): kill at once
            for task in live:
                if task.killing:
                    continue
                task.killing = True
                await self._driver.kill(
                    task.task_id, agent_id=task.agent_id, grace_period_seconds=grace
                )
            return
        self._deleting.discard(uid)
        self._launches.pop(uid, None)
        if pod is not None:
            meta = pod.get("metadata") or {}
            await self._kube.delete_pod_now(
                namespace=str(meta.get("namespace") or "default"),
                name=str(meta.get("name")),
                uid=uid,
            )
        self._pods.pop(uid, None)
        self._parsed.pop(uid, None)
        self._sink.forget(uid)
        for tid in [t for t, rec in self._tasks.items() if rec.pod_uid == uid and rec.terminal]:
            self._tasks.pop(tid, None)

    async def _kill_for_lifecycle(self, uid: str, task_id: ids.TaskId) -> None:
        rec = self._tasks.get(task_id)
        if rec is None or rec.terminal or rec.killing or rec.pod_uid != uid:
            return
        pod = self._pods.get(uid)
        grace = (pod or {}).get("spec", {}).get("terminationGracePeriodSeconds", 30)
        rec.killing = True
        await self._driver.kill(task_id, agent_id=rec.agent_id,
                                grace_period_seconds=float(grace if grace is not None else 30))

    # -- Mesos events ----------------------------------------------------------------------

    async def _on_mesos(self, event: Any) -> None:
        if isinstance(event, mesos_events.Subscribed):
            await self._on_subscribed()
        elif isinstance(event, mesos_events.Offers):
            if not self._reconciled:
                # Nothing may launch before reconciliation (a task may exist already), and
                # holding offers starves the other frameworks: decline them at once with a
                # short filter (they come back when reconciliation has succeeded).
                await self._driver.decline(
                    [o.id for o in event.offers], refuse_seconds=UNRECONCILED_REFUSE_SECONDS
                )
                return
            now = self._clock()
            for offer in event.offers:
                self._book.add(_held(offer, now=now))
            self._want_pass(immediate=not self._pending)
        elif isinstance(event, mesos_events.Rescind):
            self._book.rescind(event.offer_id)
        elif isinstance(event, mesos_events.Update):
            await self._on_update(event.status)
        elif isinstance(event, mesos_events.Failure):
            log.info("Mesos failure event: agent %s executor %s status %s",
                     event.agent_id, event.executor_id, event.status)
        elif isinstance(event, mesos_events.Error):
            log.error("Mesos error event: %s", event.message)

    async def _on_subscribed(self) -> None:
        self._subscribed = True
        self._book.clear()  # offers from an earlier subscription are void
        self._suppressed = False
        self._reconciled = False
        self._reconcile_failures = 0
        self._reconcile_error = ""
        await self._reconcile()

    async def _reconcile(self) -> None:
        """Reconcile, then act on what was learned; a failure (an error or a GET_TASKS that
        does not answer in time) is retried with back-off, and meanwhile offers are declined
        (see ``_on_mesos``), never held."""
        self._reconcile_due = None
        try:
            async with asyncio.timeout(RECONCILE_TIMEOUT_SECONDS):
                await self._reconcile_tasks()
        except Exception as e:  # any failure of the master or the transport: retry later
            self._reconcile_failures += 1
            delay = min(RECONCILE_RETRY_MAX,
                        RECONCILE_RETRY_FIRST * 2 ** (self._reconcile_failures - 1))
            self._reconcile_due = self._clock() + delay
            cause = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            log_at = logging.WARNING if cause != self._reconcile_error else logging.DEBUG
            log.log(log_at, "reconciliation failed (%d time(s)); retrying in %.1f s, "
                    "declining offers meanwhile: %s", self._reconcile_failures, delay, cause)
            self._reconcile_error = cause
            held = self._book.take_all()
            if held:
                await self._driver.decline([o.offer_id for o in held],
                                           refuse_seconds=UNRECONCILED_REFUSE_SECONDS)
            return
        if self._reconcile_failures:
            log.info("reconciliation succeeded after %d failure(s)", self._reconcile_failures)
        self._reconciled = True
        # Pods bound to our nodes without a task become pending now, unless their status
        # shows that a task of theirs ran: that attempt ended while we were away (see
        # ``_end_attempt_ended_while_away``) and restartPolicy decides what follows.
        for uid, pod in list(self._pods.items()):
            self._end_attempt_ended_while_away(uid, pod)
            self._observe_pod(None, pod)
            if uid in self._deleting:
                await self._progress_deletion(uid)
        await self._driver.reconcile({})  # implicit: fresh statuses for every task we have
        self._want_pass(immediate=True)

    async def _reconcile_tasks(self) -> None:
        """Learn every task the master knows for us before launching anything."""
        fid = self._driver.framework_id
        tasks = await self._list_tasks()
        for raw in tasks:
            if fid and (raw.get("framework_id") or {}).get("value") != fid:
                continue
            tid = ids.TaskId(str((raw.get("task_id") or {}).get("value", "")))
            parsed = launch.parse_task_id(tid)
            if parsed is None:
                continue
            uid, attempt, container = parsed
            agent = (raw.get("agent_id") or {}).get("value")
            rec = TaskRecord(
                task_id=tid, pod_uid=uid, attempt=attempt, container=container,
                agent_id=ids.AgentId(agent) if agent else None,
                state=str(raw.get("state") or "TASK_STAGING"),
                executor_id=str((raw.get("executor_id") or {}).get("value") or ""),
            )
            known = self._tasks.get(tid)
            if known is None or not known.terminal:
                self._tasks[tid] = rec
            if rec.terminal:
                last = _last_status(raw)
                if last is not None:
                    self._final_status[tid] = last
            current = self._launches.get(uid)
            if not rec.terminal and (current is None or current.attempt <= attempt) and agent:
                node = self._agents.node_for_agent(ids.AgentId(agent)) or ""
                task_ids = tuple(t for t, r in self._tasks.items()
                                 if r.pod_uid == uid and r.attempt == attempt)
                self._launches[uid] = PodLaunch(
                    uid=uid, attempt=attempt, agent_id=ids.AgentId(agent), node_name=node,
                    task_ids=task_ids,
                )
                self._pending.pop(uid, None)
        log.info("reconciled: %d tasks known, %d pods launched", len(self._tasks),
                 len(self._launches))

    async def _on_update(self, status: mesos_types.TaskStatus) -> None:
        parsed = launch.parse_task_id(status.task_id)
        ack = self._ack_for(status)
        if parsed is None:
            log.warning("update for a task that is not ours: %s", status.task_id)
            if ack is not None:
                await ack()
            return
        uid, attempt, container = parsed
        if status.state == "TASK_RUNNING" and status.timestamp:
            self._running_delays.append(time.time() - status.timestamp)
        rec = self._tasks.get(status.task_id)
        if rec is None:
            rec = TaskRecord(task_id=status.task_id, pod_uid=uid, attempt=attempt,
                             container=container, agent_id=status.agent_id)
            self._tasks[status.task_id] = rec
        self._note_status(rec, status)
        pod = self._pods.get(uid)
        if pod is None:
            if self._pods_synced and not rec.terminal and self._reconciled:
                log.info("killing orphan task %s (no pod with uid %s)", status.task_id, uid)
                rec.killing = True
                await self._driver.kill(status.task_id, agent_id=rec.agent_id,
                                        grace_period_seconds=0)
            if ack is not None:
                await ack()
            return
        agent_ref = self._agent_ref(rec.agent_id) if rec.agent_id else None
        current = self._launches.get(uid)
        if current is not None and attempt < current.attempt and not _is_sidecar(pod, container):
            # (a sidecar keeps running from its earlier attempt beside the app containers)
            if ack is not None:
                await ack()  # an older attempt's late update: nothing to show
            return
        if (
            rec.terminal
            and status.state in ("TASK_DROPPED", "TASK_LOST", "TASK_ERROR")
            and status.reason == "REASON_INVALID_OFFERS"
            and uid not in self._deleting
        ):
            # The launch never happened (the offer was rescinded or had gone): nothing ran,
            # so nothing is shown; the next attempt is launched.
            self._launches.pop(uid, None)
            self._pending[uid] = None
            self._revive_wanted = True
            self._want_pass()
            if ack is not None:
                await ack()
            return
        self._sink.task_status(
            pod=pod, status=status, container=container, attempt=attempt, agent=agent_ref,
            ack=ack,
        )
        if rec.terminal and self._pending:
            # Its resources go back to the agent, whose offers our earlier declines filter:
            # a pod that did not fit may fit now.
            self._revive_wanted = True
            self._want_pass()
        raw_inits = (pod.get("spec") or {}).get("initContainers") or []
        inits = [str(c.get("name")) for c in raw_inits]
        sidecars = {str(c.get("name")) for c in raw_inits if c.get("restartPolicy") == "Always"}
        in_phase = current is not None and status.task_id in current.task_ids
        phase_done = in_phase and (
            (container in sidecars and status.state == "TASK_RUNNING")
            or (container in inits and rec.terminal)
        )
        if phase_done and uid not in self._deleting:
            # Init containers run one at a time: the next phase (or the app group) follows
            # a success, or a sidecar's start (it keeps running beside what follows); after
            # a failure the lifecycle asks for the retry (crash back-off) unless
            # restartPolicy is Never.
            self._launches.pop(uid, None)
            if status.state in ("TASK_FINISHED", "TASK_RUNNING"):
                self._pending[uid] = None
                self._revive_wanted = True
                self._want_pass()
                await self._maybe_revive()
            else:
                self._phase_attempt.pop(uid, None)
            return
        if uid in self._deleting:
            await self._progress_deletion(uid)

    def _agent_ref(self, agent_id: ids.AgentId) -> AgentRef:
        node = self._agents.node_for_agent(agent_id) or ""
        info = self._agents.agents.get(agent_id)
        address = str(getattr(info, "address", "") or "")
        return AgentRef(
            agent_id=agent_id,
            hostname=str(getattr(info, "hostname", node)),
            node_name=node,
            host_ip=address.rsplit(":", 1)[0] if address else "",
        )

    def _agent_of_node(self, node_name: str) -> ids.AgentId | None:
        for agent_id in self._agents.agents:
            if self._agents.node_for_agent(agent_id) == node_name:
                return agent_id
        return None

    def _end_attempt_ended_while_away(self, uid: str, pod: RawPod) -> None:
        """A pod bound to our node whose app containers ran (its status says so) but which
        has no live task after reconciliation: its attempt ended while the bridge was away.

        Launching it again unconditionally would run a ``restartPolicy: Never`` pod twice.
        Instead each app container of that attempt gets its final status — the one the
        master still keeps for a completed task, else the terminated state already written,
        else ``TASK_GONE`` (the task vanished: the master no longer knows it) — folded in by
        the status writer like any update, so restartPolicy decides: Never → the pod fails
        (``ContainerStatusUnknown``, exit 137, with a Failed event), OnFailure/Always → the
        writer asks for a relaunch, and restartCount/lastState carry over.

        A pod whose app containers never started (a crash between bind and ACCEPT, or bound
        by another scheduler, or still in its init phase) is not touched: it is launched.
        Nor is a pod whose Node's agent is not registered and active at the master.
        """
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        node = spec.get("nodeName")
        if (
            not node or uid in self._launches or uid in self._deleting
            or meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed")
            or not self._is_our_node(str(node))
        ):
            return
        # Only an agent the master reports registered and active answers for its tasks: after
        # a master failover an agent may not have re-registered yet, and its tasks are then
        # absent from GET_TASKS without having vanished (they are left alone until it is back).
        node_agent = self._agent_of_node(str(node))
        info = self._agents.agents.get(node_agent) if node_agent is not None else None
        if info is None or not getattr(info, "active", True):
            return
        found = _previous_attempt(uid, pod)
        if found is None:
            return
        attempt, written = found
        if any(r.pod_uid == uid and r.attempt >= attempt and not r.terminal
               for r in self._tasks.values()):
            return  # a live task of it exists after all
        names = [str(c.get("name")) for c in spec.get("containers") or []]
        agent_id: ids.AgentId | None = None
        for name in names:
            rec = self._tasks.get(ids.TaskId(launch.task_id_for(uid=uid, attempt=attempt,
                                                                container=name)))
            if rec is not None and rec.agent_id:
                agent_id = rec.agent_id
        agent_id = agent_id or self._agent_of_node(str(node))
        task_ids: list[ids.TaskId] = []
        now = time.time()
        for name in names:
            tid = ids.TaskId(launch.task_id_for(uid=uid, attempt=attempt, container=name))
            task_ids.append(tid)
            final = self._final_status.get(tid)
            if final is None:
                final = _status_from_written(tid, written.get(name), agent_id=agent_id, now=now)
            else:
                final = dataclasses.replace(final, uuid=None)  # nothing to acknowledge
            log.info("pod %s/%s: task %s ended while the bridge was away (%s)",
                     meta.get("namespace"), meta.get("name"), tid, final.state)
            rec = self._tasks.get(tid)
            if rec is None:
                rec = self._tasks[tid] = TaskRecord(
                    task_id=tid, pod_uid=uid, attempt=attempt, container=name,
                    agent_id=agent_id,
                )
            rec.state = final.state
            self._sink.task_status(
                pod=pod, status=final, container=name, attempt=attempt,
                agent=self._agent_ref(agent_id) if agent_id else None, ack=None,
            )
        self._pending.pop(uid, None)
        self._launches[uid] = PodLaunch(
            uid=uid, attempt=attempt, agent_id=agent_id or ids.AgentId(""),
            node_name=str(node), task_ids=tuple(task_ids),
        )

    # -- passes --------------------------------------------------------------------------

    def _want_pass(self, *, immediate: bool = False, delay: float | None = None) -> None:
        if delay is None:
            delay = 0.0 if immediate else self._settings.scheduler.cycle_seconds
        due = self._clock() + delay
        if self._pass_due is None or due < self._pass_due:
            self._pass_due = due

    async def _tick(self) -> None:
        now = self._clock()
        try:
            if self._reconcile_due is not None and now >= self._reconcile_due:
                await self._reconcile()
            await self._due_relaunches(now)
            expired = self._book.expired(now=now)
            if expired and self._subscribed:
                self._book.take(expired)
                await self._driver.decline(expired, refuse_seconds=1.0)
            if self._pass_due is not None and now >= self._pass_due:
                self._pass_due = None
                await self._pass()
        except (kube_errors.KubeError, mesos_errors.MesosError) as e:
            log.warning("placement pass failed (will retry): %s", e)
            self._want_pass()
        except Exception:  # a bug in one pass: log it loudly, retry later, keep serving
            log.exception("placement pass failed (bug); retrying in a second")
            self._want_pass(delay=1.0)

    async def _due_relaunches(self, now: float) -> None:
        for uid, due in list(self._relaunch_at.items()):
            if due > now:
                continue
            del self._relaunch_at[uid]
            pod = self._pods.get(uid)
            if pod is None or uid in self._deleting:
                continue
            live = [t for t in self._tasks.values() if t.pod_uid == uid and not t.terminal
                    and not _is_sidecar(pod, t.container)]
            if live:
                continue  # the attempt is still running (a stale request)
            self._launches.pop(uid, None)
            self._pending[uid] = None
            self._revive_wanted = True
            self._want_pass(immediate=True)
            await self._maybe_revive()

    async def _maybe_revive(self) -> None:
        """REVIVE (at most every ``revive_min_interval_seconds``) when suppressed or when new
        work appeared. Not only when suppressed: unused offers are declined with a refuse
        filter of ``refuse_seconds``, so while an unschedulable pod keeps the framework
        unsuppressed, a new pod would otherwise wait for those filters to expire (REVIVE
        clears them, in Mesos and in the embedded kernel alike)."""
        if not self._subscribed or not (self._suppressed or self._revive_wanted):
            return
        now = self._clock()
        interval = self._settings.mesos.revive_min_interval_seconds
        if now - self._last_revive < interval:
            self._want_pass(delay=self._last_revive + interval - now)  # after the rate limit
            return
        self._last_revive = now
        self._revive_wanted = False
        await self._driver.revive(list(self._settings.mesos.roles))
        self._suppressed = False

    async def _pass(self) -> None:
        if not self._subscribed or not self._reconciled:
            return
        for uid in list(self._deleting):
            await self._progress_deletion(uid)
        pending = self._pending_requests()
        if not pending:
            held = self._book.take_all()
            if held:
                await self._driver.decline(
                    [o.offer_id for o in held], refuse_seconds=self._settings.mesos.refuse_seconds
                )
            self._revive_wanted = False
            if not self._suppressed:
                await self._driver.suppress(list(self._settings.mesos.roles))
                self._suppressed = True
            return
        await self._maybe_revive()
        if not len(self._book):
            return
        view = self._view()
        result = stack.place(pending=pending, view=view, settings=self._stack_settings)
        # Some pods did not fit, but not every known agent has an offer in the book yet (the
        # allocator may still be sending them): launch what fits, keep the other offers for a
        # short, bounded gathering window, then explain with every agent's offer in view.
        offered_agents = {o.agent_id for o in self._book}
        missing = [a for a, info in self._agents.agents.items()
                   if a not in offered_agents and getattr(info, "active", True)]
        oldest = min((o.received for o in self._book), default=self._clock())
        window = min(GATHER_SECONDS, self._settings.mesos.offer_hold_seconds)
        gathering = bool(result.unplaced and missing) and self._clock() - oldest < window
        await self._commit(result, final=not gathering)
        if gathering:
            self._want_pass(delay=max(0.05, oldest + window - self._clock()))

    def _pending_requests(self) -> list[model_pods.PodRequest]:
        out = []
        for uid in list(self._pending):
            pod = self._pods.get(uid)
            if pod is None:
                self._pending.pop(uid, None)
                continue
            try:
                out.append(self._request(uid, pod))
            except model_pods.PodSpecError as e:
                self._pending.pop(uid, None)
                self._sink.launch_failed(pod=pod, reason="InvalidPodSpec", message=str(e))
        return out

    def _view(self) -> cluster.ClusterView:
        by_agent: dict[ids.AgentId, list[offers.HeldOffer]] = {}
        for offer in self._book:
            by_agent.setdefault(offer.agent_id, []).append(offer)
        taints = _taints(self._settings.kubelet.node_taint)
        placed = self._placed_pods()
        agents: list[cluster.AgentView] = []
        known = dict(self._agents.agents)
        for agent_id in set(known) | set(by_agent):
            held = by_agent.get(agent_id, [])
            info = known.get(agent_id)
            first = held[0] if held else None
            hostname = str(getattr(info, "hostname", "") or (first.hostname if first else ""))
            agents.append(
                cluster.AgentView.build(
                    agent_id=agent_id,
                    hostname=hostname,
                    node_name=self._agents.node_for_agent(agent_id) or _node_name(hostname),
                    attributes=(first.attributes if first else getattr(info, "attributes", ())),
                    region=first.region if first else getattr(info, "region", None),
                    zone=first.zone if first else getattr(info, "zone", None),
                    taints=taints,
                    offers=[
                        cluster.OfferView(
                            id=o.offer_id, agent_id=o.agent_id, resources=o.resources,
                            allocation_role=o.role,
                        )
                        for o in held
                    ],
                    pods=placed.get(agent_id, ()),
                    total=getattr(info, "total", None),
                    max_pods=self._settings.kubelet.max_pods,
                )
            )
        agents.sort(key=lambda a: a.agent_id)
        return cluster.ClusterView(agents=tuple(agents))

    def _placed_pods(self) -> dict[ids.AgentId, list[cluster.PlacedPod]]:
        out: dict[ids.AgentId, list[cluster.PlacedPod]] = {}
        for uid, launched in self._launches.items():
            pod = self._pods.get(uid)
            if pod is None:
                continue
            meta = pod.get("metadata") or {}
            try:
                req = self._request(uid, pod)
            except model_pods.PodSpecError:
                continue
            out.setdefault(launched.agent_id, []).append(
                cluster.PlacedPod(
                    key=req.key,
                    namespace=str(meta.get("namespace") or "default"),
                    labels=req.labels,
                    host_ports=tuple((p.host_port, p.protocol) for p in req.host_ports),
                    anti_affinity=req.anti_affinity,
                )
            )
        return out

    async def _commit(self, result: plan.Plan, *, final: bool = True) -> None:
        used: set[ids.OfferId] = set()
        for agent_id, offer_ids, assignments in result.by_agent():
            await self._commit_agent(agent_id, offer_ids, assignments)
            used.update(offer_ids)
        if not final:
            return
        unused = [o.offer_id for o in self._book.take_all() if o.offer_id not in used]
        if unused:
            await self._driver.decline(unused, refuse_seconds=self._settings.mesos.refuse_seconds)
        # Explanations for what did not fit (only when they say something new). An agent that
        # "had no offer" may simply be filtered or busy: REVIVE (rate-limited) to see every
        # agent, and hold such a partial explanation back for EXPLAIN_GRACE seconds.
        now = self._clock()
        want_revive = False
        for unplaced in result.unplaced:
            uid = str(unplaced.pod_uid)
            pod = self._pods.get(uid)
            message = unplaced.explanation.message
            if pod is None or self._unschedulable.get(uid) == message:
                continue
            partial = any(
                r.reason == feasible.REASON_NO_OFFER for r in unplaced.explanation.reasons
            )
            first = self._pending_since.setdefault(uid, now)
            if partial and (uid in self._unschedulable or now - first < EXPLAIN_GRACE):
                want_revive = True
                continue
            if now - self._explained_at.get(uid, -1e9) < EXPLAIN_MIN_INTERVAL:
                continue  # a changed number in the message is not worth a write per pass
            self._explained_at[uid] = now
            self._unschedulable[uid] = message
            self._sink.unschedulable(pod=pod, message=message)
        if want_revive and now - self._last_revive >= EXPLAIN_GRACE / 2:
            self._last_revive = now
            self._revive_wanted = False
            await self._driver.revive(list(self._settings.mesos.roles))
            self._suppressed = False
            self._want_pass(delay=EXPLAIN_GRACE / 2)

    async def _commit_agent(
        self,
        agent_id: ids.AgentId,
        offer_ids: Sequence[ids.OfferId],
        assignments: Iterable[plan.Assignment],
    ) -> None:
        held = self._book.take(offer_ids)
        if not held:
            return  # rescinded meanwhile
        role = held[0].role
        remaining = Resources()
        for offer in held:
            remaining = remaining + offer.resources
        node_name = self._agents.node_for_agent(agent_id) or _node_name(held[0].hostname)
        fid = self._driver.framework_id or ""
        operations: list[dict[str, Any]] = []
        bound: list[tuple[str, launch.LaunchGroup]] = []
        candidates: list[tuple[str, RawPod, launch.LaunchGroup]] = []
        for assignment in assignments:
            uid = str(assignment.pod_uid)
            pod = self._pods.get(uid)
            if pod is None or uid in self._deleting:
                continue
            try:
                request = self._request(uid, pod)
                env = await self._resolve_env(pod, node_name=node_name, host_ip=held[0].hostname)
                phase = self._init_phase(uid, request)
                if phase is not None and uid in self._phase_attempt:
                    attempt = self._phase_attempt[uid]
                else:
                    attempt = self._next_attempt(uid)
                if phase is not None:
                    self._phase_attempt[uid] = attempt
                else:
                    self._phase_attempt.pop(uid, None)
                group = launch.build_launch_group(
                    pod=pod,
                    request=request,
                    framework_id=fid,
                    agent_id=agent_id,
                    role=role,
                    offered=remaining,
                    executor_scalars={
                        "cpus": self._settings.scheduler.executor_cpus,
                        "mem": self._settings.scheduler.executor_mem,
                        "disk": self._settings.scheduler.executor_disk,
                    },
                    env=env,
                    image_mode=self._settings.scheduler.image_mode,
                    attempt=attempt,
                    init_phase=phase,
                )
            except launch.LaunchError as e:
                if e.reason == "OutOfResources":
                    continue  # the next pass retries with fresh offers
                self._pending.pop(uid, None)
                self._sink.launch_failed(pod=pod, reason=e.reason, message=str(e))
                continue
            except model_pods.PodSpecError as e:
                self._pending.pop(uid, None)
                self._sink.launch_failed(pod=pod, reason="InvalidPodSpec", message=str(e))
                continue
            spec = pod.get("spec") or {}
            if spec.get("nodeName") and spec.get("nodeName") != node_name:
                continue
            remaining = remaining - group.used
            candidates.append((uid, pod, group))
        # Bind first (see the module docstring), all of this agent's pods concurrently; a pod
        # already bound to this node (restart, or bound by another scheduler) keeps its binding.
        results = await asyncio.gather(
            *(self._bind(pod, uid=uid, node_name=node_name) for uid, pod, _ in candidates),
            return_exceptions=True,
        )
        for (uid, _pod, group), result in zip(candidates, results, strict=True):
            if isinstance(result, kube_errors.Conflict | kube_errors.NotFound):
                log.info("not launching %s: binding failed: %s", uid, result)
                self._pending.pop(uid, None)  # the next watch event says where it went
                continue
            if isinstance(result, kube_errors.KubeError):
                log.warning("binding %s failed (retrying later): %s", uid, result)
                continue
            if isinstance(result, BaseException):
                raise result
            operations.append(group.operation)
            bound.append((uid, group))
        if not operations:
            await self._driver.decline(
                [o.offer_id for o in held], refuse_seconds=1.0
            )
            return
        for uid, group in bound:
            self._pending.pop(uid, None)
            self._unschedulable.pop(uid, None)
            self._pending_since.pop(uid, None)
            self._explained_at.pop(uid, None)
            first = launch.parse_task_id(group.task_ids[0])
            self._launches[uid] = PodLaunch(
                uid=uid, attempt=first[1] if first else 0, agent_id=agent_id,
                node_name=node_name, task_ids=tuple(ids.TaskId(t) for t in group.task_ids),
            )
            for tid in group.task_ids:
                parsed = launch.parse_task_id(tid)
                assert parsed is not None
                self._tasks[ids.TaskId(tid)] = TaskRecord(
                    task_id=ids.TaskId(tid), pod_uid=uid, attempt=parsed[1],
                    container=parsed[2], agent_id=agent_id, executor_id=group.executor_id,
                )
        await self._driver.accept(
            [o.offer_id for o in held], operations, refuse_seconds=1.0
        )
        log.info("launched %d pod(s) on %s", len(operations), node_name)

    async def _bind(self, pod: RawPod, *, uid: str, node_name: str) -> None:
        spec = pod.get("spec") or {}
        if spec.get("nodeName"):
            return
        meta = pod.get("metadata") or {}
        await self._kube.bind_pod(
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name")),
            uid=uid,
            node=node_name,
        )
        self._sink.scheduled(pod=pod, node_name=node_name)

    def _init_phase(self, uid: str, request: model_pods.PodRequest) -> int | None:
        """Index of the first init container that has not finished yet (None: app group)."""
        if not request.init_containers:
            return None
        finished = {
            r.container for r in self._tasks.values()
            if r.pod_uid == uid and r.state == "TASK_FINISHED"
        }
        started_sidecars = {
            r.container for r in self._tasks.values()
            if r.pod_uid == uid and r.state in ("TASK_RUNNING", "TASK_KILLING")
        }
        for index, init in enumerate(request.init_containers):
            done = init.name in started_sidecars if init.sidecar else init.name in finished
            if not done:
                return index
        return None

    def _next_attempt(self, uid: str) -> int:
        attempts = [r.attempt for r in self._tasks.values() if r.pod_uid == uid]
        return max(attempts) + 1 if attempts else 0

    async def _resolve_env(
        self, pod: RawPod, *, node_name: str, host_ip: str
    ) -> dict[str, list[tuple[str, str]]]:
        async def config_map(ns: str, name: str) -> Mapping[str, Any] | None:
            try:
                return await self._kube.get_config_map(ns, name)
            except kube_errors.NotFound:
                return None

        async def secret(ns: str, name: str) -> Mapping[str, Any] | None:
            try:
                return await self._kube.get_secret(ns, name)
            except kube_errors.NotFound:
                return None

        out: dict[str, list[tuple[str, str]]] = {}
        spec = pod.get("spec") or {}
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            out[str(container.get("name"))] = await launch.resolve_env(
                pod=pod, container=container, node_name=node_name, host_ip=host_ip,
                config_map=config_map, secret=secret,
            )
        return out


SHARED_STRING_MAX = 40  # strings up to this long are interned by ``compact_pod``


def compact_pod(raw: RawPod) -> RawPod:
    """The pod as it is kept for as long as it lives here: without ``managedFields`` (the
    API server's field ownership; nothing here reads it) and with its keys and short strings
    shared between pods (``sys.intern``).

    Why: every watch event is a freshly decoded object, so each kept pod would carry its own
    copy of every key and of every common value ("apiVersion", "Always", "busybox", condition
    types and reasons, timestamps of the same second). Sharing them takes a one-container
    pod from ~12 KiB of Python objects to ~5 KiB (the bridge keeps one per pod on its nodes),
    for ~30 µs per event."""
    meta = raw.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        raw = {**raw, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    compacted: RawPod = _compact_json(raw)
    return compacted


def _compact_json(value: Any, _intern: Callable[[str], str] = sys.intern) -> Any:
    if isinstance(value, dict):
        return {_intern(k) if isinstance(k, str) else k: _compact_json(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_compact_json(v) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_STRING_MAX:
        return _intern(value)
    return value


def _held(offer: mesos_types.Offer, *, now: float) -> offers.HeldOffer:
    return offers.HeldOffer(
        offer_id=offer.id,
        agent_id=offer.agent_id,
        hostname=offer.hostname,
        role=offer.allocation_role or "*",
        resources=offer.resources,
        attributes=offer.attributes,
        region=offer.region,
        zone=offer.zone,
        received=now,
    )


VANISHED_MESSAGE = (
    "The container could not be located: its Mesos task {task} vanished while the bridge was "
    "away (the master no longer knows it)"
)


def _last_status(raw_task: Mapping[str, Any]) -> mesos_types.TaskStatus | None:
    statuses = raw_task.get("statuses") or []
    if not statuses:
        return None
    try:
        return mesos_types.TaskStatus.parse(statuses[-1])
    except mesos_errors.MesosError as e:
        log.warning("ignoring a malformed status of task %s: %s",
                    (raw_task.get("task_id") or {}).get("value"), e)
        return None


def _previous_attempt(
    uid: str, pod: RawPod
) -> tuple[int, dict[str, Mapping[str, Any]]] | None:
    """The latest attempt whose app containers ran, per the pod's written status, with each
    container's written status; None when no app container of ours ever started."""
    spec = pod.get("spec") or {}
    names = {str(c.get("name")) for c in spec.get("containers") or []}
    best: int | None = None
    by_attempt: dict[int, dict[str, Mapping[str, Any]]] = {}
    started: set[int] = set()
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if not isinstance(cs, dict):
            continue
        cid = str(cs.get("containerID") or "")
        if not cid.startswith("mesos://"):
            continue
        parsed = launch.parse_task_id(cid[len("mesos://"):])
        if parsed is None or parsed[0] != uid or parsed[2] not in names:
            continue
        attempt = parsed[1]
        by_attempt.setdefault(attempt, {})[parsed[2]] = cs
        state = cs.get("state") or {}
        if isinstance(state, dict) and ("running" in state or "terminated" in state):
            started.add(attempt)
    if started:
        best = max(started)
    if best is None or best < max(by_attempt, default=-1):
        return None  # a later attempt was launched and has not started yet: launch it
    return best, by_attempt[best]


def _status_from_written(
    task_id: ids.TaskId,
    written: Mapping[str, Any] | None,
    *,
    agent_id: ids.AgentId | None,
    now: float,
) -> mesos_types.TaskStatus:
    """The final status of a task the master no longer knows: what the pod's status already
    says if the container had terminated, else the task vanished (``TASK_GONE``)."""
    term = ((written or {}).get("state") or {}).get("terminated")
    if isinstance(term, dict):
        code = int(term.get("exitCode") or 0)
        return mesos_types.TaskStatus(
            task_id=task_id,
            state="TASK_FINISHED" if code == 0 else "TASK_FAILED",
            message=str(term.get("message") or f"Command exited with status {code}"),
            source="SOURCE_EXECUTOR",
            agent_id=agent_id,
            timestamp=_epoch(term.get("finishedAt")) or now,
        )
    return mesos_types.TaskStatus(
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


def _is_sidecar(pod: RawPod, container: str) -> bool:
    """An init container with ``restartPolicy: Always`` (Kubernetes ≥ 1.29 sidecars)."""
    return any(
        isinstance(c, dict) and c.get("name") == container and c.get("restartPolicy") == "Always"
        for c in (pod.get("spec") or {}).get("initContainers") or ()
    )


def _taints(spec: str) -> tuple[cluster.Taint, ...]:
    if not spec:
        return ()
    keyval, _, effect = spec.rpartition(":")
    key, _, value = keyval.partition("=")
    return (cluster.Taint(key=key, value=value, effect=effect),)


def _implicit_tolerations(
    settings: bridge_settings.BridgeSettings,
) -> tuple[model_pods.Toleration, ...]:
    """Pods we place ourselves tolerate our own node taint (when configured so)."""
    if not settings.scheduler.tolerate_own_taint:
        return ()
    return tuple(
        model_pods.Toleration(key=t.key, operator="Equal", value=t.value, effect=t.effect)
        for t in _taints(settings.kubelet.node_taint)
    )


def _node_name(hostname: str) -> str:
    return cluster.node_name_for(hostname)
