"""Scheduler events (``mesos.v1.scheduler.Event``) parsed into typed values.

Why a closed set of frozen dataclasses: the framework ``match``es on them, and the two classic
wire traps are handled in one place: OFFERS is nested twice (``offers.offers``) and ERROR carries
``error.message``. An event type this client does not know becomes ``UnknownEvent`` (logged by
the client, never fatal): newer masters may add types.
"""

from __future__ import annotations

import dataclasses
import gc
import json
from collections.abc import Mapping
from typing import Any, TypeAlias

from k8sbridge.mesos import types, wirevalues
from k8sbridge.mesos.errors import ProtocolError
from k8sbridge.model.ids import AgentId, ExecutorId, FrameworkId, OfferId
from k8sbridge.model.tasks import TaskStatusError

__all__ = [
    "Error",
    "Event",
    "Failure",
    "Heartbeat",
    "InverseOffer",
    "InverseOffers",
    "Message",
    "Offers",
    "Rescind",
    "RescindInverseOffer",
    "Subscribed",
    "UnknownEvent",
    "Update",
    "UpdateOperationStatus",
    "decode",
    "parse",
]

DEFAULT_HEARTBEAT_INTERVAL = 15.0


@dataclasses.dataclass(frozen=True, slots=True)
class Subscribed:
    framework_id: FrameworkId
    heartbeat_interval_seconds: float = DEFAULT_HEARTBEAT_INTERVAL
    master: types.MasterInfo | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Offers:
    offers: tuple[types.Offer, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class InverseOffer:
    id: str
    framework_id: FrameworkId
    agent_id: AgentId | None
    start: float  # epoch seconds
    duration: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class InverseOffers:
    inverse_offers: tuple[InverseOffer, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Rescind:
    offer_id: OfferId


@dataclasses.dataclass(frozen=True, slots=True)
class RescindInverseOffer:
    inverse_offer_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Update:
    status: types.TaskStatus


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateOperationStatus:
    operation_id: str | None
    state: str
    message: str | None
    agent_id: AgentId | None
    uuid: str | None  # ``status.uuid.value`` (base64), echoed by ACKNOWLEDGE_OPERATION_STATUS
    resource_provider_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    agent_id: AgentId
    executor_id: ExecutorId
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """An executor exited (``executor_id`` set) or an agent was lost (``executor_id`` None)."""

    agent_id: AgentId | None
    executor_id: ExecutorId | None = None
    status: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Error:
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Heartbeat:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class UnknownEvent:
    type: str
    raw: Mapping[str, Any]


Event: TypeAlias = (
    Subscribed
    | Offers
    | InverseOffers
    | Rescind
    | RescindInverseOffer
    | Update
    | UpdateOperationStatus
    | Message
    | Failure
    | Error
    | Heartbeat
    | UnknownEvent
)


def event_type(event: Event) -> str:
    """The wire type name of an event (``"OFFERS"``), for logs and metrics."""
    if isinstance(event, UnknownEvent):
        return event.type
    return _TYPE_NAMES[type(event)]


_TYPE_NAMES: dict[type[Any], str] = {
    Subscribed: "SUBSCRIBED",
    Offers: "OFFERS",
    InverseOffers: "INVERSE_OFFERS",
    Rescind: "RESCIND",
    RescindInverseOffer: "RESCIND_INVERSE_OFFER",
    Update: "UPDATE",
    UpdateOperationStatus: "UPDATE_OPERATION_STATUS",
    Message: "MESSAGE",
    Failure: "FAILURE",
    Error: "ERROR",
    Heartbeat: "HEARTBEAT",
}


def _sub(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{raw.get('type')} event without its {key!r} object")
    return value


def _id(raw: Mapping[str, Any], key: str, *, what: str) -> str:
    value = raw.get(key)
    if not isinstance(value, Mapping) or not isinstance(value.get("value"), str):
        raise ProtocolError(f"{what}: missing {key}")
    return str(value["value"])


def _opt_id(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if isinstance(value, Mapping) and isinstance(value.get("value"), str):
        return str(value["value"])
    return None


def _nanos(raw: Any) -> float | None:
    if not isinstance(raw, Mapping) or "nanoseconds" not in raw:
        return None
    return float(raw["nanoseconds"]) / wirevalues.NANOS


def parse(raw: Any) -> Event:
    """One decoded JSON event → a typed value; ``ProtocolError`` if its shape is wrong."""
    if not isinstance(raw, Mapping):
        raise ProtocolError(f"event is not a JSON object: {type(raw).__name__}")
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("event without a type")
    if kind == "HEARTBEAT":
        return Heartbeat()
    if kind == "OFFERS":
        body = _sub(raw, "offers")
        offers = body.get("offers", [])
        if isinstance(offers, Mapping):
            offers = [offers]
        if not isinstance(offers, list):
            raise ProtocolError("OFFERS event: offers.offers is not a list")
        return Offers(tuple(types.Offer.parse(o) for o in offers))
    if kind == "UPDATE":
        try:
            return Update(types.TaskStatus.parse(_sub(raw, "update").get("status")))
        except TaskStatusError as e:
            raise ProtocolError(f"UPDATE: {e}") from e
    if kind == "SUBSCRIBED":
        body = _sub(raw, "subscribed")
        interval = body.get("heartbeat_interval_seconds", DEFAULT_HEARTBEAT_INTERVAL)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise ProtocolError(f"SUBSCRIBED: bad heartbeat_interval_seconds {interval!r}")
        master = body.get("master_info")
        return Subscribed(
            framework_id=FrameworkId(_id(body, "framework_id", what="SUBSCRIBED")),
            heartbeat_interval_seconds=float(interval),
            master=types.MasterInfo.parse(master) if master else None,
        )
    if kind == "RESCIND":
        return Rescind(OfferId(_id(_sub(raw, "rescind"), "offer_id", what="RESCIND")))
    if kind == "ERROR":
        message = _sub(raw, "error").get("message", "")
        return Error(str(message))
    if kind == "FAILURE":
        body = _sub(raw, "failure")
        agent = _opt_id(body, "agent_id")
        executor = _opt_id(body, "executor_id")
        status = body.get("status")
        return Failure(
            agent_id=AgentId(agent) if agent else None,
            executor_id=ExecutorId(executor) if executor else None,
            status=int(status) if isinstance(status, int | float) else None,
        )
    if kind == "MESSAGE":
        body = _sub(raw, "message")
        return Message(
            agent_id=AgentId(_id(body, "agent_id", what="MESSAGE")),
            executor_id=ExecutorId(_id(body, "executor_id", what="MESSAGE")),
            data=types.decode_bytes(body.get("data", ""), what="MESSAGE.data"),
        )
    if kind == "UPDATE_OPERATION_STATUS":
        status = _sub(_sub(raw, "update_operation_status"), "status")
        state = status.get("state")
        if not isinstance(state, str):
            raise ProtocolError("UPDATE_OPERATION_STATUS without a state")
        uuid = status.get("uuid")
        agent = _opt_id(status, "agent_id")
        return UpdateOperationStatus(
            operation_id=_opt_id(status, "operation_id"),
            state=state,
            message=status.get("message"),
            agent_id=AgentId(agent) if agent else None,
            uuid=uuid.get("value") if isinstance(uuid, Mapping) else None,
            resource_provider_id=_opt_id(status, "resource_provider_id"),
        )
    if kind == "INVERSE_OFFERS":
        body = _sub(raw, "inverse_offers")
        out = []
        for item in body.get("inverse_offers", []) or []:
            agent = _opt_id(item, "agent_id")
            un = item.get("unavailability") or {}
            out.append(
                InverseOffer(
                    id=_id(item, "id", what="INVERSE_OFFERS"),
                    framework_id=FrameworkId(_id(item, "framework_id", what="INVERSE_OFFERS")),
                    agent_id=AgentId(agent) if agent else None,
                    start=_nanos(un.get("start")) or 0.0,
                    duration=_nanos(un.get("duration")),
                )
            )
        return InverseOffers(tuple(out))
    if kind == "RESCIND_INVERSE_OFFER":
        body = _sub(raw, "rescind_inverse_offer")
        return RescindInverseOffer(_id(body, "inverse_offer_id", what="RESCIND_INVERSE_OFFER"))
    return UnknownEvent(type=kind, raw=raw)


# Records at least this big are decoded with the cyclic garbage collector paused (see decode).
GC_PAUSE_MIN_BYTES = 16 * 1024


def decode(record: bytes) -> Event:
    """One RecordIO record (JSON bytes) → a typed event; ``ProtocolError`` on bad input.

    A big record (an OFFERS event of 100 offers is ~190 kB and ~8,000 containers) is decoded
    with the cyclic garbage collector paused: ``json.loads`` and the typed values build only
    acyclic objects that stay alive until the call returns, so every collection the allocations
    would trigger meanwhile (about one per 700) traverses them and frees nothing -- measured at
    ~25% of the decoding CPU. The collector is re-enabled right after (if it was enabled), and
    the postponed young generation is collected once at the next allocation.
    """
    if len(record) < GC_PAUSE_MIN_BYTES or not gc.isenabled():
        return _decode(record)
    gc.disable()
    try:
        return _decode(record)
    finally:
        gc.enable()


def _decode(record: bytes) -> Event:
    try:
        raw = json.loads(record)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"event is not valid JSON: {e}") from e
    try:
        return parse(raw)
    except ProtocolError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        # OverflowError: a JSON integer too big for a float (``float(10**400)``).
        raise ProtocolError(f"malformed {raw.get('type', '?')} event: {e!r}") from e
