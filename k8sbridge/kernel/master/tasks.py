"""Tasks in the master: KILL, SHUTDOWN, MESSAGE, ACKNOWLEDGE, RECONCILE and status updates.

Why a layer: the task state machine as the master sees it (forwarding agents' updates,
generating its own for reconciliation, releasing resources on terminal states).
"""

from __future__ import annotations

import logging
import time

from k8sbridge.kernel.master import calls, state
from k8sbridge.kernel.master.base import (
    RawJson,
    _status,
    id_value,
    idv,
)
from k8sbridge.kernel.master.offers import OfferHandling
from k8sbridge.kernel.protocol import AgentId, FrameworkId

log = logging.getLogger(__name__)


class TaskHandling(OfferHandling):
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
                log.info("Dropping reconciliation of task %s for framework %s because %s not "
                         "yet reregistered with the master", tid, fw.framework_id,
                         f"agent {aid} has" if aid is not None else "some agents have")
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
            elif aid is not None and aid in self.gone_agents:
                status = _status(  # (5) Mesos: the agent is gone
                    task_id=tid,
                    state_="TASK_GONE_BY_OPERATOR" if fw.partition_aware else "TASK_LOST",
                    message="Reconciliation: Task is gone", reason="REASON_RECONCILIATION",
                    agent_id=aid,
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
