"""The master's in-memory records of frameworks, agents, tasks and offers, and their v1 JSON.

Why mutable classes here (not frozen values): these are the master's live bookkeeping, owned by
the single master task and changed in place on every event; the wire shapes they render to
(``Task``, ``Offer``, GET_FRAMEWORKS entries) are produced by the ``to_raw`` functions below.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import socket
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from k8sbridge.kernel import resources as res
from k8sbridge.kernel.master import calls

if TYPE_CHECKING:
    from k8sbridge.kernel.master import streams

RawJson = dict[str, Any]


def idv(value: str) -> RawJson:
    return {"value": value}


def nanos(seconds: float) -> RawJson:
    return {"nanoseconds": int(seconds * 1e9)}


def ip_as_uint32(host: str) -> int:
    """MasterInfo.ip: the IPv4 address in network byte order read as a little-endian uint32."""
    try:
        addr = ipaddress.IPv4Address(host)
    except ValueError:
        try:
            addr = ipaddress.IPv4Address(socket.gethostbyname(host))
        except OSError:
            addr = ipaddress.IPv4Address("127.0.0.1")
    value: int = struct.unpack("<I", addr.packed)[0]
    return value


@dataclasses.dataclass(slots=True, eq=False)
class Task:
    framework_id: str
    agent_id: str
    task_id: str
    info: RawJson  # the TaskInfo as launched (resources upgraded with allocation_info)
    resources: res.Resources
    role: str
    executor_id: str | None = None
    state: str = "TASK_STAGING"
    statuses: list[RawJson] = dataclasses.field(default_factory=list)
    status_update_state: str | None = None
    status_update_uuid: str | None = None
    resources_released: bool = False
    unreachable_time: float | None = None

    @property
    def terminal(self) -> bool:
        return self.state in calls.TERMINAL_STATES

    def latest_status(self) -> RawJson | None:
        return self.statuses[-1] if self.statuses else None

    def to_raw(self, *, refined: bool = True) -> RawJson:
        """The operator-API / re-registration ``Task`` shape."""
        raw: RawJson = {
            "name": self.info.get("name", ""),
            "task_id": idv(self.task_id),
            "framework_id": idv(self.framework_id),
            "agent_id": idv(self.agent_id),
            "state": self.state,
            "resources": self.resources.to_raw(refined=refined),
            "statuses": list(self.statuses),
        }
        if self.executor_id is not None:
            raw["executor_id"] = idv(self.executor_id)
        if self.status_update_state is not None:
            raw["status_update_state"] = self.status_update_state
        if self.status_update_uuid is not None:
            raw["status_update_uuid"] = self.status_update_uuid
        for key in ("labels", "discovery", "container", "health_check", "check", "kill_policy",
                    "limits", "user"):
            if key in self.info:
                raw[key] = self.info[key]
        if raw.get("container") is not None:
            raw["container"] = with_container_defaults(raw["container"])
        if raw.get("health_check") is not None:
            raw["health_check"] = with_health_check_defaults(raw["health_check"])
        return raw


@dataclasses.dataclass(slots=True, eq=False)
class Executor:
    framework_id: str
    agent_id: str
    executor_id: str
    info: RawJson
    resources: res.Resources


@dataclasses.dataclass(slots=True, eq=False)
class Offer:
    offer_id: str
    framework_id: str
    agent_id: str
    role: str
    resources: res.Resources
    created: float
    timer: Any = None  # asyncio.TimerHandle for --offer_timeout


@dataclasses.dataclass(slots=True, eq=False)
class Framework:
    framework_id: str
    info: RawJson  # with defaults and id
    registered_time: float
    stream: streams.EventStream | None = None
    active: bool = False
    recovered: bool = False  # known from the registry or an agent, not yet re-subscribed
    reregistered_time: float | None = None
    unregistered_time: float | None = None
    suppressed_roles: set[str] = dataclasses.field(default_factory=set)
    offer_constraints: RawJson | None = None
    failover_timer: Any = None
    offers: dict[str, Offer] = dataclasses.field(default_factory=dict)
    tasks: dict[str, Task] = dataclasses.field(default_factory=dict)
    unreachable_tasks: dict[str, Task] = dataclasses.field(default_factory=dict)
    completed_tasks: collections.deque[Task] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )

    @property
    def connected(self) -> bool:
        return self.stream is not None

    @property
    def roles(self) -> tuple[str, ...]:
        return calls.framework_roles(self.info)

    @property
    def capabilities(self) -> frozenset[str]:
        return calls.capabilities(self.info)

    @property
    def partition_aware(self) -> bool:
        return "PARTITION_AWARE" in self.capabilities

    @property
    def refined(self) -> bool:
        return "RESERVATION_REFINEMENT" in self.capabilities

    @property
    def checkpoint(self) -> bool:
        return bool(self.info.get("checkpoint", False))

    @property
    def name(self) -> str:
        return str(self.info.get("name", ""))

    def allocated(self, *, executors: Iterable[Executor] = ()) -> res.Resources:
        """``totalUsedResources``: live tasks plus this framework's ``executors``."""
        total = res.Resources()
        for task in self.tasks.values():
            if not task.resources_released:
                total = total + task.resources
        for executor in executors:
            if executor.framework_id == self.framework_id:
                total = total + executor.resources
        return total

    def offered(self) -> res.Resources:
        total = res.Resources()
        for offer in self.offers.values():
            total = total + offer.resources
        return total


@dataclasses.dataclass(slots=True, eq=False)
class Agent:
    agent_id: str
    info: RawJson  # AgentInfo with id
    total: res.Resources  # including dynamic reservations
    registered_time: float
    version: str = "1.12.0"
    conn: Any = None  # master.AgentConn while linked
    active: bool = True
    recovered: bool = False  # from the registry, not yet re-registered
    unreachable_time: float | None = None
    reregistered_time: float | None = None
    missed_pings: int = 0
    pong_pending: bool = False
    tasks: dict[tuple[str, str], Task] = dataclasses.field(default_factory=dict)
    executors: dict[tuple[str, str], Executor] = dataclasses.field(default_factory=dict)
    kill_on_return: set[tuple[str, str]] = dataclasses.field(default_factory=set)

    @property
    def connected(self) -> bool:
        return self.conn is not None

    @property
    def hostname(self) -> str:
        return str(self.info.get("hostname", ""))

    @property
    def port(self) -> int:
        port = self.info.get("port", 5051)
        return int(port) if isinstance(port, int | float) else 5051

    @property
    def attributes(self) -> tuple[res.Attribute, ...]:
        out = []
        for raw in self.info.get("attributes") or []:
            try:
                out.append(res.Attribute.parse(raw))
            except (res.ResourceError, TypeError, ValueError, KeyError):
                continue
        return tuple(out)

    @property
    def region(self) -> str | None:
        fd = (self.info.get("domain") or {}).get("fault_domain") or {}
        name = (fd.get("region") or {}).get("name")
        return str(name) if name is not None else None

    @property
    def zone(self) -> str | None:
        fd = (self.info.get("domain") or {}).get("fault_domain") or {}
        name = (fd.get("zone") or {}).get("name")
        return str(name) if name is not None else None

    def pid(self) -> str:
        return f"slave(1)@{self.hostname}:{self.port}"

    def url(self, *, scheme: str = "http") -> RawJson:
        """Offer.url: Mesos always says "http" (a TODO there: "https" when only https is
        served); the kernel serves only https with TLS on, so it says so."""
        return {
            "scheme": scheme,
            "address": {
                "hostname": self.hostname,
                "ip": _ip_text(self.hostname),
                "port": self.port,
            },
            "path": "/slave(1)",
        }

    def used(self) -> dict[str, res.Resources]:
        """Resources held by running tasks and executors, per framework: each framework's
        in one ``Resources.of`` (the same additions in the same order as summing them one by
        one, without re-merging the running total at every task)."""
        held: dict[str, list[res.Resource]] = {}
        for task in self.tasks.values():
            if not task.resources_released:
                held.setdefault(task.framework_id, []).extend(task.resources.items)
        for ex in self.executors.values():
            held.setdefault(ex.framework_id, []).extend(ex.resources.items)
        return {fw: res.Resources.of(items) for fw, items in held.items()}

    def info_raw(self) -> RawJson:
        raw = dict(self.info)
        raw["id"] = idv(self.agent_id)
        raw["resources"] = self.total.to_raw()
        raw.setdefault("port", 5051)
        return raw


def _ip_text(host: str) -> str:
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        try:
            return socket.gethostbyname(host)
        except OSError:
            return host


def with_container_defaults(container: Any) -> Any:
    if not isinstance(container, dict):
        return container
    out = dict(container)
    docker = out.get("docker")
    if isinstance(docker, dict):
        docker = dict(docker)
        docker.setdefault("network", "HOST")
        docker.setdefault("privileged", False)
        out["docker"] = docker
    nets = out.get("network_infos")
    if isinstance(nets, list):
        new_nets = []
        for net in nets:
            if isinstance(net, dict) and isinstance(net.get("ip_addresses"), list):
                net = dict(net)
                net["ip_addresses"] = [
                    {"protocol": "IPv4", **a} if isinstance(a, dict) else a
                    for a in net["ip_addresses"]
                ]
            new_nets.append(net)
        out["network_infos"] = new_nets
    linux = out.get("linux_info")
    if isinstance(linux, dict):
        out["linux_info"] = {"share_cgroups": True, **linux}
    return out


def with_health_check_defaults(check: Any) -> Any:
    if not isinstance(check, dict):
        return check
    return {
        "delay_seconds": 15.0,
        "interval_seconds": 10.0,
        "timeout_seconds": 20.0,
        "consecutive_failures": 3,
        "grace_period_seconds": 10.0,
        **check,
    }


def with_command_defaults(command: Any) -> Any:
    if not isinstance(command, dict):
        return command
    out = {"shell": True, **command}
    if isinstance(out.get("uris"), list):
        out["uris"] = [
            {"extract": True, "cache": False, **u} if isinstance(u, dict) else u
            for u in out["uris"]
        ]
    env = out.get("environment")
    if isinstance(env, dict) and isinstance(env.get("variables"), list):
        out["environment"] = {
            **env,
            "variables": [
                {"type": "VALUE", **v} if isinstance(v, dict) else v for v in env["variables"]
            ],
        }
    return out


def with_task_defaults(task: RawJson) -> RawJson:
    """The TaskInfo as forwarded to the agent: defaults Mesos' protobuf would carry."""
    out = dict(task)
    if "command" in out:
        out["command"] = with_command_defaults(out["command"])
    if "container" in out:
        out["container"] = with_container_defaults(out["container"])
    if "health_check" in out:
        out["health_check"] = with_health_check_defaults(out["health_check"])
    return out
