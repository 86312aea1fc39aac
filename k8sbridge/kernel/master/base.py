"""The master's state and its smallest shared pieces (ids, event fan-out, agent connections).

Why: Mesos' master is one libprocess actor; here the master is owned by one asyncio event loop
and every state change is a synchronous method (no ``await`` in the middle of a change), so
HTTP handlers, link messages and timers interleave only between whole changes and no locks are
needed. Output leaves through queues (``EventStream`` for schedulers and operator subscribers,
``AgentConn`` for agents) drained by their own small tasks, so a slow peer never blocks the
master. The master is built as a stack of layers, one responsibility each: this base, then
frameworks, offers, tasks, agents, agents marked gone, operator views, and ``master.Master``
(lifecycle) on top.
A layer calls upward only through the hooks declared here under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from k8sbridge.kernel import allocator as alloc
from k8sbridge.kernel import link
from k8sbridge.kernel import resources as res
from k8sbridge.kernel.master import acls, authn, calls, registry, state, streams
from k8sbridge.kernel.master.config import MasterConfig

log = logging.getLogger(__name__)

RawJson = dict[str, Any]
VERSION = "1.12.0"
idv = state.idv
id_value = calls.id_value


class AgentConn:
    """Outbound queue to one agent's link stream, drained by its own task (order preserved)."""

    def __init__(self, stream: link.AgentStream) -> None:
        self.stream = stream
        self._queue: asyncio.Queue[RawJson | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._pump(), name=f"agent-out {stream.peer}")

    def send(self, message: RawJson) -> None:
        self._queue.put_nowait(message)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def _pump(self) -> None:
        # Whatever queued up is handed to the link at once (it leaves as one BATCH frame); the
        # pump waits only for the last of them, so order and back-pressure are kept.
        while True:
            burst = [await self._queue.get()]
            while not self._queue.empty():
                burst.append(self._queue.get_nowait())
            closing = None in burst
            messages = burst[:burst.index(None)] if closing else burst
            try:
                for message in messages[:-1]:
                    if message is not None and not self.stream.post(message):
                        raise link.LinkError(f"link to {self.stream.peer} is gone")
                if messages and messages[-1] is not None:
                    await self.stream.send(messages[-1])
            except link.LinkError as e:
                log.info("link to %s is gone: %s", self.stream.peer, e)
                return
            if closing:
                await self.stream.close()
                return


def _status(
    *,
    task_id: str,
    state_: str,
    message: str,
    reason: str | None,
    agent_id: str | None = None,
    executor_id: str | None = None,
    unreachable_time: float | None = None,
) -> RawJson:
    """A master-generated TaskStatus (SOURCE_MASTER, no uuid: never to be acknowledged)."""
    status: RawJson = {
        "task_id": idv(task_id),
        "state": state_,
        "message": message,
        "source": "SOURCE_MASTER",
        "timestamp": time.time(),
    }
    if reason is not None:
        status["reason"] = reason
    if agent_id is not None:
        status["agent_id"] = idv(agent_id)
    if executor_id is not None:
        status["executor_id"] = idv(executor_id)
    if unreachable_time is not None:
        status["unreachable_time"] = state.nanos(unreachable_time)
    return status


class _KnownIds:
    """``tid in known`` over a framework's live and unreachable tasks, without copying."""

    def __init__(self, fw: state.Framework) -> None:
        self._fw = fw

    def __contains__(self, tid: object) -> bool:
        return tid in self._fw.tasks or tid in self._fw.unreachable_tasks

    def __len__(self) -> int:
        return len(self._fw.tasks) + len(self._fw.unreachable_tasks)

    def __iter__(self) -> Iterator[str]:
        yield from self._fw.tasks
        yield from self._fw.unreachable_tasks


_STORED_INFO_KEYS = ("name", "task_id", "agent_id", "labels", "discovery", "container",
                     "health_check", "check", "kill_policy", "limits", "user")


def _transition(task: state.Task, status: RawJson) -> None:
    """Record a master-generated status on the task (it carries no uuid to acknowledge)."""
    task.state = str(status["state"])
    task.statuses.append(status)
    task.status_update_state = task.state
    task.status_update_uuid = None


def _error_event(message: str) -> RawJson:
    return {"type": "ERROR", "error": {"message": message}}


def apply_reservations(static: res.Resources, dynamic: res.Resources) -> res.Resources:
    """The agent's total after re-applying the dynamic reservations kept in the registry."""
    total = static
    for r in dynamic:
        one = res.Resources.of([r])
        source = one.pop_reservation()
        if total.contains(source):
            total = total - source + one
    return total



class MasterBase:
    def __init__(self, *, config: MasterConfig) -> None:
        self.config = config
        # As ``Master::initialize``: refuse to start on bad auth flags or files (MasterError).
        self.authentication = authn.http_authentication(
            credentials=config.credentials, readonly=config.authenticate_http_readonly,
            readwrite=config.authenticate_http_readwrite,
            frameworks=config.authenticate_http_frameworks,
            http_framework_authenticators=config.http_framework_authenticators,
            http_authenticators=config.http_authenticators,
            authenticate_frameworks=config.authenticate_frameworks,
        )
        # No --acls: no authorizer, everything is allowed (Mesos skips authorization).
        self.authorizer: acls.Authorizer | None = (
            acls.parse_acls(config.acls) if config.acls is not None else None)
        self.master_id = str(uuid.uuid4())
        self.hostname = config.hostname or config.host
        self.start_time = time.time()
        self.port = config.port
        self.link_port = config.link_port
        # LIBPROCESS_SSL_SUPPORT_DOWNGRADE: the link's plain port, for agents without TLS
        self.plain_link_port: int | None = None
        self.frameworks: dict[str, state.Framework] = {}
        self.completed_frameworks: collections.deque[state.Framework] = collections.deque(
            maxlen=config.max_completed_frameworks
        )
        self.completed_ids: set[str] = set()
        self.agents: dict[str, state.Agent] = {}
        # ``slaves.gone``: agents the operator marked gone (MARK_AGENT_GONE), with when; kept in
        # the registry so that they are refused for good.
        self.gone_agents: dict[str, float] = {}
        self.offers: dict[str, state.Offer] = {}
        self.subscribers: set[streams.EventStream] = set()
        self.allocator = alloc.Allocator(allocation_interval=config.allocation_interval)
        self.registry = registry.Registry(work_dir=config.work_dir)
        self._in_allocator: set[str] = set()
        self._next_framework = 0
        self._next_agent = 0
        self._next_offer = 0
        self._recovered_at = time.monotonic()
        self._allocate_soon: asyncio.Event | None = None
        self._link: link.LinkServer | None = None
        self.metrics: collections.Counter[str] = collections.Counter()

    # ------------------------------------------------------------------------------------------
    # Ids and small helpers

    def _completed_deque(self) -> collections.deque[state.Task]:
        return collections.deque(maxlen=self.config.max_completed_tasks_per_framework)

    def _new_framework_id(self) -> str:
        fid = f"{self.master_id}-{self._next_framework:04d}"
        self._next_framework += 1
        return fid

    def _new_agent_id(self) -> str:
        aid = f"{self.master_id}-S{self._next_agent}"
        self._next_agent += 1
        return aid

    def _new_offer_id(self) -> str:
        oid = f"{self.master_id}-O{self._next_offer}"
        self._next_offer += 1
        return oid

    def master_info(self) -> RawJson:
        return {
            "id": self.master_id,
            "ip": state.ip_as_uint32(self.config.host),
            "port": self.port,
            "pid": f"master@{self.config.host}:{self.port}",
            "hostname": self.hostname,
            "version": VERSION,
            "address": {"hostname": self.hostname, "ip": self.config.host, "port": self.port},
            "capabilities": [{"type": "AGENT_UPDATE"}, {"type": "AGENT_DRAINING"},
                             {"type": "QUOTA_V2"}],
        }

    def _send(self, fw: state.Framework, event: RawJson) -> None:
        if fw.stream is not None:
            fw.stream.send(event)

    def broadcast(self, event: RawJson) -> None:
        """Operator API SUBSCRIBE event to every subscriber."""
        for sub in list(self.subscribers):
            if sub.closed:
                self.subscribers.discard(sub)
            else:
                sub.send(event)

    def _task_updated(self, fw: state.Framework, task: state.Task) -> None:
        """Operator event for a task the master itself moved on (``createTaskUpdated``)."""
        if self.subscribers and task.statuses:
            self.broadcast({"type": "TASK_UPDATED", "task_updated": {
                "framework_id": idv(fw.framework_id), "status": task.statuses[-1],
                "state": task.state}})

    def _forward_status(self, fw: state.Framework, status: RawJson) -> None:
        self._send(fw, {"type": "UPDATE", "update": {"status": status}})
        self.metrics[f"tasks_total_{str(status.get('state', '')).lower()}"] += 1
        if self.subscribers:
            self.broadcast({
                "type": "TASK_UPDATED",
                "task_updated": {
                    "framework_id": idv(fw.framework_id),
                    "status": status,
                    "state": status.get("state"),
                },
            })

    def _registered_agents(self) -> Iterable[state.Agent]:
        return (
            a for a in self.agents.values() if not a.recovered and a.unreachable_time is None
        )

    def trigger_allocation(self) -> None:
        """Run an allocation round soon (the loop in ``Master.run`` waits for this)."""
        if self._allocate_soon is not None:
            self._allocate_soon.set()

    if TYPE_CHECKING:
        # Hooks a lower layer calls and a higher layer defines (offers, tasks, operations).
        def _drop_offer(self, offer: state.Offer) -> None: ...

        def rescind(self, offer: state.Offer, *, notify: bool = True) -> None: ...

        def _remove_task(self, task: state.Task, *, recover: bool = True) -> None: ...

        def agent_raw(self, agent: state.Agent) -> RawJson: ...

        def framework_raw(self, fw: state.Framework) -> RawJson: ...
