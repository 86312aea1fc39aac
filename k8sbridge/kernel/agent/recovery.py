"""Recovery after an agent restart, as the Mesos agent recovers: checkpointed containers are
re-adopted (their executors reattached, or their event logs replayed when the executor is
gone), launches cut short by the restart fail, containers of non-checkpointing frameworks
left by the previous process are killed; and shutdown, which checkpoints what survives.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import (
    cgroups,
    containers,
    paths,
)
from k8sbridge.kernel.agent.launching import Launching
from k8sbridge.kernel.agent.state import (
    Container,
    Task,
)

log = logging.getLogger(__name__)


class Recovery(Launching):
    """Re-adoption of checkpointed containers; shutdown."""

    async def _recover(self) -> None:
        agent_id = paths.latest_agent_id(work_dir=self._work_dir)
        if agent_id is None:
            return
        self._agent_id = agent_id
        root = self._work_dir / "meta" / "slaves" / agent_id / "frameworks"
        seen: set[str] = set()  # every container with a checkpoint, whatever its state
        for state_path in sorted(root.glob("*/executors/*/runs/*/state.json")):
            seen.add(state_path.parent.name)
            data = paths.read_json(state_path)
            if not isinstance(data, dict):
                continue
            try:
                container = self._restore(data, meta_dir=state_path.parent)
            except (KeyError, TypeError, ValueError) as e:
                log.warning("agent: ignoring an unreadable checkpoint %s: %s", state_path, e)
                continue
            pending_updates = any(data.get("updates", {}).values())
            if container.terminated:
                if pending_updates and container.checkpoint:
                    self._completed.append(container)
                continue
            if not container.checkpoint:
                await self._kill_orphan(container)
                continue
            self._add_container(container)
            self._frameworks[container.framework_id] = container.framework
            client = containers.ExecutorClient(
                container_id=container.container_id, meta_dir=container.meta_dir,
                on_event=functools.partial(self._on_executor_event, container),
            )
            container.client = client
            if not container.launched and await client.attach():
                # Checkpointed before the spawn, and the daemon ran it before this agent's
                # predecessor could record that: adopt it (its events replay on attach).
                container.launched = True
                self._persist(container)
                log.info("agent: adopted container %s, launched while the agent went away",
                         container.container_id)
            elif not container.launched:
                self._fail_launch(container, "the agent restarted while launching the task")
            elif not await client.attach():
                client.replay_log()
            else:
                for task in container.tasks.values():
                    if task.state in ("TASK_RUNNING", "TASK_KILLING") and task.cwd:
                        self._start_probes(container, task)
                        self._start_deadline(container, task)
            log.info("agent: recovered container %s (%d tasks)", container.container_id,
                     len(container.tasks))
        await self._destroy_unknown_containers(known=seen)
        for live in self._containers.values():  # the newest incarnation of each task wins
            for task_id in live.tasks:
                self._updates.begin(framework_id=live.framework_id, task_id=task_id,
                                    incarnation=live.container_id)

    def _restore(self, data: dict[str, Any], *, meta_dir: Path) -> Container:
        container = Container(
            container_id=str(data["container_id"]),
            framework_id=str(data["framework_id"]),
            executor_id=str(data["executor_id"]),
            kind=str(data["kind"]),
            framework=dict(data["framework"]),
            executor=dict(data["executor"]),
            directory=Path(data["directory"]),
            meta_dir=meta_dir,
            tasks={},
            launched=bool(data.get("launched")),
            terminated=bool(data.get("terminated")),
            cgroup=cgroups.CgroupSet.from_raw(data.get("cgroups")),
            mem_limit_mb=data.get("mem_limit_mb"),
            cpus_limit=data.get("cpus_limit"),
            started=float(data.get("started", time.time())),
        )
        for tid, raw in data["tasks"].items():
            container.tasks[tid] = Task(
                info=raw["info"], framework_id=container.framework_id,
                executor_id=container.executor_id, container_id=container.container_id,
                state=raw["state"], statuses=list(raw.get("statuses", [])), pid=raw.get("pid"),
                cwd=str(raw.get("cwd", "")), env=dict(raw.get("env", {})),
            )
        if container.checkpoint:
            for tid, pending in (data.get("updates") or {}).items():
                self._updates.restore(framework_id=container.framework_id, task_id=tid,
                                      incarnation=container.container_id,
                                      statuses=list(pending))
        return container

    async def _destroy_unknown_containers(self, *, known: set[str]) -> None:
        """Kill what the container daemon runs for this agent without a checkpoint, as the
        Mesos agent's recovery destroys the containers it does not know (tasks launched by a
        predecessor that died before checkpointing them would otherwise run on, unseen)."""
        running = await self._daemon.running_containers()
        for container_id, task_ids in sorted((running or {}).items()):
            if container_id in known:
                continue
            client = containers.ExecutorClient(
                container_id=container_id, meta_dir=self._work_dir / "meta" / "unknown",
                on_event=lambda event: None)
            if not await client.attach():
                continue  # ended meanwhile
            await client.shutdown(grace=0.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10.0):
                    await client.gone.wait()
            await client.detach()
            log.warning("agent: killed container %s (tasks %s): it was running without a "
                        "checkpoint, so no framework can know of it", container_id,
                        ", ".join(task_ids) or "none")
            self.destroyed_unknown.append(container_id)

    async def _kill_orphan(self, container: Container) -> None:
        """A non-checkpointed container left by a previous agent process: kill it (as Mesos)."""
        client = containers.ExecutorClient(
            container_id=container.container_id, meta_dir=container.meta_dir,
            on_event=lambda event: None,
        )
        if await client.attach():
            await client.shutdown(grace=0.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await client.gone.wait()
            await client.detach()
        container.terminated = True
        self._persist(container)
        log.info("agent: killed non-checkpointed container %s left by a previous run",
                 container.container_id)

    async def _shutdown(self, *, keep_tasks: bool) -> None:
        live = [c for c in self._containers.values()
                if c.client is not None and c.client.attached]
        if not keep_tasks:
            for container in live:
                assert container.client is not None
                await container.client.shutdown(
                    grace=min(self._kill_grace(container, None),
                              self._config.executor_shutdown_grace_seconds))
            waits = [c.client.gone.wait() for c in live if c.client is not None]
            if waits:
                deadline = self._config.executor_shutdown_grace_seconds + 5.0
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(deadline):
                        await asyncio.gather(*waits)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush_checkpoints()
        for container in self._containers.values():
            self._persist(container, now=True)
        for container in live:
            assert container.client is not None
            await container.client.detach()
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(set(self._background), timeout=5.0)
        await self._daemon.close()
