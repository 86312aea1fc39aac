"""Following running containers: executor events become task states (with Mesos' reasons and
messages), kills and shutdowns go to the executors, health checks, checks and deadlines run
beside the tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import Any

from k8sbridge.kernel.agent import (
    cgroups,
    checks,
    holders,
    limits,
)
from k8sbridge.kernel.agent.core import AgentCore
from k8sbridge.kernel.agent.state import (
    Container,
    Task,
    empty_check_status,
    grace_of,
    has_capability,
    signal_name,
)

log = logging.getLogger(__name__)


class Running(AgentCore):
    """Executor events, kills, probes and deadlines."""

    def _kill_task(self, framework_id: str, task_id: str, kill_policy: Any) -> None:
        found = self._find_task(framework_id, task_id)
        if found is None:
            log.info("agent: asked to kill unknown task %s of framework %s", task_id, framework_id)
            return
        container, task = found
        if task.terminal:
            return
        grace = grace_of(kill_policy, self._kill_grace(container, task))
        self._kill_container(container, grace=grace)

    def _kill_container(self, container: Container, *, grace: float) -> None:
        killing_state = has_capability(container.framework, "TASK_KILLING_STATE")
        for task in container.tasks.values():
            if not task.terminal and task.state != "TASK_KILLING" and container.launched:
                if killing_state:
                    self._update(container, task, "TASK_KILLING")
        if not container.launched:
            container.pending_kill = grace
            return
        client = container.client
        if client is not None:
            self._spawn(client.shutdown(grace=grace))

    def _shutdown_executor(self, framework_id: str, executor_id: str) -> None:
        for container in list(self._containers.values()):
            if (container.framework_id, container.executor_id) == (framework_id, executor_id):
                container.shutting_down = True
                self._kill_container(container, grace=self._config.executor_shutdown_grace_seconds)

    def _shutdown_framework(self, framework_id: str) -> None:
        self._removed_frameworks.add(framework_id)
        for container in list(self._containers.values()):
            if container.framework_id == framework_id:
                container.shutting_down = True
                self._kill_container(container, grace=self._kill_grace(container, None))
        self._updates.drop_framework(framework_id)

    def _on_executor_event(self, container: Container, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "GONE":
            orphaned = False
            for task in container.tasks.values():
                if not task.terminal:
                    orphaned = True
                    # Its supervisor died without reporting the task: destroy what is left.
                    if task.pid:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(task.pid, signal.SIGKILL)
                    if container.cgroup is not None:
                        for stray in container.cgroup.pids():
                            with contextlib.suppress(ProcessLookupError, PermissionError):
                                os.kill(stray, signal.SIGKILL)
                    self._update(container, task, "TASK_FAILED", source="SOURCE_AGENT",
                                 reason="REASON_EXECUTOR_TERMINATED",
                                 message="Executor terminated")
            if orphaned and container.cgroup is not None:
                # The supervisor would have removed them: nobody else will.
                self._spawn(self._destroy_cgroups(container.container_id, container.cgroup))
            # Its views' upper layers, if the supervisor did not live to remove them.
            holders.release(str(self._work_dir / "provisioner" / "containers" /
                                container.container_id))
            self._finish_container(container, notify_master=True)
            return
        found = container.tasks.get(str(event.get("task_id", "")))
        if found is None:
            return
        task = found
        if kind == "LAUNCHED":
            pid = event.get("pid")
            task.pid = pid if isinstance(pid, int) else None
            if task.state == "TASK_STAGING":
                self._update(container, task, "TASK_STARTING")
                check = task.info.get("check")
                self._update(
                    container, task, "TASK_RUNNING", message=task.running_message,
                    check_status=empty_check_status(check) if isinstance(check, dict) else None,
                )
                self._start_probes(container, task)
                self._start_deadline(container, task)
        elif kind == "EXITED":
            if task.terminal:
                return
            self._stop_probes(task)
            self._update_exit(container, task, event)

    async def _destroy_cgroups(self, container_id: str, cgroup: cgroups.CgroupSet) -> None:
        why = await cgroups.destroy(cgroup)
        if why is not None:
            log.warning("agent: cannot remove the cgroups of container %s: %s",
                        container_id, why)

    def _update_exit(self, container: Container, task: Task, event: dict[str, Any]) -> None:
        status = event.get("status")
        if event.get("error"):
            self._update(container, task, "TASK_FAILED", source="SOURCE_AGENT",
                         reason="REASON_CONTAINER_LAUNCH_FAILED", message=str(event["error"]))
            return
        if not isinstance(status, int):
            # The supervisor could not reap the task (no wait status): never a success. Mesos'
            # command executor says exactly this, with no reason.
            self._update(container, task, "TASK_FAILED",
                         message="Failed to get exit status for Command")
            return
        signaled = 0 < status < 128 and (status & 0x7F) == status
        text = (f"Command terminated with signal {signal_name(status)}" if signaled
                else f"Command exited with status {status >> 8}")
        oom = event.get("oom")
        if oom:
            # Mesos' memory isolator words it; a task in cgroups of its own is reported by its
            # DEFAULT executor (the container's exit, then the isolator's message), a whole
            # container destroyed for its limit by the agent.
            report = oom if isinstance(oom, dict) else {}
            why, used_mb = limits.oom_limitation(report)
            if not report:
                why = f"Memory limit exceeded: Requested: {container.mem_limit_mb or 0:g}MB"
            nested = bool(report.get("nested"))
            self._update(
                container, task, "TASK_FAILED",
                source="SOURCE_EXECUTOR" if nested else "SOURCE_AGENT",
                reason="REASON_CONTAINER_LIMITATION_MEMORY",
                message=f"{text}: {why}" if nested else why,
                limitation={"resources": [{"name": "mem", "type": "SCALAR",
                                           "scalar": {"value": used_mb}}]},
            )
        elif task.deadline_reached:
            self._update(container, task, "TASK_FAILED",
                         reason="REASON_MAX_COMPLETION_TIME_REACHED", message=text)
        elif task.killed_by_health:  # as Mesos' executors: healthy=false, no reason
            self._update(container, task, "TASK_KILLED", message=text, healthy=False)
        elif event.get("killed"):
            self._update(container, task, "TASK_KILLED", message=text)
        elif status == 0:
            self._update(container, task, "TASK_FINISHED", message=text)
        else:
            self._update(container, task, "TASK_FAILED", message=text)

    def _start_probes(self, container: Container, task: Task) -> None:
        view = task.view
        wrap: checks.Wrap | None = None
        cwd, env = task.cwd, task.env
        if view is not None:  # command checks run in the task's view (``checks.in_view``)
            cwd, env = str(view["cwd"]), dict(view["env"])

            def wrap() -> list[str] | None:
                return checks.in_view(task.pid if not task.terminal else None, cwd=cwd,
                                      user=task.user, net=task.network is not None)
        health = task.info.get("health_check")
        if isinstance(health, dict):
            problem = checks.validate(health)
            if problem is None:
                async def on_health(verdict: checks.HealthVerdict) -> None:
                    if task.terminal:
                        return
                    self._update(container, task, "TASK_RUNNING", healthy=verdict.healthy,
                                 reason="REASON_TASK_HEALTH_CHECK_STATUS_UPDATED")
                    if verdict.kill:
                        task.killed_by_health = True
                        self._kill_container(container,
                                             grace=self._kill_grace(container, task))

                task.probes.append(self._spawn(checks.run_health_check(
                    health, cwd=cwd, env=env, report=on_health, wrap=wrap,
                    network=task.network)))
            else:
                log.warning("agent: task %s health check ignored: %s", task.task_id, problem)
        check = task.info.get("check")
        if isinstance(check, dict):
            problem = checks.validate(check)
            if problem is None:
                async def on_check(check_status: dict[str, Any]) -> None:
                    if not task.terminal:
                        self._update(container, task, "TASK_RUNNING", check_status=check_status,
                                     reason="REASON_TASK_CHECK_STATUS_UPDATED")

                task.probes.append(self._spawn(checks.run_check(
                    check, cwd=cwd, env=env, report=on_check, wrap=wrap,
                    network=task.network)))
            else:
                log.warning("agent: task %s check ignored: %s", task.task_id, problem)

    def _start_deadline(self, container: Container, task: Task) -> None:
        raw = task.info.get("max_completion_time")
        nanos = raw.get("nanoseconds") if isinstance(raw, dict) else None
        if not isinstance(nanos, int | float) or nanos < 0:
            return
        started = float(task.statuses[0]["timestamp"]) if task.statuses else time.time()

        async def expire() -> None:
            await asyncio.sleep(max(0.0, started + nanos / 1e9 - time.time()))
            if not task.terminal:
                task.deadline_reached = True
                self._kill_container(container, grace=0.0)

        task.probes.append(self._spawn(expire()))
