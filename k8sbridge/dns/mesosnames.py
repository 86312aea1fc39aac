"""Mesos-DNS names for the running tasks of every framework, from the master's GET_STATE, as a
pure function (``build(state) -> Table``).

Why Mesos-DNS's rules, unchanged: Marathon apps and their clients already use these names, and
a Kubernetes pod that resolves ``<task>.<framework>.mesos`` should find what Mesos-DNS would
have given it. For each task in ``TASK_RUNNING`` of a framework (Mesos-DNS
``records/generator.go``):

- ``<task>.<framework>.mesos`` A: the task's address (the container's IP from the latest
  status' ``network_infos``, else the agent's); ``<task>.<framework>.slave.mesos`` A: the
  agent's address; and both again under the task's canonical name
  ``<task>-<hash of the task id>-<agent id tail>.<framework>``, unique per task.
- ``_<task>._tcp.<framework>.mesos`` and ``_udp`` SRV for each port of the task's ``ports``
  resources (target: the canonical name under ``slave``, the agent's address) and, with
  ``discovery`` info, for each discovery port with its protocol (target: the canonical name,
  the task's address), also under ``_<task>._<proto>.<framework>.slave.mesos``.
- The task's name is its ``discovery.name`` when it has one. Names become labels as
  Mesos-DNS's RFC 1123 mode makes them: lowercased, every other character than ``a-z0-9-``
  a ``-``, no ``-`` at either end, at most 63 characters; a framework name's dots separate
  labels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from k8sbridge.dns import table as dns_table

__all__ = [
    "DEFAULT_DOMAIN",
    "Task",
    "agent_entry",
    "build",
    "framework_entry",
    "label",
    "parse_state",
    "parse_task",
    "task_entries",
    "updated",
]

DEFAULT_DOMAIN = "mesos"
MAX_LABEL = 63


def label(text: str) -> str:
    """``text`` as one RFC 1123 label, as Mesos-DNS mangles names ("" if nothing is left)."""
    out = []
    for ch in text.lower()[:MAX_LABEL * 2]:
        out.append(ch if ("a" <= ch <= "z" or "0" <= ch <= "9") else "-")
    return "".join(out).strip("-")[:MAX_LABEL].strip("-")


def _labels(text: str) -> tuple[str, ...]:
    """A framework's name as labels: each dot-separated part mangled, empty parts dropped."""
    return tuple(part for part in (label(p) for p in text.split(".")) if part)


def _ipv4(host: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        return None


def _agent_address(agent: Mapping[str, Any]) -> str | None:
    """The agent's address: the host of its ``pid`` (``slave(1)@IP:PORT``), else its
    hostname when that is an address."""
    pid = agent.get("pid")
    if isinstance(pid, str) and "@" in pid:
        found = _ipv4(pid.split("@", 1)[1].rsplit(":", 1)[0])
        if found:
            return found
    info = agent.get("agent_info") or {}
    return _ipv4(str(info.get("hostname") or ""))


def _status_address(status: Any) -> str | None:
    """The container's IPv4 address in one status (None: it carries none)."""
    if not isinstance(status, dict):
        return None
    for info in (status.get("container_status") or {}).get("network_infos") or []:
        for ip in (info or {}).get("ip_addresses") or []:
            found = _ipv4(str((ip or {}).get("ip_address") or ""))
            if found:
                return found
    return None


def _task_address(task: Mapping[str, Any]) -> str | None:
    """The container's IPv4 address from the latest status that carries one."""
    statuses = task.get("statuses") or []
    for status in reversed(statuses if isinstance(statuses, list) else []):
        found = _status_address(status)
        if found:
            return found
    return None


def _resource_ports(task: Mapping[str, Any]) -> Iterator[int]:
    for resource in task.get("resources") or []:
        if not isinstance(resource, dict) or resource.get("name") != "ports":
            continue
        for r in (resource.get("ranges") or {}).get("range") or []:
            begin, end = r.get("begin"), r.get("end")
            if isinstance(begin, int) and isinstance(end, int) and 0 < begin <= end < 65536:
                yield from range(begin, min(end, begin + 1000) + 1)


def _discovery_ports(task: Mapping[str, Any]) -> Iterator[tuple[int, str]]:
    ports = ((task.get("discovery") or {}).get("ports") or {}).get("ports") or []
    for p in ports:
        number = p.get("number") if isinstance(p, dict) else None
        if isinstance(number, int) and 0 < number < 65536:
            proto = label(str(p.get("protocol") or "tcp")) or "tcp"
            yield number, proto


def _hash(task_id: str) -> str:
    return hashlib.sha1(task_id.encode()).hexdigest()[:5]


@dataclasses.dataclass(frozen=True, slots=True)
class Task:
    """What the names of one task depend on, taken from a v1 ``Task``."""

    framework_id: str
    task_id: str
    agent_id: str
    name: str  # the label: discovery name, else the task's name
    state: str
    address: str | None  # the container's, from the latest status carrying one
    ports: tuple[int, ...] = ()
    discovery_ports: tuple[tuple[int, str], ...] = ()
    discovery: bool = False


def parse_task(task: Any) -> Task | None:
    """A v1 ``Task`` (GET_STATE, TASK_ADDED) as names need it (None: not a task)."""
    if not isinstance(task, dict):
        return None
    fid = (task.get("framework_id") or {}).get("value")
    tid = (task.get("task_id") or {}).get("value")
    if not isinstance(fid, str) or not isinstance(tid, str):
        return None
    discovery_name = str((task.get("discovery") or {}).get("name") or "")
    return Task(framework_id=fid, task_id=tid,
                agent_id=str((task.get("agent_id") or {}).get("value")),
                name=label(discovery_name or str(task.get("name") or "")),
                state=str(task.get("state") or ""), address=_task_address(task),
                ports=tuple(_resource_ports(task)), discovery_ports=tuple(_discovery_ports(task)),
                discovery=bool(task.get("discovery")))


def updated(task: Task, *, state: str, status: Any) -> Task:
    """``task`` after a TASK_UPDATED event (its latest ``state`` and the new ``status``)."""
    address = _status_address(status) or task.address
    agent_id = str(((status or {}).get("agent_id") or {}).get("value") or task.agent_id) \
        if isinstance(status, dict) else task.agent_id
    return dataclasses.replace(task, state=state, address=address, agent_id=agent_id)


def agent_entry(agent: Any) -> tuple[str, str] | None:
    """(agent id, address) of a GET_AGENTS agent (None: no id or no address)."""
    agent = agent if isinstance(agent, dict) else {}
    agent_id = ((agent.get("agent_info") or {}).get("id") or {}).get("value")
    address = _agent_address(agent)
    return (agent_id, address) if isinstance(agent_id, str) and address else None


def framework_entry(info: Any) -> tuple[str, str] | None:
    """(framework id, its labels joined) of a FrameworkInfo (None: no id or no name)."""
    info = info if isinstance(info, dict) else {}
    fid = (info.get("id") or {}).get("value")
    labels = _labels(str(info.get("name") or ""))
    return (fid, ".".join(labels)) if isinstance(fid, str) and labels else None


def parse_state(state: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str],
                                                   dict[tuple[str, str], Task]]:
    """Agents (id -> address), frameworks (id -> name) and tasks of a GET_STATE body."""
    agents = dict(e for e in map(agent_entry, (state.get("get_agents") or {}).get("agents")
                                 or []) if e is not None)
    frameworks = dict(e for e in (framework_entry((fw or {}).get("framework_info")
                                                  if isinstance(fw, dict) else None)
                                  for fw in (state.get("get_frameworks") or {}).get("frameworks")
                                  or []) if e is not None)
    tasks = {}
    for raw in (state.get("get_tasks") or {}).get("tasks") or []:
        task = parse_task(raw)
        if task is not None:
            tasks[(task.framework_id, task.task_id)] = task
    return agents, frameworks, tasks


def build(state: Mapping[str, Any], *, domain: str = DEFAULT_DOMAIN,
          ttl: int = dns_table.DEFAULT_TTL) -> dns_table.Table:
    """The ``domain`` zone from a GET_STATE ``get_state`` body."""
    origin = domain.lower().strip(".") + "."
    builder = dns_table.TableBuilder(origin=origin, ttl=ttl)
    agents, frameworks, tasks = parse_state(state)
    for task in tasks.values():
        for name, record in task_entries(task, origin=origin, frameworks=frameworks,
                                         agents=agents):
            builder.add(name, record)
    return builder.build()


def task_entries(task: Task, *, origin: str, frameworks: Mapping[str, str],
                 agents: Mapping[str, str]) -> list[dns_table.Entry]:
    """The records of ``task`` (none unless it runs, on a known agent, in a named
    framework)."""
    framework = frameworks.get(task.framework_id)
    agent_address = agents.get(task.agent_id)
    if task.state != "TASK_RUNNING" or framework is None or agent_address is None \
            or not task.name:
        return []
    name = task.name
    address = task.address or agent_address
    tail = label(task.agent_id.rsplit("-", 1)[-1]) or "0"
    canonical = label(f"{name}-{_hash(task.task_id)}-{tail}")
    plain = f"{framework}.{origin}"
    slave = f"{framework}.slave.{origin}"
    out: list[dns_table.Entry] = [
        (f"{name}.{plain}", dns_table.a_or_aaaa(address)),
        (f"{canonical}.{plain}", dns_table.a_or_aaaa(address)),
        (f"{name}.{slave}", dns_table.a_or_aaaa(agent_address)),
        (f"{canonical}.{slave}", dns_table.a_or_aaaa(agent_address)),
    ]
    # with discovery info the plain names' SRVs are the discovery ports' alone (Mesos-DNS)
    resource_rests = (slave,) if task.discovery else (plain, slave)
    for port in task.ports:
        record = dns_table.srv(port=port, target=f"{canonical}.{slave}", weight=0)
        for proto in ("_tcp", "_udp"):
            for rest in resource_rests:
                out.append((f"_{name}.{proto}.{rest}", record))
    for port, proto in task.discovery_ports:
        record = dns_table.srv(port=port, target=f"{canonical}.{plain}", weight=0)
        for rest in (plain, slave):
            out.append((f"_{name}._{proto}.{rest}", record))
    return out
