"""The offer loop's state and the helpers every part of it shares.

Why a base class of its own: the loop is one task owning its execution bookkeeping (held
offers, the pending queue, tasks, timers, explanations); the launch side of each pod (current
attempt, next relaunch, init phase attempt, deletion) is part of the pod's one record in the
store it shares with the status writer (``lifecycle.store.PodStore``), where it records what
it executed; its parts — pod events (``loop_pods``),
reconciliation (``loop_reconcile``), Mesos updates (``loop_updates``), placement passes
(``loop_passes``) and the commit (``loop``) — each live in a module of their own and build on
this class, one after the other, so each reads the state without locks or indirection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from k8sbridge import settings as bridge_settings
from k8sbridge.kube import client as kube_client
from k8sbridge.lifecycle import store as lifecycle_store
from k8sbridge.lifecycle import taskids
from k8sbridge.mesos import types as mesos_types
from k8sbridge.model import cluster, ids, preemption
from k8sbridge.model import pods as model_pods
from k8sbridge.scheduler import kills, nodebook, offers, plan, serviceenv, stack
from k8sbridge.scheduler.ports import (
    AgentDirectory,
    AgentRef,
    Driver,
    PodSink,
    TaskRecord,
)

__all__ = ["LoopState"]

log = logging.getLogger(__name__)


EXPLAIN_GRACE = 3.0  # seconds an explanation missing some agents' offers is held back


EXPLAIN_MIN_INTERVAL = 10.0  # an explanation is rewritten at most this often per pod


GATHER_SECONDS = 1.5  # how long offers are held waiting for the other agents' offers


RECONCILE_TIMEOUT_SECONDS = 30.0  # one GET_TASKS may take this long, then it failed


RECONCILE_RETRY_FIRST = 0.5  # a failed reconciliation is retried after this, doubling ...


RECONCILE_RETRY_MAX = 30.0  # ... up to this
UNLISTED_ASK_FIRST = 1.0  # a launch the master did not list is asked about again after
UNLISTED_ASK_MAX = 30.0  # ... this, doubling up to this, until a status for it arrives


UNRECONCILED_REFUSE_SECONDS = 2.0  # offers declined while unreconciled come back this soon


RawPod = dict[str, Any]


def _is_sidecar(pod: RawPod, container: str) -> bool:
    """An init container with ``restartPolicy: Always`` (Kubernetes ≥ 1.29 sidecars)."""
    spec = pod.get("spec")
    inits = spec.get("initContainers") if isinstance(spec, dict) else None
    return isinstance(inits, list) and any(
        isinstance(c, dict) and c.get("name") == container and c.get("restartPolicy") == "Always"
        for c in inits
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


def _incarnation(rec: TaskRecord) -> tuple[int, int]:
    """Orders the launches of one container: attempt, then generation (old ids first)."""
    name = taskids.parse(str(rec.task_id))
    generation = name.generation if name is not None and name.generation is not None else -1
    return rec.attempt, generation


def _node_name(hostname: str) -> str:
    return cluster.node_name_for(hostname)


class LoopState:
    """The loop's tables (one owner: the loop task) and shared helpers."""

    def __init__(
        self,
        *,
        settings: bridge_settings.BridgeSettings,
        kube: kube_client.KubeClient,
        driver: Driver,
        sink: PodSink,
        agents: AgentDirectory,
        list_tasks: Callable[[], Awaitable[list[dict[str, Any]]]],
        generation: int,
        read_master_version: Callable[[], Awaitable[str]] | None = None,  # None for tests
        # GET_EXECUTORS: a restarted bridge joins its pods' sandboxes (``podsandbox``)
        list_executors: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
        lives: lifecycle_store.PodStore | None = None,  # the pods' records (app.py shares it)
        # the first pod list (None: a LIST; a replica that led warm: its watch's cache)
        list_pods: Callable[[], Awaitable[list[RawPod]]] | None = None,
        _clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._kube = kube
        self._list_pods_hook = list_pods
        self._driver = driver
        self._sink = sink
        self._agents = agents
        self._list_tasks = list_tasks
        self._list_executors = list_executors
        # this run's start counter, persisted before the loop exists (``lifecycle.taskids``):
        # part of every task and executor id this run launches
        self._generation = generation
        self._read_master_version = read_master_version
        #: the connected master's (major, minor) from the operator API's GET_VERSION, read at
        #: each subscription; None while unknown, and then no limits are sent (``limits``)
        self.master_version: tuple[int, int] | None = None
        self._clock = _clock
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._mesos_queued = 0  # Mesos events in the inbox (see ``_forward_progress``)
        self._book = offers.OfferBook(hold_seconds=settings.mesos.offer_hold_seconds)
        # each placement pass: (seconds, None when no offer was held; pods pending; its plan)
        self.on_pass: Callable[[float | None, int, plan.Plan | None], None] | None = None
        # the Nodes' labels, taints and cordon as users left them (the Node watch)
        self._nodes = nodebook.NodeBook()
        # the Services (the Service watch): their variables for the pods launched (serviceenv)
        self._services = serviceenv.ServiceBook()
        # namespace labels for namespaceSelectors: (when read, name -> labels)
        self._namespaces: tuple[float, dict[str, dict[str, str]]] | None = None
        self._pods: dict[str, RawPod] = {}  # uid -> latest raw pod we care about
        self._posting: set[asyncio.Task[None]] = set()  # launch notices being posted
        self._pending: dict[str, None] = {}  # uids, insertion-ordered
        self._tasks: dict[ids.TaskId, TaskRecord] = {}
        # each pod's one record (``lifecycle.store``), shared with the status writer: the
        # loop executes and records the launch side (current attempt, next relaunch, init
        # phase attempt, deletion) there
        self._lives = lifecycle_store.PodStore() if lives is None else lives
        self._unschedulable: dict[str, str] = {}  # uid -> last message written
        self._pending_since: dict[str, float] = {}  # uid -> first unplaced pass
        self._explained_at: dict[str, float] = {}  # uid -> when its explanation was written
        self._parsed: dict[str, tuple[str, model_pods.PodRequest]] = {}  # uid -> (rv, request)
        # preemption (``loop_preempt``): victims deleted, preemptor uid -> nominated node,
        # and the PodDisruptionBudgets last read (when, budgets)
        self._preempted: set[str] = set()
        # uid -> (node, settling until, pod key)
        self._nominated: dict[str, tuple[str, float, str]] = {}
        self._budget_cache: tuple[float, tuple[preemption.DisruptionBudget, ...]] | None = None
        # seconds from a TASK_RUNNING's timestamp (set where the task started) to its arrival
        # here: the Mesos side's share of status propagation (benchmarks read it)
        self._running_delays: collections.deque[float] = collections.deque(maxlen=20_000)
        # the last status the master keeps for each of our terminal tasks (GET_TASKS)
        self._final_status: dict[ids.TaskId, mesos_types.TaskStatus] = {}
        self._subscribed = False
        self._framework_seen: str | None = None  # the id of the last subscription
        self._reconciled = False
        self._reconcile_due: float | None = None  # a failed reconciliation is retried then
        self._reconcile_failures = 0
        self._reconcile_error = ""  # the last failure's cause (logged once per cause)
        self._pods_synced = False
        # the uid of every pod that exists (ours or not): a task of ours whose uid is not
        # here is owned by no pod (after the first list; see ``_kill_unowned``)
        self._uids_seen: set[str] = set()
        # every kill sent, repeated with back-off until Mesos says terminal (``kills``)
        self._kills = kills.KillBook()
        # Tasks we launched that the master did not list after a (re)subscription (its
        # ACCEPT died with a master, say): asked about explicitly, again with back-off, until
        # any status for them arrives (Mesos drops the question while their agent has not
        # re-registered); task id -> (agent, when to ask next, the wait after that)
        self._unconfirmed: dict[ids.TaskId, tuple[ids.AgentId | None, float, float]] = {}
        self._active_agents: set[ids.AgentId] = set()  # as seen at the last tick
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

    def _superseded(self, rec: TaskRecord) -> bool:
        """A later incarnation of ``rec``'s container is live (one must go: the older)."""
        mine = _incarnation(rec)
        return any(
            r.pod_uid == rec.pod_uid and r.container == rec.container and not r.terminal
            and r.task_id != rec.task_id and _incarnation(r) > mine
            for r in self._tasks.values()
        )

    async def _kill(self, rec: TaskRecord, *, grace: float | None, why: str) -> None:
        """KILL ``rec``'s task and keep killing it (with back-off) until it is terminal."""
        rec.killing = True
        entry = self._kills.killed(rec.task_id, agent_id=rec.agent_id, grace=grace, why=why,
                                   now=self._clock())
        if entry.kills == 1:
            log.info("killing task %s (%s)", rec.task_id, why)
        elif entry.kills & (entry.kills - 1) == 0 and entry.kills >= 4:  # bounded: 4, 8, 16 ...
            log.info("still killing task %s (%s): kill #%d, last state %s", rec.task_id,
                     entry.why, entry.kills, rec.state)
        else:
            log.debug("killing task %s again (kill #%d, last state %s)", rec.task_id,
                      entry.kills, rec.state)
        await self._driver.kill(rec.task_id, agent_id=rec.agent_id, grace_period_seconds=grace)

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
        return any(launch_.node_name == node for _, launch_ in self._lives.launches())

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

    def _want_pass(self, *, immediate: bool = False, delay: float | None = None) -> None:
        if delay is None:
            delay = 0.0 if immediate else self._settings.scheduler.cycle_seconds
        due = self._clock() + delay
        if self._pass_due is None or due < self._pass_due:
            self._pass_due = due

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

    async def _commit_agent(
        self,
        agent_id: ids.AgentId,
        offer_ids: Sequence[ids.OfferId],
        assignments: Iterable[plan.Assignment],
    ) -> None:
        """Bind and launch ``assignments`` on ``agent_id`` (``loop.Scheduler`` does)."""
        raise NotImplementedError
