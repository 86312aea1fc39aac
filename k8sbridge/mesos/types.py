"""Parsed Mesos v1 values: frozen slotted dataclasses built from (and rendered to) wire JSON.

Why a second layer over ``raw.py``: the framework reasons about offers, statuses and tasks; it
should not dig through ``{"offers": {"offers": [...]}}`` or base64 by hand, and a typo in a key
should be a type error, not a silently ignored field (Mesos ignores unknown keys). Resources and
attributes are ``k8sbridge.model.resources`` values: there is exactly one resource arithmetic.

Conventions: ``parse_*``/``X.parse(raw)`` raise ``ProtocolError`` naming the bad field;
``to_raw()`` renders only what is set (Mesos fills its own defaults). bytes fields (``data``)
are ``bytes`` here and base64 on the wire; ``TaskStatus.uuid`` stays the verbatim base64 text
because ACKNOWLEDGE must echo it unchanged.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, cast

from k8sbridge.mesos import raw as wire
from k8sbridge.mesos.errors import ProtocolError
from k8sbridge.model import resources as res
from k8sbridge.model import tasks as model_tasks
from k8sbridge.model.ids import AgentId, ExecutorId, FrameworkId, OfferId, TaskId

__all__ = [
    "CAPABILITIES",
    "TERMINAL_STATES",
    "CheckInfo",
    "CommandInfo",
    "ContainerInfo",
    "ExecutorInfo",
    "FrameworkInfo",
    "HealthCheck",
    "KillPolicy",
    "MasterInfo",
    "Offer",
    "TaskGroupInfo",
    "TaskInfo",
    "TaskStatus",
    "Volume",
    "decode_bytes",
    "encode_bytes",
]

CAPABILITIES = frozenset(
    {
        "REVOCABLE_RESOURCES",
        "TASK_KILLING_STATE",
        "GPU_RESOURCES",
        "SHARED_RESOURCES",
        "PARTITION_AWARE",
        "MULTI_ROLE",
        "RESERVATION_REFINEMENT",
        "REGION_AWARE",
    }
)

TERMINAL_STATES = model_tasks.TERMINAL_STATES  # Mesos' isTerminalState, defined once in model

ONE_WEEK_SECONDS = 7 * 24 * 3600.0
NANOS = 1_000_000_000

Labels = tuple[tuple[str, str], ...]


# --------------------------------------------------------------------------------------------
# helpers


def encode_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_bytes(text: Any, *, what: str) -> bytes:
    if not isinstance(text, str):
        raise ProtocolError(f"{what}: expected base64 text, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ProtocolError(f"{what}: invalid base64") from e


def _obj(raw: Any, *, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ProtocolError(f"{what}: expected an object, got {type(raw).__name__}")
    return raw


def _list(raw: Any, *, what: str) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, Mapping):  # the stout parser accepts one object for a repeated field
        return [raw]
    if not isinstance(raw, list):
        raise ProtocolError(f"{what}: expected a list, got {type(raw).__name__}")
    return raw


def _id_value(raw: Any, *, what: str) -> str:
    value = _obj(raw, what=what).get("value")
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{what}: missing id value")
    return value


def _opt_id(raw: Mapping[str, Any], key: str, *, what: str) -> str | None:
    if raw.get(key) is None:
        return None
    return _id_value(raw[key], what=f"{what}.{key}")


def _str(raw: Mapping[str, Any], key: str, *, what: str, default: str = "") -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ProtocolError(f"{what}.{key}: expected a string")
    return value


def _req_str(raw: Mapping[str, Any], key: str, *, what: str) -> str:
    if key not in raw:
        raise ProtocolError(f"{what}: missing required field {key!r}")
    return _str(raw, key, what=what)


def _num(raw: Mapping[str, Any], key: str, *, what: str, default: float = 0.0) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ProtocolError(f"{what}.{key}: expected a number")
    try:
        return float(value)
    except ValueError as e:
        raise ProtocolError(f"{what}.{key}: expected a number") from e


def _opt_num(raw: Mapping[str, Any], key: str, *, what: str) -> float | None:
    return None if raw.get(key) is None else _num(raw, key, what=what)


def parse_labels(raw: Any) -> Labels:
    if not raw:
        return ()
    items = _list(_obj(raw, what="labels").get("labels"), what="labels.labels")
    out = []
    for item in items:
        item = _obj(item, what="label")
        out.append((str(item.get("key", "")), str(item.get("value", ""))))
    return tuple(out)


def render_labels(labels: Labels) -> wire.RawLabels:
    return {"labels": [{"key": k, "value": v} for k, v in labels]}


def _duration(raw: Any, *, what: str) -> float:
    nanos = _obj(raw, what=what).get("nanoseconds", 0)
    if isinstance(nanos, bool) or not isinstance(nanos, int | float):
        raise ProtocolError(f"{what}.nanoseconds: expected an integer")
    return nanos / NANOS


def _render_duration(seconds: float) -> wire.RawDuration:
    return {"nanoseconds": int(round(seconds * NANOS))}


def parse_resources(raw: Any, *, what: str) -> res.Resources:
    try:
        return res.Resources.parse(_list(raw, what=what))
    except (res.ResourceError, AttributeError, TypeError) as e:
        raise ProtocolError(f"{what}: {e}") from e


def parse_attributes(raw: Any, *, what: str) -> tuple[res.Attribute, ...]:
    try:
        return tuple(res.Attribute.parse(a) for a in _list(raw, what=what))
    except (res.ResourceError, AttributeError, TypeError, KeyError, ValueError) as e:
        raise ProtocolError(f"{what}: {e}") from e


def _render_resources(resources: res.Resources) -> list[wire.RawResource]:
    return cast(list[wire.RawResource], resources.to_raw())


# --------------------------------------------------------------------------------------------
# Framework and master


@dataclasses.dataclass(frozen=True, slots=True)
class FrameworkInfo:
    """What we tell the master about ourselves on SUBSCRIBE and UPDATE_FRAMEWORK.

    Defaults are the production ones from the issue: MULTI_ROLE (``roles``, never ``role``),
    partition awareness, TASK_KILLING_STATE, a week of failover timeout, checkpointing.
    """

    name: str
    user: str
    roles: tuple[str, ...] = ("*",)
    id: FrameworkId | None = None
    failover_timeout: float = ONE_WEEK_SECONDS
    checkpoint: bool = True
    capabilities: tuple[str, ...] = (
        "MULTI_ROLE",
        "PARTITION_AWARE",
        "TASK_KILLING_STATE",
        "REGION_AWARE",
    )
    principal: str | None = None
    hostname: str | None = None
    webui_url: str | None = None
    labels: Labels = ()
    # role -> alternatives of minimum quantities, e.g. {"web": [{"cpus": 0.1, "mem": 32}]}
    min_allocatable: Mapping[str, Sequence[Mapping[str, float]]] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.capabilities) - CAPABILITIES
        if unknown:
            raise ValueError(f"unknown framework capabilities: {sorted(unknown)}")
        if not self.name or not self.user:
            raise ValueError("FrameworkInfo needs a name and a user")
        if "MULTI_ROLE" not in self.capabilities and len(self.roles) > 1:
            raise ValueError("several roles need the MULTI_ROLE capability")
        for role in self.roles:
            if not role or role in (".", "..") or role.startswith("-") or any(
                c.isspace() for c in role
            ):
                raise ValueError(f"invalid role name {role!r}")

    def with_id(self, framework_id: FrameworkId | None) -> FrameworkInfo:
        return dataclasses.replace(self, id=framework_id)

    def to_raw(self) -> wire.RawFrameworkInfo:
        out: wire.RawFrameworkInfo = {
            "user": self.user,
            "name": self.name,
            "failover_timeout": self.failover_timeout,
            "checkpoint": self.checkpoint,
            "capabilities": [{"type": c} for c in self.capabilities],
        }
        if "MULTI_ROLE" in self.capabilities:
            out["roles"] = list(self.roles)
        else:
            out["role"] = self.roles[0] if self.roles else "*"
        if self.id is not None:
            out["id"] = {"value": self.id}
        if self.principal is not None:
            out["principal"] = self.principal
        if self.hostname is not None:
            out["hostname"] = self.hostname
        if self.webui_url is not None:
            out["webui_url"] = self.webui_url
        if self.labels:
            out["labels"] = render_labels(self.labels)
        if self.min_allocatable:
            out["offer_filters"] = {
                role: {
                    "min_allocatable_resources": {
                        "quantities": [
                            {"quantities": {n: {"value": v} for n, v in alt.items()}}
                            for alt in alts
                        ]
                    }
                }
                for role, alts in self.min_allocatable.items()
            }
        return out

    @classmethod
    def parse(cls, raw: Any) -> FrameworkInfo:
        what = "framework_info"
        raw = _obj(raw, what=what)
        caps = tuple(
            str(_obj(c, what=f"{what}.capabilities").get("type", ""))
            for c in _list(raw.get("capabilities"), what=f"{what}.capabilities")
        )
        caps = tuple(c for c in caps if c in CAPABILITIES)  # unknown enum values are dropped
        roles_raw = raw.get("roles")
        roles = (
            tuple(str(r) for r in _list(roles_raw, what=f"{what}.roles"))
            if roles_raw
            else (_str(raw, "role", what=what, default="*"),)
        )
        min_alloc: dict[str, list[dict[str, float]]] | None = None
        if raw.get("offer_filters"):
            min_alloc = {}
            for role, flt in _obj(raw["offer_filters"], what=f"{what}.offer_filters").items():
                quantities = _obj(flt, what="offer_filters").get("min_allocatable_resources", {})
                min_alloc[role] = [
                    {
                        n: float(_obj(v, what="quantity").get("value", 0))
                        for n, v in _obj(q, what="quantities").get("quantities", {}).items()
                    }
                    for q in _list(quantities.get("quantities"), what="quantities")
                ]
        try:
            return cls(
                name=_req_str(raw, "name", what=what),
                user=_req_str(raw, "user", what=what),
                roles=roles,
                id=FrameworkId(fid) if (fid := _opt_id(raw, "id", what=what)) else None,
                failover_timeout=_num(raw, "failover_timeout", what=what),
                checkpoint=bool(raw.get("checkpoint", False)),
                capabilities=caps,
                principal=raw.get("principal"),
                hostname=raw.get("hostname"),
                webui_url=raw.get("webui_url"),
                labels=parse_labels(raw.get("labels")),
                min_allocatable=min_alloc,
            )
        except ValueError as e:
            raise ProtocolError(f"{what}: {e}") from e


@dataclasses.dataclass(frozen=True, slots=True)
class MasterInfo:
    id: str
    hostname: str = ""
    port: int = 5050
    version: str = ""
    pid: str = ""

    @classmethod
    def parse(cls, raw: Any) -> MasterInfo:
        what = "master_info"
        raw = _obj(raw, what=what)
        address = raw.get("address") or {}
        hostname = _str(raw, "hostname", what=what) or str(address.get("hostname", ""))
        return cls(
            id=_req_str(raw, "id", what=what),
            hostname=hostname,
            port=int(_num(raw, "port", what=what, default=5050)),
            version=_str(raw, "version", what=what),
            pid=_str(raw, "pid", what=what),
        )


# --------------------------------------------------------------------------------------------
# Offers


@dataclasses.dataclass(frozen=True, slots=True)
class Offer:
    id: OfferId
    framework_id: FrameworkId
    agent_id: AgentId
    hostname: str
    resources: res.Resources
    attributes: tuple[res.Attribute, ...] = ()
    allocation_role: str | None = None
    agent_url: str | None = None  # "http://host:port" of the agent, from Offer.url
    region: str | None = None
    zone: str | None = None
    executor_ids: tuple[ExecutorId, ...] = ()
    unavailable_from: float | None = None  # epoch seconds of a scheduled maintenance
    unavailable_for: float | None = None  # seconds

    @classmethod
    def parse(cls, raw: Any) -> Offer:
        # The hot path of OFFERS decoding (a busy master sends thousands of offers a second):
        # cheap exact-type checks first; the error texts are only built when something is wrong
        # (the checked helpers then raise with the field named).
        if type(raw) is not dict:
            raw = _obj(raw, what="offer")
        offer_id = _quick_id(raw.get("id")) or _id_value(raw.get("id"), what="offer.id")
        what = "offer " + offer_id
        url = raw.get("url")
        agent_url = None
        if url:
            if type(url) is not dict:
                url = _obj(url, what=f"{what}.url")
            address = url.get("address", {})
            if type(address) is not dict:
                address = _obj(address, what=f"{what}.url.address")
            host = address.get("hostname") or address.get("ip")
            if host and address.get("port"):
                agent_url = f"{url.get('scheme', 'http')}://{host}:{int(address['port'])}"
        domain = raw.get("domain") or {}
        if type(domain) is not dict:
            domain = _obj(domain, what=f"{what}.domain")
        fault = domain.get("fault_domain") or {}
        region = (fault.get("region") or {}).get("name")
        zone = (fault.get("zone") or {}).get("name")
        raw_resources = raw.get("resources")
        if type(raw_resources) is list:
            try:
                resources = res.Resources.parse(raw_resources)
            except (res.ResourceError, AttributeError, TypeError) as e:
                raise ProtocolError(f"{what}.resources: {e}") from e
        else:
            resources = parse_resources(raw_resources, what=f"{what}.resources")
        raw_attributes = raw.get("attributes")
        if type(raw_attributes) is list:
            try:
                parse_attribute = res.Attribute.parse
                attributes = tuple([parse_attribute(a) for a in raw_attributes])
            except (res.ResourceError, AttributeError, TypeError, KeyError, ValueError) as e:
                raise ProtocolError(f"{what}.attributes: {e}") from e
        else:
            attributes = parse_attributes(raw_attributes, what=f"{what}.attributes")
        alloc = (raw.get("allocation_info") or {}).get("role")
        if alloc is None:
            roles = {r.allocation_role for r in resources if r.allocation_role}
            alloc = roles.pop() if len(roles) == 1 else None
        start = duration = None
        if raw.get("unavailability"):
            un = _obj(raw["unavailability"], what=f"{what}.unavailability")
            start = _duration(un.get("start", {}), what=f"{what}.unavailability.start")
            if un.get("duration") is not None:
                duration = _duration(un["duration"], what=f"{what}.unavailability.duration")
        raw_executors = raw.get("executor_ids")
        executor_ids: tuple[ExecutorId, ...] = ()
        if raw_executors is not None and raw_executors != []:
            executor_ids = tuple(
                ExecutorId(_id_value(e, what=f"{what}.executor_ids"))
                for e in _list(raw_executors, what=f"{what}.executor_ids")
            )
        framework_id = _quick_id(raw.get("framework_id")) or _id_value(
            raw.get("framework_id"), what=f"{what}.fw"
        )
        agent_id = _quick_id(raw.get("agent_id")) or _id_value(
            raw.get("agent_id"), what=f"{what}.agent_id"
        )
        hostname = raw.get("hostname")
        if type(hostname) is not str:
            hostname = _req_str(raw, "hostname", what=what)
        return _new_offer(
            OfferId(offer_id),
            FrameworkId(framework_id),
            AgentId(agent_id),
            hostname,
            resources,
            attributes,
            alloc,
            agent_url,
            region,
            zone,
            executor_ids,
            start,
            duration,
        )


def _quick_id(raw: Any) -> str | None:
    """``raw["value"]`` of a well-formed id object, else None (the caller then reports why)."""
    if type(raw) is dict:
        value = raw.get("value")
        if type(value) is str and value:
            return value
    return None


_OFFER_FIELDS = tuple(f.name for f in dataclasses.fields(Offer))
(
    _O_ID,
    _O_FRAMEWORK_ID,
    _O_AGENT_ID,
    _O_HOSTNAME,
    _O_RESOURCES,
    _O_ATTRIBUTES,
    _O_ALLOC,
    _O_URL,
    _O_REGION,
    _O_ZONE,
    _O_EXECUTORS,
    _O_FROM,
    _O_FOR,
) = (Offer.__dict__[name].__set__ for name in _OFFER_FIELDS)


def _new_offer(
    offer_id: OfferId,
    framework_id: FrameworkId,
    agent_id: AgentId,
    hostname: str,
    resources: res.Resources,
    attributes: tuple[res.Attribute, ...],
    alloc: str | None,
    agent_url: str | None,
    region: str | None,
    zone: str | None,
    executor_ids: tuple[ExecutorId, ...],
    unavailable_from: float | None,
    unavailable_for: float | None,
) -> Offer:
    """``Offer(...)`` (fields in declaration order) without the frozen dataclass' per-field
    ``object.__setattr__``: the slot descriptors are called directly, about twice as fast."""
    offer: Offer = object.__new__(Offer)
    _O_ID(offer, offer_id)
    _O_FRAMEWORK_ID(offer, framework_id)
    _O_AGENT_ID(offer, agent_id)
    _O_HOSTNAME(offer, hostname)
    _O_RESOURCES(offer, resources)
    _O_ATTRIBUTES(offer, attributes)
    _O_ALLOC(offer, alloc)
    _O_URL(offer, agent_url)
    _O_REGION(offer, region)
    _O_ZONE(offer, zone)
    _O_EXECUTORS(offer, executor_ids)
    _O_FROM(offer, unavailable_from)
    _O_FOR(offer, unavailable_for)
    return offer


assert _OFFER_FIELDS == (
    "id",
    "framework_id",
    "agent_id",
    "hostname",
    "resources",
    "attributes",
    "allocation_role",
    "agent_url",
    "region",
    "zone",
    "executor_ids",
    "unavailable_from",
    "unavailable_for",
), "Offer's fields changed: update _new_offer"


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
        raw = _obj(raw, what=what)
        env = _obj(raw.get("environment") or {}, what=f"{what}.environment")
        variables = _list(env.get("variables"), what=f"{what}.environment.variables")
        return cls(
            value=raw.get("value"),
            shell=bool(raw.get("shell", True)),
            arguments=tuple(str(a) for a in _list(raw.get("arguments"), what=f"{what}.args")),
            environment=tuple(
                (str(v.get("name", "")), str(v.get("value", ""))) for v in variables
            ),
            uris=tuple(
                str(_obj(u, what="uri").get("value", ""))
                for u in _list(raw.get("uris"), what=f"{what}.uris")
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
        raw = _obj(raw, what="volume")
        source = raw.get("source") or {}
        sandbox = (source.get("sandbox_path") or {}).get("path")
        return cls(
            container_path=_req_str(raw, "container_path", what="volume"),
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
        raw = _obj(raw, what=what)
        image = None
        mesos = raw.get("mesos") or {}
        docker = raw.get("docker") or {}
        if mesos.get("image"):
            image = ((mesos["image"] or {}).get("docker") or {}).get("name")
        elif docker.get("image"):
            image = docker["image"]
        return cls(
            type=_req_str(raw, "type", what=what),
            image=image,
            volumes=tuple(Volume.parse(v) for v in _list(raw.get("volumes"), what="volumes")),
            networks=tuple(
                str(n.get("name", ""))
                for n in _list(raw.get("network_infos"), what="network_infos")
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
        raw = _obj(raw, what=what)
        kind = _req_str(raw, "type", what=what)
        command = http = tcp = None
        if raw.get("command"):
            cmd = _obj(raw["command"], what=f"{what}.command")
            command = CommandInfo.parse(cmd.get("command", cmd))  # CheckInfo nests once more
        if raw.get("http"):
            http = _obj(raw["http"], what=f"{what}.http")
        if raw.get("tcp"):
            tcp = _obj(raw["tcp"], what=f"{what}.tcp")
        port = (http or tcp or {}).get("port")
        return cls(
            type=kind,
            command=command,
            port=int(port) if port is not None else None,
            path=(http or {}).get("path"),
            scheme=(http or {}).get("scheme"),
            delay_seconds=_num(raw, "delay_seconds", what=what, default=15.0),
            interval_seconds=_num(raw, "interval_seconds", what=what, default=10.0),
            timeout_seconds=_num(raw, "timeout_seconds", what=what, default=20.0),
            consecutive_failures=int(_num(raw, "consecutive_failures", what=what, default=3)),
            grace_period_seconds=_num(raw, "grace_period_seconds", what=what, default=10.0),
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
        return {"grace_period": _render_duration(self.grace_period_seconds)}

    @classmethod
    def parse(cls, raw: Any) -> KillPolicy:
        raw = _obj(raw, what="kill_policy")
        return cls(_duration(raw.get("grace_period", {}), what="kill_policy.grace_period"))


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
            "resources": _render_resources(self.resources),
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
            out["shutdown_grace_period"] = _render_duration(self.shutdown_grace_period_seconds)
        return out

    @classmethod
    def parse(cls, raw: Any) -> ExecutorInfo:
        what = "executor"
        raw = _obj(raw, what=what)
        fid = _opt_id(raw, "framework_id", what=what)
        return cls(
            executor_id=ExecutorId(_id_value(raw.get("executor_id"), what=f"{what}.executor_id")),
            framework_id=FrameworkId(fid) if fid else None,
            type=_str(raw, "type", what=what, default="UNKNOWN"),
            resources=parse_resources(raw.get("resources"), what=f"{what}.resources"),
            command=CommandInfo.parse(raw["command"]) if raw.get("command") else None,
            container=ContainerInfo.parse(raw["container"]) if raw.get("container") else None,
            name=raw.get("name"),
            labels=parse_labels(raw.get("labels")),
            shutdown_grace_period_seconds=(
                _duration(raw["shutdown_grace_period"], what="shutdown_grace_period")
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
            "resources": _render_resources(self.resources),
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
            out["max_completion_time"] = _render_duration(self.max_completion_seconds)
        return out

    @classmethod
    def parse(cls, raw: Any) -> TaskInfo:
        what = "task"
        raw = _obj(raw, what=what)
        task_id = _id_value(raw.get("task_id"), what=f"{what}.task_id")
        what = f"task {task_id}"
        limits = None
        if raw.get("limits"):
            limits = {
                n: _num(_obj(v, what=f"{what}.limits"), "value", what=f"{what}.limits.{n}")
                for n, v in _obj(raw["limits"], what=f"{what}.limits").items()
            }
        return cls(
            name=_req_str(raw, "name", what=what),
            task_id=TaskId(task_id),
            agent_id=AgentId(_id_value(raw.get("agent_id"), what=f"{what}.agent_id")),
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
                _duration(raw["max_completion_time"], what=f"{what}.max_completion_time")
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
        raw = _obj(raw, what="task_group")
        return cls(tuple(TaskInfo.parse(t) for t in _list(raw.get("tasks"), what="tasks")))


#: The one task-status record of the code base lives in ``model.tasks`` (the pod-status map,
#: which may import only ``model``, folds the same values the scheduler stream delivers).
TaskStatus = model_tasks.TaskStatus
