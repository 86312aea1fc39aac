"""Agents the operator marks gone (MARK_AGENT_GONE), as Apache Mesos' master handles them.

Why a layer: "gone" is the one agent state with no way back. ``Master::Http::_markAgentGone``
checks (already gone: 200; not registered, recovered or unreachable: 404), the registry moves
the agent to its gone list (``MarkSlaveGone``) before anything else changes, then
``Master::markGone`` acts on what the agent was:

- registered: the agent is told to shut down ("Agent has been marked gone") and removed as
  ``__removeSlave`` removes an agent with no unreachable time: out of the allocator first, its
  tasks TASK_GONE_BY_OPERATOR / REASON_AGENT_REMOVED_BY_OPERATOR to partition-aware frameworks
  (TASK_LOST / REASON_AGENT_REMOVED to the others) and into the completed tasks, its executors
  dropped, its offers rescinded, FAILURE (agent lost) to every connected framework. Mesos sends
  operator subscribers no AGENT_REMOVED on this path, only the tasks' TASK_UPDATED;
- unreachable: its unreachable tasks get the same updates and move to the completed tasks;
- recovered from the registry and not yet re-registered: nothing more (Mesos has no task
  metadata for it and keeps it among the recovered agents, MESOS-9739), except that it is no
  longer marked unreachable when the re-registration timeout passes.

From then on a re-registration under that id is refused with a shutdown (``agents``),
reconciliation of an unknown task on it answers TASK_GONE_BY_OPERATOR (``tasks``), and
neither GET_AGENTS nor ``/state`` lists it; a restarted master reads the gone list back.
"""

from __future__ import annotations

import logging
import time

from k8sbridge.kernel.master import state
from k8sbridge.kernel.master.agents import GONE_MESSAGE, AgentHandling
from k8sbridge.kernel.master.base import RawJson, _status, idv
from k8sbridge.kernel.master.errors import CallError
from k8sbridge.kernel.protocol import AgentId

log = logging.getLogger(__name__)


def _gone_state(fw: state.Framework) -> tuple[str, str]:
    """The state and reason a framework is told for a task of an agent marked gone."""
    if fw.partition_aware:
        return "TASK_GONE_BY_OPERATOR", "REASON_AGENT_REMOVED_BY_OPERATOR"
    return "TASK_LOST", "REASON_AGENT_REMOVED"


def _update(task: state.Task, status: RawJson) -> None:
    """``Master::updateTask`` for a master-generated update: a terminal task keeps its state;
    the status is recorded (replacing a last one of the same state); no uuid, so the task's
    status update state is left as the agent last reported it."""
    if not task.terminal:
        task.state = str(status["state"])
    if task.statuses and task.statuses[-1].get("state") == status["state"]:
        task.statuses.pop()
    task.statuses.append(status)


class GoneHandling(AgentHandling):
    def mark_agent_gone(self, agent_id: str) -> None:
        """MARK_AGENT_GONE for an authorized caller; ``CallError(404)`` for an unknown agent."""
        log.info("Marking agent '%s' as gone", agent_id)
        if agent_id in self.gone_agents:
            log.warning("Not marking agent '%s' as gone because it has already transitioned "
                        "to gone", agent_id)
            return
        agent = self.agents.get(agent_id)
        if agent is None:
            raise CallError(404, f"Agent '{agent_id}' not found")
        now = time.time()
        self.registry.mark_gone(agent_id, when=now)
        self.gone_agents[agent_id] = now
        if agent.recovered:
            return
        del self.agents[agent_id]
        if agent.unreachable_time is not None:
            self._unreachable_tasks_gone(agent_id)
            return
        if agent.conn is not None:
            conn, agent.conn = agent.conn, None
            conn.send({"type": "SHUTDOWN", "message": GONE_MESSAGE})
            conn.close()
        agent.active = False
        self._remove_gone_agent(agent)

    def _remove_gone_agent(self, agent: state.Agent) -> None:
        """``__removeSlave`` with no unreachable time."""
        aid = agent.agent_id
        if aid in self._in_allocator:
            self.allocator.remove_agent(AgentId(aid))
            self._in_allocator.discard(aid)
        for (fid, tid), task in list(agent.tasks.items()):
            del agent.tasks[(fid, tid)]
            task.resources_released = True
            fw = self.frameworks.get(fid)
            if fw is None:
                continue
            fw.tasks.pop(tid, None)
            new_state, reason = _gone_state(fw)
            status = _status(task_id=tid, state_=new_state, message=GONE_MESSAGE, reason=reason,
                             agent_id=aid, executor_id=task.executor_id)
            _update(task, status)
            fw.completed_tasks.append(task)
            self._forward_status(fw, status)
        agent.executors.clear()
        for offer in [o for o in self.offers.values() if o.agent_id == aid]:
            self.rescind(offer)
        for fw in self.frameworks.values():
            self._send(fw, {"type": "FAILURE", "failure": {"agent_id": idv(aid)}})
        log.info("Removed agent %s (%s): %s", aid, agent.hostname, GONE_MESSAGE)

    def _unreachable_tasks_gone(self, agent_id: str) -> None:
        """``markGone`` of an unreachable agent: its unreachable tasks become completed."""
        for fw in list(self.frameworks.values()):
            for tid, task in list(fw.unreachable_tasks.items()):
                if task.agent_id != agent_id:
                    continue
                new_state, reason = _gone_state(fw)
                status = _status(task_id=tid, state_=new_state, message=GONE_MESSAGE,
                                 reason=reason, agent_id=agent_id,
                                 executor_id=task.executor_id)
                _update(task, status)
                self._forward_status(fw, status)
                fw.completed_tasks.append(task)
                del fw.unreachable_tasks[tid]
