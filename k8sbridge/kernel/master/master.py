"""The master: frameworks, agents, offers and tasks, with Apache Mesos' semantics.

Why one class owning everything: Mesos' master is one libprocess actor; here the ``Master`` is
owned by one asyncio event loop and every state change is a synchronous method (no ``await`` in
the middle of a change), so HTTP handlers, link messages and timers interleave only between
whole changes and no locks are needed. Output leaves through queues (``EventStream`` for
schedulers and operator subscribers, ``AgentConn`` for agents) that are drained by their own
small tasks, so a slow peer never blocks the master.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from aiohttp import web

from k8sbridge.kernel import allocator as alloc
from k8sbridge.kernel import link
from k8sbridge.kernel import resources as res
from k8sbridge.kernel.master import calls, registry, state, streams
from k8sbridge.kernel.master.config import MasterConfig
from k8sbridge.kernel.master.errors import CallError, TaskInvalid
from k8sbridge.kernel.protocol import AgentId, FrameworkId

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


class Master:
    def __init__(self, *, config: MasterConfig) -> None:
        self.config = config
        self.master_id = str(uuid.uuid4())
        self.hostname = config.hostname or config.host
        self.start_time = time.time()
        self.port = config.port
        self.link_port = config.link_port
        self.frameworks: dict[str, state.Framework] = {}
        self.completed_frameworks: collections.deque[state.Framework] = collections.deque(
            maxlen=config.max_completed_frameworks
        )
        self.completed_ids: set[str] = set()
        self.agents: dict[str, state.Agent] = {}
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
    # Lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        from k8sbridge.kernel.master import http  # the HTTP layer depends on the master

        self._allocate_soon = asyncio.Event()
        self._recover()
        self._link = link.LinkServer(
            host=self.config.host, port=self.config.link_port, handler=self._on_link
        )
        self.link_port = await self._link.start()
        runner = web.AppRunner(http.build_app(self), handler_cancellation=True, access_log=None)
        await runner.setup()
        loops: list[asyncio.Task[None]] = []
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port, reuse_address=True)
            await site.start()
            server: Any = site._server
            if server is not None and getattr(server, "sockets", None):
                self.port = int(server.sockets[0].getsockname()[1])
            loops.append(asyncio.create_task(self._allocation_loop(), name="master-allocation"))
            loops.append(asyncio.create_task(self._ping_loop(), name="master-pings"))
            log.info("master %s listening on %s (link %s)", self.master_id, self.url,
                     self.link_port)
            ready.set()
            await stop.wait()
        finally:
            for fw in self.frameworks.values():
                if fw.stream is not None:
                    fw.stream.close()
            for sub in self.subscribers:
                sub.close()
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for agent in self.agents.values():
                if agent.conn is not None:
                    agent.conn.close()
            await self._link.stop(grace=0.5)
            await runner.cleanup()
            self.registry.close()

    def _recover(self) -> None:
        snap = self.registry.load()
        dynamic = {aid: res.Resources.parse(raw) for aid, raw in snap.reservations}
        for fid, info, completed in snap.frameworks:
            if completed:
                self.completed_ids.add(fid)
            else:
                self._recover_framework(info, persist=False)
        for aid, info, unreachable in snap.agents:
            try:
                static = res.Resources.parse(info.get("resources"))
            except res.ResourceError:
                static = res.Resources()
            agent = state.Agent(
                agent_id=aid, info=info, total=apply_reservations(static, dynamic.get(
                    aid, res.Resources())), registered_time=time.time(),
                recovered=unreachable is None, unreachable_time=unreachable, active=False,
            )
            self.agents[aid] = agent
        if snap.weights:
            self.allocator.update_weights(dict(snap.weights))
        for role, limits in snap.quotas:
            self.allocator.update_quota(role, limits)
        self._recovered_at = time.monotonic()

    def trigger_allocation(self) -> None:
        if self._allocate_soon is not None:
            self._allocate_soon.set()

    async def _allocation_loop(self) -> None:
        assert self._allocate_soon is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.allocation_interval):
                    await self._allocate_soon.wait()
            self._allocate_soon.clear()
            try:
                self.allocate()
            except Exception:
                log.exception("allocation pass failed")
            await asyncio.sleep(0)

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.agent_ping_interval)
            try:
                self.ping_round()
            except Exception:
                log.exception("agent ping round failed")

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

    # ------------------------------------------------------------------------------------------
    # Frameworks

    def _recover_framework(self, info: RawJson, *, persist: bool = True) -> state.Framework:
        """A framework known from the registry or an agent, not (yet) re-subscribed."""
        fid = id_value(info.get("id"))
        assert fid is not None
        fw = self.frameworks.get(fid)
        if fw is not None:
            return fw
        fw = state.Framework(
            framework_id=fid, info=calls.with_framework_defaults(info),
            registered_time=time.time(), recovered=True, active=False,
            completed_tasks=self._completed_deque(),
        )
        self.frameworks[fid] = fw
        self.allocator.add_framework(
            FrameworkId(fid), roles=fw.roles, capabilities=fw.capabilities, active=False,
            min_allocatable=calls.min_allocatable_of(fw.info.get("offer_filters")),
        )
        if persist:
            self.registry.put_framework(fid, fw.info)
        return fw

    def subscribe(self, subscribe: RawJson, stream: streams.EventStream) -> None:
        """SUBSCRIBE: a new framework, a failover, or a refusal (ERROR, then close)."""
        info = dict(subscribe["framework_info"])

        def refuse(message: str) -> None:
            log.info("refusing subscription of framework '%s': %s", info.get("name"), message)
            stream.send(_error_event(message))
            stream.close()

        error = calls.validate_framework_info(info)
        roles = calls.framework_roles(info)
        suppressed = [str(r) for r in subscribe.get("suppressed_roles") or []]
        constraints = subscribe.get("offer_constraints")
        if error is None:
            error = calls.validate_suppressed_and_constraints(roles, suppressed, constraints)
        fid = id_value(info.get("id")) or None
        if error is None and fid is not None and fid in self.completed_ids:
            error = "Framework has been removed"
        if error is not None:
            refuse(error)
            return
        min_alloc = calls.min_allocatable_of(info.get("offer_filters"))
        now = time.time()
        if fid is None:
            fid = self._new_framework_id()
            info["id"] = idv(fid)
            fw = state.Framework(
                framework_id=fid, info=calls.with_framework_defaults(info), registered_time=now,
                completed_tasks=self._completed_deque(),
            )
            try:
                self.allocator.add_framework(
                    FrameworkId(fid), roles=roles, suppressed_roles=suppressed,
                    capabilities=fw.capabilities, offer_constraints=constraints,
                    min_allocatable=min_alloc, active=True,
                )
            except alloc.AllocatorError as e:
                refuse(str(e))
                return
            fw.stream = stream
            fw.active = True
            fw.suppressed_roles = set(suppressed)
            fw.offer_constraints = constraints
            self.frameworks[fid] = fw
            self.registry.put_framework(fid, fw.info)
            self._send_subscribed(fw)
            log.info("framework %s (%s) subscribed", fid, fw.name)
            self.broadcast({"type": "FRAMEWORK_ADDED",
                            "framework_added": {"framework": self.framework_raw(fw)}})
            self.trigger_allocation()
            return
        fw = self.frameworks.get(fid) or self._recover_framework(info)
        # preserveImmutableFields: user and checkpoint keep their old values.
        info["user"] = fw.info.get("user")
        info["checkpoint"] = fw.info.get("checkpoint", False)
        error = calls.validate_update(fw.info, info)
        if error is not None:
            refuse(error)
            return
        try:
            self._apply_framework_update(fw, info, suppressed, constraints, min_alloc)
        except alloc.AllocatorError as e:
            refuse(str(e))
            return
        if fw.stream is not None:
            old = fw.stream
            old.send(_error_event("Framework failed over"))
            old.close()
        if fw.failover_timer is not None:
            fw.failover_timer.cancel()
            fw.failover_timer = None
        for offer in list(fw.offers.values()):
            self.rescind(offer)
        fw.stream = stream
        fw.active = True
        was_recovered = fw.recovered
        fw.recovered = False
        fw.reregistered_time = now
        fw.unregistered_time = None
        self.allocator.activate_framework(FrameworkId(fid))
        self.registry.put_framework(fid, fw.info)
        self._send_subscribed(fw)
        log.info("framework %s (%s) re-subscribed%s", fid, fw.name,
                 " after master failover" if was_recovered else "")
        self.broadcast({"type": "FRAMEWORK_UPDATED",
                        "framework_updated": {"framework": self.framework_raw(fw)}})
        self.trigger_allocation()

    def _send_subscribed(self, fw: state.Framework) -> None:
        assert fw.stream is not None
        fw.stream.send({
            "type": "SUBSCRIBED",
            "subscribed": {
                "framework_id": idv(fw.framework_id),
                "heartbeat_interval_seconds": float(self.config.heartbeat_interval),
                "master_info": self.master_info(),
            },
        })
        fw.stream.heartbeat()

    def _apply_framework_update(
        self, fw: state.Framework, info: RawJson, suppressed: list[str], constraints: Any,
        min_alloc: Any,
    ) -> None:
        new_info = calls.with_framework_defaults(info)
        new_roles = calls.framework_roles(new_info)
        removed_roles = set(fw.roles) - set(new_roles)
        self.allocator.update_framework(
            FrameworkId(fw.framework_id), roles=new_roles, suppressed_roles=suppressed,
            capabilities=calls.capabilities(new_info), offer_constraints=constraints,
            min_allocatable=min_alloc,
        )
        fw.info = new_info
        fw.suppressed_roles = set(suppressed)
        fw.offer_constraints = constraints
        for offer in list(fw.offers.values()):
            if offer.role in removed_roles:
                self.rescind(offer)

    def update_framework(self, fw: state.Framework, body: RawJson) -> None:
        """UPDATE_FRAMEWORK: all-or-nothing; raises CallError(400) with Mesos' message."""
        info = dict(body["framework_info"])
        error = calls.validate_framework_info(info)
        roles = calls.framework_roles(info)
        suppressed = [str(r) for r in body.get("suppressed_roles") or []]
        constraints = body.get("offer_constraints")
        if error is None:
            error = calls.validate_suppressed_and_constraints(roles, suppressed, constraints)
        if error is None:
            error = calls.validate_update(fw.info, info)
        if error is not None:
            raise CallError(400, error)
        try:
            self._apply_framework_update(
                fw, info, suppressed, constraints,
                calls.min_allocatable_of(info.get("offer_filters")),
            )
        except alloc.AllocatorError as e:
            raise CallError(400, str(e)) from e
        self.registry.put_framework(fw.framework_id, fw.info)
        self.broadcast({"type": "FRAMEWORK_UPDATED",
                        "framework_updated": {"framework": self.framework_raw(fw)}})
        self.trigger_allocation()

    def stream_closed(self, framework_id: str, stream: streams.EventStream) -> None:
        """The SUBSCRIBE connection of a framework ended (client gone or failed over)."""
        fw = self.frameworks.get(framework_id)
        if fw is None or fw.stream is not stream:
            return
        log.info("framework %s disconnected; failover timeout %ss", framework_id,
                 fw.info.get("failover_timeout", 0.0))
        fw.stream = None
        fw.active = False
        fw.unregistered_time = time.time()
        self.allocator.deactivate_framework(FrameworkId(framework_id))
        for offer in list(fw.offers.values()):
            self.rescind(offer, notify=False)
        timeout = float(fw.info.get("failover_timeout", 0.0) or 0.0)
        loop = asyncio.get_running_loop()
        fw.failover_timer = loop.call_later(timeout, self._failover_expired, framework_id)

    def _failover_expired(self, framework_id: str) -> None:
        fw = self.frameworks.get(framework_id)
        if fw is not None and not fw.connected:
            log.info("framework %s failover timeout expired: tearing it down", framework_id)
            self.remove_framework(fw)

    def remove_framework(self, fw: state.Framework) -> None:
        """TEARDOWN or failover expiry: kill everything, forget offers, remember the id."""
        fid = fw.framework_id
        if fw.failover_timer is not None:
            fw.failover_timer.cancel()
            fw.failover_timer = None
        for offer in list(fw.offers.values()):
            self._drop_offer(offer)
        agents_to_tell: set[str] = set()
        for task in list(fw.tasks.values()) + list(fw.unreachable_tasks.values()):
            agents_to_tell.add(task.agent_id)
            if not task.terminal:
                status = _status(
                    task_id=task.task_id, state_="TASK_KILLED",
                    message=f"Framework {fid} removed", reason="REASON_FRAMEWORK_REMOVED",
                    agent_id=task.agent_id, executor_id=task.executor_id,
                )
                _transition(task, status)
            self._remove_task(task, recover=False)
        fw.unreachable_tasks.clear()
        for agent in self.agents.values():
            for key in [k for k in agent.executors if k[0] == fid]:
                del agent.executors[key]
                agents_to_tell.add(agent.agent_id)
        for aid in agents_to_tell:
            target = self.agents.get(aid)
            if target is not None and target.conn is not None:
                target.conn.send({"type": "SHUTDOWN_FRAMEWORK", "framework_id": idv(fid)})
        self.allocator.remove_framework(FrameworkId(fid))
        if fw.stream is not None:
            stream, fw.stream = fw.stream, None
            stream.close()
        fw.active = False
        fw.unregistered_time = time.time()
        del self.frameworks[fid]
        self.completed_frameworks.append(fw)
        self.completed_ids.add(fid)
        self.registry.complete_framework(fid, now=time.time())
        self.broadcast({"type": "FRAMEWORK_REMOVED",
                        "framework_removed": {"framework_info": fw.info}})
        log.info("framework %s removed", fid)

    # ------------------------------------------------------------------------------------------
    # Offers

    def allocate(self, *, agent_ids: Iterable[str] | None = None) -> None:
        grants = self.allocator.allocate(
            now=time.monotonic(),
            agent_ids=None if agent_ids is None else [AgentId(a) for a in agent_ids],
        )
        batches: dict[str, list[RawJson]] = {}
        for grant in grants:
            fw = self.frameworks.get(grant.framework_id)
            agent = self.agents.get(grant.agent_id)
            if fw is None or not fw.connected or agent is None or not agent.connected:
                self.allocator.recover(
                    agent_id=grant.agent_id, framework_id=grant.framework_id,
                    resources=grant.resources, now=time.monotonic(),
                )
                continue
            offer = state.Offer(
                offer_id=self._new_offer_id(), framework_id=fw.framework_id,
                agent_id=agent.agent_id, role=grant.role, resources=grant.resources,
                created=time.time(),
            )
            self.offers[offer.offer_id] = offer
            fw.offers[offer.offer_id] = offer
            if self.config.offer_timeout is not None:
                offer.timer = asyncio.get_running_loop().call_later(
                    self.config.offer_timeout, self._offer_expired, offer.offer_id
                )
            batches.setdefault(fw.framework_id, []).append(self.offer_raw(offer, fw=fw))
        for fid, offers in batches.items():
            self._send(self.frameworks[fid], {"type": "OFFERS", "offers": {"offers": offers}})

    def offer_raw(self, offer: state.Offer, *, fw: state.Framework) -> RawJson:
        agent = self.agents[offer.agent_id]
        raw: RawJson = {
            "id": idv(offer.offer_id),
            "framework_id": idv(offer.framework_id),
            "agent_id": idv(offer.agent_id),
            "hostname": agent.hostname,
            "url": agent.url(),
            "resources": offer.resources.to_raw(refined=fw.refined),
            "attributes": [a.to_raw() for a in agent.attributes],
            "executor_ids": [
                idv(eid) for (f, eid) in agent.executors if f == offer.framework_id
            ],
            "allocation_info": {"role": offer.role},
        }
        if "domain" in agent.info:
            raw["domain"] = agent.info["domain"]
        return raw

    def _offer_expired(self, offer_id: str) -> None:
        offer = self.offers.get(offer_id)
        if offer is not None:
            self.rescind(offer)

    def _drop_offer(self, offer: state.Offer) -> None:
        self.offers.pop(offer.offer_id, None)
        fw = self.frameworks.get(offer.framework_id)
        if fw is not None:
            fw.offers.pop(offer.offer_id, None)
        if offer.timer is not None:
            offer.timer.cancel()

    def rescind(self, offer: state.Offer, *, notify: bool = True) -> None:
        """Take an offer back: its resources return to the allocator; RESCIND to the owner."""
        self._drop_offer(offer)
        self.allocator.recover(
            agent_id=AgentId(offer.agent_id), framework_id=FrameworkId(offer.framework_id),
            resources=offer.resources, now=time.monotonic(),
        )
        fw = self.frameworks.get(offer.framework_id)
        if notify and fw is not None:
            self._send(fw, {"type": "RESCIND", "rescind": {"offer_id": idv(offer.offer_id)}})

    def decline(self, fw: state.Framework, body: RawJson) -> None:
        seconds = calls.refuse_seconds(body.get("filters"),
                                       default=self.config.refuse_seconds_default)
        for raw in body.get("offer_ids") or []:
            oid = id_value(raw)
            offer = self.offers.get(oid or "")
            if offer is None or offer.framework_id != fw.framework_id:
                log.info("ignoring decline of offer %s: no longer valid", oid)
                continue
            self._drop_offer(offer)
            self.allocator.recover(
                agent_id=AgentId(offer.agent_id), framework_id=FrameworkId(fw.framework_id),
                resources=offer.resources, now=time.monotonic(), refuse_seconds=seconds,
            )

    # ------------------------------------------------------------------------------------------
    # ACCEPT

    def accept(self, fw: state.Framework, body: RawJson) -> None:
        offer_ids = [id_value(o) or "" for o in calls.as_list(body.get("offer_ids"))]
        operations = [op for op in calls.as_list(body.get("operations")) if isinstance(op, dict)]
        seconds = calls.refuse_seconds(body.get("filters"),
                                       default=self.config.refuse_seconds_default)
        book = {
            oid: (o.framework_id, o.agent_id, o.role) for oid, o in self.offers.items()
        }
        try:
            calls.validate_offer_ids(offer_ids, offers=book, framework_id=fw.framework_id)
        except ValueError as e:
            self._accept_invalid_offers(fw, offer_ids, operations, str(e))
            return
        offers = [self.offers[oid] for oid in offer_ids]
        agent = self.agents[offers[0].agent_id]
        role = offers[0].role
        remaining = res.Resources()
        for offer in offers:
            self._drop_offer(offer)
            remaining = remaining + offer.resources
        for op in operations:
            optype = op.get("type")
            try:
                if optype == "LAUNCH":
                    remaining = self._launch(fw, agent, role, op, remaining)
                elif optype == "LAUNCH_GROUP":
                    remaining = self._launch_group(fw, agent, role, op, remaining)
                elif optype in ("RESERVE", "UNRESERVE"):
                    remaining = self._reserve_in_accept(fw, agent, role, op, remaining)
                elif optype in ("CREATE", "DESTROY", "GROW_VOLUME", "SHRINK_VOLUME",
                                "CREATE_DISK", "DESTROY_DISK"):
                    self._drop_operation(
                        fw, agent, op,
                        f"Operation {optype} is not supported by the embedded kernel "
                        "(no persistent volumes or resource providers)",
                    )
                else:
                    log.warning("ignoring unknown operation %r in ACCEPT", optype)
            except Exception:
                log.exception("operation %s of framework %s failed", optype, fw.framework_id)
        if not remaining.is_empty():
            self.allocator.recover(
                agent_id=AgentId(agent.agent_id), framework_id=FrameworkId(fw.framework_id),
                resources=remaining, now=time.monotonic(), refuse_seconds=seconds,
            )

    def _accept_invalid_offers(
        self, fw: state.Framework, offer_ids: list[str], operations: list[RawJson], error: str
    ) -> None:
        for oid in offer_ids:
            offer = self.offers.get(oid)
            if offer is not None and offer.framework_id == fw.framework_id:
                self.rescind(offer, notify=False)
        log.warning("ACCEPT call used invalid offers %s: %s", offer_ids, error)
        new_state = "TASK_DROPPED" if fw.partition_aware else "TASK_LOST"
        for op in operations:
            optype = op.get("type")
            if optype == "LAUNCH":
                tasks = calls.as_list((op.get("launch") or {}).get("task_infos"))
            elif optype == "LAUNCH_GROUP":
                tasks = calls.as_list(
                    ((op.get("launch_group") or {}).get("task_group") or {}).get("tasks")
                )
            else:
                self._drop_operation(fw, None, op,
                                     "Operation attempted with invalid offers: " + error)
                continue
            for task in tasks:
                tid = id_value(task.get("task_id")) if isinstance(task, dict) else None
                if tid is None:
                    continue
                self._forward_status(fw, _status(
                    task_id=tid, state_=new_state,
                    message="Task launched with invalid offers: " + error,
                    reason="REASON_INVALID_OFFERS",
                    agent_id=id_value(task.get("agent_id")),
                ))

    def _drop_operation(
        self, fw: state.Framework, agent: state.Agent | None, op: RawJson, message: str
    ) -> None:
        """An operation that cannot be applied: OPERATION_ERROR if feedback was asked for."""
        op_id = id_value(op.get("id"))
        log.info("dropping %s operation of framework %s: %s", op.get("type"),
                 fw.framework_id, message)
        if op_id is None:
            return
        status: RawJson = {
            "operation_id": idv(op_id), "state": "OPERATION_ERROR", "message": message,
        }
        if agent is not None:
            status["agent_id"] = idv(agent.agent_id)
        self._send(fw, {"type": "UPDATE_OPERATION_STATUS",
                        "update_operation_status": {"status": status}})

    def _task_error(self, fw: state.Framework, tasks: list[Any], reason: str, message: str
                    ) -> None:
        for task in tasks:
            tid = id_value(task.get("task_id")) if isinstance(task, dict) else None
            if tid is None:
                continue
            self._forward_status(fw, _status(
                task_id=tid, state_="TASK_ERROR", message=message, reason=reason,
                agent_id=id_value(task.get("agent_id")),
            ))

    def _known_executors(self, fw: state.Framework, agent: state.Agent) -> dict[str, Any]:
        return {
            eid: ex.info for (f, eid), ex in agent.executors.items() if f == fw.framework_id
        }

    def _launch(self, fw: state.Framework, agent: state.Agent, role: str, op: RawJson,
                remaining: res.Resources) -> res.Resources:
        tasks = calls.as_list((op.get("launch") or {}).get("task_infos"))
        if op.get("id") is not None:
            self._task_error(fw, tasks, "REASON_TASK_INVALID",
                             "The `id` field cannot be set on LAUNCH operations")
            return remaining
        if not tasks:
            log.info("implicitly declining offers: LAUNCH with no tasks")
        for task in tasks:
            try:
                tid, task_res, eid, exec_res = calls.validate_launch_task(
                    task, framework_id=fw.framework_id, agent_id=agent.agent_id, role=role,
                    known_task_ids=_KnownIds(fw),
                    known_executors=self._known_executors(fw, agent),
                    offered=remaining,
                )
            except TaskInvalid as e:
                self._task_error(fw, [task], "REASON_TASK_INVALID", str(e))
                continue
            remaining = remaining - task_res - exec_res
            info = dict(task)
            info["resources"] = task_res.to_raw()
            if eid is not None:
                executor = dict(task["executor"])
                if not exec_res.is_empty():
                    executor["resources"] = exec_res.to_raw()
                    agent.executors[(fw.framework_id, eid)] = state.Executor(
                        framework_id=fw.framework_id, agent_id=agent.agent_id, executor_id=eid,
                        info=executor, resources=exec_res,
                    )
                info["executor"] = executor
            self._add_task(fw, agent, tid, info, task_res, role, eid)
            assert agent.conn is not None
            agent.conn.send({"type": "RUN_TASK", "framework": fw.info,
                             "task": state.with_task_defaults(info)})
        return remaining

    def _launch_group(self, fw: state.Framework, agent: state.Agent, role: str, op: RawJson,
                      remaining: res.Resources) -> res.Resources:
        body = op.get("launch_group") or {}
        executor = body.get("executor")
        tasks = (body.get("task_group") or {}).get("tasks")
        task_list = calls.as_list(tasks)
        if op.get("id") is not None:
            self._task_error(fw, task_list, "REASON_TASK_GROUP_INVALID",
                             "The `id` field cannot be set on LAUNCH_GROUP operations")
            return remaining
        try:
            eid, parsed, exec_res = calls.validate_task_group(
                executor, task_list, framework_id=fw.framework_id, agent_id=agent.agent_id,
                role=role, known_task_ids=_KnownIds(fw),
                known_executors=self._known_executors(fw, agent), offered=remaining,
            )
        except TaskInvalid as e:
            self._task_error(fw, task_list, "REASON_TASK_GROUP_INVALID", str(e))
            return remaining
        assert isinstance(executor, dict)
        executor = dict(executor)
        if not exec_res.is_empty():
            executor["resources"] = exec_res.to_raw()
            agent.executors[(fw.framework_id, eid)] = state.Executor(
                framework_id=fw.framework_id, agent_id=agent.agent_id, executor_id=eid,
                info=executor, resources=exec_res,
            )
        remaining = remaining - exec_res
        infos = []
        for task, (tid, task_res) in zip(task_list, parsed, strict=True):
            remaining = remaining - task_res
            info = dict(task)
            info["resources"] = task_res.to_raw()
            self._add_task(fw, agent, tid, info, task_res, role, eid)
            infos.append(state.with_task_defaults(info))
        assert agent.conn is not None
        agent.conn.send({
            "type": "RUN_TASK_GROUP", "framework": fw.info, "executor": executor,
            "task_group": {"tasks": infos},
        })
        return remaining

    def _add_task(self, fw: state.Framework, agent: state.Agent, tid: str, info: RawJson,
                  task_res: res.Resources, role: str, eid: str | None) -> state.Task:
        stored = {k: info[k] for k in _STORED_INFO_KEYS if k in info}
        task = state.Task(
            framework_id=fw.framework_id, agent_id=agent.agent_id, task_id=tid, info=stored,
            resources=task_res, role=role, executor_id=eid,
        )
        fw.tasks[tid] = task
        agent.tasks[(fw.framework_id, tid)] = task
        self.metrics["tasks_launched"] += 1
        if self.subscribers:
            self.broadcast({"type": "TASK_ADDED", "task_added": {"task": task.to_raw()}})
        return task

    def _reserve_in_accept(self, fw: state.Framework, agent: state.Agent, role: str,
                           op: RawJson, remaining: res.Resources) -> res.Resources:
        optype = op["type"]
        try:
            if optype == "RESERVE":
                body = op.get("reserve") or {}
                if body.get("source"):
                    raise ValueError(
                        "Reservation updates are not yet implemented for the scheduler API."
                    )
                consumed, converted = calls.parse_reserve(
                    body.get("resources"), roles=fw.roles, principal=fw.info.get("principal")
                )
            else:
                consumed, converted = calls.parse_unreserve(
                    (op.get("unreserve") or {}).get("resources")
                )
        except ValueError as e:
            self._drop_operation(fw, agent, op,
                                 "Operation attempted with invalid resources: " + str(e))
            return remaining
        consumed_a = consumed.allocated_to(role)
        converted_a = converted.allocated_to(role)
        if not remaining.contains(consumed_a):
            self._drop_operation(
                fw, agent, op,
                f"Invalid {optype} Operation: {remaining} does not contain {consumed_a}",
            )
            return remaining
        if op.get("id") is not None:
            self._drop_operation(
                fw, agent, op,
                f"Operation requested feedback, but agent {agent.agent_id} does not have the "
                "required RESOURCE_PROVIDER capability",
            )
            return remaining
        self.allocator.convert(
            agent_id=AgentId(agent.agent_id), framework_id=FrameworkId(fw.framework_id),
            consumed=consumed_a, converted=converted_a,
        )
        agent.total = agent.total - consumed + converted
        self._persist_reservations(agent)
        return remaining - consumed_a + converted_a

    def _persist_reservations(self, agent: state.Agent) -> None:
        dynamic = agent.total.filter(
            lambda r: bool(r.reservations) and r.reservations[-1].type == "DYNAMIC"
        )
        self.registry.put_reservations(agent.agent_id, dynamic.to_raw())

    # ------------------------------------------------------------------------------------------
    # Other scheduler calls

    def revive(self, fw: state.Framework, body: RawJson | None) -> None:
        asked = calls.as_list((body or {}).get("roles"))
        roles = [str(r) for r in asked if isinstance(r, str) and r in fw.roles] or None
        if asked and roles is None:
            return
        self.allocator.revive(FrameworkId(fw.framework_id), roles)
        fw.suppressed_roles -= set(roles or fw.roles)
        self.trigger_allocation()

    def suppress(self, fw: state.Framework, body: RawJson | None) -> None:
        asked = calls.as_list((body or {}).get("roles"))
        roles = [str(r) for r in asked if isinstance(r, str) and r in fw.roles] or None
        if asked and roles is None:
            return
        self.allocator.suppress(FrameworkId(fw.framework_id), roles)
        fw.suppressed_roles |= set(roles or fw.roles)

    def kill(self, fw: state.Framework, body: RawJson) -> None:
        tid = id_value(body.get("task_id")) or ""
        aid = id_value(body.get("agent_id"))
        task = fw.tasks.get(tid)
        if task is None:
            log.info("cannot kill unknown task %s of framework %s: reconciling", tid,
                     fw.framework_id)
            entry: RawJson = {"task_id": idv(tid)}
            if aid is not None:
                entry["agent_id"] = idv(aid)
            self.reconcile(fw, {"tasks": [entry]})
            return
        if aid is not None and aid != task.agent_id:
            log.warning("cannot kill task %s of agent %s: it belongs to agent %s", tid, aid,
                        task.agent_id)
            return
        agent = self.agents.get(task.agent_id)
        if agent is None or agent.conn is None:
            log.warning("cannot kill task %s: agent %s is disconnected; retried when it "
                        "re-registers", tid, task.agent_id)
            if agent is not None:
                agent.kill_on_return.add((fw.framework_id, tid))
            return
        message: RawJson = {"type": "KILL_TASK", "framework_id": idv(fw.framework_id),
                            "task_id": idv(tid)}
        if body.get("kill_policy") is not None:
            message["kill_policy"] = body["kill_policy"]
        agent.conn.send(message)

    def shutdown_executor(self, fw: state.Framework, body: RawJson) -> None:
        agent = self.agents.get(id_value(body.get("agent_id")) or "")
        if agent is None or agent.conn is None:
            log.info("dropping SHUTDOWN: agent is not connected")
            return
        agent.conn.send({"type": "SHUTDOWN_EXECUTOR", "framework_id": idv(fw.framework_id),
                         "executor_id": body["executor_id"]})

    def message(self, fw: state.Framework, body: RawJson) -> None:
        agent = self.agents.get(id_value(body.get("agent_id")) or "")
        if agent is None or agent.conn is None:
            log.info("dropping MESSAGE: agent is not connected")
            return
        agent.conn.send({"type": "MESSAGE", "framework_id": idv(fw.framework_id),
                         "executor_id": body["executor_id"], "data": body.get("data", "")})

    def acknowledge(self, fw: state.Framework, body: RawJson) -> None:
        aid = id_value(body.get("agent_id")) or ""
        tid = id_value(body.get("task_id")) or ""
        uid = str(body.get("uuid"))
        agent = self.agents.get(aid)
        if agent is None or agent.conn is None:
            log.info("dropping acknowledgement for task %s: agent %s is not connected", tid, aid)
            return
        agent.conn.send({"type": "ACKNOWLEDGE", "framework_id": idv(fw.framework_id),
                         "task_id": idv(tid), "uuid": uid})
        task = fw.tasks.get(tid)
        if task is not None and task.terminal and task.status_update_uuid == uid:
            self._remove_task(task)

    def reconcile(self, fw: state.Framework, body: RawJson) -> None:
        entries = [e for e in calls.as_list(body.get("tasks")) if isinstance(e, dict)]
        if not entries:
            for known in list(fw.tasks.values()):
                self._send(fw, {"type": "UPDATE", "update": {"status": self._latest(known)}})
            return
        any_recovered = any(a.recovered for a in self.agents.values())
        for entry in entries:
            tid = id_value(entry.get("task_id")) or ""
            aid = id_value(entry.get("agent_id"))
            task = fw.tasks.get(tid) or fw.unreachable_tasks.get(tid)
            agent = self.agents.get(aid) if aid is not None else None
            status: RawJson | None
            if task is not None:
                status = self._latest(task)
            elif (agent is not None and agent.recovered) or (aid is None and any_recovered):
                status = None  # (2) wait for the agent to re-register
            elif agent is not None and agent.unreachable_time is None:
                status = _status(
                    task_id=tid, state_="TASK_GONE" if fw.partition_aware else "TASK_LOST",
                    message="Reconciliation: Task is unknown to the agent",
                    reason="REASON_RECONCILIATION", agent_id=aid,
                )
            elif agent is not None:
                status = _status(
                    task_id=tid,
                    state_="TASK_UNREACHABLE" if fw.partition_aware else "TASK_LOST",
                    message="Reconciliation: Task is unreachable",
                    reason="REASON_RECONCILIATION", agent_id=aid,
                    unreachable_time=agent.unreachable_time,
                )
            else:
                status = _status(
                    task_id=tid, state_="TASK_UNKNOWN" if fw.partition_aware else "TASK_LOST",
                    message="Reconciliation: Task is unknown", reason="REASON_RECONCILIATION",
                    agent_id=aid,
                )
            if status is not None:
                self._send(fw, {"type": "UPDATE", "update": {"status": status}})

    def _latest(self, task: state.Task) -> RawJson:
        status = _status(
            task_id=task.task_id, state_=task.status_update_state or task.state,
            message="Reconciliation: Latest task state", reason="REASON_RECONCILIATION",
            agent_id=task.agent_id, executor_id=task.executor_id,
            unreachable_time=task.unreachable_time,
        )
        latest = task.latest_status()
        if latest is not None:
            for key in ("healthy", "check_status", "container_status"):
                if key in latest:
                    status[key] = latest[key]
        return status

    def reconcile_operations(self, fw: state.Framework, body: RawJson) -> None:
        for entry in calls.as_list(body.get("operations")):
            if not isinstance(entry, dict) or id_value(entry.get("operation_id")) is None:
                continue
            status: RawJson = {
                "operation_id": entry["operation_id"], "state": "OPERATION_UNKNOWN",
                "message": "Reconciliation: Operation is unknown",
            }
            if entry.get("agent_id") is not None:
                status["agent_id"] = entry["agent_id"]
            self._send(fw, {"type": "UPDATE_OPERATION_STATUS",
                            "update_operation_status": {"status": status}})

    # ------------------------------------------------------------------------------------------
    # Tasks

    def _remove_task(self, task: state.Task, *, recover: bool = True) -> None:
        fw = self.frameworks.get(task.framework_id)
        agent = self.agents.get(task.agent_id)
        if recover and not task.resources_released:
            self._release(task)
        task.resources_released = True
        if fw is not None:
            fw.tasks.pop(task.task_id, None)
            fw.unreachable_tasks.pop(task.task_id, None)
            fw.completed_tasks.append(task)
        if agent is not None:
            agent.tasks.pop((task.framework_id, task.task_id), None)

    def _release(self, task: state.Task) -> None:
        if task.resources_released:
            return
        task.resources_released = True
        if task.agent_id in self._in_allocator:
            self.allocator.recover(
                agent_id=AgentId(task.agent_id), framework_id=FrameworkId(task.framework_id),
                resources=task.resources, now=time.monotonic(),
            )

    def status_update(self, agent: state.Agent, message: RawJson) -> None:
        fid = id_value(message.get("framework_id")) or ""
        status = message.get("status")
        if not isinstance(status, dict):
            log.warning("agent %s sent a STATUS_UPDATE without a status", agent.agent_id)
            return
        tid = id_value(status.get("task_id"))
        new_state = status.get("state")
        if tid is None or new_state not in calls.TASK_STATES:
            log.warning("agent %s sent a malformed status update: %r", agent.agent_id, status)
            return
        fw = self.frameworks.get(fid)
        if fw is None:
            if fid in self.completed_ids and status.get("uuid") and agent.conn is not None:
                agent.conn.send({"type": "ACKNOWLEDGE", "framework_id": idv(fid),
                                 "task_id": idv(tid), "uuid": status["uuid"]})
            else:
                log.info("ignoring status update for unknown framework %s", fid)
            return
        task = fw.tasks.get(tid)
        if task is None and tid in fw.unreachable_tasks:
            # Back from a partition: partition-aware tasks resume; LOST ones stay lost.
            if fw.unreachable_tasks[tid].state == "TASK_UNREACHABLE":
                task = fw.unreachable_tasks.pop(tid)
                fw.tasks[tid] = task
                agent.tasks[(fid, tid)] = task
                task.unreachable_time = None
        if task is not None:
            if not task.terminal or new_state in calls.TERMINAL_STATES:
                task.state = new_state
            last = task.statuses[-1] if task.statuses else None
            if last is None or not status.get("uuid") or last.get("uuid") != status["uuid"]:
                # A retried update (same uuid) is forwarded again but recorded once.
                task.statuses.append({k: v for k, v in status.items() if k != "data"})
                if len(task.statuses) > 16:
                    del task.statuses[1:-15]
            task.status_update_state = new_state
            task.status_update_uuid = status.get("uuid")
            if new_state in calls.TERMINAL_STATES:
                self._release(task)
                if not status.get("uuid"):
                    self._remove_task(task)
        self._forward_status(fw, status)

    def executor_exited(self, agent: state.Agent, message: RawJson) -> None:
        fid = id_value(message.get("framework_id")) or ""
        eid = id_value(message.get("executor_id")) or ""
        ex = agent.executors.pop((fid, eid), None)
        if ex is not None and agent.agent_id in self._in_allocator:
            self.allocator.recover(
                agent_id=AgentId(agent.agent_id), framework_id=FrameworkId(fid),
                resources=ex.resources, now=time.monotonic(),
            )
        fw = self.frameworks.get(fid)
        if fw is not None:
            failure: RawJson = {"agent_id": idv(agent.agent_id), "executor_id": idv(eid)}
            if isinstance(message.get("status"), int):
                failure["status"] = message["status"]
            self._send(fw, {"type": "FAILURE", "failure": failure})

    # ------------------------------------------------------------------------------------------
    # Agents

    async def _on_link(self, stream: link.AgentStream) -> None:
        conn = AgentConn(stream)
        agent: state.Agent | None = None
        try:
            async for message in stream:
                mtype = message.get("type")
                try:
                    if mtype == "REGISTER":
                        agent = self.register_agent(conn, message)
                        if agent is None:
                            break
                    elif agent is None or agent.conn is not conn:
                        log.warning("link %s sent %s before registering", stream.peer, mtype)
                    elif mtype == "STATUS_UPDATE":
                        self.status_update(agent, message)
                    elif mtype == "PONG":
                        agent.pong_pending = False
                        agent.missed_pings = 0
                    elif mtype == "EXECUTOR_EXITED":
                        self.executor_exited(agent, message)
                    else:
                        log.warning("agent %s sent an unknown message type %r",
                                    agent.agent_id, mtype)
                except Exception:
                    log.exception("handling %s from %s failed", mtype, stream.peer)
        finally:
            if agent is not None and agent.conn is conn:
                self.agent_disconnected(agent)
            conn.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(1.0):
                    await conn.task

    def register_agent(self, conn: AgentConn, message: RawJson) -> state.Agent | None:
        info = message.get("agent_info")
        if not isinstance(info, dict) or not isinstance(info.get("hostname"), str):
            log.warning("refusing registration from %s: agent_info.hostname missing",
                        conn.stream.peer)
            return None
        try:
            static = res.Resources.parse(info.get("resources") or [])
        except (res.ResourceError, TypeError, AttributeError) as e:
            log.warning("refusing registration from %s: bad resources: %s", conn.stream.peer, e)
            return None
        aid = id_value(info.get("id"))
        now = time.time()
        info = {k: v for k, v in info.items() if k != "id"}
        if aid is None:
            aid = self._new_agent_id()
            agent = state.Agent(agent_id=aid, info=info, total=static, registered_time=now,
                                version=str(message.get("version", VERSION)))
            self.agents[aid] = agent
            agent.conn = conn
            self._admit(agent)
            log.info("agent %s (%s) registered with %s", aid, agent.hostname, static)
            conn.send({"type": "REGISTERED", "agent_id": idv(aid)})
            self.trigger_allocation()
            return agent
        agent_or_none = self.agents.get(aid)
        if agent_or_none is None:
            agent = state.Agent(agent_id=aid, info=info, total=static, registered_time=now)
            self.agents[aid] = agent
        else:
            agent = agent_or_none
        if agent.conn is not None and agent.conn is not conn:
            agent.conn.close()
        dynamic = agent.total.filter(
            lambda r: bool(r.reservations) and r.reservations[-1].type == "DYNAMIC"
        )
        agent.info = info
        agent.total = apply_reservations(static, dynamic)
        agent.version = str(message.get("version", VERSION))
        agent.conn = conn
        agent.missed_pings = 0
        agent.pong_pending = False
        agent.reregistered_time = now
        was_unreachable = agent.unreachable_time is not None
        agent.recovered = False
        agent.unreachable_time = None
        agent.active = True
        kills: list[tuple[str, str]] = []
        shutdown: set[str] = set()
        for fi in calls.as_list(message.get("frameworks")):
            fid = id_value(fi.get("id")) if isinstance(fi, dict) else None
            if fid and fid not in self.frameworks and fid not in self.completed_ids:
                self._recover_framework(fi)
        reported: set[tuple[str, str]] = set()
        for raw in calls.as_list(message.get("tasks")):
            if not isinstance(raw, dict):
                continue
            fid = id_value(raw.get("framework_id")) or ""
            tid = id_value(raw.get("task_id")) or ""
            if fid in self.completed_ids:
                shutdown.add(fid)
                continue
            if (fid, tid) in agent.kill_on_return:
                kills.append((fid, tid))
                continue
            fw = self.frameworks.get(fid) or self._recover_framework(
                {"id": idv(fid), "name": "", "user": ""}
            )
            if was_unreachable and not fw.partition_aware:
                kills.append((fid, tid))
                continue
            reported.add((fid, tid))
            task = fw.tasks.get(tid)
            if task is None:
                task = fw.unreachable_tasks.pop(tid, None)
                if task is None:
                    task = self._task_from_report(fw, agent, raw)
                else:
                    task.unreachable_time = None
                    task.resources_released = False  # held again once the agent is admitted
                    if raw.get("state") in calls.TASK_STATES:
                        task.state = str(raw["state"])
                        task.status_update_state = str(
                            raw.get("status_update_state") or raw["state"]
                        )
                        task.status_update_uuid = raw.get("status_update_uuid")
                fw.tasks[tid] = task
                agent.tasks[(fid, tid)] = task
                if task.terminal:
                    task.resources_released = True
        agent.kill_on_return.clear()
        for key, task in list(agent.tasks.items()):
            if key not in reported and not task.terminal:
                fw_ = self.frameworks.get(task.framework_id)
                if fw_ is None:
                    continue
                status = _status(
                    task_id=task.task_id,
                    state_="TASK_DROPPED" if fw_.partition_aware else "TASK_LOST",
                    message="Task was not found on the agent when it re-registered",
                    reason="REASON_RECONCILIATION", agent_id=agent.agent_id,
                    executor_id=task.executor_id,
                )
                _transition(task, status)
                self._remove_task(task)  # gives its resources back if the agent is allocated
                self._forward_status(fw_, status)
        for ex_raw in calls.as_list(message.get("executors")):
            if not isinstance(ex_raw, dict):
                continue
            fid = id_value(ex_raw.get("framework_id")) or ""
            eid = id_value(ex_raw.get("executor_id")) or ""
            if not fid or not eid or fid not in self.frameworks:
                continue
            if (fid, eid) not in agent.executors:
                try:
                    ex_res = res.Resources.parse(ex_raw.get("resources") or [])
                except res.ResourceError:
                    ex_res = res.Resources()
                fw_roles = self.frameworks[fid].roles
                if any(r.allocation_role is None for r in ex_res) and fw_roles:
                    ex_res = ex_res.allocated_to(fw_roles[0])
                agent.executors[(fid, eid)] = state.Executor(
                    framework_id=fid, agent_id=aid, executor_id=eid, info=ex_raw,
                    resources=ex_res,
                )
        if aid in self._in_allocator:
            self.allocator.update_agent_total(AgentId(aid), agent.total)
            self.allocator.activate_agent(AgentId(aid))
            self.registry.put_agent(aid, agent.info_raw())
        else:
            self._admit(agent)
        conn.send({"type": "REGISTERED", "agent_id": idv(aid)})
        for fid, tid in kills:
            conn.send({"type": "KILL_TASK", "framework_id": idv(fid), "task_id": idv(tid)})
        for fid in shutdown:
            conn.send({"type": "SHUTDOWN_FRAMEWORK", "framework_id": idv(fid)})
        log.info("agent %s (%s) re-registered with %d tasks", aid, agent.hostname,
                 len(reported))
        self.trigger_allocation()
        return agent

    def _task_from_report(self, fw: state.Framework, agent: state.Agent, raw: RawJson
                          ) -> state.Task:
        role = fw.roles[0] if fw.roles else "*"
        try:
            task_res = res.Resources.parse(raw.get("resources") or [])
        except res.ResourceError:
            task_res = res.Resources()
        roles = {r.allocation_role for r in task_res if r.allocation_role is not None}
        if roles:
            role = sorted(roles)[0]
        else:
            task_res = task_res.allocated_to(role)
        info: RawJson = {
            k: raw[k] for k in ("name", "labels", "container", "discovery", "health_check",
                                "kill_policy", "check") if k in raw
        }
        info["task_id"] = raw.get("task_id")
        info["agent_id"] = idv(agent.agent_id)
        statuses = [s for s in calls.as_list(raw.get("statuses")) if isinstance(s, dict)]
        task = state.Task(
            framework_id=fw.framework_id, agent_id=agent.agent_id,
            task_id=id_value(raw.get("task_id")) or "", info=info, resources=task_res,
            role=role, executor_id=id_value(raw.get("executor_id")),
            state=str(raw["state"]) if raw.get("state") in calls.TASK_STATES else "TASK_STAGING",
            statuses=statuses,
        )
        if statuses:
            task.status_update_state = statuses[-1].get("state")
            task.status_update_uuid = statuses[-1].get("uuid")
        return task

    def _admit(self, agent: state.Agent) -> None:
        used = {FrameworkId(f): r for f, r in agent.used().items()}
        self.allocator.add_agent(
            AgentId(agent.agent_id), total=agent.total, attributes=agent.attributes,
            hostname=agent.hostname, region=agent.region, zone=agent.zone, used=used or None,
        )
        self._in_allocator.add(agent.agent_id)
        self.registry.put_agent(agent.agent_id, agent.info_raw())
        self.broadcast({"type": "AGENT_ADDED", "agent_added": {"agent": self.agent_raw(agent)}})

    def agent_disconnected(self, agent: state.Agent) -> None:
        """The link stream ended: no offers; non-checkpointing frameworks lose their tasks."""
        log.info("agent %s (%s) disconnected", agent.agent_id, agent.hostname)
        agent.conn = None
        agent.active = False
        for offer in [o for o in self.offers.values() if o.agent_id == agent.agent_id]:
            self.rescind(offer)
        if agent.agent_id in self._in_allocator:
            self.allocator.deactivate_agent(AgentId(agent.agent_id))
        for (fid, _), task in list(agent.tasks.items()):
            fw = self.frameworks.get(fid)
            if fw is None or fw.checkpoint or task.terminal:
                continue
            status = _status(
                task_id=task.task_id, state_="TASK_LOST",
                message=f"Agent {agent.hostname} disconnected",
                reason="REASON_AGENT_DISCONNECTED", agent_id=agent.agent_id,
                executor_id=task.executor_id,
            )
            _transition(task, status)
            agent.kill_on_return.add((fid, task.task_id))
            self._remove_task(task)
            self._forward_status(fw, status)
        for (fid, eid), ex in list(agent.executors.items()):
            fw = self.frameworks.get(fid)
            if fw is not None and not fw.checkpoint:
                del agent.executors[(fid, eid)]  # Mesos: removeFramework(slave, framework)
                if agent.agent_id in self._in_allocator:
                    self.allocator.recover(
                        agent_id=AgentId(agent.agent_id), framework_id=FrameworkId(fid),
                        resources=ex.resources, now=time.monotonic(),
                    )

    def ping_round(self) -> None:
        mono = time.monotonic()
        for agent in list(self.agents.values()):
            if agent.unreachable_time is not None:
                continue
            if agent.recovered:
                if mono - self._recovered_at >= self.config.agent_reregister_timeout:
                    self.mark_unreachable(agent, "agent did not re-register in time")
                continue
            if agent.pong_pending or agent.conn is None:
                agent.missed_pings += 1
            else:
                agent.missed_pings = 0
            if agent.missed_pings >= self.config.max_missed_pings:
                self.mark_unreachable(agent, "health check timed out")
                continue
            if agent.conn is not None:
                agent.conn.send({"type": "PING"})
                agent.pong_pending = True

    def mark_unreachable(self, agent: state.Agent, reason: str) -> None:
        now = time.time()
        log.warning("agent %s (%s) is unreachable: %s", agent.agent_id, agent.hostname, reason)
        for offer in [o for o in self.offers.values() if o.agent_id == agent.agent_id]:
            self.rescind(offer)
        if agent.agent_id in self._in_allocator:
            self.allocator.remove_agent(AgentId(agent.agent_id))
            self._in_allocator.discard(agent.agent_id)
        message = f"Agent {agent.hostname} is unreachable: {reason}"
        for (fid, tid), task in list(agent.tasks.items()):
            fw = self.frameworks.get(fid)
            del agent.tasks[(fid, tid)]
            if fw is None:
                continue
            fw.tasks.pop(tid, None)
            task.resources_released = True
            if task.terminal:
                fw.completed_tasks.append(task)
                continue
            new_state = "TASK_UNREACHABLE" if fw.partition_aware else "TASK_LOST"
            status = _status(
                task_id=tid, state_=new_state, message=message, reason="REASON_AGENT_REMOVED",
                agent_id=agent.agent_id, executor_id=task.executor_id, unreachable_time=now,
            )
            task.unreachable_time = now
            _transition(task, status)
            fw.unreachable_tasks[tid] = task
            self._forward_status(fw, status)
        agent.executors.clear()
        agent.unreachable_time = now
        agent.active = False
        agent.recovered = False
        self.registry.mark_unreachable(agent.agent_id, when=now)
        for fw in self.frameworks.values():
            self._send(fw, {"type": "FAILURE", "failure": {"agent_id": idv(agent.agent_id)}})
        self.broadcast({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": idv(
            agent.agent_id)}})
        if agent.conn is not None:
            conn, agent.conn = agent.conn, None
            conn.close()

    # ------------------------------------------------------------------------------------------
    # Operator: weights, quota, reservations

    def update_weights(self, infos: list[Any]) -> None:
        weights: dict[str, float] = {}
        for info in infos:
            if not isinstance(info, dict) or not isinstance(info.get("role"), str):
                raise CallError(400, "Failed to validate master::Call: weight_infos entries "
                                     "need a 'role'")
            role = info["role"]
            err = calls.validate_role(role)
            if err is not None or role == "*":
                raise CallError(400, f"Failed to validate master::Call: invalid role "
                                     f"'{role}': {err or 'cannot be *'}")
            try:
                weight = float(info.get("weight", 1.0))
            except (TypeError, ValueError) as e:
                raise CallError(400, f"Invalid weight for role '{role}'") from e
            if not weight > 0:
                raise CallError(400, f"Invalid weight '{weight}' for role '{role}': "
                                     "weights must be positive")
            weights[role] = weight
        self.allocator.update_weights(weights)
        for role, weight in weights.items():
            self.registry.put_weight(role, weight)
        self.trigger_allocation()

    def update_quota(self, configs: list[Any]) -> None:
        parsed: list[tuple[str, dict[str, float] | None]] = []
        for cfg in configs:
            if not isinstance(cfg, dict) or not isinstance(cfg.get("role"), str):
                raise CallError(400, "Invalid QuotaConfig: 'role' is required")
            role = cfg["role"]
            err = calls.validate_role(role)
            if err is not None or role == "*":
                raise CallError(400, f"Invalid QuotaConfig: invalid role '{role}'")
            limits: dict[str, float] = {}
            raw_limits = cfg.get("limits") or {}
            if not isinstance(raw_limits, dict):
                raise CallError(400, "Invalid QuotaConfig: 'limits' must be an object")
            for name, value in raw_limits.items():
                try:
                    number = float(value["value"] if isinstance(value, dict) else value)
                except (KeyError, TypeError, ValueError) as e:
                    raise CallError(400, f"Invalid QuotaConfig: bad limit for '{name}'") from e
                if number < 0:
                    raise CallError(400, f"Invalid QuotaConfig: negative limit for '{name}'")
                if name == "ports":
                    raise CallError(400, "Invalid QuotaConfig: quota on 'ports' is not "
                                         "supported (scalars only)")
                limits[str(name)] = number
            parsed.append((role, limits or None))
        for role, new_limits in parsed:
            try:
                self.allocator.update_quota(role, new_limits)
            except alloc.AllocatorError as e:
                raise CallError(400, f"Invalid QuotaConfig: {e}") from e
            self.registry.put_quota(role, new_limits)
            if new_limits is not None:
                self._rescind_over_quota(role)
        self.trigger_allocation()

    def _rescind_over_quota(self, role: str) -> None:
        for offer in [o for o in self.offers.values() if o.role == role]:
            self.rescind(offer)

    def operator_reserve(self, body: RawJson, *, unreserve: bool) -> None:
        """RESERVE_RESOURCES / UNRESERVE_RESOURCES: 202 when applied, 409 when impossible."""
        aid = id_value(body.get("agent_id"))
        if aid is None:
            raise CallError(400, "Failed to validate master::Call: Expecting 'agent_id'")
        agent = self.agents.get(aid)
        if agent is None or agent.recovered or agent.unreachable_time is not None:
            raise CallError(409, f"Agent {aid} is not registered")
        try:
            if unreserve:
                consumed, converted = calls.parse_unreserve(body.get("resources"))
            else:
                consumed, converted = calls.parse_reserve(
                    body.get("resources"), roles=None, principal=None
                )
        except ValueError as e:
            raise CallError(400, str(e)) from e
        available = self.allocator.available(AgentId(aid))
        if not available.contains(consumed):
            for offer in [o for o in self.offers.values() if o.agent_id == aid]:
                self.rescind(offer)
            available = self.allocator.available(AgentId(aid))
        if not available.contains(consumed):
            op = "UNRESERVE" if unreserve else "RESERVE"
            raise CallError(409, f"Invalid {op} Operation: {available} does not contain "
                                 f"{consumed}")
        self.allocator.convert(agent_id=AgentId(aid), framework_id=None, consumed=consumed,
                               converted=converted)
        agent.total = agent.total - consumed + converted
        self._persist_reservations(agent)
        self.trigger_allocation()

    # ------------------------------------------------------------------------------------------
    # Read-only views (operator API)

    def agent_raw(self, agent: state.Agent) -> RawJson:
        allocated = res.Resources()
        for r in agent.used().values():
            allocated = allocated + r
        offered = res.Resources()
        for offer in self.offers.values():
            if offer.agent_id == agent.agent_id:
                offered = offered + offer.resources
        raw: RawJson = {
            "agent_info": agent.info_raw(),
            "active": agent.active and agent.connected,
            "deactivated": False,
            "version": agent.version,
            "pid": agent.pid(),
            "registered_time": state.nanos(agent.registered_time),
            "total_resources": agent.total.to_raw(),
            "allocated_resources": allocated.to_raw(),
            "offered_resources": offered.to_raw(),
            "capabilities": [{"type": "MULTI_ROLE"}, {"type": "HIERARCHICAL_ROLE"},
                             {"type": "RESERVATION_REFINEMENT"}],
        }
        if agent.reregistered_time is not None:
            raw["reregistered_time"] = state.nanos(agent.reregistered_time)
        return raw

    def framework_raw(self, fw: state.Framework) -> RawJson:
        raw: RawJson = {
            "framework_info": fw.info,
            "active": fw.active,
            "connected": fw.connected,
            "recovered": fw.recovered,
            "registered_time": state.nanos(fw.registered_time),
            "offers": [self.offer_raw(o, fw=fw) for o in fw.offers.values()
                       if o.agent_id in self.agents],
            "inverse_offers": [],
            "allocated_resources": fw.allocated().to_raw(),
            "offered_resources": fw.offered().to_raw(),
        }
        if fw.reregistered_time is not None:
            raw["reregistered_time"] = state.nanos(fw.reregistered_time)
        if fw.unregistered_time is not None:
            raw["unregistered_time"] = state.nanos(fw.unregistered_time)
        return raw

    def get_agents(self) -> RawJson:
        return {
            "agents": [self.agent_raw(a) for a in self._registered_agents()],
            "recovered_agents": [a.info_raw() for a in self.agents.values() if a.recovered],
        }

    def get_frameworks(self) -> RawJson:
        return {
            "frameworks": [self.framework_raw(f) for f in self.frameworks.values()],
            "completed_frameworks": [self.framework_raw(f) for f in self.completed_frameworks],
        }

    def get_tasks(self) -> RawJson:
        tasks: list[RawJson] = []
        unreachable: list[RawJson] = []
        completed: list[RawJson] = []
        for fw in list(self.frameworks.values()) + list(self.completed_frameworks):
            tasks.extend(t.to_raw() for t in fw.tasks.values())
            unreachable.extend(t.to_raw() for t in fw.unreachable_tasks.values())
            completed.extend(t.to_raw() for t in fw.completed_tasks)
        return {"tasks": tasks, "unreachable_tasks": unreachable, "completed_tasks": completed}

    def get_executors(self) -> RawJson:
        return {
            "executors": [
                {"executor_info": ex.info, "agent_id": idv(ex.agent_id)}
                for a in self.agents.values() for ex in a.executors.values()
            ]
        }

    def get_state(self) -> RawJson:
        return {
            "get_tasks": self.get_tasks(),
            "get_executors": self.get_executors(),
            "get_frameworks": self.get_frameworks(),
            "get_agents": self.get_agents(),
        }

    def get_roles(self) -> RawJson:
        summary = self.allocator.role_summary()
        weights = self.allocator.weights()
        quotas = self.allocator.quotas()
        names = set(summary) | set(weights) | set(quotas)
        for fw in self.frameworks.values():
            names.update(fw.roles)
        roles = []
        for name in sorted(names):
            entry = summary.get(name)
            allocated = entry.allocated if entry is not None else res.Resources()
            offered = res.Resources()
            frameworks: list[str] = []
            for fw in self.frameworks.values():
                if name in fw.roles:
                    frameworks.append(fw.framework_id)
                for offer in fw.offers.values():
                    if offer.role == name:
                        offered = offered + offer.resources
            reserved = res.Resources()
            for agent in self._registered_agents():
                reserved = reserved + agent.total.reserved(name)
            role: RawJson = {
                "name": name,
                "weight": weights.get(name, 1.0),
                "frameworks": [idv(f) for f in frameworks],
                "resources": allocated.to_raw(),
                "allocated": allocated.to_raw(),
                "offered": offered.to_raw(),
                "reserved": reserved.to_raw(),
            }
            if name in quotas:
                role["quota"] = {
                    "role": name,
                    "limits": {k: {"value": v} for k, v in quotas[name].items()},
                }
            roles.append(role)
        return {"roles": roles}
