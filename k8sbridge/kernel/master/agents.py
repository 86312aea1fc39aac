"""Agents in the master: the link, (re-)registration, pings, disconnection and unreachability.

Why a layer: Mesos' ``registerSlave``/``reregisterSlave`` and the ``SlaveObserver`` ping rules
(``--agent_ping_timeout`` x ``--max_agent_ping_timeouts``) in one place. An agent marked gone
(``gone``) is refused here for good: its re-registration gets a shutdown, as in Mesos.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from k8sbridge.kernel import link
from k8sbridge.kernel import resources as res
from k8sbridge.kernel.master import calls, state
from k8sbridge.kernel.master.base import (
    VERSION,
    AgentConn,
    RawJson,
    _status,
    _transition,
    apply_reservations,
    id_value,
    idv,
)
from k8sbridge.kernel.master.tasks import TaskHandling
from k8sbridge.kernel.protocol import AgentId, FrameworkId

log = logging.getLogger(__name__)

GONE_MESSAGE = "Agent has been marked gone"  # Mesos' ShutdownMessage and task update message


class AgentHandling(TaskHandling):
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
        """REGISTER (no id yet) or RE-REGISTER from an agent; None if the message is refused."""
        info = message.get("agent_info")
        if isinstance(info, dict) and id_value(info.get("id")) in self.gone_agents:
            # Before validating it, as ``Master::reregisterSlave``: shut down, never admitted.
            log.warning("Refusing re-registration of agent at %s because it is already marked "
                        "gone", conn.stream.peer)
            conn.send({"type": "SHUTDOWN", "message": GONE_MESSAGE})
            return None
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
        info = {k: v for k, v in info.items() if k != "id"}
        if aid is None:
            return self._register_new(conn, message, info, static)
        return self._reregister(conn, message, aid, info, static)

    def _register_new(self, conn: AgentConn, message: RawJson, info: RawJson,
                      static: res.Resources) -> state.Agent:
        aid = self._new_agent_id()
        agent = state.Agent(agent_id=aid, info=info, total=static, registered_time=time.time(),
                            version=str(message.get("version", VERSION)))
        self.agents[aid] = agent
        agent.conn = conn
        self._admit(agent)
        log.info("agent %s (%s) registered with %s", aid, agent.hostname, static)
        conn.send({"type": "REGISTERED", "agent_id": idv(aid)})
        self.trigger_allocation()
        return agent

    def _reregister(self, conn: AgentConn, message: RawJson, aid: str, info: RawJson,
                    static: res.Resources) -> state.Agent:
        """``Master::reregisterSlave``: refresh the agent, then reconcile what it reports:
        frameworks, tasks (and tasks it no longer has), executors; then readmit it."""
        agent, was_unreachable = self._refresh_agent(conn, message, aid, info, static)
        self._reconcile_frameworks(message)
        reported, kills, shutdown = self._reconcile_tasks(agent, message,
                                                          was_unreachable=was_unreachable)
        self._drop_unreported_tasks(agent, reported)
        self._reconcile_executors(agent, message)
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

    def _refresh_agent(self, conn: AgentConn, message: RawJson, aid: str, info: RawJson,
                       static: res.Resources) -> tuple[state.Agent, bool]:
        """The agent record, new or known, with this connection, info and totals (dynamic
        reservations kept); also whether it had been unreachable."""
        now = time.time()
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
        return agent, was_unreachable

    def _reconcile_frameworks(self, message: RawJson) -> None:
        """Frameworks the agent runs tasks for that this master does not know are recovered."""
        for fi in calls.as_list(message.get("frameworks")):
            fid = id_value(fi.get("id")) if isinstance(fi, dict) else None
            if fid and fid not in self.frameworks and fid not in self.completed_ids:
                self._recover_framework(fi)

    def _reconcile_tasks(self, agent: state.Agent, message: RawJson, *, was_unreachable: bool
                         ) -> tuple[set[tuple[str, str]], list[tuple[str, str]], set[str]]:
        """Adopt the reported tasks; returns (kept, to kill, frameworks to shut down): tasks of
        completed frameworks, of kills pending while away, or of non-partition-aware
        frameworks whose agent had been unreachable are not kept."""
        kills: list[tuple[str, str]] = []
        shutdown: set[str] = set()
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
            if fw.tasks.get(tid) is None:
                self._adopt_task(fw, agent, raw, tid)
        agent.kill_on_return.clear()
        return reported, kills, shutdown

    def _adopt_task(self, fw: state.Framework, agent: state.Agent, raw: RawJson,
                    tid: str) -> None:
        task = fw.unreachable_tasks.pop(tid, None)
        if task is None:
            task = self._task_from_report(fw, agent, raw)
        else:
            task.unreachable_time = None
            task.resources_released = False  # held again once the agent is admitted
            if raw.get("state") in calls.TASK_STATES:
                task.state = str(raw["state"])
                task.status_update_state = str(raw.get("status_update_state") or raw["state"])
                task.status_update_uuid = raw.get("status_update_uuid")
        fw.tasks[tid] = task
        agent.tasks[(fw.framework_id, tid)] = task
        if task.terminal:
            task.resources_released = True

    def _drop_unreported_tasks(self, agent: state.Agent, reported: set[tuple[str, str]]
                               ) -> None:
        """Live tasks the agent no longer has: TASK_LOST (TASK_DROPPED if partition-aware)."""
        for key, task in list(agent.tasks.items()):
            if key in reported or task.terminal:
                continue
            fw = self.frameworks.get(task.framework_id)
            if fw is None:
                continue
            status = _status(
                task_id=task.task_id,
                state_="TASK_DROPPED" if fw.partition_aware else "TASK_LOST",
                message="Task was not found on the agent when it re-registered",
                reason="REASON_RECONCILIATION", agent_id=agent.agent_id,
                executor_id=task.executor_id,
            )
            _transition(task, status)
            self._remove_task(task)  # gives its resources back if the agent is allocated
            self._forward_status(fw, status)

    def _reconcile_executors(self, agent: state.Agent, message: RawJson) -> None:
        """Executors of known frameworks that the master does not track yet are adopted."""
        for ex_raw in calls.as_list(message.get("executors")):
            if not isinstance(ex_raw, dict):
                continue
            fid = id_value(ex_raw.get("framework_id")) or ""
            eid = id_value(ex_raw.get("executor_id")) or ""
            if not fid or not eid or fid not in self.frameworks or (fid, eid) in agent.executors:
                continue
            try:
                ex_res = res.Resources.parse(ex_raw.get("resources") or [])
            except res.ResourceError:
                ex_res = res.Resources()
            fw_roles = self.frameworks[fid].roles
            if any(r.allocation_role is None for r in ex_res) and fw_roles:
                ex_res = ex_res.allocated_to(fw_roles[0])
            agent.executors[(fid, eid)] = state.Executor(
                framework_id=fid, agent_id=agent.agent_id, executor_id=eid, info=ex_raw,
                resources=ex_res,
            )

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
            if agent.unreachable_time is not None or agent.agent_id in self.gone_agents:
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
