"""A container's resource usage in Mesos' ResourceStatistics shape.

Why: ``/monitor/statistics``, ``/containers`` and v1 GET_CONTAINERS are what Mesos tools and the
bridge's kubelet ``/stats/summary`` read cpu and memory from. Usage comes from the container's
cgroups where the agent created them (v1 cpuacct/memory, v2 cpu.stat/memory.*); otherwise from
``/proc`` of the container's process tree (the executor daemon and every descendant), so an
agent without writable cgroups still reports what its tasks use. Reads are best effort: a process
that exits mid-read is skipped, never an error.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import cgroups

__all__ = ["ProcTable", "proc_table", "proc_tree", "proc_usage", "sample"]

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


@dataclasses.dataclass(frozen=True, slots=True)
class ProcTable:
    """One pass over ``/proc``: each process's parent, cpu ticks and resident bytes.

    Why one snapshot per request: a statistics answer covers every container and, nested,
    every task; scanning ``/proc`` once per container cost O(containers x processes) and took
    each container's figures at a different instant, so a pod's sum could trail its own busy
    task's figure by the duration of a scan (~0.1 s with a thousand processes on the host).
    """

    children: dict[int, list[int]]
    usage: dict[int, tuple[int, int, int]]  # pid -> (utime ticks, stime ticks, rss bytes)


def proc_table(*, proc: Path = _PROC) -> ProcTable:
    children: dict[int, list[int]] = {}
    usage: dict[int, tuple[int, int, int]] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return ProcTable(children={}, usage={})
    for name in names:
        if not name.isdigit():
            continue
        stat = _read(proc / name / "stat")
        if stat is None:
            continue
        # after "pid (comm) ": state ppid ... utime(11) stime(12) ... rss(21, in pages)
        fields = stat[stat.rfind(")") + 2:].split()
        try:
            ppid = int(fields[1])
            usage[int(name)] = (int(fields[11]), int(fields[12]), int(fields[21]) * _PAGE)
        except (IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    return ProcTable(children=children, usage=usage)


def proc_tree(roots: set[int], *, proc: Path = _PROC, table: ProcTable | None = None
              ) -> set[int]:
    """``roots`` (those still alive) and all their descendants."""
    if table is None:
        table = proc_table(proc=proc)
    out: set[int] = set()
    todo = [p for p in roots if p in table.usage]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.add(pid)
        todo.extend(table.children.get(pid, []))
    return out


def proc_usage(pids: set[int], *, proc: Path = _PROC, table: ProcTable | None = None
               ) -> dict[str, Any]:
    """cpu times (utime/stime) and resident memory summed over ``pids``."""
    if table is None:
        table = proc_table(proc=proc)
    user = system = rss = seen = 0
    for pid in pids:
        got = table.usage.get(pid)
        if got is None:
            continue
        user += got[0]
        system += got[1]
        rss += got[2]
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
           cpus_limit: float | None, mem_limit_mb: float | None,
           table: ProcTable | None = None) -> dict[str, Any]:
    """One ResourceStatistics sample: cgroup figures where present, /proc for the rest
    (from ``table`` when given: one snapshot shared by a whole answer)."""
    stats: dict[str, Any] = {"timestamp": timestamp}
    if cpus_limit:
        stats["cpus_limit"] = cpus_limit
    if mem_limit_mb:
        stats["mem_limit_bytes"] = int(mem_limit_mb * 1024 * 1024)
    usage = cgroup_usage(cgroup) if cgroup is not None else {}
    needs_proc = "cpus_user_time_secs" not in usage or "mem_rss_bytes" not in usage
    if needs_proc:
        if table is None:
            table = proc_table()
        from_proc = proc_usage(proc_tree(pids, table=table), table=table)
        for key, value in from_proc.items():
            usage.setdefault(key, value)
    stats.update(usage)
    return stats
