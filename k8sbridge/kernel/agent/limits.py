"""What cgroups a container and its tasks get, from their ``resources``, ``limits`` and
``share_cgroups``, as the Mesos agent (>= 1.11) computes them.

Why its own module: it is pure arithmetic over TaskInfo JSON, the same for the agent that
makes cgroups itself and for the container daemon it hands the plan to, and it is where the
Mesos rules live in one place:

- a task's requests are its ``resources``; its ``limits`` map may set ``cpus`` and ``mem``
  (``"Infinity"`` allowed); a task of a group with ``container.linux_info.share_cgroups: false``
  runs in cgroups of its own, nested in its executor's, limited by its own requests and limits;
- the executor container is requested the executor's resources plus every task's requests; it
  has a limit for a resource only when some task sets one, and then that limit is the sum of
  the tasks' limits, the requests of the tasks without one and the executor's resources
  (``Slave::computeExecutorLimits``); infinity absorbs everything.

It also words an OOM kill as Mesos' memory isolator does (stout's byte units included).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from k8sbridge.kernel.agent.cgroups import Limits

__all__ = ["ContainerPlan", "bytes_text", "oom_limitation", "plan", "shares_cgroups"]

_LIMITED = ("cpus", "mem")


def scalar(resources: Any, name: str) -> float:
    """The sum of the SCALAR resources called ``name`` in a raw ``Resource`` list."""
    total = 0.0
    if not isinstance(resources, list):
        return total
    for r in resources:
        if isinstance(r, dict) and r.get("name") == name and r.get("type", "SCALAR") == "SCALAR":
            value = (r.get("scalar") or {}).get("value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                total += float(value)
    return total


def task_limits(info: Mapping[str, Any]) -> dict[str, float]:
    """``TaskInfo.limits`` (``map<string, Value.Scalar>``) as numbers; infinity for
    ``"Infinity"``. A bare number is taken as the scalar too (the form Mesos' docs show)."""
    raw = info.get("limits")
    out: dict[str, float] = {}
    if not isinstance(raw, dict):
        return out
    for name in _LIMITED:
        value = raw.get(name)
        if isinstance(value, dict):
            value = value.get("value")
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[name] = float(value)
        elif isinstance(value, str):
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def shares_cgroups(info: Mapping[str, Any]) -> bool:
    """``container.linux_info.share_cgroups`` (true when unset, as in Mesos)."""
    container = info.get("container")
    linux = container.get("linux_info") if isinstance(container, dict) else None
    value = linux.get("share_cgroups") if isinstance(linux, dict) else None
    return value is not False


ContainerPlan = tuple[Limits, dict[str, Limits]]


def plan(*, executor_resources: Any, tasks: Iterable[tuple[str, Mapping[str, Any]]],
         group: bool) -> ContainerPlan:
    """The executor container's limits and, for a group, those of each task that does not
    share its cgroups (by task id)."""
    cpus = scalar(executor_resources, "cpus")
    mem = scalar(executor_resources, "mem")
    limit: dict[str, float | None] = {"cpus": None, "mem": None}
    unlimited_requests = {"cpus": cpus, "mem": mem}
    nested: dict[str, Limits] = {}
    for task_id, info in tasks:
        requests = {n: scalar(info.get("resources"), n) for n in _LIMITED}
        cpus += requests["cpus"]
        mem += requests["mem"]
        own = task_limits(info)
        for name in _LIMITED:
            if name in own:
                limit[name] = (limit[name] or 0.0) + own[name]
            else:
                unlimited_requests[name] += requests[name]
        if group and not shares_cgroups(info):
            nested[task_id] = Limits(cpus=requests["cpus"] or None,
                                     mem_mb=requests["mem"] or None,
                                     cpus_limit=own.get("cpus"), mem_limit_mb=own.get("mem"))
    totals = {n: (None if v is None else v + unlimited_requests[n]) for n, v in limit.items()}
    return (Limits(cpus=cpus or None, mem_mb=mem or None, cpus_limit=totals["cpus"],
                   mem_limit_mb=totals["mem"]), nested)


def bytes_text(n: int) -> str:
    """A byte count as stout's ``Bytes`` prints it (the largest unit that divides it)."""
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}B"


def oom_limitation(report: Mapping[str, Any]) -> tuple[str, float]:
    """Mesos' memory-limitation message for an OOM kill, and the memory it reports in the
    status' ``limitation`` (the peak usage in whole megabytes)."""
    limit, usage = report.get("limit"), report.get("max_usage")
    text = "Memory limit exceeded: "
    if isinstance(limit, int):
        text += f"Requested: {bytes_text(limit)} "
    if isinstance(usage, int):
        text += f"Maximum Used: {bytes_text(usage)}\n"
    stat = report.get("stat")
    if isinstance(stat, str):
        text += "\nMEMORY STATISTICS: \n" + stat
    used_mb = float(usage // (1 << 20)) if isinstance(usage, int) else 0.0
    if not math.isfinite(used_mb):
        used_mb = 0.0
    return text, used_mb
