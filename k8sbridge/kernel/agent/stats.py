"""A container's resource usage in Mesos' ResourceStatistics shape.

Why: ``/monitor/statistics``, ``/containers`` and v1 GET_CONTAINERS are what Mesos tools and the
bridge's kubelet ``/stats/summary`` read cpu and memory from. Usage comes from the container's
cgroups where the agent created them (v1 cpuacct/memory, v2 cpu.stat/memory.*); otherwise from
``/proc`` of the container's process tree (the executor daemon and every descendant), so an
agent without writable cgroups still reports what its tasks use. Reads are best effort: a process
that exits mid-read is skipped, never an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import cgroups

__all__ = ["sample", "proc_tree", "proc_usage"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_PROC = Path("/proc")


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text()
    except (OSError, ValueError):
        return None


def _kv(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value.strip())
        except ValueError:
            continue
    return out


def _int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def cgroup_usage(cg: cgroups.CgroupSet) -> dict[str, Any]:
    """cpu and memory usage read from the container's cgroup dirs (fields absent if unreadable)."""
    out: dict[str, Any] = {}
    if cg.version == 2:
        d = cg.cpu or cg.memory
        if d:
            cpu = _kv(_read(os.path.join(d, "cpu.stat")))
            if "user_usec" in cpu and "system_usec" in cpu:
                out["cpus_user_time_secs"] = cpu["user_usec"] / 1e6
                out["cpus_system_time_secs"] = cpu["system_usec"] / 1e6
        if cg.memory:
            current = _int(_read(os.path.join(cg.memory, "memory.current")))
            mem = _kv(_read(os.path.join(cg.memory, "memory.stat")))
            if current is not None:
                out["mem_total_bytes"] = current
            if "anon" in mem:
                out["mem_rss_bytes"] = mem["anon"]
                out["mem_anon_bytes"] = mem["anon"]
            if "file" in mem:
                out["mem_file_bytes"] = mem["file"]
                out["mem_cache_bytes"] = mem["file"]
        return out
    if cg.cpu:
        # cpuacct is usually co-mounted with cpu ("cpu,cpuacct"); else look beside it.
        for d in (cg.cpu, cg.cpu.replace("/cpu/", "/cpuacct/", 1)):
            acct = _kv(_read(os.path.join(d, "cpuacct.stat")))
            if "user" in acct and "system" in acct:
                out["cpus_user_time_secs"] = acct["user"] / _TICKS
                out["cpus_system_time_secs"] = acct["system"] / _TICKS
                break
    if cg.memory:
        usage = _int(_read(os.path.join(cg.memory, "memory.usage_in_bytes")))
        mem = _kv(_read(os.path.join(cg.memory, "memory.stat")))
        if usage is not None:
            out["mem_total_bytes"] = usage
        if "rss" in mem:
            out["mem_rss_bytes"] = mem["rss"]
            out["mem_anon_bytes"] = mem["rss"]
        if "cache" in mem:
            out["mem_cache_bytes"] = mem["cache"]
            out["mem_file_bytes"] = mem["cache"]
    return out


def proc_tree(roots: set[int], *, proc: Path = _PROC) -> set[int]:
    """``roots`` (those still alive) and all their descendants, from ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    alive: set[int] = set()
    try:
        names = os.listdir(proc)
    except OSError:
        return set()
    for name in names:
        if not name.isdigit():
            continue
        stat = _read(proc / name / "stat")
        if stat is None:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) < 2:
            continue
        pid = int(name)
        alive.add(pid)
        children.setdefault(int(fields[1]), []).append(pid)
    out: set[int] = set()
    todo = [p for p in roots if p in alive]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.add(pid)
        todo.extend(children.get(pid, []))
    return out


def proc_usage(pids: set[int], *, proc: Path = _PROC) -> dict[str, Any]:
    """cpu times (utime/stime) and resident memory summed over ``pids`` from ``/proc``."""
    user = system = 0
    rss = 0
    seen = 0
    for pid in pids:
        stat = _read(proc / str(pid) / "stat")
        statm = _read(proc / str(pid) / "statm")
        if stat is None or statm is None:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        try:
            user += int(fields[11])
            system += int(fields[12])
            rss += int(statm.split()[1]) * _PAGE
        except (IndexError, ValueError):
            continue
        seen += 1
    if not seen:
        return {}
    return {
        "cpus_user_time_secs": user / _TICKS,
        "cpus_system_time_secs": system / _TICKS,
        "mem_rss_bytes": rss,
        "mem_total_bytes": rss,
        "processes": seen,
    }


def sample(*, cgroup: cgroups.CgroupSet | None, pids: set[int], timestamp: float,
           cpus_limit: float | None, mem_limit_mb: float | None) -> dict[str, Any]:
    """One ResourceStatistics sample: cgroup figures where present, /proc for the rest."""
    stats: dict[str, Any] = {"timestamp": timestamp}
    if cpus_limit:
        stats["cpus_limit"] = cpus_limit
    if mem_limit_mb:
        stats["mem_limit_bytes"] = int(mem_limit_mb * 1024 * 1024)
    usage = cgroup_usage(cgroup) if cgroup is not None else {}
    needs_proc = "cpus_user_time_secs" not in usage or "mem_rss_bytes" not in usage
    if needs_proc:
        tree = proc_tree(pids)
        from_proc = proc_usage(tree)
        for key, value in from_proc.items():
            usage.setdefault(key, value)
    stats.update(usage)
    return stats
