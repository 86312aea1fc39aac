"""Typed builders of tasks and executors (``TaskInfo``, ``ExecutorInfo``, ``CommandInfo``...).

Why they are kept apart from ``types.py``: the bridge itself renders its LAUNCH_GROUP JSON from
the placement's assignment (``scheduler/launch.py``); these builders serve frameworks written
with this client (the tests' frameworks, the client benchmark) and ``Framework.launch_group``.
``parse(to_raw(x)) == x`` holds for every one of them (tested).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from k8sbridge.mesos import raw as wire
from k8sbridge.mesos.wirevalues import (
    Labels,
    as_list,
    as_obj,
    decode_bytes,
    encode_bytes,
    id_value,
    num_field,
    opt_id,
    parse_duration,
    parse_labels,
    parse_resources,
    render_duration,
    render_labels,
    render_resources,
    req_str,
    str_field,
)
from k8sbridge.model import resources as res
from k8sbridge.model.ids import AgentId, ExecutorId, FrameworkId, TaskId

__all__ = [
    "CheckInfo",
    "CommandInfo",
    "ContainerInfo",
    "ExecutorInfo",
    "HealthCheck",
    "KillPolicy",
    "TaskGroupInfo",
    "TaskInfo",
    "Volume",
]


# --------------------------------------------------------------------------------------------
# Tasks


@dataclasses.dataclass(frozen=True, slots=True)
class CommandInfo:
    """A command: with ``shell`` true, ``/bin/sh -c value``; else ``value`` with ``arguments``."""

    value: str | None = None
    shell: bool = True
    arguments: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    uris: tuple[str, ...] = ()
    user: str | None = None

    def to_raw(self) -> wire.RawCommandInfo:
        out: wire.RawCommandInfo = {"shell": self.shell}
        if self.value is not None:
            out["value"] = self.value
        if self.arguments:
            out["arguments"] = list(self.arguments)
        if self.environment:
            out["environment"] = {
                "variables": [{"name": n, "type": "VALUE", "value": v} for n, v in self.environment]
            }
        if self.uris:
            out["uris"] = [{"value": u} for u in self.uris]
        if self.user is not None:
            out["user"] = self.user
        return out

    @classmethod
    def parse(cls, raw: Any) -> CommandInfo:
        what = "command"
        raw = as_obj(raw, what=what)
        env = as_obj(raw.get("environment") or {}, what=f"{what}.environment")
        variables = as_list(env.get("variables"), what=f"{what}.environment.variables")
        return cls(
            value=raw.get("value"),
            shell=bool(raw.get("shell", True)),
            arguments=tuple(str(a) for a in as_list(raw.get("arguments"), what=f"{what}.args")),
            environment=tuple(
                (str(v.get("name", "")), str(v.get("value", ""))) for v in variables
            ),
            uris=tuple(
                str(as_obj(u, what="uri").get("value", ""))
                for u in as_list(raw.get("uris"), what=f"{what}.uris")
            ),
            user=raw.get("user"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Volume:
    container_path: str
    mode: str = "RW"
    host_path: str | None = None
    sandbox_path: str | None = None  # source SANDBOX_PATH (relative to the sandbox)

    def to_raw(self) -> wire.RawVolume:
        out: wire.RawVolume = {"container_path": self.container_path, "mode": self.mode}  # type: ignore[typeddict-item]
        if self.host_path is not None:
            out["host_path"] = self.host_path
        if self.sandbox_path is not None:
            out["source"] = {
                "type": "SANDBOX_PATH",
                "sandbox_path": {"type": "SELF", "path": self.sandbox_path},
            }
        return out

    @classmethod
    def parse(cls, raw: Any) -> Volume:
        raw = as_obj(raw, what="volume")
        source = raw.get("source") or {}
        sandbox = (source.get("sandbox_path") or {}).get("path")
        return cls(
            container_path=req_str(raw, "container_path", what="volume"),
            mode=str(raw.get("mode", "RW")),
            host_path=raw.get("host_path"),
            sandbox_path=sandbox,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerInfo:
    """A MESOS container (optionally running a Docker image), its volumes and CNI networks."""

    type: str = "MESOS"
    image: str | None = None  # Docker image name for the Mesos containerizer
    volumes: tuple[Volume, ...] = ()
    networks: tuple[str, ...] = ()  # CNI network names
    hostname: str | None = None

    def to_raw(self) -> wire.RawContainerInfo:
        out: wire.RawContainerInfo = {"type": self.type}  # type: ignore[typeddict-item]
        if self.image is not None:
            out["mesos"] = {"image": {"type": "DOCKER", "docker": {"name": self.image}}}
        if self.volumes:
            out["volumes"] = [v.to_raw() for v in self.volumes]
        if self.networks:
            out["network_infos"] = [{"name": n} for n in self.networks]
        if self.hostname is not None:
            out["hostname"] = self.hostname
        return out

    @classmethod
    def parse(cls, raw: Any) -> ContainerInfo:
        what = "container"
        raw = as_obj(raw, what=what)
        image = None
        mesos = raw.get("mesos") or {}
        docker = raw.get("docker") or {}
        if mesos.get("image"):
            image = ((mesos["image"] or {}).get("docker") or {}).get("name")
        elif docker.get("image"):
            image = docker["image"]
        return cls(
            type=req_str(raw, "type", what=what),
            image=image,
            volumes=tuple(Volume.parse(v) for v in as_list(raw.get("volumes"), what="volumes")),
            networks=tuple(
                str(n.get("name", ""))
                for n in as_list(raw.get("network_infos"), what="network_infos")
            ),
            hostname=raw.get("hostname"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class HealthCheck:
    """``HealthCheck`` (``check=False``) or ``CheckInfo`` (``check=True``, no health effect)."""

    type: str  # COMMAND | HTTP | TCP
    command: CommandInfo | None = None
    port: int | None = None
    path: str | None = None
    scheme: str | None = None
    delay_seconds: float = 15.0
    interval_seconds: float = 10.0
    timeout_seconds: float = 20.0
    consecutive_failures: int = 3
    grace_period_seconds: float = 10.0

    def to_raw(self) -> wire.RawHealthCheck:
        out: wire.RawHealthCheck = {
            "type": self.type,  # type: ignore[typeddict-item]
            "delay_seconds": self.delay_seconds,
            "interval_seconds": self.interval_seconds,
            "timeout_seconds": self.timeout_seconds,
            "consecutive_failures": self.consecutive_failures,
            "grace_period_seconds": self.grace_period_seconds,
        }
        if self.type == "COMMAND" and self.command is not None:
            out["command"] = self.command.to_raw()
        elif self.type == "HTTP" and self.port is not None:
            http: wire.RawHttpCheck = {"port": self.port}
            if self.path is not None:
                http["path"] = self.path
            if self.scheme is not None:
                http["scheme"] = self.scheme
            out["http"] = http
        elif self.type == "TCP" and self.port is not None:
            out["tcp"] = {"port": self.port}
        return out

    @classmethod
    def parse(cls, raw: Any) -> HealthCheck:
        what = "health_check"
        raw = as_obj(raw, what=what)
        kind = req_str(raw, "type", what=what)
        command = http = tcp = None
        if raw.get("command"):
            cmd = as_obj(raw["command"], what=f"{what}.command")
            command = CommandInfo.parse(cmd.get("command", cmd))  # CheckInfo nests once more
        if raw.get("http"):
            http = as_obj(raw["http"], what=f"{what}.http")
        if raw.get("tcp"):
            tcp = as_obj(raw["tcp"], what=f"{what}.tcp")
        port = (http or tcp or {}).get("port")
        return cls(
            type=kind,
            command=command,
            port=int(port) if port is not None else None,
            path=(http or {}).get("path"),
            scheme=(http or {}).get("scheme"),
            delay_seconds=num_field(raw, "delay_seconds", what=what, default=15.0),
            interval_seconds=num_field(raw, "interval_seconds", what=what, default=10.0),
            timeout_seconds=num_field(raw, "timeout_seconds", what=what, default=20.0),
            consecutive_failures=int(num_field(raw, "consecutive_failures", what=what, default=3)),
            grace_period_seconds=num_field(raw, "grace_period_seconds", what=what, default=10.0),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class CheckInfo:
    """``CheckInfo``: a general check whose results arrive in ``TaskStatus.check_status``."""

    type: str  # COMMAND | HTTP | TCP
    command: CommandInfo | None = None
    port: int | None = None
    path: str | None = None
    delay_seconds: float = 15.0
    interval_seconds: float = 10.0
    timeout_seconds: float = 20.0

    def to_raw(self) -> wire.RawCheckInfo:
        out: wire.RawCheckInfo = {
            "type": self.type,  # type: ignore[typeddict-item]
            "delay_seconds": self.delay_seconds,
            "interval_seconds": self.interval_seconds,
            "timeout_seconds": self.timeout_seconds,
        }
        if self.type == "COMMAND" and self.command is not None:
            out["command"] = {"command": self.command.to_raw()}
        elif self.type == "HTTP" and self.port is not None:
            http: wire.RawHttpCheck = {"port": self.port}
            if self.path is not None:
                http["path"] = self.path
            out["http"] = http
        elif self.type == "TCP" and self.port is not None:
            out["tcp"] = {"port": self.port}
        return out

    @classmethod
    def parse(cls, raw: Any) -> CheckInfo:
        hc = HealthCheck.parse(raw)
        return cls(
            type=hc.type,
            command=hc.command,
            port=hc.port,
            path=hc.path,
            delay_seconds=hc.delay_seconds,
            interval_seconds=hc.interval_seconds,
            timeout_seconds=hc.timeout_seconds,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class KillPolicy:
    grace_period_seconds: float

    def to_raw(self) -> wire.RawKillPolicy:
        return {"grace_period": render_duration(self.grace_period_seconds)}

    @classmethod
    def parse(cls, raw: Any) -> KillPolicy:
        raw = as_obj(raw, what="kill_policy")
        return cls(parse_duration(raw.get("grace_period", {}), what="kill_policy.grace_period"))


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutorInfo:
    executor_id: ExecutorId
    framework_id: FrameworkId | None = None
    type: str = "DEFAULT"
    resources: res.Resources = res.Resources()
    command: CommandInfo | None = None
    container: ContainerInfo | None = None
    name: str | None = None
    labels: Labels = ()
    shutdown_grace_period_seconds: float | None = None

    def to_raw(self) -> wire.RawExecutorInfo:
        out: wire.RawExecutorInfo = {
            "type": self.type,  # type: ignore[typeddict-item]
            "executor_id": {"value": self.executor_id},
            "resources": render_resources(self.resources),
        }
        if self.framework_id is not None:
            out["framework_id"] = {"value": self.framework_id}
        if self.command is not None:
            out["command"] = self.command.to_raw()
        if self.container is not None:
            out["container"] = self.container.to_raw()
        if self.name is not None:
            out["name"] = self.name
        if self.labels:
            out["labels"] = render_labels(self.labels)
        if self.shutdown_grace_period_seconds is not None:
            out["shutdown_grace_period"] = render_duration(self.shutdown_grace_period_seconds)
        return out

    @classmethod
    def parse(cls, raw: Any) -> ExecutorInfo:
        what = "executor"
        raw = as_obj(raw, what=what)
        fid = opt_id(raw, "framework_id", what=what)
        return cls(
            executor_id=ExecutorId(id_value(raw.get("executor_id"), what=f"{what}.executor_id")),
            framework_id=FrameworkId(fid) if fid else None,
            type=str_field(raw, "type", what=what, default="UNKNOWN"),
            resources=parse_resources(raw.get("resources"), what=f"{what}.resources"),
            command=CommandInfo.parse(raw["command"]) if raw.get("command") else None,
            container=ContainerInfo.parse(raw["container"]) if raw.get("container") else None,
            name=raw.get("name"),
            labels=parse_labels(raw.get("labels")),
            shutdown_grace_period_seconds=(
                parse_duration(raw["shutdown_grace_period"], what="shutdown_grace_period")
                if raw.get("shutdown_grace_period")
                else None
            ),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TaskInfo:
    name: str
    task_id: TaskId
    agent_id: AgentId
    resources: res.Resources
    command: CommandInfo | None = None
    executor: ExecutorInfo | None = None
    container: ContainerInfo | None = None
    health_check: HealthCheck | None = None
    check: CheckInfo | None = None
    kill_policy: KillPolicy | None = None
    labels: Labels = ()
    data: bytes | None = None
    limits: Mapping[str, float] | None = None  # float("inf") = unlimited
    max_completion_seconds: float | None = None

    def to_raw(self) -> wire.RawTaskInfo:
        out: wire.RawTaskInfo = {
            "name": self.name,
            "task_id": {"value": self.task_id},
            "agent_id": {"value": self.agent_id},
            "resources": render_resources(self.resources),
        }
        if self.command is not None:
            out["command"] = self.command.to_raw()
        if self.executor is not None:
            out["executor"] = self.executor.to_raw()
        if self.container is not None:
            out["container"] = self.container.to_raw()
        if self.health_check is not None:
            out["health_check"] = self.health_check.to_raw()
        if self.check is not None:
            out["check"] = self.check.to_raw()
        if self.kill_policy is not None:
            out["kill_policy"] = self.kill_policy.to_raw()
        if self.labels:
            out["labels"] = render_labels(self.labels)
        if self.data is not None:
            out["data"] = encode_bytes(self.data)
        if self.limits:
            out["limits"] = {
                n: {"value": "Infinity" if v == float("inf") else v} for n, v in self.limits.items()
            }
        if self.max_completion_seconds is not None:
            out["max_completion_time"] = render_duration(self.max_completion_seconds)
        return out

    @classmethod
    def parse(cls, raw: Any) -> TaskInfo:
        what = "task"
        raw = as_obj(raw, what=what)
        task_id = id_value(raw.get("task_id"), what=f"{what}.task_id")
        what = f"task {task_id}"
        limits = None
        if raw.get("limits"):
            limits = {
                n: num_field(as_obj(v, what=f"{what}.limits"), "value", what=f"{what}.limits.{n}")
                for n, v in as_obj(raw["limits"], what=f"{what}.limits").items()
            }
        return cls(
            name=req_str(raw, "name", what=what),
            task_id=TaskId(task_id),
            agent_id=AgentId(id_value(raw.get("agent_id"), what=f"{what}.agent_id")),
            resources=parse_resources(raw.get("resources"), what=f"{what}.resources"),
            command=CommandInfo.parse(raw["command"]) if raw.get("command") else None,
            executor=ExecutorInfo.parse(raw["executor"]) if raw.get("executor") else None,
            container=ContainerInfo.parse(raw["container"]) if raw.get("container") else None,
            health_check=(
                HealthCheck.parse(raw["health_check"]) if raw.get("health_check") else None
            ),
            check=CheckInfo.parse(raw["check"]) if raw.get("check") else None,
            kill_policy=KillPolicy.parse(raw["kill_policy"]) if raw.get("kill_policy") else None,
            labels=parse_labels(raw.get("labels")),
            data=decode_bytes(raw["data"], what=f"{what}.data") if "data" in raw else None,
            limits=limits,
            max_completion_seconds=(
                parse_duration(raw["max_completion_time"], what=f"{what}.max_completion_time")
                if raw.get("max_completion_time")
                else None
            ),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TaskGroupInfo:
    tasks: tuple[TaskInfo, ...]

    def to_raw(self) -> wire.RawTaskGroupInfo:
        return {"tasks": [t.to_raw() for t in self.tasks]}

    @classmethod
    def parse(cls, raw: Any) -> TaskGroupInfo:
        raw = as_obj(raw, what="task_group")
        return cls(tuple(TaskInfo.parse(t) for t in as_list(raw.get("tasks"), what="tasks")))
