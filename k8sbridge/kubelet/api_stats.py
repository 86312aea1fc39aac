"""``/stats/summary``: node, pod and container usage from the agents' container statistics.

Why a module: cpu rates need two samples (kept per pod and container), and memory figures
are summed from the Mesos executors' statistics the way the kubelet reports cgroups.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import api_base

__all__ = ["StatsRoutes"]

log = logging.getLogger(__name__)


_MIN_RATE_WINDOW = 0.5  # seconds between the two cpu samples of a usageNanoCores figure


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _index_usage(agent_id: str, containers: list[dict[str, Any]], state: dict[str, Any]
                 ) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Key an agent's GET_CONTAINERS statistics by executor id (top-level containers) and by
    task id (nested containers, matched through the tasks' latest container_status)."""
    nested_of: dict[str, str] = {}
    for fw in state.get("frameworks") or []:
        for ex in (fw.get("executors") or []) if isinstance(fw, dict) else []:
            for task in (ex.get("tasks") or []) if isinstance(ex, dict) else []:
                for st in reversed(task.get("statuses") or []):
                    cid = ((st.get("container_status") or {}).get("container_id") or {})
                    if isinstance(cid, dict) and cid.get("parent") and cid.get("value"):
                        nested_of[str(cid["value"])] = str(task.get("id") or "")
                        break
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in containers:
        usage = c.get("resource_statistics")
        cid = c.get("container_id") or {}
        if not isinstance(usage, dict) or not isinstance(cid, dict):
            continue
        if cid.get("parent"):
            task_id = nested_of.get(str(cid.get("value") or ""))
            if task_id:
                out[(agent_id, "task", task_id)] = usage
        else:
            eid = str((c.get("executor_id") or {}).get("value") or "")
            if eid:
                out[(agent_id, "executor", eid)] = usage
    return out


class StatsRoutes(api_base.ServerBase):
    """``/stats/summary`` from the agents' container statistics."""

    async def _stats(self, request: web.Request) -> web.Response:
        """stats/v1alpha1 Summary: each pod's and container's cpu and memory from its agent's
        v1 GET_CONTAINERS ResourceStatistics (pod = its executor containers, container = its
        task's nested container, or the executor when it runs that task alone). usageNanoCores
        comes from this and the previous sample of the same container."""
        pods = self._locator.running_pods() if self._locator else []
        agents = self._agents.agents if self._agents is not None else {}
        now = time.time()
        placed: list[tuple[dict[str, Any], list[tuple[str, str, str, str]]]] = []
        wanted: set[str] = set()
        for p in pods:
            meta = p.get("metadata") or {}
            where = []
            for c in (p.get("spec") or {}).get("containers") or []:
                name = str(c.get("name") or "")
                found = self._locator.locate(
                    namespace=str(meta.get("namespace") or "default"),
                    name=str(meta.get("name") or ""), container=name, previous=False,
                ) if self._locator else None
                if found is None or found[3]:
                    continue
                where.append((name, str(found[0]), found[1], found[2]))
                wanted.add(str(found[0]))
            placed.append((p, where))
        usage = await self._usage_on({a: agents[a].address for a in wanted if a in agents})
        seen: set[str] = set()
        out = []
        for p, where in placed:
            meta = p.get("metadata") or {}
            uid = str(meta.get("uid") or "")
            start = (p.get("status") or {}).get("startTime") or _iso(now)
            executors = {(agent_id, eid) for _, agent_id, eid, _ in where}
            entry: dict[str, Any] = {
                "podRef": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                           "uid": uid},
                "startTime": start,
                "containers": [],
            }
            for name, agent_id, eid, tid in where:
                st = usage.get((agent_id, "task", tid))
                if st is None and sum(1 for w in where if w[1:3] == (agent_id, eid)) == 1:
                    st = usage.get((agent_id, "executor", eid))
                container: dict[str, Any] = {"name": name, "startTime": start}
                if st is not None:
                    container.update(self._figures(f"{uid}/{name}", [st], seen=seen))
                entry["containers"].append(container)
            pod_stats = [s for k in executors if (s := usage.get((k[0], "executor", k[1])))]
            if pod_stats:
                entry.update(self._figures(f"{uid}/", pod_stats, seen=seen))
            out.append(entry)
        for key in list(self._cpu_prev):
            if key not in seen:
                del self._cpu_prev[key]
        return web.json_response(
            {"node": {"nodeName": "k8sbridge", "startTime": _iso(now)}, "pods": out}
        )

    async def _usage_on(self, addresses: Mapping[str, str]
                        ) -> dict[tuple[str, str, str], dict[str, Any]]:
        """ResourceStatistics by (agent id, "executor", executor id) and (agent id, "task",
        task id), from GET_CONTAINERS and the agent's /state (which names each task's nested
        container in its statuses, as Mesos does)."""
        async def one(agent_id: str, address: str
                      ) -> dict[tuple[str, str, str], dict[str, Any]]:
            try:
                containers, state = await asyncio.gather(
                    self._reader.get_containers(address, show_nested=True),
                    self._reader.agent_state(address),
                )
            except mesos_agents.AgentsError as e:
                log.info("no statistics from %s: %s", address, e)
                return {}
            return _index_usage(agent_id, containers, state)

        found: dict[tuple[str, str, str], dict[str, Any]] = {}
        for part in await asyncio.gather(*(one(a, addr) for a, addr in addresses.items())):
            found.update(part)
        return found

    def _figures(self, key: str, samples: list[dict[str, Any]], *, seen: set[str]
                 ) -> dict[str, Any]:
        """``cpu`` and ``memory`` of the Summary API from summed samples."""
        out: dict[str, Any] = {}
        ts = max(float(s.get("timestamp") or time.time()) for s in samples)
        if all("cpus_user_time_secs" in s for s in samples):
            secs = sum(float(s.get("cpus_user_time_secs") or 0)
                       + float(s.get("cpus_system_time_secs") or 0) for s in samples)
            cpu: dict[str, Any] = {"time": _iso(ts), "usageCoreNanoSeconds": int(secs * 1e9)}
            seen.add(key)
            prev = self._cpu_prev.get(key)
            if prev is not None and ts > prev[0] and secs >= prev[1]:
                cpu["usageNanoCores"] = int((secs - prev[1]) / (ts - prev[0]) * 1e9)
            if prev is None or ts - prev[0] >= _MIN_RATE_WINDOW or secs < prev[1]:
                self._cpu_prev[key] = (ts, secs)
            out["cpu"] = cpu
        if any("mem_rss_bytes" in s or "mem_total_bytes" in s for s in samples):
            rss = sum(int(s.get("mem_rss_bytes") or 0) for s in samples)
            used = sum(int(s.get("mem_total_bytes") or s.get("mem_rss_bytes") or 0)
                       for s in samples)
            files = sum(int(s.get("mem_file_bytes") or 0) for s in samples)
            out["memory"] = {"time": _iso(ts), "usageBytes": used, "rssBytes": rss,
                             "workingSetBytes": max(rss, used - files)}
            limit = sum(int(s.get("mem_limit_bytes") or 0) for s in samples)
            if limit and all(s.get("mem_limit_bytes") for s in samples):
                out["memory"]["availableBytes"] = max(limit - out["memory"]["workingSetBytes"],
                                                      0)
        return out
