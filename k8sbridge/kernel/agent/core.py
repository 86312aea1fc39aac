"""The agent's state and what every part of it does to that state: the container and task
tables, status updates (reliable delivery through ``updates``), checkpoints, background tasks,
and the read-only views the HTTP API serves.

Why the base of the agent's classes: launching, following executors, recovery and the link
all mutate these tables on one event loop without awaiting inside a mutation (no locks); each
of those lives in its own module as a subclass, and this one is the only place the tables and
the status stream are written.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web

from k8sbridge.kernel import link
from k8sbridge.kernel import resources as mres
from k8sbridge.kernel.agent import (
    cgroups,
    checkpoint,
    cni,
    containers,
    detect,
    filesystems,
    garbage,
    paths,
    updates,
)
from k8sbridge.kernel.agent.config import AgentConfig
from k8sbridge.kernel.agent.errors import AgentError
from k8sbridge.kernel.agent.state import (
    DEFAULT_KILL_GRACE,
    MAX_COMPLETED_CONTAINERS,
    NEEDS_MESSAGE,
    Container,
    Task,
    grace_of,
    ip_of,
    nested_container_id,
    strip_status,
)

log = logging.getLogger(__name__)

_CHECKPOINT_COALESCE_SECONDS = 0.05


class AgentCore:
    """The agent's tables, status stream and checkpoints (see the module docstring)."""

    def __init__(self, *, config: AgentConfig) -> None:
        self._config = config
        try:
            self._given_resources = mres.parse_resources_flag(config.resources)
            self._attributes = mres.parse_attributes_flag(config.attributes)
        except mres.ResourceError as e:
            raise AgentError(f"bad agent flags: {e}") from e
        self._work_dir = Path(config.work_dir).resolve()
        self._resources = detect.default_resources(
            spec=config.resources, machine=detect.probe_machine(work_dir=self._work_dir)
        )
        self._agent_id: str | None = None
        self._ip = ip_of(config.host)
        self._http_port = 0
        self._runner: web.AppRunner | None = None
        self._containers: dict[str, Container] = {}
        self._completed: list[Container] = []
        self._frameworks: dict[str, dict[str, Any]] = {}
        self._updates = updates.StatusUpdates(retry_seconds=config.status_retry_seconds)
        self._stream: link.AgentStream | None = None
        # With TLS on (config.tls): the master's HTTPS and the link's TLS, set up by run().
        self._client_ssl: ssl.SSLContext | None = None
        self._link_credentials: grpc.ChannelCredentials | None = None
        self._registered = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._cgroups: cgroups.Cgroups | None = None
        self._daemon = containers.Daemon(
            work_dir=self._work_dir, log_path=self._work_dir / "meta" / "containers.log"
        )
        self._dirty: set[str] = set()
        self._cni: cni.Isolator | None = None
        self._detaching: set[asyncio.Task[None]] = set()  # DELs the shutdown waits for
        if config.network_cni_config_dir and "network/cni" in filesystems.parse_isolation(
                config.isolation):
            swept = cni.sweep_orphans()
            if swept:
                log.warning("agent: network/cni: unmounted %d network namespace(s) left by "
                            "agents whose work directory is gone", swept)
            if not config.network_cni_root_dir_persist and cni.make_run_base():
                log.info("agent: network/cni: mounted a tmpfs at %s", cni.RUN_BASE)
            root = cni.root_dir(work_dir=self._work_dir,
                                persist=config.network_cni_root_dir_persist)
            self._cni = cni.Isolator.load(
                config_dir=config.network_cni_config_dir,
                plugins_dir=config.network_cni_plugins_dir, root=root,
                plugins_netns=config.network_cni_plugins_netns or None,
                timeout=config.network_cni_plugin_timeout_seconds)
            cni.claim(root, work_dir=self._work_dir)
        self._removed_frameworks: set[str] = set()  # SHUTDOWN_FRAMEWORK: updates go nowhere
        self._task_index: dict[tuple[str, str], str] = {}  # (framework, task) -> container id
        self._flush_handle: asyncio.TimerHandle | None = None
        self._start_time = time.time()
        self._master_info: str = config.master
        # Containers recovery found running without a checkpoint and killed (for operators and
        # tests: no framework can be told, their tasks were never recorded).
        self.destroyed_unknown: list[str] = []
        self.gc = garbage.GarbageCollector(
            gc_delay=config.gc_delay_seconds, headroom=config.gc_disk_headroom,
            work_dir=self._work_dir, live_executor=self._live_executor,
            live_framework=self._live_framework, may_remove=self._done_with,
            retry=max(0.05, min(config.status_retry_seconds, config.gc_delay_seconds)))

    @property
    def agent_id(self) -> str | None:
        return self._agent_id

    @property
    def http_address(self) -> str:
        return f"{self._ip}:{self._http_port}"

    @property
    def config(self) -> AgentConfig:
        return self._config

    @property
    def resources(self) -> mres.Resources:
        return self._resources

    @property
    def attributes(self) -> tuple[mres.Attribute, ...]:
        return self._attributes

    @property
    def work_dir(self) -> Path:
        return self._work_dir

    def domain(self) -> dict[str, Any] | None:
        if self._config.region is None and self._config.zone is None:
            return None
        fault: dict[str, Any] = {}
        if self._config.region is not None:
            fault["region"] = {"name": self._config.region}
        if self._config.zone is not None:
            fault["zone"] = {"name": self._config.zone}
        return {"fault_domain": fault}

    def _post(self, message: dict[str, Any]) -> None:
        """Send without waiting; if the link is down, retries and re-registration cover it."""
        stream = self._stream
        if stream is not None and not stream.post(message):
            log.info("agent: link down, %s not sent", message.get("type"))

    def _find_task(self, framework_id: str, task_id: str) -> tuple[Container, Task] | None:
        container = self._containers.get(self._task_index.get((framework_id, task_id), ""))
        if container is None or task_id not in container.tasks:
            return None
        return container, container.tasks[task_id]

    def _add_container(self, container: Container) -> None:
        self._containers[container.container_id] = container
        for task_id in container.tasks:
            self._task_index[(container.framework_id, task_id)] = container.container_id

    def _remove_container(self, container: Container) -> None:
        self._containers.pop(container.container_id, None)
        for task_id in container.tasks:
            key = (container.framework_id, task_id)
            if self._task_index.get(key) == container.container_id:
                del self._task_index[key]

    def _kill_grace(self, container: Container, task: Task | None) -> float:
        infos = [task.info] if task else [t.info for t in container.tasks.values()]
        graces = [grace_of(i.get("kill_policy"), DEFAULT_KILL_GRACE) for i in infos]
        return max(graces) if graces else DEFAULT_KILL_GRACE

    def _acknowledge(self, framework_id: str, task_id: str, uuid: str) -> None:
        acked, messages = self._updates.acknowledge(
            framework_id=framework_id, task_id=task_id, uuid=uuid,
            connected=self._stream is not None,
        )
        for message in messages:
            self._post(message)
        if acked is None:
            return
        found = self._find_task(framework_id, task_id)
        if found is not None:
            self._persist(found[0])
            return
        for container in reversed(self._completed):  # a terminal update's ACK
            if container.framework_id == framework_id and task_id in container.tasks:
                self._persist(container)
                return

    def _update(self, container: Container, task: Task, state: str, *,
                source: str = "SOURCE_EXECUTOR", reason: str | None = None,
                message: str | None = None, healthy: bool | None = None,
                check_status: dict[str, Any] | None = None,
                limitation: dict[str, Any] | None = None) -> None:
        if task.terminal:
            return
        if state in NEEDS_MESSAGE and not message:
            # Every failure says why: a path that forgot gets a generic message (and a warning
            # naming the task) rather than a bare TASK_FAILED.
            log.warning("agent: %s of task %s had no message; filling it in", state,
                        task.task_id)
            message = f"{state} reported by the agent without details"
        status: dict[str, Any] = {
            "task_id": {"value": task.task_id},
            "state": state,
            "source": source,
            "agent_id": {"value": self._agent_id or ""},
            "executor_id": {"value": container.executor_id},
            "timestamp": time.time(),
            "uuid": updates.new_uuid(),
            "container_status": self.container_status(container, task),
        }
        if reason is not None:
            status["reason"] = reason
        if message is not None:
            status["message"] = message
        if healthy is not None:
            task.healthy = healthy
        if task.healthy is not None and task.info.get("health_check"):
            status["healthy"] = task.healthy
        if check_status is not None:
            task.check_status = check_status
        if task.check_status is not None:
            status["check_status"] = task.check_status
        if limitation is not None:
            status["limitation"] = limitation
        labels = task.info.get("labels")
        if labels:
            status["labels"] = labels
        task.state = state
        task.statuses.append(status)
        del task.statuses[:-50]
        if container.framework_id in self._removed_frameworks:
            self._persist(container)
            return
        for out in self._updates.add(framework_id=container.framework_id, status=status,
                                     incarnation=container.container_id,
                                     connected=self._stream is not None):
            self._post(out)
        self._persist(container)

    def container_status(self, container: Container, task: Task | None = None
                         ) -> dict[str, Any]:
        """``ContainerStatus``; a task-group task has a nested id under the executor's, as
        Mesos' DEFAULT executor runs each task in a child container."""
        container_id: dict[str, Any] = {"value": container.container_id}
        if task is not None and container.kind == "DEFAULT":
            container_id = {"value": nested_container_id(container.container_id, task.task_id),
                            "parent": container_id}
        attached = self._cni.status(container.executor_root) if self._cni else None
        out: dict[str, Any] = {
            "container_id": container_id,
            # A CNI container's addresses while it is attached (Mesos' isolator ``status``);
            # otherwise the agent's, as Mesos fills in for the host network.
            "network_infos": attached.network_infos if attached is not None and not
            container.terminated else [
                {"ip_addresses": [{"protocol": "IPv4", "ip_address": self._ip}]}],
        }
        if container.executor_pid is None and container.launched:
            pid = paths.read_json(container.meta_dir / "executor.pid")
            container.executor_pid = pid if isinstance(pid, int) else 0
        if container.executor_pid:
            out["executor_pid"] = container.executor_pid
        return out

    def _stop_probes(self, task: Task) -> None:
        for probe in task.probes:
            probe.cancel()
        task.probes.clear()

    def _finish_container(self, container: Container, *, notify_master: bool) -> None:
        if container.terminated:
            return
        container.terminated = True
        container.networked.set()
        for task in container.tasks.values():
            self._stop_probes(task)
        # The executor ends with its last task group (Mesos' default executor ends when it has
        # no child container left): only then is it reported gone and its network detached.
        last = not any(c.executor_root == container.executor_root and c is not container
                       for c in self._containers.values())
        if notify_master and last and (container.launched or container.joins is not None):
            self._post({
                "type": "EXECUTOR_EXITED",
                "framework_id": {"value": container.framework_id},
                "executor_id": {"value": container.executor_id},
                "status": 0,
            })
        if self._containers.get(container.container_id) is container:
            self._remove_container(container)
        self._completed.append(container)
        del self._completed[:-MAX_COMPLETED_CONTAINERS]
        self._persist(container)
        self.gc.schedule(self._gc_run(container))
        if self._cni is not None and last:  # DEL on every network, then its namespace goes
            detach = asyncio.ensure_future(self._cni.detach(container.executor_root))
            self._detaching.add(detach)
            detach.add_done_callback(self._detaching.discard)

    def _gc_run(self, container: Container) -> garbage.Run:
        return garbage.Run(container_id=container.container_id,
                           framework_id=container.framework_id,
                           executor_id=container.executor_id, sandbox=container.directory,
                           meta=container.meta_dir)

    def _live_executor(self, framework_id: str, executor_id: str) -> bool:
        return any(c.framework_id == framework_id and c.executor_id == executor_id
                   for c in self._containers.values())

    def _live_framework(self, framework_id: str) -> bool:
        return any(c.framework_id == framework_id for c in self._containers.values())

    def _done_with(self, run: garbage.Run) -> bool:
        """Whether a finished container's files may go: it is not live (a guard) and no
        status update of it waits for an acknowledgement (its checkpoint carries them)."""
        if run.container_id in self._containers or any(
                c.directory == run.sandbox for c in self._containers.values()) or \
                self._updates.awaiting(
                framework_id=run.framework_id, incarnation=run.container_id):
            return False
        for container in self._completed:
            if container.container_id == run.container_id:
                # Its checkpoint is about to go: no later write may bring it back.
                container.collected = True
                self._dirty.discard(container.container_id)
        return True

    def _persist(self, container: Container, *, now: bool = False) -> None:
        """Checkpoint ``container``: soon (writes are coalesced), or ``now``.

        Containers of non-checkpointing frameworks are not written at all: like Mesos, their
        executors shut their tasks down when the agent goes, and a new agent knows nothing of them.
        """
        if not container.checkpoint:
            return  # nothing of it survives an agent restart (its executor stops with the agent)
        if now:
            self._dirty.discard(container.container_id)
            self._write_checkpoint(container)
            return
        self._dirty.add(container.container_id)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(
                _CHECKPOINT_COALESCE_SECONDS, self._flush_checkpoints)

    def _flush_checkpoints(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, set()
        by_id = {c.container_id: c for c, _ in self.all_containers()}
        for container_id in dirty:
            container = by_id.get(container_id)
            if container is not None:
                self._write_checkpoint(container)

    def _write_checkpoint(self, container: Container) -> None:
        if container.collected:
            return
        pending = {
            tid: self._updates.pending(framework_id=container.framework_id, task_id=tid,
                                       incarnation=container.container_id)
            for tid in container.tasks
        }
        data = checkpoint.encode(container.memo, container, pending).encode()
        if checkpoint.settled(container, pending):
            container.memo.clear()
        try:
            paths.atomic_write_bytes(container.meta_dir / "state.json", data)
        except OSError as e:
            log.warning("agent: cannot checkpoint container %s: %s", container.container_id, e)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("agent: background task failed", exc_info=task.exception())

    def all_containers(self) -> Iterator[tuple[Container, bool]]:
        """(container, live) for live containers, then completed ones."""
        for container in self._containers.values():
            yield container, True
        for container in self._completed:
            yield container, False

    def live_containers(self) -> list[Container]:
        return list(self._containers.values())

    def framework_infos(self) -> dict[str, dict[str, Any]]:
        return dict(self._frameworks)

    def task_json(self, task: Task) -> dict[str, Any]:
        """A task in the operator-API shape (REGISTER, GET_STATE)."""
        info = task.info
        out: dict[str, Any] = {
            "name": info.get("name", ""),
            "task_id": {"value": task.task_id},
            "framework_id": {"value": task.framework_id},
            "executor_id": {"value": task.executor_id},
            "agent_id": {"value": self._agent_id or ""},
            "state": task.state,
            "resources": info.get("resources", []),
            "statuses": [strip_status(s) for s in task.statuses],
        }
        for key in ("labels", "container", "discovery", "health_check", "check",
                    "kill_policy"):
            if key in info:
                out[key] = info[key]
        if task.statuses:
            out["status_update_state"] = task.statuses[-1]["state"]
            out["status_update_uuid"] = task.statuses[-1]["uuid"]
        return out

    @property
    def ip(self) -> str:
        return self._ip

    @property
    def start_time(self) -> float:
        return self._start_time

    def sandbox_root(self) -> Path:
        return self._work_dir / "slaves"
