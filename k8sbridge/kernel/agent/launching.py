"""Launching: a RUN_TASK or RUN_TASK_GROUP becomes a container (sandbox, volumes, fetched URIs,
cgroups with the tasks' requests and limits) handed to the container daemon.

Containers: with ``--isolation`` including ``filesystem/linux`` a task gets a view of its own
(``filesystems``: its image from the local docker registry directory, or a copy-on-write view of
the host's root; its volumes; a pid namespace with ``namespaces/pid``). Without it, or for a
DOCKER container (there is no Docker engine), the image is recorded -- it shows in ``/state``
and the master's task -- and the command runs on the host, in the sandbox, on the host network.
What cannot be honoured that way fails the task with REASON_CONTAINER_LAUNCH_FAILED and a
message saying why (DOCKER bridge networking and port mappings, CNI networks, volumes at absolute
paths, secret environment variables, custom executors); it never silently "succeeds".
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid as uuid_mod
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import (
    capabilities,
    cgroups,
    cni,
    cnispec,
    containers,
    fetcher,
    filesystems,
    images,
    limits,
    paths,
    users,
    volumes,
)
from k8sbridge.kernel.agent.errors import ContainerError, FetchError
from k8sbridge.kernel.agent.joining import Joining
from k8sbridge.kernel.agent.state import (
    Container,
    LaunchError,
    Task,
    command_preview,
    finite_or,
    needs_local_preparation,
    nested_container_id,
    parse_id,
    pending_kill,
)

log = logging.getLogger(__name__)


class Launching(Joining):
    """Containers from RUN_TASK / RUN_TASK_GROUP."""

    def _new_container(self, *, framework: dict[str, Any], executor: dict[str, Any], kind: str,
                       task_infos: list[dict[str, Any]]) -> Container:
        framework_id = parse_id(framework.get("id"), "framework id")
        executor_id = parse_id(executor.get("executor_id"), "executor id")
        if self._agent_id is None:
            raise LaunchError("agent is not registered")
        container_id = str(uuid_mod.uuid4())
        tasks: dict[str, Task] = {}
        for info in task_infos:
            task_id = parse_id(info.get("task_id"), "task id")
            tasks[task_id] = Task(info=info, framework_id=framework_id,
                                   executor_id=executor_id, container_id=container_id)
        self._frameworks[framework_id] = framework
        self._removed_frameworks.discard(framework_id)
        return Container(
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
        framework_id = parse_id(framework.get("id"), "framework id")
        task_id = parse_id(task.get("task_id"), "task id")
        executor = {
            "type": "DEFAULT",
            "executor_id": {"value": task_id},
            "framework_id": {"value": framework_id},
            "name": f"Command Executor (Task: {task_id}) (Command: {command_preview(task)})",
            "source": task_id,
            "command": task.get("command") or {},
        }
        container = self._new_container(framework=framework, executor=executor, kind="COMMAND",
                                        task_infos=[task])
        self._start(container)

    def _run_task_group(self, framework: dict[str, Any], executor: dict[str, Any],
                        tasks: list[dict[str, Any]]) -> None:
        if not tasks:
            raise LaunchError("RUN_TASK_GROUP with no tasks")
        executor = dict(executor)
        executor.setdefault("framework_id", framework.get("id"))
        container = self._new_container(framework=framework, executor=executor, kind="DEFAULT",
                                        task_infos=list(tasks))
        if self._join_running_executor(container):
            self._start(container)

    def _start(self, container: Container) -> None:
        dupes = [t for t in container.tasks if (container.framework_id, t) in self._task_index]
        if dupes:
            # The master rejects duplicate task ids (TASK_ERROR); one reaching us must not
            # touch the running task of that id, nor its status stream.
            log.warning("agent: dropped a launch of task %r of framework %s: that task id is "
                        "already running here", dupes[0], container.framework_id)
            return
        self._add_container(container)
        for task_id in container.tasks:
            dropped = self._updates.begin(framework_id=container.framework_id,
                                          task_id=task_id, incarnation=container.container_id)
            if dropped:
                log.info("agent: task %s of framework %s launched again: dropped %d pending "
                         "update(s) of its previous incarnation", task_id,
                         container.framework_id, dropped)
        self._persist(container)
        self._spawn(self._launch(container))

    async def _launch(self, container: Container) -> None:
        viewed = "filesystem/linux" in self._isolation
        try:
            provided = await self._provision(container) if viewed else {}
        except (images.ImageError, volumes.VolumeError) as e:
            self._fail_launch(container, f"Failed to launch container: {e}")
            return
        try:
            specs = [self._task_spec(container, t) for t in container.tasks.values()]
            try:
                attachment = await self._attach_networks(container)
            finally:
                container.networked.set()
            if viewed:
                for task, task_spec in zip(container.tasks.values(), specs, strict=True):
                    self._view(container, task, task_spec, provided.get(task.task_id),
                               attachment)
            owners = self._owners(container, specs)
        except LaunchError as e:
            self._fail_launch(container, str(e))
            return
        except volumes.VolumeError as e:
            self._fail_launch(container, f"Failed to launch container: {e}")
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
            if container.kind == "DEFAULT" and container.joins is None else None,
            tasks=[(t.task_id, t.info) for t in container.tasks.values()],
            group=container.kind == "DEFAULT")
        container.mem_limit_mb = finite_or(own.mem_limit_mb, own.mem_mb)
        container.cpus_limit = finite_or(own.cpus_limit, own.cpus)
        children = {task_id: (nested_container_id(container.container_id, task_id), lim)
                    for task_id, lim in nested.items()}
        assert self._cgroups is not None
        prepare: dict[str, Any] | None = None
        if any(needs_local_preparation(t.info) and not (viewed and not (
                t.info.get("command") or {}).get("uris")) for t in container.tasks.values()):
            # Volumes and URIs are made here, in order (the sandbox first, then its contents).
            try:
                paths.make_sandbox(container.directory)
                paths.link_latest(container.directory)
                for task, task_spec in zip(container.tasks.values(), specs, strict=True):
                    cwd = _host_sandbox(task_spec)  # not the view's path (``/mnt/...``)
                    paths.make_sandbox(cwd)
                    if not viewed:  # a view's volumes are mounted in it (``rootfs``)
                        self._setup_volumes(container, task, cwd)
                for directory, uid, gid in owners:
                    users.chown_tree(directory, uid, gid)
            except OSError as e:
                self._fail_launch(container, f"cannot create the sandbox or its volumes: {e}")
                return
            try:
                for task, task_spec in zip(container.tasks.values(), specs, strict=True):
                    uris = (task.info.get("command") or {}).get("uris") or []
                    if uris:
                        await fetcher.fetch_all(uris, sandbox=_host_sandbox(task_spec))
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
                "dirs": [str(_host_sandbox(s)) for s in specs
                         if str(_host_sandbox(s)) != str(container.directory)],
                "owners": owners,
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

        # Checkpointed before the daemon is asked (not in a later coalesced batch): an agent
        # that dies right after the spawn leaves a record its successor adopts.
        self._persist(container, now=True)
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
        pending = pending_kill(container)  # a KILL may have arrived while we were starting
        if pending is not None:
            await client.shutdown(grace=pending)

    @property
    def _isolation(self) -> frozenset[str]:
        return filesystems.parse_isolation(self._config.isolation)

    def _image_of(self, info: dict[str, Any]) -> str | None:
        if "filesystem/linux" not in self._isolation:
            return None
        try:
            return filesystems.image_name(info.get("container"))
        except volumes.VolumeError:
            return None

    async def _provision(self, container: Container) -> dict[str, images.Image]:
        """The images of the container's tasks, pulled into the store first if needed or asked
        (``Image.cached: false``; in a thread: unpacking layers takes a while), one pull per
        image at a time."""
        out: dict[str, images.Image] = {}
        for task in container.tasks.values():
            name = filesystems.image_name(task.info.get("container"))
            if name is None:
                continue
            if "docker" not in self._config.image_providers.split(","):
                raise images.ImageError("Unsupported container image type: DOCKER")
            if not self._config.docker_registry:
                raise images.ImageError("this agent pulls images only from a local docker "
                                        "registry directory, and has none (--docker_registry)")
            store = images.Store(
                registry=Path(self._config.docker_registry),
                store_dir=self._config.docker_store_dir or self._work_dir / "store" / "docker")
            locks: dict[str, Any] = self.__dict__.setdefault("_image_locks", {})
            lock = locks.setdefault(name, asyncio.Lock())
            cached = filesystems.image_cached(task.info.get("container"))
            async with lock:
                out[task.task_id] = await asyncio.to_thread(store.get, name, cached=cached)
        return out

    async def _attach_networks(self, container: Container) -> cni.Attachment | None:
        """The container's own network namespace, attached to the CNI networks its
        ``ContainerInfo`` names (a task group's: its executor's, which all its tasks join);
        None on the host network. A later group of a running executor joins the namespace
        of its first group."""
        if container.joins is not None:
            return await self._joined_network(container)
        raw = container.executor.get("container") if container.kind == "DEFAULT" else \
            next(iter(container.tasks.values())).info.get("container")
        if self._cni is None or not isinstance(raw, dict):
            return None
        if container.kind == "DEFAULT" and any(
                ((t.info.get("container") or {}).get("network_infos") or [])
                for t in container.tasks.values()):
            raise LaunchError("Failed to launch container: a task of a task group joins its "
                              "executor's network; this agent does not attach nested "
                              "containers to networks of their own")
        try:
            networks = cnispec.container_networks(raw, self._cni.networks)
        except cnispec.CniError as e:
            raise LaunchError(f"Failed to launch container: {e}") from None
        if not networks:
            return None
        infos = [n for n in raw.get("network_infos") or [] if isinstance(n, dict)
                 and n.get("name")]
        try:
            return await self._cni.attach(container.container_id, networks=networks,
                                          network_infos=infos, hostname=raw.get("hostname"))
        except cni.CniError as e:
            raise LaunchError(f"Failed to launch container: {e}") from None

    def _view(self, container: Container, task: Task, spec: dict[str, Any],
              image: images.Image | None, attachment: cni.Attachment | None) -> None:
        """Give a task spec its own view (``filesystems``): the holder's plan, and its paths,
        environment and (with an image) command as the task sees them."""
        info = task.info
        sandbox = Path(spec["cwd"])
        plan = filesystems.plan_task(
            isolation=self._isolation, info=info, group=container.kind == "DEFAULT",
            sandbox=sandbox, executor_dir=container.directory,
            provisioner=self._work_dir / "provisioner" / "containers" /
            container.container_id / task.task_id,
            image=image, secret_dir=f".secret-{uuid_mod.uuid4()}")
        inner = plan.pop("inner")
        env = dict(spec["env"])
        if attachment is not None:  # the holder joins it (``viewmaker``), the tasks too
            plan.update({"netns": attachment.netns, "hostname": attachment.hostname,
                         "etc": sorted(attachment.etc), "etc_sources": attachment.etc})
            env["MESOS_CONTAINER_IP"] = attachment.ips[0] if attachment.ips else self._ip
            task.network = {"netns": attachment.netns, "ip": env["MESOS_CONTAINER_IP"]}
        if image is not None:
            argv, executable = filesystems.docker_command(info.get("command") or {},
                                                          image.config)
            spec["argv"], spec["executable"] = argv, executable
            given = {v.get("name") for v in ((info.get("command") or {}).get("environment")
                                             or {}).get("variables", []) if isinstance(v, dict)}
            for name, value in filesystems.image_env(image.config).items():
                if name not in given:
                    env[name] = value
            task.running_message = f"Running in image '{image.name}'"
        else:
            task.running_message = filesystems.HOST_VIEW_MESSAGE
        env["MESOS_SANDBOX"] = plan["sandbox_at"]
        env["HOME"] = plan["sandbox_at"] if env.get("HOME") == str(sandbox) else env["HOME"]
        task.view = {"cwd": inner["cwd"], "env": env}
        spec.update({"fs": plan, "env": env, "host_cwd": spec["cwd"], "host_stdout": spec["stdout"],
                     "host_stderr": spec["stderr"], "cwd": inner["cwd"],
                     "stdout": inner["stdout"], "stderr": inner["stderr"]})

    def _fail_launch(self, container: Container, why: str) -> None:
        log.warning("agent: container %s failed to launch: %s", container.container_id, why)
        for task in container.tasks.values():
            self._update(container, task, "TASK_FAILED", source="SOURCE_AGENT",
                         reason="REASON_CONTAINER_LAUNCH_FAILED", message=why)
        self._finish_container(container, notify_master=True)

    def _task_spec(self, container: Container, task: Task) -> dict[str, Any]:
        info = task.info
        if info.get("executor") and container.kind == "COMMAND":
            raise LaunchError("custom executors are not supported by this agent; use a "
                               "command task or a task group")
        self._check_container(info.get("container"), group=container.kind == "DEFAULT")
        if container.kind == "DEFAULT":
            self._check_container(container.executor.get("container"), group=True)
        command = info.get("command")
        if not isinstance(command, dict):
            raise LaunchError("the task has no command")
        value = command.get("value")
        shell = command.get("shell", True)
        executable: str | None = None
        if shell:
            if not isinstance(value, str) or not value:
                raise LaunchError("Shell command is not specified")  # Mesos' launcher
            argv = ["/bin/sh", "-c", value]
        elif not value and self._image_of(info) is not None:
            argv = []  # the image's Entrypoint/Cmd (``_view``, docker/runtime)
        else:
            if not isinstance(value, str) or not value:
                raise LaunchError("Executable path is not specified")  # Mesos' launcher
            args = command.get("arguments") or []
            if not isinstance(args, list):
                raise LaunchError("command.arguments must be a list")
            argv = [str(a) for a in args] or [value]
            executable = value
        if container.kind == "DEFAULT":
            cwd = paths.task_sandbox(executor_dir=container.directory, task_id=task.task_id)
        else:
            cwd = container.directory
        env = self._task_env(container, task, command, sandbox=cwd)
        creds = self._credentials(command, container.framework, where=(
            "nested sandbox" if container.kind == "DEFAULT" else "executor directory"), at=cwd)
        try:
            caps = capabilities.plan(
                (info.get("container") or {}).get("linux_info"), isolation=self._isolation,
                flag_effective=capabilities.parse_flag(self._config.effective_capabilities),
                flag_bounding=capabilities.parse_flag(self._config.bounding_capabilities))
        except capabilities.CapabilityError as e:
            raise LaunchError(f"Failed to launch container: {e}") from None
        task.cwd, task.env = str(cwd), env
        task.user = creds.to_raw() if creds is not None else None
        spec: dict[str, Any] = {
            "task_id": task.task_id,
            "argv": argv,
            "executable": executable,
            "env": env,
            "cwd": str(cwd),
            "stdout": str(cwd / "stdout"),
            "stderr": str(cwd / "stderr"),
            "user": task.user,
            "caps": caps,
        }
        tty_info = (info.get("container") or {}).get("tty_info")
        if isinstance(tty_info, dict):  # a terminal and an I/O switchboard (``switchboard``)
            size = tty_info.get("window_size") or {}
            spec["tty"] = {"window": [int(size.get("rows", 0)), int(size.get("columns", 0))]
                           if size else None}
        return spec

    def _credentials(self, command: Any, framework: dict[str, Any], *, where: str,
                     at: Path) -> users.Credentials | None:
        """The credentials a sandbox is owned by and its task runs with (``users``); an
        unknown user fails the launch as Mesos' sandbox creation does."""
        name = users.task_user(command=command, framework=framework,
                               switch_user=self._config.switch_user)
        if name is None:
            return None
        try:
            return users.resolve(name)
        except users.UserError as e:
            raise LaunchError(f"Failed to create {where} '{at}': {e}") from None

    def _owners(self, container: Container, specs: list[dict[str, Any]]) -> list[list[Any]]:
        """``[directory, uid, gid]`` of every sandbox made for another user: the executor's
        (its task's user, or for a group the framework's) and each group task's."""
        out: list[list[Any]] = []
        if container.kind == "DEFAULT":
            creds = self._credentials({}, container.framework, where="executor directory",
                                      at=container.directory)
            if creds is not None:
                out.append([str(container.directory), creds.uid, creds.gid])
        for spec in specs:
            user = spec.get("user")
            if user is not None:
                out.append([str(_host_sandbox(spec)), user["uid"], user["gid"]])
        return out

    def _check_container(self, raw: Any, *, group: bool) -> None:
        if not raw:
            return
        if not isinstance(raw, dict):
            raise LaunchError("malformed container info")
        ctype = raw.get("type", "MESOS")
        if ctype == "DOCKER":
            docker = raw.get("docker") or {}
            network = docker.get("network", "HOST")
            if group:
                raise LaunchError("DOCKER containers are not allowed in task groups")
            if network in ("BRIDGE", "USER") or docker.get("port_mappings"):
                raise LaunchError(
                    f"cannot honour a DOCKER container with network {network} and port "
                    "mappings: this agent has no Docker engine (images are recorded and the "
                    "command runs on the host network)"
                )
        elif ctype != "MESOS":
            raise LaunchError(f"unsupported container type {ctype!r}")
        for net in raw.get("network_infos") or []:
            if isinstance(net, dict) and net.get("name") and self._cni is None:
                raise LaunchError(f"CNI network {net['name']!r} is not available on this agent "
                                  "(it runs no network/cni isolator)")
        for volume in raw.get("volumes") or []:
            path = volume.get("container_path") if isinstance(volume, dict) else None
            if not isinstance(path, str) or not path:
                raise LaunchError("a volume without a container_path")
            if path.startswith("/") and "filesystem/linux" not in self._isolation:
                raise LaunchError(
                    f"volume at absolute container path {path!r} needs a container root file "
                    "system (mount namespace), which this agent does not create; use a path "
                    "relative to the sandbox")
            if ".." in Path(path).parts:
                raise LaunchError(f"volume container path {path!r} leaves the sandbox")

    def _setup_volumes(self, container: Container, task: Task, sandbox: Path) -> None:
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

    def _task_env(self, container: Container, task: Task, command: dict[str, Any], *,
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
                raise LaunchError("malformed environment variable")
            if var.get("type", "VALUE") != "VALUE":
                raise LaunchError(f"environment variable {var['name']!r}: only VALUE variables "
                                   "are supported (no secret store on this agent)")
            env[var["name"]] = str(var.get("value", ""))
        return env


def _host_sandbox(spec: dict[str, Any]) -> Path:
    """A task's sandbox on the host: a task with a view has its ``cwd`` as it sees it."""
    return Path(str(spec.get("host_cwd", spec["cwd"])))
