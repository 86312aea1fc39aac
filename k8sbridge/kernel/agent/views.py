"""The container views of one supervisor's tasks: their namespace holders (``holders``),
started (at the same time) before the tasks, entered around each task's spawn, stopped when
the container ends.

Why apart from ``supervisor``: the supervisor's spawn path stays what it is for tasks on the
host; a task whose spec has an ``fs`` plan (``filesystems``) only gets ``entered`` around its
spawn. Tasks of one group that share a pid namespace (``pid: group``) share the first one's
holder as their init; every other task's holder is the init of a namespace of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from k8sbridge.kernel.agent import holders

__all__ = ["Views"]


class Views:
    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.plans = {str(t["task_id"]): t["fs"] for t in tasks if isinstance(t.get("fs"), dict)}
        self.holders: dict[str, holders.Holder] = {}
        self._group: holders.Holder | None = None

    def __bool__(self) -> bool:
        return bool(self.plans)

    async def start(self, cgroups: list[str]) -> str | None:
        """Make every task's view, its holder in the container's ``cgroups`` (directories);
        the reason (Mesos' words) if one cannot be made, after which nothing of them is left.
        A group's shared pid namespace needs its init first, so the holders that join one
        are started once that init is ready; the others are made at the same time."""
        shared = [t for t, plan in self.plans.items() if plan.get("pid") == "group"]
        first = shared[:1]
        rest = [t for t in self.plans if t not in first and t not in shared]
        for batch in (first, rest, shared[1:]):
            results = await asyncio.gather(*(self._start_one(t, cgroups) for t in batch),
                                           return_exceptions=True)
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            if failed is not None:
                await self.stop()
                if not isinstance(failed, OSError):
                    raise failed
                return f"Failed to launch container: {failed}"
        return None

    async def _start_one(self, task_id: str, cgroups: list[str]) -> None:
        plan = self.plans[task_id]
        mode = str(plan.get("pid", "host"))
        if mode == "group":
            mode = "join" if self._group is not None else "new"
        holder = await holders.start(plan, pid_namespace=mode, join=self._group,
                                     cgroups=cgroups)
        self.holders[task_id] = holder
        if plan.get("pid") == "group" and self._group is None:
            self._group = holder

    @contextlib.contextmanager
    def entered(self, task_id: str, preexec: Callable[[], None] | None) -> Iterator[Any]:
        """The block's spawns are born in ``task_id``'s view (if it has one); yields the
        pre-exec hook to use."""
        holder = self.holders.get(task_id)
        if holder is None:
            yield preexec
            return
        with holder.entered(preexec) as hook:
            yield hook

    async def stop(self) -> None:
        """Kill the holders (the group's last: its pid namespace holds the others), then
        remove the provisioner directories."""
        ordered = sorted(self.holders.values(), key=lambda h: h is self._group)
        for holder in ordered:
            await holder.stop()
        self.holders.clear()
        self._group = None
        for plan in self.plans.values():
            holders.release(str(plan["provisioner"]))
