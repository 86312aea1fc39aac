"""The agent's records of its containers and tasks, and the small pure helpers every part of
the agent uses on TaskInfo JSON.

Why a module of their own: the agent is split by responsibility (``core`` owns the tables,
status updates and checkpoints; ``running`` follows executors; ``launching`` starts containers;
``recovery`` re-adopts them after a restart; ``agent`` talks to the master), and each of those
and the HTTP API read these records; keeping them here keeps the imports one-way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pwd
import signal
import socket
import time
import uuid as uuid_mod
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import cgroups, checkpoint, containers
from k8sbridge.kernel.protocol import TERMINAL_STATES

__all__ = ["Container", "LaunchError", "Task", "VERSION", "nested_container_id"]

VERSION = "1.12.0"
DEFAULT_KILL_GRACE = 3.0
MAX_COMPLETED_CONTAINERS = 200


class LaunchError(Exception):
    """A task cannot be run as asked (the message goes into TASK_FAILED)."""


# Terminal failure states that must say why in a message. The reason stays what Mesos would
# send (its command executor sends "Command exited with status N" and no reason).
NEEDS_MESSAGE = frozenset({"TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_GONE"})


@dataclasses.dataclass(slots=True)
class Task:
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
    running_message: str | None = None  # said in its TASK_RUNNING (e.g. what view it has)
    user: dict[str, Any] | None = None  # the credentials it runs with (``users``), if switched
    view: dict[str, Any] | None = None  # its view's cwd and env, where checks run (``checks``)
    network: dict[str, Any] | None = None  # a CNI container's netns and IP, for its checks

    @property
    def task_id(self) -> str:
        return str(self.info["task_id"]["value"])

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclasses.dataclass(slots=True)
class Container:
    container_id: str
    framework_id: str
    executor_id: str
    kind: str  # "COMMAND" (command executor) or "DEFAULT" (task group)
    framework: dict[str, Any]
    executor: dict[str, Any]
    directory: Path
    meta_dir: Path
    tasks: dict[str, Task]
    client: containers.ExecutorClient | None = None
    launched: bool = False
    terminated: bool = False
    pending_kill: float | None = None
    cgroup: cgroups.CgroupSet | None = None
    mem_limit_mb: float | None = None
    cpus_limit: float | None = None
    executor_pid: int | None = None  # the container daemon's pid (from its answer, or read once)
    started: float = dataclasses.field(default_factory=time.time)
    collected: bool = False  # its sandbox and checkpoint were garbage-collected
    # A later task group launched onto a running DEFAULT executor (Mesos' LAUNCH_GROUP to an
    # executor that runs): the container id of the executor's first group, whose network
    # namespace and sandbox this group shares; None for the executor's first group.
    joins: str | None = None
    shutting_down: bool = False  # the agent asked its executor to shut down (Mesos TERMINATING)
    # Set once its network is attached (or its launch failed): a joining group waits for it.
    networked: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    # The JSON of its checkpoint's pieces as last written (``checkpoint``).
    memo: checkpoint.Memo = dataclasses.field(default_factory=checkpoint.Memo)

    @property
    def executor_root(self) -> str:
        """The container id its executor's network namespace and sandbox are named after."""
        return self.joins or self.container_id

    @property
    def checkpoint(self) -> bool:
        return bool(self.framework.get("checkpoint", False))


def parse_id(raw: Any, what: str) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get("value"), str) or not raw["value"]:
        raise LaunchError(f"missing or malformed {what}")
    value: str = raw["value"]
    if value in (".", "..") or "/" in value or "\\" in value or len(value) > 255:
        raise LaunchError(f"invalid {what} {value!r}")
    return value


def signal_name(number: int) -> str:
    try:
        return signal.strsignal(number) or f"signal {number}"
    except ValueError:
        return f"signal {number}"


def grace_of(kill_policy: Any, default: float) -> float:
    if isinstance(kill_policy, dict):
        nanos = (kill_policy.get("grace_period") or {}).get("nanoseconds")
        if isinstance(nanos, int | float) and nanos >= 0:
            return float(nanos) / 1e9
    return default


def nested_container_id(container_id: str, task_id: str) -> str:
    """A stable child-container id for a task of a task group."""
    return str(uuid_mod.uuid5(uuid_mod.UUID(container_id), task_id))


def finite_or(limit: float | None, request: float | None) -> float | None:
    return limit if limit is not None and limit != float("inf") else request


def needs_local_preparation(info: dict[str, Any]) -> bool:
    """Volumes and URIs are set up by the agent itself (the daemon makes plain sandboxes)."""
    container = info.get("container")
    return bool((info.get("command") or {}).get("uris")
                or (isinstance(container, dict) and container.get("volumes")))


def pending_kill(container: Container) -> float | None:
    return container.pending_kill


def strip_status(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "limitation"}


def empty_check_status(check: dict[str, Any]) -> dict[str, Any]:
    kind = str(check.get("type", ""))
    return {"type": kind, kind.lower(): {}} if kind else {}


def has_capability(framework: dict[str, Any], name: str) -> bool:
    return any(isinstance(c, dict) and c.get("type") == name
               for c in framework.get("capabilities") or [])


def command_preview(task: dict[str, Any]) -> str:
    command = task.get("command") or {}
    value = str(command.get("value", ""))
    return value if len(value) <= 60 else value[:57] + "..."


def current_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def ip_of(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    try:
        return socket.gethostbyname(host)
    except OSError:
        return "127.0.0.1"
