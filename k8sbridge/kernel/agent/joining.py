"""Later task groups of a running DEFAULT executor: they join its container.

Why: Mesos' default executor takes a LAUNCH_GROUP whenever it runs (the agent hands it every
task group with the same ExecutorInfo), and all its task groups share the executor container's
namespaces: a later group gets the same network namespace and IP, and the same executor
sandbox for ``SANDBOX_PATH`` ``PARENT`` volumes. The executor ends when it has no active task
left, not when its first group ends; a group sent to an executor that is terminating never
reaches it (``Slave::run``: TASK_DROPPED, or TASK_LOST for a framework that is not
partition-aware, ``REASON_EXECUTOR_TERMINATED``, "Executor terminating").

Here each group is a container record (and a supervisor in the container daemon) of its own,
``joins`` naming the executor's first group: its tasks join that group's network namespace
and work in the same sandbox; the executor is reported gone (``EXECUTOR_EXITED``) and its
namespace detached (CNI DEL) when its last group ends (``core._finish_container``). A group
that fails or is killed takes only its own tasks down, as the default executor kills the
task group of the task that failed. Each group's cgroups hold its own tasks' resources; the
executor's own resources stay with its first group.
"""

from __future__ import annotations

import logging

from k8sbridge.kernel.agent import cni, cnispec
from k8sbridge.kernel.agent.running import Running
from k8sbridge.kernel.agent.state import Container, LaunchError, has_capability

log = logging.getLogger(__name__)

TERMINATING = "Executor terminating"
LAUNCH_FAILED = "REASON_CONTAINER_LAUNCH_FAILED"


class Joining(Running):
    """Task groups launched onto an executor that already runs here."""

    def _join_running_executor(self, container: Container) -> bool:
        """Make ``container`` (a new task group) a group of its executor if that runs here.
        False: the executor is terminating and the group was dropped."""
        for live in self._containers.values():
            if (live.kind == "DEFAULT" and live.framework_id == container.framework_id
                    and live.executor_id == container.executor_id):
                container.joins = live.executor_root
                container.directory = live.directory
                if self._terminating(live.executor_root):
                    self._drop_group(container, TERMINATING)
                    return False
                return True
        return True

    def _terminating(self, root: str) -> bool:
        """Mesos' ``Executor::TERMINATING``: the agent asked it to shut down, or it has no
        active task left (the default executor then shuts itself down)."""
        groups = [c for c in self._containers.values() if c.executor_root == root]
        return any(c.shutting_down for c in groups) or not any(
            not t.terminal for c in groups for t in c.tasks.values())

    def _drop_group(self, container: Container, why: str) -> None:
        """The group never reaches its executor: each task is dropped (or lost)."""
        state = ("TASK_DROPPED" if has_capability(container.framework, "PARTITION_AWARE")
                 else "TASK_LOST")
        log.warning("agent: dropped task group %s of framework %s: %s",
                    sorted(container.tasks), container.framework_id, why)
        self._add_container(container)
        for task in container.tasks.values():
            self._update(container, task, state, source="SOURCE_AGENT",
                         reason="REASON_EXECUTOR_TERMINATED", message=why)
        self._finish_container(container, notify_master=False)

    async def _joined_network(self, container: Container) -> cni.Attachment | None:
        """The attachment of the executor's first group, once that group has one."""
        root = self._containers.get(container.executor_root)
        if root is not None:
            await root.networked.wait()
        else:
            root = next((c for c in self._completed
                         if c.container_id == container.executor_root), None)
        if self._cni is None:
            return None
        attachment = self._cni.status(container.executor_root)
        if attachment is not None:
            return attachment
        failed = [t.statuses[-1].get("message") for t in (root.tasks.values() if root else ())
                  if t.statuses and t.statuses[-1].get("reason") == LAUNCH_FAILED]
        if failed and isinstance(failed[0], str):
            raise LaunchError(failed[0])  # the executor's own launch failed: the same reason
        try:
            wanted = cnispec.container_networks(container.executor.get("container"),
                                                self._cni.networks)
        except cnispec.CniError as e:
            raise LaunchError(f"Failed to launch container: {e}") from None
        if wanted:
            raise LaunchError("Failed to launch container: the executor's network namespace "
                              "is gone")
        return None
