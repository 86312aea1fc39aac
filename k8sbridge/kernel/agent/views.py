"""The container views of one supervisor's tasks: their namespace holders (``holders``),
started before the tasks, entered around each task's spawn, stopped when the container ends.

Why apart from ``supervisor``: the supervisor's spawn path stays what it is for tasks on the
host; a task whose spec has an ``fs`` plan (``filesystems``) only gets ``entered`` around its
spawn. Tasks of one group that share a pid namespace (``pid: group``) share the first one's
holder as their init; every other task's holder is the init of a namespace of its own.
"""

from __future__ import annotations

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

    async def start(self, inside: Callable[[], contextlib.AbstractContextManager[Any]]
                    ) -> str | None:
        """Make every task's view, its holder forked in ``inside()`` (the container's
        cgroups); the reason (Mesos' words) if one cannot be made, after which nothing of
        them is left. A group's shared pid namespace needs its init first, so a holder that
        joins one is forked once that init is ready."""
        for task_id, plan in self.plans.items():
            mode = str(plan.get("pid", "host"))
            join = None
            if mode == "group":
                join = self._group
                mode = "join" if join is not None else "new"
            try:
                with inside():
                    pid, answer = holders.fork(plan, pid_namespace=mode, join=join)
                holder = await holders.ready(plan, pid, answer)
            except OSError as e:
                await self.stop()
                return f"Failed to launch container: {e}"
            self.holders[task_id] = holder
            if plan.get("pid") == "group" and self._group is None:
                self._group = holder
        return None

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
