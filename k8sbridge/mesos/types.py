"""Parsed Mesos v1 values: frozen slotted dataclasses built from (and rendered to) wire JSON.

Why a second layer over ``raw.py``: the framework reasons about offers, statuses and tasks; it
should not dig through ``{"offers": {"offers": [...]}}`` or base64 by hand, and a typo in a key
should be a type error, not a silently ignored field (Mesos ignores unknown keys). Resources and
attributes are ``k8sbridge.model.resources`` values: there is exactly one resource arithmetic.

Conventions: ``parse_*``/``X.parse(raw)`` raise ``ProtocolError`` naming the bad field;
``to_raw()`` renders only what is set (Mesos fills its own defaults). Here: the framework, the
master and offers; the task status lives in ``model.tasks`` (importable from here under its old
name). Tasks and executors are not typed here: the bridge renders its LAUNCH_GROUP as wire JSON
from the placement's assignment (``scheduler/launch.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from k8sbridge.mesos import raw as wire
from k8sbridge.mesos.errors import ProtocolError
from k8sbridge.mesos.wirevalues import (
    Labels,
    as_list,
    as_obj,
    decode_bytes,
    encode_bytes,
    id_value,
    num_field,
    opt_id,
    parse_attributes,
    parse_duration,
    parse_labels,
    parse_resources,
    render_labels,
    req_str,
    str_field,
)
from k8sbridge.model import resources as res
from k8sbridge.model import tasks as model_tasks
from k8sbridge.model.ids import AgentId, ExecutorId, FrameworkId, OfferId

__all__ = [
    "CAPABILITIES",
    "TERMINAL_STATES",
    "FrameworkInfo",
    "MasterInfo",
    "Offer",
    "TaskStatus",
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
        raw = as_obj(raw, what=what)
        caps = tuple(
            str(as_obj(c, what=f"{what}.capabilities").get("type", ""))
            for c in as_list(raw.get("capabilities"), what=f"{what}.capabilities")
        )
        caps = tuple(c for c in caps if c in CAPABILITIES)  # unknown enum values are dropped
        roles_raw = raw.get("roles")
        roles = (
            tuple(str(r) for r in as_list(roles_raw, what=f"{what}.roles"))
            if roles_raw
            else (str_field(raw, "role", what=what, default="*"),)
        )
        min_alloc: dict[str, list[dict[str, float]]] | None = None
        if raw.get("offer_filters"):
            min_alloc = {}
            for role, flt in as_obj(raw["offer_filters"], what=f"{what}.offer_filters").items():
                quantities = as_obj(flt, what="offer_filters").get("min_allocatable_resources", {})
                min_alloc[role] = [
                    {
                        n: float(as_obj(v, what="quantity").get("value", 0))
                        for n, v in as_obj(q, what="quantities").get("quantities", {}).items()
                    }
                    for q in as_list(quantities.get("quantities"), what="quantities")
                ]
        try:
            return cls(
                name=req_str(raw, "name", what=what),
                user=req_str(raw, "user", what=what),
                roles=roles,
                id=FrameworkId(fid) if (fid := opt_id(raw, "id", what=what)) else None,
                failover_timeout=num_field(raw, "failover_timeout", what=what),
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
        raw = as_obj(raw, what=what)
        address = raw.get("address") or {}
        hostname = str_field(raw, "hostname", what=what) or str(address.get("hostname", ""))
        return cls(
            id=req_str(raw, "id", what=what),
            hostname=hostname,
            port=int(num_field(raw, "port", what=what, default=5050)),
            version=str_field(raw, "version", what=what),
            pid=str_field(raw, "pid", what=what),
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
            raw = as_obj(raw, what="offer")
        offer_id = _quick_id(raw.get("id")) or id_value(raw.get("id"), what="offer.id")
        what = "offer " + offer_id
        url = raw.get("url")
        agent_url = None
        if url:
            if type(url) is not dict:
                url = as_obj(url, what=f"{what}.url")
            address = url.get("address", {})
            if type(address) is not dict:
                address = as_obj(address, what=f"{what}.url.address")
            host = address.get("hostname") or address.get("ip")
            if host and address.get("port"):
                agent_url = f"{url.get('scheme', 'http')}://{host}:{int(address['port'])}"
        domain = raw.get("domain") or {}
        if type(domain) is not dict:
            domain = as_obj(domain, what=f"{what}.domain")
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
            un = as_obj(raw["unavailability"], what=f"{what}.unavailability")
            start = parse_duration(un.get("start", {}), what=f"{what}.unavailability.start")
            if un.get("duration") is not None:
                duration = parse_duration(un["duration"], what=f"{what}.unavailability.duration")
        raw_executors = raw.get("executor_ids")
        executor_ids: tuple[ExecutorId, ...] = ()
        if raw_executors is not None and raw_executors != []:
            executor_ids = tuple(
                ExecutorId(id_value(e, what=f"{what}.executor_ids"))
                for e in as_list(raw_executors, what=f"{what}.executor_ids")
            )
        framework_id = _quick_id(raw.get("framework_id")) or id_value(
            raw.get("framework_id"), what=f"{what}.fw"
        )
        agent_id = _quick_id(raw.get("agent_id")) or id_value(
            raw.get("agent_id"), what=f"{what}.agent_id"
        )
        hostname = raw.get("hostname")
        if type(hostname) is not str:
            hostname = req_str(raw, "hostname", what=what)
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


#: The one task-status record of the code base lives in ``model.tasks`` (the pod-status map,
#: which may import only ``model``, folds the same values the scheduler stream delivers).
TaskStatus = model_tasks.TaskStatus
