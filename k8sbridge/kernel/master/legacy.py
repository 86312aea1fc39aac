"""Mesos' legacy (v0) JSON views: ``/state``, ``/state-summary``, ``/version``, metrics.

Why apart from the v1 renderers: the legacy format is a different JSON (plain string ids,
resources as ``{"cpus": 1.0, "ports": "[31000-32000]"}``, times as float seconds) that tools such
as Marathon's UI, DC/OS CLIs and ``curl | jq`` scripts still read.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from k8sbridge.kernel import resources as res
from k8sbridge.kernel.master import calls
from k8sbridge.kernel.master import state as st

if TYPE_CHECKING:
    from k8sbridge.kernel.master.operations import OperatorHandling

RawJson = dict[str, Any]

BUILD_DATE = "2026-01-01 00:00:00"
BUILD_TIME = 1767225600.0


def version_info() -> RawJson:
    from k8sbridge.kernel.master.base import VERSION

    return {
        "version": VERSION,
        "build_date": BUILD_DATE,
        "build_time": BUILD_TIME,
        "build_user": "k8sbridge",
    }


def flags(master: OperatorHandling) -> dict[str, Any]:
    cfg = master.config
    return {
        "hostname": master.hostname,
        "ip": cfg.host,
        "port": master.port,
        "work_dir": str(cfg.work_dir) if cfg.work_dir else "",
        "registry": "replicated_log" if cfg.work_dir else "in_memory",
        "allocation_interval": f"{cfg.allocation_interval:g}secs",
        "agent_ping_timeout": f"{cfg.agent_ping_interval:g}secs",
        "max_agent_ping_timeouts": cfg.max_missed_pings,
        "offer_timeout": f"{cfg.offer_timeout:g}secs" if cfg.offer_timeout else "",
        "allocator": "hierarchical",
        "role_sorter": "drf",
        "framework_sorter": "drf",
        "min_allocatable_resources": "cpus:0.01|mem:32",
        "filter_gpu_resources": "true",
        "authenticate_frameworks": _bool(cfg.authenticate_frameworks),
        "authenticate_http_frameworks": _bool(cfg.authenticate_http_frameworks),
        "authenticate_http_readonly": _bool(cfg.authenticate_http_readonly),
        "authenticate_http_readwrite": _bool(cfg.authenticate_http_readwrite),
        "authenticate_agents": "false",
        "http_authenticators": cfg.http_authenticators,
        **({"http_framework_authenticators": cfg.http_framework_authenticators}
           if cfg.http_framework_authenticators is not None else {}),
        **({"credentials": cfg.credentials} if cfg.credentials is not None else {}),
        **({"acls": cfg.acls} if cfg.acls is not None else {}),
        "authorizers": "local",
    }


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _attrs(agent: st.Agent) -> RawJson:
    return {a.name: a.legacy_value() for a in agent.attributes}


def _task(task: st.Task) -> RawJson:
    out: RawJson = {
        "id": task.task_id,
        "name": task.info.get("name", ""),
        "framework_id": task.framework_id,
        "executor_id": task.executor_id or "",
        "slave_id": task.agent_id,
        "state": task.state,
        "resources": task.resources.to_legacy(),
        "role": task.role,
        "statuses": [
            {k: s[k] for k in ("state", "timestamp", "container_status", "healthy") if k in s}
            for s in task.statuses
        ],
    }
    labels = (task.info.get("labels") or {}).get("labels") if isinstance(
        task.info.get("labels"), dict) else None
    if labels:
        out["labels"] = labels
    for key in ("container", "health_check", "discovery"):
        if key in task.info:
            out[key] = task.info[key]
    return out


def _framework(master: OperatorHandling, fw: st.Framework) -> RawJson:
    info = fw.info
    used = fw.allocated(executors=master.all_executors())
    out: RawJson = {
        "id": fw.framework_id,
        "name": info.get("name", ""),
        "pid": "",
        "user": info.get("user", ""),
        "principal": info.get("principal", ""),
        "hostname": info.get("hostname", ""),
        "webui_url": info.get("webui_url", ""),
        "active": fw.active,
        "connected": fw.connected,
        "recovered": fw.recovered,
        "failover_timeout": info.get("failover_timeout", 0.0),
        "checkpoint": info.get("checkpoint", False),
        "registered_time": fw.registered_time,
        "unregistered_time": fw.unregistered_time or 0,
        "resources": (used + fw.offered()).to_legacy(),
        "allocated_resources": used.to_legacy(),
        "used_resources": used.to_legacy(),
        "offered_resources": fw.offered().to_legacy(),
        "capabilities": sorted(fw.capabilities),
        "tasks": [_task(t) for t in fw.tasks.values()],
        "unreachable_tasks": [_task(t) for t in fw.unreachable_tasks.values()],
        "completed_tasks": [_task(t) for t in fw.completed_tasks],
        "offers": [
            {
                "id": o.offer_id, "framework_id": o.framework_id, "slave_id": o.agent_id,
                "resources": o.resources.to_legacy(),
                "allocation_info": {"role": o.role},
            }
            for o in fw.offers.values()
        ],
        "executors": [
            {
                "executor_id": ex.executor_id, "name": ex.info.get("name", ""),
                "framework_id": ex.framework_id, "slave_id": ex.agent_id,
                "resources": ex.resources.to_legacy(),
                "type": ex.info.get("type", "CUSTOM"),
            }
            for a in master.agents.values() for (f, _), ex in a.executors.items()
            if f == fw.framework_id
        ],
        "labels": (info.get("labels") or {}).get("labels", []) if isinstance(
            info.get("labels"), dict) else [],
    }
    if "MULTI_ROLE" in fw.capabilities:
        out["roles"] = list(fw.roles)
    else:
        out["role"] = fw.roles[0] if fw.roles else "*"
    if fw.reregistered_time is not None:
        out["reregistered_time"] = fw.reregistered_time
    return out


def _slave(master: OperatorHandling, agent: st.Agent) -> RawJson:
    used = res.Resources()
    for r in agent.used().values():
        used = used + r
    offered = res.Resources()
    for offer in master.offers.values():
        if offer.agent_id == agent.agent_id:
            offered = offered + offer.resources
    reserved: dict[str, Any] = {}
    for role in sorted({r.role for r in agent.total if r.reservations}):
        reserved[role] = agent.total.reserved(role).to_legacy()
    out: RawJson = {
        "id": agent.agent_id,
        "hostname": agent.hostname,
        "port": agent.port,
        "attributes": _attrs(agent),
        "pid": agent.pid(),
        "registered_time": agent.registered_time,
        "resources": agent.total.to_legacy(),
        "used_resources": used.to_legacy(),
        "offered_resources": offered.to_legacy(),
        "reserved_resources": reserved,
        "unreserved_resources": agent.total.unreserved().to_legacy(),
        "reserved_resources_full": {
            role: agent.total.reserved(role).to_raw() for role in reserved
        },
        "active": agent.active and agent.connected,
        "deactivated": False,
        "version": agent.version,
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"],
    }
    if agent.reregistered_time is not None:
        out["reregistered_time"] = agent.reregistered_time
    if "domain" in agent.info:
        out["domain"] = agent.info["domain"]
    return out


def state(master: OperatorHandling) -> RawJson:
    from k8sbridge.kernel.master.base import VERSION

    registered = [
        a for a in master.agents.values() if not a.recovered and a.unreachable_time is None
    ]
    pid = f"master@{master.config.host}:{master.port}"
    return {
        "version": VERSION,
        "build_date": BUILD_DATE,
        "build_time": BUILD_TIME,
        "build_user": "k8sbridge",
        "start_time": master.start_time,
        "elected_time": master.start_time,
        "id": master.master_id,
        "pid": pid,
        "hostname": master.hostname,
        "capabilities": ["AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2"],
        "activated_slaves": float(sum(1 for a in registered if a.active and a.connected)),
        "deactivated_slaves": float(sum(1 for a in registered if not a.connected)),
        "unreachable_slaves": float(
            sum(1 for a in master.agents.values() if a.unreachable_time is not None)
        ),
        "leader": pid,
        "leader_info": master.master_info(),
        "log_dir": "",
        "flags": {k: str(v) for k, v in flags(master).items()},
        "slaves": [_slave(master, a) for a in registered],
        "recovered_slaves": [a.info_raw() for a in master.agents.values() if a.recovered],
        "frameworks": [_framework(master, f) for f in master.frameworks.values()],
        "completed_frameworks": [_framework(master, f) for f in master.completed_frameworks],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    }


def state_summary(master: OperatorHandling) -> RawJson:
    registered = [
        a for a in master.agents.values() if not a.recovered and a.unreachable_time is None
    ]
    slaves = []
    for agent in registered:
        entry = _slave(master, agent)
        counts = _counts(agent.tasks.values())
        entry.update(counts)
        entry["framework_ids"] = sorted({f for (f, _) in agent.tasks})
        slaves.append(entry)
    frameworks = []
    for fw in master.frameworks.values():
        entry = {k: v for k, v in _framework(master, fw).items()
                 if k not in ("tasks", "unreachable_tasks", "completed_tasks", "offers",
                              "executors")}
        entry.update(_counts(list(fw.tasks.values()) + list(fw.completed_tasks)))
        entry["slave_ids"] = sorted({t.agent_id for t in fw.tasks.values()})
        frameworks.append(entry)
    return {"hostname": master.hostname, "cluster": "", "slaves": slaves,
            "frameworks": frameworks}


def _counts(tasks: Any) -> dict[str, int]:
    counts = {s: 0 for s in sorted(calls.TASK_STATES)}
    for task in tasks:
        counts[task.state] = counts.get(task.state, 0) + 1
    return counts


def roles(master: OperatorHandling) -> RawJson:
    out = []
    for role in master.roles_detail()["roles"]:
        out.append({
            "name": role["name"],
            "weight": role["weight"],
            "frameworks": [f["value"] for f in role["frameworks"]],
            "resources": res.Resources.parse(role["allocated"]).to_legacy(),
        })
    return {"roles": out}


def metrics(master: OperatorHandling) -> dict[str, float]:
    registered = [
        a for a in master.agents.values() if not a.recovered and a.unreachable_time is None
    ]
    out: dict[str, float] = {
        "master/elected": 1.0,
        "master/uptime_secs": max(0.0, time.time() - master.start_time),
        "master/slaves_active": float(sum(1 for a in registered if a.connected)),
        "master/slaves_connected": float(sum(1 for a in registered if a.connected)),
        "master/slaves_disconnected": float(sum(1 for a in registered if not a.connected)),
        "master/slaves_inactive": 0.0,
        "master/slaves_unreachable": float(
            sum(1 for a in master.agents.values() if a.unreachable_time is not None)
        ),
        "master/frameworks_active": float(sum(1 for f in master.frameworks.values() if f.active)),
        "master/frameworks_connected": float(
            sum(1 for f in master.frameworks.values() if f.connected)
        ),
        "master/frameworks_disconnected": float(
            sum(1 for f in master.frameworks.values() if not f.connected)
        ),
        "master/frameworks_inactive": float(
            sum(1 for f in master.frameworks.values() if not f.active)
        ),
        "master/outstanding_offers": float(len(master.offers)),
        "master/tasks_launched_total": float(master.metrics["tasks_launched"]),
    }
    state_counts: dict[str, int] = {}
    for fw in master.frameworks.values():
        for task in fw.tasks.values():
            state_counts[task.state] = state_counts.get(task.state, 0) + 1
    for s in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING",
              "TASK_UNREACHABLE"):
        out[f"master/tasks_{s.removeprefix('TASK_').lower()}"] = float(state_counts.get(s, 0))
    for name, value in master.metrics.items():
        if name.startswith(("messages_", "tasks_total_")):
            out[f"master/{name}"] = float(value)
    total = res.Resources()
    used = res.Resources()
    for agent in registered:
        total = total + agent.total
        for r in agent.used().values():
            used = used + r
    for name in ("cpus", "mem", "disk", "gpus"):
        t = total.scalar(name)
        u = used.scalar(name)
        out[f"master/{name}_total"] = t
        out[f"master/{name}_used"] = u
        out[f"master/{name}_percent"] = (u / t) if t else 0.0
    return out
