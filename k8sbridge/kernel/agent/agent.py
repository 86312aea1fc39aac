"""The agent component: registers with the master over the link and runs its tasks.

Why one component with a single owner of all state: registration, launches, kills, executor
events, health checks and status retries all mutate the same task table; doing all of it on one
event loop without awaits inside a mutation keeps it free of locks and races. Slow work (asking
the container daemon for a supervisor, fetching URIs, probing a check) runs in background tasks
that report back through plain method calls on this object.

Lifecycle: ``run(stop, ready)`` recovers checkpointed containers from ``work_dir/meta``, serves
the agent HTTP API, then loops: discover the link (``GET /kernel/link`` on the master), REGISTER
(re-register with its id and tasks once it has one), answer PINGs and run what the master sends;
on losing the master it backs off (1 s doubling to ``registration_backoff_max_seconds``) and
registers again, keeping its tasks. Stopping kills every task unless ``_keep_tasks`` is set (the
test hook for an agent process restart: checkpointed tasks survive and are re-adopted).

Containers: no image registry is reachable and there is no Docker engine, so a task's image
(``container.mesos.image`` or ``container.docker.image``) is recorded -- it shows in ``/state`` and
the master's task -- but the command runs on the host, in the sandbox, on the host network.
What cannot be honoured that way fails the task with REASON_CONTAINER_LAUNCH_FAILED and a
message saying why (DOCKER bridge networking and port mappings, CNI networks, volumes at absolute
paths, secret environment variables, custom executors); it never silently "succeeds".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import socket
import time
import uuid as uuid_mod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from k8sbridge.kernel import link
from k8sbridge.kernel import resources as mres
from k8sbridge.kernel.agent import (
    cgroups,
    checks,
    containers,
    detect,
    fetcher,
    limits,
    paths,
    updates,
)
from k8sbridge.kernel.agent.config import AgentConfig
from k8sbridge.kernel.agent.errors import AgentError, ContainerError, FetchError
from k8sbridge.kernel.protocol import TERMINAL_STATES

__all__ = ["Agent", "AgentError", "VERSION"]

log = logging.getLogger(__name__)

VERSION = "1.12.0"

DEFAULT_KILL_GRACE = 3.0
MAX_COMPLETED_CONTAINERS = 200
_REGISTER_TIMEOUT = 10.0
_CHECKPOINT_COALESCE_SECONDS = 0.05


class _LaunchError(Exception):
    """A task cannot be run as asked (the message goes into TASK_FAILED)."""


# Terminal failure states that must say why in a message. The reason stays what Mesos would
# send (its command executor sends "Command exited with status N" and no reason).
_NEEDS_MESSAGE = frozenset({"TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_GONE"})


@dataclasses.dataclass(slots=True)
class _Task:
    info: dict[str, Any]
    framework_id: str
    executor_id: str
    container_id: str
    state: str = "TASK_STAGING"
    statuses: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    pid: int | None = None
    healthy: bool | None = None
    killed_by_health: bool = False
    deadline_reached: bool = False
    check_status: dict[str, Any] | None = None
    cwd: str = ""
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    probes: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)

    @property
    def task_id(self) -> str:
        return str(self.info["task_id"]["value"])

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclasses.dataclass(slots=True)
class _Container:
    container_id: str
    framework_id: str
    executor_id: str
    kind: str  # "COMMAND" (command executor) or "DEFAULT" (task group)
    framework: dict[str, Any]
    executor: dict[str, Any]
    directory: Path
    meta_dir: Path
    tasks: dict[str, _Task]
    client: containers.ExecutorClient | None = None
    launched: bool = False
    terminated: bool = False
    pending_kill: float | None = None
    cgroup: cgroups.CgroupSet | None = None
    mem_limit_mb: float | None = None
    cpus_limit: float | None = None
    executor_pid: int | None = None  # the container daemon's pid (from its answer, or read once)
    started: float = dataclasses.field(default_factory=time.time)

    @property
    def checkpoint(self) -> bool:
        return bool(self.framework.get("checkpoint", False))


def _id(raw: Any, what: str) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get("value"), str) or not raw["value"]:
        raise _LaunchError(f"missing or malformed {what}")
    value: str = raw["value"]
    if value in (".", "..") or "/" in value or "\\" in value or len(value) > 255:
        raise _LaunchError(f"invalid {what} {value!r}")
    return value


def _signal_name(number: int) -> str:
    try:
        return signal.strsignal(number) or f"signal {number}"
    except ValueError:
        return f"signal {number}"


def _grace_of(kill_policy: Any, default: float) -> float:
    if isinstance(kill_policy, dict):
        nanos = (kill_policy.get("grace_period") or {}).get("nanoseconds")
        if isinstance(nanos, int | float) and nanos >= 0:
            return float(nanos) / 1e9
    return default


class Agent:
    """One Mesos-like agent (contract C)."""

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
        self._ip = _ip_of(config.host)
        self._http_port = 0
        self._runner: web.AppRunner | None = None
        self._containers: dict[str, _Container] = {}
        self._completed: list[_Container] = []
        self._frameworks: dict[str, dict[str, Any]] = {}
        self._updates = updates.StatusUpdates(retry_seconds=config.status_retry_seconds)
        self._stream: link.AgentStream | None = None
        self._registered = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._cgroups: cgroups.Cgroups | None = None
        self._daemon = containers.Daemon(
            work_dir=self._work_dir, log_path=self._work_dir / "meta" / "containers.log"
        )
        self._dirty: set[str] = set()
        self._removed_frameworks: set[str] = set()  # SHUTDOWN_FRAMEWORK: updates go nowhere
        self._task_index: dict[tuple[str, str], str] = {}  # (framework, task) -> container id
        self._flush_handle: asyncio.TimerHandle | None = None
        self._start_time = time.time()
        self._master_info: str = config.master

    # -- public --------------------------------------------------------------------------------

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

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event,
                  _keep_tasks: bool = False) -> None:
        from k8sbridge.kernel.agent import http as agent_http

        try:
            self._work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AgentError(f"cannot use work dir {self._work_dir}: {e}") from e
        self._cgroups = cgroups.detect()
        app = agent_http.make_app(self)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._config.host, self._config.port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise AgentError(
                f"cannot serve the agent API on {self._config.host}:{self._config.port}: {e}"
            ) from e
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._http_port = int(sockets[0].getsockname()[1]) if sockets else self._config.port
        try:
            await self._recover()
        except BaseException:
            await self._shutdown(keep_tasks=True)
            await runner.cleanup()
            raise
        self._spawn(self._daemon.warm_up())
        log.info("agent API on http://%s", self.http_address)
        link_task = asyncio.create_task(self._link_loop(stop=stop, ready=ready), name="agent-link")
        retry_task = asyncio.create_task(self._retry_loop(stop=stop), name="agent-retries")
        try:
            await stop.wait()
        finally:
            for task in (link_task, retry_task):
                task.cancel()
            for task in (link_task, retry_task):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._shutdown(keep_tasks=_keep_tasks)
            stream, self._stream = self._stream, None
            if stream is not None:
                await stream.close()
            await runner.cleanup()
            self._runner = None

    # -- the link ------------------------------------------------------------------------------

    async def _discover_link(self) -> str:
        url = f"http://{self._config.master}/kernel/link"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            async with session.get(url) as response:
                if response.status != 200:
                    raise link.LinkError(f"{url} answered {response.status}")
                body = await response.json(content_type=None)
        address = body.get("address") if isinstance(body, dict) else None
        if not isinstance(address, str) or ":" not in address:
            raise link.LinkError(f"{url} gave no link address: {body!r}")
        return address

    async def _link_loop(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            stream: link.AgentStream | None = None
            try:
                address = await self._discover_link()
                stream = await link.connect(address, timeout=5.0)
                await stream.send(self._register_message())
                registered = await self._await_registered(stream)
            except (link.LinkError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
                log.info("agent: master %s not reachable (%s); retrying in %.0fs",
                         self._config.master, e, backoff)
                if stream is not None:
                    await stream.close()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await stop.wait()
                backoff = min(backoff * 2, max(1.0, self._config.registration_backoff_max_seconds))
                continue
            self._on_registered(registered)
            backoff = 1.0
            self._stream = stream
            ready.set()
            for message in self._updates.resend_all():
                self._post(message)
            try:
                async for message in stream:
                    try:
                        self._dispatch(message)
                    except (_LaunchError, KeyError, TypeError, ValueError, AttributeError) as e:
                        log.warning("agent: dropped a malformed %s message: %s",
                                    message.get("type"), e)
            finally:
                self._stream = None
                self._registered.clear()
                await stream.close()
            if not stop.is_set():
                log.warning("agent %s lost its master; re-registering", self._agent_id)

    async def _await_registered(self, stream: link.AgentStream) -> str:
        async with asyncio.timeout(_REGISTER_TIMEOUT):
            async for message in stream:
                if message.get("type") == "REGISTERED":
                    agent_id = (message.get("agent_id") or {}).get("value")
                    if isinstance(agent_id, str) and agent_id:
                        return agent_id
                    raise ValueError("REGISTERED without an agent id")
                if message.get("type") == "PING":
                    await stream.send({"type": "PONG"})
        raise link.LinkError("the master closed the link before REGISTERED")

    def _on_registered(self, agent_id: str) -> None:
        if self._agent_id is not None and agent_id != self._agent_id:
            log.warning("agent re-registered under a new id %s (was %s)", agent_id, self._agent_id)
        self._agent_id = agent_id
        paths.save_agent_id(work_dir=self._work_dir, agent_id=agent_id)
        self._registered.set()
        log.info("agent registered as %s", agent_id)

    def _post(self, message: dict[str, Any]) -> None:
        """Send without waiting; if the link is down, retries and re-registration cover it."""
        stream = self._stream
        if stream is not None and not stream.post(message):
            log.info("agent: link down, %s not sent", message.get("type"))

    async def _retry_loop(self, *, stop: asyncio.Event) -> None:
        tick = min(1.0, max(0.05, self._config.status_retry_seconds / 4))
        while not stop.is_set():
            await asyncio.sleep(tick)
            if self._stream is not None:
                for message in self._updates.due():
                    self._post(message)

    def _register_message(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "hostname": self._config.hostname or self._config.host,
            "port": self._http_port,
            "resources": self._resources.to_raw(),
            "attributes": [a.to_raw() for a in self._attributes],
        }
        if self._agent_id is not None:
            info["id"] = {"value": self._agent_id}
        domain = self.domain()
        if domain is not None:
            info["domain"] = domain
        live = [c for c in self._containers.values()]
        tasks = [self.task_json(t) for c in live for t in c.tasks.values()]
        executors = [c.executor for c in live if c.kind == "DEFAULT"]
        fids = {c.framework_id for c in live}
        frameworks = [self._frameworks[f] for f in sorted(fids) if f in self._frameworks]
        return {"type": "REGISTER", "agent_info": info, "version": VERSION, "tasks": tasks,
                "executors": executors, "frameworks": frameworks}

    def domain(self) -> dict[str, Any] | None:
        if self._config.region is None and self._config.zone is None:
            return None
        fault: dict[str, Any] = {}
        if self._config.region is not None:
            fault["region"] = {"name": self._config.region}
        if self._config.zone is not None:
            fault["zone"] = {"name": self._config.zone}
        return {"fault_domain": fault}

    # -- master messages -----------------------------------------------------------------------

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "PING":
            self._post({"type": "PONG"})
        elif kind == "RUN_TASK":
            self._run_task(message["framework"], message["task"])
        elif kind == "RUN_TASK_GROUP":
            self._run_task_group(
                message["framework"], message["executor"], message["task_group"]["tasks"]
            )
        elif kind == "KILL_TASK":
            self._kill_task(
                _id(message.get("framework_id"), "framework_id"),
                _id(message.get("task_id"), "task_id"),
                message.get("kill_policy"),
            )
        elif kind == "SHUTDOWN_EXECUTOR":
            self._shutdown_executor(
                _id(message.get("framework_id"), "framework_id"),
                _id(message.get("executor_id"), "executor_id"),
            )
        elif kind == "SHUTDOWN_FRAMEWORK":
            self._shutdown_framework(_id(message.get("framework_id"), "framework_id"))
        elif kind == "ACKNOWLEDGE":
            self._acknowledge(
                _id(message.get("framework_id"), "framework_id"),
                _id(message.get("task_id"), "task_id"),
                str(message.get("uuid", "")),
            )
        elif kind == "MESSAGE":
            executor_id = (message.get("executor_id") or {}).get("value")
            log.info("agent: dropped a framework message for executor %s (the command and "
                     "DEFAULT executors take none)", executor_id)
        elif kind == "REGISTERED":
            pass  # a duplicate reply to a retried REGISTER
        else:
            log.warning("agent: ignored an unknown link message type %r", kind)

    def _find_task(self, framework_id: str, task_id: str) -> tuple[_Container, _Task] | None:
        container = self._containers.get(self._task_index.get((framework_id, task_id), ""))
        if container is None or task_id not in container.tasks:
            return None
        return container, container.tasks[task_id]

    def _add_container(self, container: _Container) -> None:
        self._containers[container.container_id] = container
        for task_id in container.tasks:
            self._task_index[(container.framework_id, task_id)] = container.container_id

    def _remove_container(self, container: _Container) -> None:
        self._containers.pop(container.container_id, None)
        for task_id in container.tasks:
            key = (container.framework_id, task_id)
            if self._task_index.get(key) == container.container_id:
                del self._task_index[key]

    def _new_container(self, *, framework: dict[str, Any], executor: dict[str, Any], kind: str,
                       task_infos: list[dict[str, Any]]) -> _Container:
        framework_id = _id(framework.get("id"), "framework id")
        executor_id = _id(executor.get("executor_id"), "executor id")
        if self._agent_id is None:
            raise _LaunchError("agent is not registered")
        container_id = str(uuid_mod.uuid4())
        tasks: dict[str, _Task] = {}
        for info in task_infos:
            task_id = _id(info.get("task_id"), "task id")
            tasks[task_id] = _Task(info=info, framework_id=framework_id,
                                   executor_id=executor_id, container_id=container_id)
        self._frameworks[framework_id] = framework
        self._removed_frameworks.discard(framework_id)
        return _Container(
            container_id=container_id,
            framework_id=framework_id,
            executor_id=executor_id,
            kind=kind,
            framework=framework,
            executor=executor,
            directory=paths.executor_sandbox(
                work_dir=self._work_dir, agent_id=self._agent_id, framework_id=framework_id,
                executor_id=executor_id, container_id=container_id),
            meta_dir=paths.container_meta_dir(
                work_dir=self._work_dir, agent_id=self._agent_id, framework_id=framework_id,
                executor_id=executor_id, container_id=container_id),
            tasks=tasks,
        )

    def _run_task(self, framework: dict[str, Any], task: dict[str, Any]) -> None:
        framework_id = _id(framework.get("id"), "framework id")
        task_id = _id(task.get("task_id"), "task id")
        executor = {
            "type": "DEFAULT",
            "executor_id": {"value": task_id},
            "framework_id": {"value": framework_id},
            "name": f"Command Executor (Task: {task_id}) (Command: {_command_preview(task)})",
            "source": task_id,
            "command": task.get("command") or {},
        }
        container = self._new_container(framework=framework, executor=executor, kind="COMMAND",
                                        task_infos=[task])
        self._start(container)

    def _run_task_group(self, framework: dict[str, Any], executor: dict[str, Any],
                        tasks: list[dict[str, Any]]) -> None:
        if not tasks:
            raise _LaunchError("RUN_TASK_GROUP with no tasks")
        executor = dict(executor)
        executor.setdefault("framework_id", framework.get("id"))
        container = self._new_container(framework=framework, executor=executor, kind="DEFAULT",
                                        task_infos=list(tasks))
        self._start(container)

    def _start(self, container: _Container) -> None:
        dupes = [t for t in container.tasks if (container.framework_id, t) in self._task_index]
        if dupes:
            # The master rejects duplicate task ids (TASK_ERROR); one reaching us must not
            # touch the running task of that id, nor its status stream.
            log.warning("agent: dropped a launch of task %r of framework %s: that task id is "
                        "already running here", dupes[0], container.framework_id)
            return
        self._add_container(container)
        self._persist(container)
        self._spawn(self._launch(container))

    async def _launch(self, container: _Container) -> None:
        try:
            specs = [self._task_spec(container, t) for t in container.tasks.values()]
        except _LaunchError as e:
            self._fail_launch(container, str(e))
            return
        if container.pending_kill is not None:
            for task in container.tasks.values():
                self._update(container, task, "TASK_KILLED", source="SOURCE_AGENT",
                             reason="REASON_TASK_KILLED_DURING_LAUNCH",
                             message="Task killed before it was launched")
            self._finish_container(container, notify_master=False)
            return
        own, nested = limits.plan(
            executor_resources=container.executor.get("resources")
            if container.kind == "DEFAULT" else None,
            tasks=[(t.task_id, t.info) for t in container.tasks.values()],
            group=container.kind == "DEFAULT")
        container.mem_limit_mb = _finite_or(own.mem_limit_mb, own.mem_mb)
        container.cpus_limit = _finite_or(own.cpus_limit, own.cpus)
        children = {task_id: (nested_container_id(container.container_id, task_id), lim)
                    for task_id, lim in nested.items()}
        assert self._cgroups is not None
        prepare: dict[str, Any] | None = None
        if any(_needs_local_preparation(t.info) for t in container.tasks.values()):
            # Volumes and URIs are made here, in order (the sandbox first, then its contents).
            try:
                container.directory.mkdir(parents=True, exist_ok=True)
                paths.link_latest(container.directory)
                for task, task_spec in zip(container.tasks.values(), specs, strict=True):
                    cwd = Path(task_spec["cwd"])
                    cwd.mkdir(parents=True, exist_ok=True)
                    self._setup_volumes(container, task, cwd)
            except OSError as e:
                self._fail_launch(container, f"cannot create the sandbox or its volumes: {e}")
                return
            try:
                for task, task_spec in zip(container.tasks.values(), specs, strict=True):
                    uris = (task.info.get("command") or {}).get("uris") or []
                    if uris:
                        await fetcher.fetch_all(uris, sandbox=Path(task_spec["cwd"]))
            except FetchError as e:
                self._fail_launch(container, f"Failed to fetch all URIs for container: {e}")
                return
            container.cgroup = self._cgroups.create(
                container_id=container.container_id, limits=own, nested=children)
        else:
            # The container daemon makes the sandbox and the cgroups: it is a process of its
            # own, while this agent shares one Python process with the master and other agents.
            prepare = {
                "sandbox": str(container.directory),
                "dirs": [s["cwd"] for s in specs if s["cwd"] != str(container.directory)],
                "cgroups": {"hierarchy": self._cgroups.to_raw(), "limits": own.to_raw(),
                            "nested": {t: [c, lim.to_raw()] for t, (c, lim) in children.items()}}
                if self._cgroups.available else None,
            }
        client = containers.ExecutorClient(
            container_id=container.container_id, meta_dir=container.meta_dir,
            on_event=lambda event: self._on_executor_event(container, event),
        )
        container.client = client
        spec: dict[str, Any] = {
            "container_id": container.container_id,
            "group": container.kind == "DEFAULT",
            "tasks": specs,
            "cgroups": container.cgroup.to_raw() if container.cgroup else None,
            "kill_grace": self._kill_grace(container, None),
            "checkpoint": container.checkpoint,
            "recovery_timeout": self._config.recovery_timeout_seconds,
            "log_path": str(container.directory / ("stderr" if container.kind == "COMMAND"
                                                   else "executor.log")),
        }
        if prepare is not None:
            spec["prepare"] = prepare

        def spawned_as(spawned: containers.Spawned | None) -> None:
            if spawned is not None:
                container.executor_pid = spawned.pid or container.executor_pid
                if prepare is not None:
                    container.cgroup = cgroups.CgroupSet.from_raw(spawned.cgroups)
            container.launched = True

        try:
            await client.launch(spec, daemon=self._daemon, checkpoint=container.checkpoint,
                                on_spawned=spawned_as)
        except ContainerError as e:
            if container.cgroup is not None:
                for d, err in container.cgroup.remove().items():
                    log.warning("cannot remove cgroup %s of a failed launch: %s", d, err)
            self._fail_launch(container, str(e))
            return
        self._persist(container, now=True)
        pending = _pending_kill(container)  # a KILL may have arrived while we were starting
        if pending is not None:
            await client.shutdown(grace=pending)

    def _fail_launch(self, container: _Container, why: str) -> None:
        log.warning("agent: container %s failed to launch: %s", container.container_id, why)
        for task in container.tasks.values():
            self._update(container, task, "TASK_FAILED", source="SOURCE_AGENT",
                         reason="REASON_CONTAINER_LAUNCH_FAILED", message=why)
        self._finish_container(container, notify_master=True)

    def _kill_grace(self, container: _Container, task: _Task | None) -> float:
        infos = [task.info] if task else [t.info for t in container.tasks.values()]
        graces = [_grace_of(i.get("kill_policy"), DEFAULT_KILL_GRACE) for i in infos]
        return max(graces) if graces else DEFAULT_KILL_GRACE

    def _task_spec(self, container: _Container, task: _Task) -> dict[str, Any]:
        info = task.info
        if info.get("executor") and container.kind == "COMMAND":
            raise _LaunchError("custom executors are not supported by this agent; use a "
                               "command task or a task group")
        self._check_container(info.get("container"), group=container.kind == "DEFAULT")
        if container.kind == "DEFAULT":
            self._check_container(container.executor.get("container"), group=True)
        command = info.get("command")
        if not isinstance(command, dict):
            raise _LaunchError("the task has no command")
        value = command.get("value")
        shell = command.get("shell", True)
        executable: str | None = None
        if shell:
            if not isinstance(value, str) or not value:
                raise _LaunchError("command.value is required when shell is true")
            argv = ["/bin/sh", "-c", value]
        else:
            if not isinstance(value, str) or not value:
                raise _LaunchError("command.value (the executable) is required when shell is "
                                   "false")
            args = command.get("arguments") or []
            if not isinstance(args, list):
                raise _LaunchError("command.arguments must be a list")
            argv = [str(a) for a in args] or [value]
            executable = value
        if container.kind == "DEFAULT":
            cwd = paths.task_sandbox(executor_dir=container.directory, task_id=task.task_id)
        else:
            cwd = container.directory
        env = self._task_env(container, task, command, sandbox=cwd)
        user = command.get("user")
        if user and user != _current_user():
            log.info("agent: task %s asks for user %r; running as %s (no user switching)",
                     task.task_id, user, _current_user())
        task.cwd, task.env = str(cwd), env
        return {
            "task_id": task.task_id,
            "argv": argv,
            "executable": executable,
            "env": env,
            "cwd": str(cwd),
            "stdout": str(cwd / "stdout"),
            "stderr": str(cwd / "stderr"),
        }

    def _check_container(self, raw: Any, *, group: bool) -> None:
        if not raw:
            return
        if not isinstance(raw, dict):
            raise _LaunchError("malformed container info")
        ctype = raw.get("type", "MESOS")
        if ctype == "DOCKER":
            docker = raw.get("docker") or {}
            network = docker.get("network", "HOST")
            if group:
                raise _LaunchError("DOCKER containers are not allowed in task groups")
            if network in ("BRIDGE", "USER") or docker.get("port_mappings"):
                raise _LaunchError(
                    f"cannot honour a DOCKER container with network {network} and port "
                    "mappings: this agent has no Docker engine (images are recorded and the "
                    "command runs on the host network)"
                )
        elif ctype != "MESOS":
            raise _LaunchError(f"unsupported container type {ctype!r}")
        for net in raw.get("network_infos") or []:
            if isinstance(net, dict) and net.get("name"):
                raise _LaunchError(f"CNI network {net['name']!r} is not available on this agent")
        for volume in raw.get("volumes") or []:
            path = volume.get("container_path") if isinstance(volume, dict) else None
            if not isinstance(path, str) or not path:
                raise _LaunchError("a volume without a container_path")
            if path.startswith("/"):
                raise _LaunchError(
                    f"volume at absolute container path {path!r} needs a container root file "
                    "system (mount namespace), which this agent does not create; use a path "
                    "relative to the sandbox")
            if ".." in Path(path).parts:
                raise _LaunchError(f"volume container path {path!r} leaves the sandbox")

    def _setup_volumes(self, container: _Container, task: _Task, sandbox: Path) -> None:
        """Relative-path volumes as the posix filesystem isolator makes them: host paths and
        the parent's sandbox are linked into the task's sandbox, other volumes are directories.
        """
        raw = task.info.get("container") or {}
        for volume in raw.get("volumes") or []:
            target = sandbox / volume["container_path"]
            source = volume.get("source") or {}
            sandbox_path = source.get("sandbox_path") or {}
            if volume.get("host_path"):
                link_to: Path | None = Path(str(volume["host_path"]))
            elif source.get("type") == "SANDBOX_PATH" and sandbox_path.get("path"):
                base = container.directory if sandbox_path.get("type") == "PARENT" else sandbox
                link_to = base / str(sandbox_path["path"])
                link_to.mkdir(parents=True, exist_ok=True)
            else:
                link_to = None
            target.parent.mkdir(parents=True, exist_ok=True)
            if link_to is None:
                target.mkdir(exist_ok=True)
            elif not target.exists():
                target.symlink_to(link_to)

    def _task_env(self, container: _Container, task: _Task, command: dict[str, Any], *,
                  sandbox: Path) -> dict[str, str]:
        env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        env.update({
            "MESOS_SANDBOX": str(sandbox),
            "MESOS_DIRECTORY": str(container.directory),
            "MESOS_TASK_ID": task.task_id,
            "MESOS_FRAMEWORK_ID": container.framework_id,
            "MESOS_EXECUTOR_ID": container.executor_id,
            "MESOS_AGENT_ENDPOINT": self.http_address,
            "MESOS_CONTAINER_IP": self._ip,
            "HOME": str(sandbox),
        })
        for var in (command.get("environment") or {}).get("variables", []):
            if not isinstance(var, dict) or not isinstance(var.get("name"), str):
                raise _LaunchError("malformed environment variable")
            if var.get("type", "VALUE") != "VALUE":
                raise _LaunchError(f"environment variable {var['name']!r}: only VALUE variables "
                                   "are supported (no secret store on this agent)")
            env[var["name"]] = str(var.get("value", ""))
        return env

    def _kill_task(self, framework_id: str, task_id: str, kill_policy: Any) -> None:
        found = self._find_task(framework_id, task_id)
        if found is None:
            log.info("agent: asked to kill unknown task %s of framework %s", task_id, framework_id)
            return
        container, task = found
        if task.terminal:
            return
        grace = _grace_of(kill_policy, self._kill_grace(container, task))
        self._kill_container(container, grace=grace)

    def _kill_container(self, container: _Container, *, grace: float) -> None:
        killing_state = _has_capability(container.framework, "TASK_KILLING_STATE")
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
                self._kill_container(container, grace=self._config.executor_shutdown_grace_seconds)

    def _shutdown_framework(self, framework_id: str) -> None:
        self._removed_frameworks.add(framework_id)
        for container in list(self._containers.values()):
            if container.framework_id == framework_id:
                self._kill_container(container, grace=self._kill_grace(container, None))
        self._updates.drop_framework(framework_id)

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

    # -- executor events -----------------------------------------------------------------------

    def _on_executor_event(self, container: _Container, event: dict[str, Any]) -> None:
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
                    container, task, "TASK_RUNNING",
                    check_status=_empty_check_status(check) if isinstance(check, dict) else None,
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

    def _update_exit(self, container: _Container, task: _Task, event: dict[str, Any]) -> None:
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
        text = (f"Command terminated with signal {_signal_name(status)}" if signaled
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

    def _finish_container(self, container: _Container, *, notify_master: bool) -> None:
        if container.terminated:
            return
        container.terminated = True
        for task in container.tasks.values():
            self._stop_probes(task)
        if notify_master and container.launched:
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

    # -- status updates ------------------------------------------------------------------------

    def _update(self, container: _Container, task: _Task, state: str, *,
                source: str = "SOURCE_EXECUTOR", reason: str | None = None,
                message: str | None = None, healthy: bool | None = None,
                check_status: dict[str, Any] | None = None,
                limitation: dict[str, Any] | None = None) -> None:
        if task.terminal:
            return
        if state in _NEEDS_MESSAGE and not message:
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
                                     connected=self._stream is not None):
            self._post(out)
        self._persist(container)

    def container_status(self, container: _Container, task: _Task | None = None
                         ) -> dict[str, Any]:
        """``ContainerStatus``; a task-group task has a nested id under the executor's, as
        Mesos' DEFAULT executor runs each task in a child container."""
        container_id: dict[str, Any] = {"value": container.container_id}
        if task is not None and container.kind == "DEFAULT":
            container_id = {"value": nested_container_id(container.container_id, task.task_id),
                            "parent": container_id}
        out: dict[str, Any] = {
            "container_id": container_id,
            "network_infos": [{"ip_addresses": [{"protocol": "IPv4", "ip_address": self._ip}]}],
        }
        if container.executor_pid is None and container.launched:
            pid = paths.read_json(container.meta_dir / "executor.pid")
            container.executor_pid = pid if isinstance(pid, int) else 0
        if container.executor_pid:
            out["executor_pid"] = container.executor_pid
        return out

    # -- checks --------------------------------------------------------------------------------

    def _start_probes(self, container: _Container, task: _Task) -> None:
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
                    health, cwd=task.cwd, env=task.env, report=on_health)))
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
                    check, cwd=task.cwd, env=task.env, report=on_check)))
            else:
                log.warning("agent: task %s check ignored: %s", task.task_id, problem)

    def _start_deadline(self, container: _Container, task: _Task) -> None:
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

    def _stop_probes(self, task: _Task) -> None:
        for probe in task.probes:
            probe.cancel()
        task.probes.clear()

    # -- checkpoints and recovery --------------------------------------------------------------

    def _persist(self, container: _Container, *, now: bool = False) -> None:
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

    def _write_checkpoint(self, container: _Container) -> None:
        pending = {
            tid: self._updates.pending(framework_id=container.framework_id, task_id=tid)
            for tid in container.tasks
        }
        data = {
            "container_id": container.container_id,
            "framework_id": container.framework_id,
            "executor_id": container.executor_id,
            "kind": container.kind,
            "framework": container.framework,
            "executor": container.executor,
            "directory": str(container.directory),
            "launched": container.launched,
            "terminated": container.terminated,
            "started": container.started,
            "mem_limit_mb": container.mem_limit_mb,
            "cpus_limit": container.cpus_limit,
            "cgroups": container.cgroup.to_raw() if container.cgroup else None,
            "tasks": {
                tid: {"info": t.info, "state": t.state, "statuses": t.statuses, "pid": t.pid,
                      "cwd": t.cwd, "env": t.env}
                for tid, t in container.tasks.items()
            },
            "updates": pending,
        }
        try:
            paths.atomic_write_json(container.meta_dir / "state.json", data)
        except OSError as e:
            log.warning("agent: cannot checkpoint container %s: %s", container.container_id, e)

    async def _recover(self) -> None:
        agent_id = paths.latest_agent_id(work_dir=self._work_dir)
        if agent_id is None:
            return
        self._agent_id = agent_id
        root = self._work_dir / "meta" / "slaves" / agent_id / "frameworks"
        for state_path in sorted(root.glob("*/executors/*/runs/*/state.json")):
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
            if not container.launched:
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

    def _restore(self, data: dict[str, Any], *, meta_dir: Path) -> _Container:
        container = _Container(
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
            container.tasks[tid] = _Task(
                info=raw["info"], framework_id=container.framework_id,
                executor_id=container.executor_id, container_id=container.container_id,
                state=raw["state"], statuses=list(raw.get("statuses", [])), pid=raw.get("pid"),
                cwd=str(raw.get("cwd", "")), env=dict(raw.get("env", {})),
            )
        if container.checkpoint:
            for tid, pending in (data.get("updates") or {}).items():
                self._updates.restore(framework_id=container.framework_id, task_id=tid,
                                      statuses=list(pending))
        return container

    async def _kill_orphan(self, container: _Container) -> None:
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

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("agent: background task failed", exc_info=task.exception())

    # -- views for the HTTP API ----------------------------------------------------------------

    def all_containers(self) -> Iterator[tuple[_Container, bool]]:
        """(container, live) for live containers, then completed ones."""
        for container in self._containers.values():
            yield container, True
        for container in self._completed:
            yield container, False

    def live_containers(self) -> list[_Container]:
        return list(self._containers.values())

    def framework_infos(self) -> dict[str, dict[str, Any]]:
        return dict(self._frameworks)

    def task_json(self, task: _Task) -> dict[str, Any]:
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
            "statuses": [_strip_status(s) for s in task.statuses],
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

def _finite_or(limit: float | None, request: float | None) -> float | None:
    return limit if limit is not None and limit != float("inf") else request


def nested_container_id(container_id: str, task_id: str) -> str:
    """A stable child-container id for a task of a task group."""
    return str(uuid_mod.uuid5(uuid_mod.UUID(container_id), task_id))


def _needs_local_preparation(info: dict[str, Any]) -> bool:
    """Volumes and URIs are set up by the agent itself (the daemon makes plain sandboxes)."""
    container = info.get("container")
    return bool((info.get("command") or {}).get("uris")
                or (isinstance(container, dict) and container.get("volumes")))


def _pending_kill(container: _Container) -> float | None:
    return container.pending_kill


def _strip_status(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "limitation"}


def _empty_check_status(check: dict[str, Any]) -> dict[str, Any]:
    kind = str(check.get("type", ""))
    return {"type": kind, kind.lower(): {}} if kind else {}


def _has_capability(framework: dict[str, Any], name: str) -> bool:
    return any(isinstance(c, dict) and c.get("type") == name
               for c in framework.get("capabilities") or [])


def _command_preview(task: dict[str, Any]) -> str:
    command = task.get("command") or {}
    value = str(command.get("value", ""))
    return value if len(value) <= 60 else value[:57] + "..."


def _current_user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _ip_of(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    try:
        return socket.gethostbyname(host)
    except OSError:
        return "127.0.0.1"
