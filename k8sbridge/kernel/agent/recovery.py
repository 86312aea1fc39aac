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
import shutil
import time
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import (
    cgroups,
    containers,
    garbage,
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
                self._schedule_recovered(container)
                continue
            if not container.checkpoint:
                await self._kill_orphan(container)
                self._schedule_recovered(container)
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
        # Views of containers that are gone: their mounts went with their namespaces, their
        # upper layers and mount points are left on disk (as Mesos' provisioner recovery).
        for leftover in sorted((self._work_dir / "provisioner" / "containers").glob("*")):
            if leftover.name not in self._containers:
                shutil.rmtree(leftover, ignore_errors=True)
        if self._cni is not None:  # CNI attachments no live container owns: DEL, then gone
            owned = {c.executor_root for c in self._containers.values()}
            for leftover_id in self._cni.containers():
                if leftover_id not in owned:
                    await self._cni.detach(leftover_id)
        self._schedule_leftovers(agent_id=agent_id)
        for live in self._containers.values():  # the newest incarnation of each task wins
            for task_id in live.tasks:
                self._updates.begin(framework_id=live.framework_id, task_id=task_id,
                                    incarnation=live.container_id)

    def _schedule_recovered(self, container: Container) -> None:
        """A container found finished: collected ``gc_delay`` after its sandbox was last
        touched (Mesos' ``garbageCollect`` by mtime), so its age survives restarts."""
        self.gc.schedule(self._gc_run(container), finished_at=_mtime(container.directory,
                                                                     container.meta_dir))

    def _schedule_leftovers(self, *, agent_id: str) -> None:
        """Run directories no checkpoint describes (containers of non-checkpointing
        frameworks, launches cut short) and the directories of older agent ids."""
        live = set(self._containers)
        slaves = self._work_dir / "slaves"
        for run_dir in sorted(slaves.glob(f"{agent_id}/frameworks/*/executors/*/runs/*")):
            if run_dir.is_symlink() or not run_dir.is_dir() or run_dir.name in live:
                continue
            executor_id = run_dir.parent.parent.name
            framework_id = run_dir.parent.parent.parent.parent.name
            meta = paths.container_meta_dir(
                work_dir=self._work_dir, agent_id=agent_id, framework_id=framework_id,
                executor_id=executor_id, container_id=run_dir.name)
            self.gc.schedule(garbage.Run(container_id=run_dir.name, framework_id=framework_id,
                                         executor_id=executor_id, sandbox=run_dir, meta=meta),
                             finished_at=_mtime(run_dir, meta))
        for root in (slaves, self._work_dir / "meta" / "slaves"):
            for old in sorted(root.glob("*")):
                if old.name == agent_id or old.is_symlink() or not old.is_dir():
                    continue
                self.gc.schedule(garbage.Run(container_id=f"agent:{root}/{old.name}",
                                             framework_id="", executor_id="", sandbox=old,
                                             meta=None), finished_at=_mtime(old))

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
            joins=str(data["joins"]) if data.get("joins") else None,
        )
        if container.launched or container.terminated:
            container.networked.set()  # a later group of its executor may join it now
        for tid, raw in data["tasks"].items():
            container.tasks[tid] = Task(
                info=raw["info"], framework_id=container.framework_id,
                executor_id=container.executor_id, container_id=container.container_id,
                state=raw["state"], statuses=list(raw.get("statuses", [])), pid=raw.get("pid"),
                cwd=str(raw.get("cwd", "")), env=dict(raw.get("env", {})),
                # What its checks run as and in (``running._start_probes``).
                user=raw.get("user") if isinstance(raw.get("user"), dict) else None,
                view=raw.get("view") if isinstance(raw.get("view"), dict) else None,
                network=raw.get("network") if isinstance(raw.get("network"), dict) else None,
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
        if self._detaching:  # DELs of containers that ended: never cut short
            await asyncio.wait(set(self._detaching),
                               timeout=self._config.network_cni_plugin_timeout_seconds * 3)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(set(self._background), timeout=5.0)
        await self._daemon.close()


def _mtime(*candidates: Path) -> float:
    """The modification time of the first of ``candidates`` that exists (now if none does)."""
    for path in candidates:
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return time.time()
