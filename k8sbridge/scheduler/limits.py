"""CPU and memory limits of one task group, rendered as the connected Mesos master accepts them.

Why its own module: a master silently drops a field it does not know, and a master that knows it
rejects the whole task group (TASK_ERROR) when one rule of ``validateResourceLimits`` /
``validateShareCgroups`` (apache/mesos ``src/master/validation.cpp``) is broken. So the rules
are written down once, here, and the launch renders only what they accept:

* ``TaskInfo.limits`` exists since Mesos 1.10.0 (MESOS-10001/10043; unchanged in 1.11); an
  older or unknown master, or an agent older than 1.10 (which lacks the ``TASK_RESOURCE_LIMITS``
  capability: "Agent is not capable of handling task resource limits"), gets no limits and the
  pod gets a ``Notice`` saying its limits are not enforced;
* only ``cpus`` and ``mem`` ("Only cpus and mem may be included in a task's resource limits");
* a limit needs the matching request in the task's resources, and the limit must be at least
  the request ("The cpu limit must be greater than or equal to the cpu request"); the request
  rendered is the placement's carve (thousandths), so a limit is never sent below it;
* inside a task group, limits are only allowed when the task's
  ``container.linux_info.share_cgroups`` is ``false``, and every task of the group must agree
  on ``share_cgroups``: once one container has a limit, *every* task says ``false``;
* with ``share_cgroups: false`` a task without a limit would be capped at its request by the
  agent; Kubernetes means "no limit" there, which Mesos spells ``"Infinity"`` (stout's JSON
  → protobuf reads that string as IEEE infinity; ``validateResourceLimits`` accepts it for
  ``mem`` explicitly and for ``cpus`` since infinity is never below a request).

Pure (plan, model and stdlib): unit-tested from tables of the master's rules.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Any

from k8sbridge.scheduler import plan

__all__ = [
    "INFINITY",
    "LIMITS_SINCE",
    "REASON_LIMITS_NOT_ENFORCED",
    "GroupLimits",
    "Notice",
    "parse_version",
    "render",
]

#: the first Mesos release with ``TaskInfo.limits`` and ``LinuxInfo.share_cgroups``
LIMITS_SINCE = (1, 10)
#: how a JSON scheduler call spells an unbounded ``Value.Scalar`` (stout ``protobuf.hpp``)
INFINITY = "Infinity"
#: the pod event's reason when the master (or agent) cannot enforce limits
REASON_LIMITS_NOT_ENFORCED = "LimitsNotEnforced"

_LIMITED = ("cpus", "mem")
_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)")

Json = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Notice:
    """Something the pod's owner should read (a Warning event on the pod)."""

    reason: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class GroupLimits:
    """Per task (in the group's task order): its ``limits`` field, or None for none; and
    whether every task carries ``container.linux_info.share_cgroups: false``."""

    limits: tuple[Json | None, ...]
    share_cgroups_false: bool
    notices: tuple[Notice, ...] = ()


def parse_version(text: str | None) -> tuple[int, int] | None:
    """``"1.11.0"`` → ``(1, 11)``; None for anything that does not start with major.minor."""
    if not text:
        return None
    match = _VERSION.match(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _fmt(version: tuple[int, int] | None) -> str:
    return "unknown" if version is None else f"{version[0]}.{version[1]}"


def render(
    *,
    tasks: Sequence[plan.ContainerAllocation],
    master_version: tuple[int, int] | None,
    agent_version: tuple[int, int] | None,
) -> GroupLimits:
    """Limits for a task group of ``tasks`` (as placed: each one's resources and limits)."""
    wanted = [[(name, value) for name, value in t.limits if name in _LIMITED] for t in tasks]
    if not any(wanted):
        return GroupLimits(limits=(None,) * len(tasks), share_cgroups_false=False)
    names = sorted({t.name for t, w in zip(tasks, wanted, strict=True) if w})
    if master_version is None or master_version < LIMITS_SINCE:
        return GroupLimits(
            limits=(None,) * len(tasks),
            share_cgroups_false=False,
            notices=(
                Notice(
                    REASON_LIMITS_NOT_ENFORCED,
                    f"CPU and memory limits of {', '.join(names)} are not enforced: the Mesos "
                    f"master's version is {_fmt(master_version)}; task resource limits need "
                    f"{_fmt(LIMITS_SINCE)} or later",
                ),
            ),
        )
    if agent_version is None or agent_version < LIMITS_SINCE:
        return GroupLimits(
            limits=(None,) * len(tasks),
            share_cgroups_false=False,
            notices=(
                Notice(
                    REASON_LIMITS_NOT_ENFORCED,
                    f"CPU and memory limits of {', '.join(names)} are not enforced: the Mesos "
                    f"agent's version is {_fmt(agent_version)}; task resource limits need "
                    f"{_fmt(LIMITS_SINCE)} or later",
                ),
            ),
        )
    out: list[Json | None] = []
    dropped: list[str] = []
    for allocation, limits in zip(tasks, wanted, strict=True):
        given = dict(limits)
        task: Json = {}
        for name in _LIMITED:
            request = allocation.resources.scalar(name)
            if request <= 0:
                # "When a CPU limit is specified, a CPU request must also be specified"
                if name in given:
                    dropped.append(f"{allocation.name} {name}")
                continue
            limit = given.get(name)
            if limit is None or math.isinf(limit):
                task[name] = {"value": INFINITY}
            else:
                task[name] = {"value": max(round(limit, 3), request)}
        out.append(task or None)
    notices: tuple[Notice, ...] = ()
    if dropped:
        notices = (
            Notice(
                REASON_LIMITS_NOT_ENFORCED,
                f"limits not enforced without a request: {', '.join(dropped)}",
            ),
        )
    return GroupLimits(limits=tuple(out), share_cgroups_false=True, notices=notices)
