"""The Mesos domain kept current from the master's operator event stream (SUBSCRIBE), one
event at a time, with no I/O.

Why events and not GET_STATE every few seconds: with 1,000 tasks the master built and
serialised its whole state every poll and this process parsed it and rebuilt every name, most
of the time for nothing. The stream gives the state once (SUBSCRIBED) and then each change:
TASK_ADDED (a ``Task``), TASK_UPDATED (the framework id, the new ``status`` and the task's
latest ``state``), AGENT_ADDED / AGENT_REMOVED, FRAMEWORK_ADDED / FRAMEWORK_UPDATED /
FRAMEWORK_REMOVED (``include/mesos/v1/master/master.proto``, ``Event``). Each event changes
the records of the tasks it concerns in a counted ``table.Zone``; the naming rules stay
``mesosnames``' pure functions, so a name is the same whether it came from a poll or the
stream. A task in a terminal state is forgotten: Mesos never runs it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from k8sbridge.dns import mesosnames
from k8sbridge.dns import table as dns_table

__all__ = ["TERMINAL_STATES", "MesosZone"]

# mesos::internal::protobuf::isTerminalState
TERMINAL_STATES = frozenset({
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED",
    "TASK_GONE", "TASK_GONE_BY_OPERATOR"})

TaskKey = tuple[str, str]  # (framework id, task id)


def _body(event: Mapping[str, Any], key: str) -> dict[str, Any]:
    found = event.get(key)
    return found if isinstance(found, dict) else {}


class MesosZone:
    """Agents, frameworks and tasks as the last events told them, and their names."""

    def __init__(self, *, domain: str = mesosnames.DEFAULT_DOMAIN,
                 ttl: int = dns_table.DEFAULT_TTL) -> None:
        self.origin = domain.lower().strip(".") + "."
        self._zone = dns_table.Zone(origin=self.origin, ttl=ttl)
        self._agents: dict[str, str] = {}
        self._frameworks: dict[str, str] = {}
        self._tasks: dict[TaskKey, mesosnames.Task] = {}
        self._entries: dict[TaskKey, list[dns_table.Entry]] = {}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], *, domain: str = mesosnames.DEFAULT_DOMAIN,
                   ttl: int = dns_table.DEFAULT_TTL) -> MesosZone:
        """The zone of a GET_STATE body (SUBSCRIBED's ``get_state``)."""
        zone = cls(domain=domain, ttl=ttl)
        agents, frameworks, tasks = mesosnames.parse_state(state)
        zone._agents, zone._frameworks = agents, frameworks
        for task in tasks.values():
            zone._put(task)
        return zone

    def table(self) -> dns_table.Table:
        """The current names (a new object after each change that changed a record)."""
        return self._zone.table()

    @property
    def task_count(self) -> int:
        return len(self._tasks)

    def apply(self, event: Mapping[str, Any]) -> None:
        """One event of the stream other than SUBSCRIBED and HEARTBEAT (those are the
        caller's: a new subscription replaces the zone whole)."""
        kind = event.get("type")
        if kind == "TASK_ADDED":
            task = mesosnames.parse_task(_body(event, "task_added").get("task"))
            if task is not None:
                self._put(task)
        elif kind == "TASK_UPDATED":
            self._task_updated(_body(event, "task_updated"))
        elif kind == "AGENT_ADDED":
            agent = mesosnames.agent_entry(_body(event, "agent_added").get("agent"))
            if agent is not None and self._agents.get(agent[0]) != agent[1]:
                self._agents[agent[0]] = agent[1]
                self._refresh(lambda t: t.agent_id == agent[0])
        elif kind == "AGENT_REMOVED":
            agent_id = (_body(event, "agent_removed").get("agent_id") or {}).get("value")
            if isinstance(agent_id, str) and self._agents.pop(agent_id, None) is not None:
                self._refresh(lambda t: t.agent_id == agent_id)
        elif kind in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED"):
            body = _body(event, "framework_added" if kind == "FRAMEWORK_ADDED"
                         else "framework_updated")
            framework = mesosnames.framework_entry((body.get("framework") or {})
                                                   .get("framework_info"))
            if framework is not None and self._frameworks.get(framework[0]) != framework[1]:
                self._frameworks[framework[0]] = framework[1]
                self._refresh(lambda t: t.framework_id == framework[0])
        elif kind == "FRAMEWORK_REMOVED":
            info = _body(event, "framework_removed").get("framework_info") or {}
            fid = (info.get("id") or {}).get("value") if isinstance(info, dict) else None
            if isinstance(fid, str):
                self._frameworks.pop(fid, None)
                for key in [k for k in self._tasks if k[0] == fid]:
                    self._drop(key)

    def _task_updated(self, body: Mapping[str, Any]) -> None:
        fid = (body.get("framework_id") or {}).get("value")
        status = body.get("status")
        tid = ((status or {}).get("task_id") or {}).get("value") \
            if isinstance(status, dict) else None
        state = body.get("state") or (status or {}).get("state")
        task = self._tasks.get((str(fid), str(tid)))
        if task is None or not isinstance(state, str):
            return  # a task we were never told about: its TASK_ADDED names it
        self._put(mesosnames.updated(task, state=state, status=status))

    def _put(self, task: mesosnames.Task) -> None:
        key = (task.framework_id, task.task_id)
        if task.state in TERMINAL_STATES:
            self._drop(key)
            return
        self._tasks[key] = task
        self._set_entries(key, task)

    def _drop(self, key: TaskKey) -> None:
        self._tasks.pop(key, None)
        old = self._entries.pop(key, None)
        if old:
            self._zone.remove(old)

    def _set_entries(self, key: TaskKey, task: mesosnames.Task) -> None:
        new = mesosnames.task_entries(task, origin=self.origin, frameworks=self._frameworks,
                                      agents=self._agents)
        old = self._entries.get(key, [])
        if new == old:
            return
        if old:
            self._zone.remove(old)
        if new:
            self._zone.add(new)
            self._entries[key] = new
        else:
            self._entries.pop(key, None)

    def _refresh(self, which: Callable[[mesosnames.Task], bool]) -> None:
        """Recompute the records of the tasks ``which`` selects (an agent's or a
        framework's)."""
        for key, task in list(self._tasks.items()):
            if which(task):
                self._set_entries(key, task)
