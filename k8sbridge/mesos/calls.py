"""Builders for scheduler calls (``mesos.v1.scheduler.Call``): typed arguments in, wire JSON out.

Why pure functions: the client only POSTs what these return, so the exact wire shape of every
call (``roles`` not ``role`` in REVIVE, ``request.requests``, both framework ids on re-subscribe,
``{"value": ...}`` wrappers, base64) is tested here without a network, and the embedded kernel's
tests can build calls the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from k8sbridge.mesos import raw as wire
from k8sbridge.mesos import raw_scheduler as swire
from k8sbridge.mesos import types
from k8sbridge.mesos.wirevalues import render_duration
from k8sbridge.model import resources as res
from k8sbridge.model.ids import AgentId, ExecutorId, FrameworkId, OfferId, TaskId

__all__ = [
    "accept",
    "accept_inverse_offers",
    "acknowledge",
    "acknowledge_operation_status",
    "attribute_constraint",
    "decline",
    "decline_inverse_offers",
    "kill",
    "message",
    "offer_constraints",
    "reconcile",
    "reconcile_operations",
    "request",
    "reserve",
    "revive",
    "shutdown",
    "subscribe",
    "suppress",
    "teardown",
    "unreserve",
    "update_framework",
]


def _id(value: str) -> wire.RawId:
    return {"value": value}


def _filters(refuse_seconds: float | None) -> wire.RawFilters | None:
    return None if refuse_seconds is None else {"refuse_seconds": float(refuse_seconds)}


def subscribe(
        *,
        framework_info: types.FrameworkInfo,
        suppressed_roles: Sequence[str] = (),
        offer_constraints: wire.RawOfferConstraints | None = None,
) -> swire.RawCall:
    """SUBSCRIBE. With ``framework_info.id`` set, both ``framework_id`` fields are filled."""
    body: swire.RawSubscribe = {"framework_info": framework_info.to_raw()}
    if suppressed_roles:
        body["suppressed_roles"] = list(suppressed_roles)
    if offer_constraints:
        body["offer_constraints"] = offer_constraints
    call: swire.RawCall = {"type": "SUBSCRIBE", "subscribe": body}
    if framework_info.id is not None:
        call["framework_id"] = _id(framework_info.id)
    return call


def update_framework(
        *,
        framework_info: types.FrameworkInfo,
        suppressed_roles: Sequence[str] = (),
        offer_constraints: wire.RawOfferConstraints | None = None,
) -> swire.RawCall:
    if framework_info.id is None:
        raise ValueError("UPDATE_FRAMEWORK needs framework_info.id")
    body: swire.RawUpdateFramework = {"framework_info": framework_info.to_raw()}
    if suppressed_roles:
        body["suppressed_roles"] = list(suppressed_roles)
    if offer_constraints:
        body["offer_constraints"] = offer_constraints
    return {
        "type": "UPDATE_FRAMEWORK",
        "framework_id": _id(framework_info.id),
        "update_framework": body,
    }


_PREDICATES = {
    "exists": False,
    "not_exists": False,
    "text_equals": True,
    "text_not_equals": True,
    "text_matches": True,
    "text_not_matches": True,
}


def attribute_constraint(
        *,
        predicate: str,
        attribute: str | None = None,
        pseudo: str | None = None,
        value: str | None = None,
) -> wire.RawAttributeConstraint:
    """One offer constraint: ``attribute`` (or ``pseudo``: HOSTNAME/REGION/ZONE) ``predicate``.

    ``text_equals``/``text_not_equals`` take the text, ``text_matches``/``text_not_matches`` a
    regular expression; ``exists``/``not_exists`` take none.
    """
    if (attribute is None) == (pseudo is None):
        raise ValueError("give exactly one of attribute= or pseudo=")
    if pseudo is not None and pseudo not in ("HOSTNAME", "REGION", "ZONE"):
        raise ValueError(f"unknown pseudoattribute {pseudo!r}")
    if predicate not in _PREDICATES:
        raise ValueError(f"unknown predicate {predicate!r}; one of {sorted(_PREDICATES)}")
    if _PREDICATES[predicate] != (value is not None):
        wants = "needs a" if _PREDICATES[predicate] else "takes no"
        raise ValueError(f"predicate {predicate} {wants} value")
    selector: wire.RawAttributeSelector = (
        {"attribute_name": attribute} if attribute is not None
        else {"pseudoattribute_type": pseudo}  # type: ignore[typeddict-item]
    )
    body: dict[str, Any] = {} if value is None else (
        {"regex": value} if predicate.endswith("matches") else {"value": value}
    )
    return {"selector": selector, "predicate": {predicate: body}}


def offer_constraints(
        groups_by_role: Mapping[str, Sequence[Sequence[wire.RawAttributeConstraint]]],
) -> wire.RawOfferConstraints:
    """``{role: [group, ...]}``: groups are OR-ed, the constraints inside a group AND-ed."""
    return {
        "role_constraints": {
            role: {"groups": [{"attribute_constraints": list(group)} for group in groups]}
            for role, groups in groups_by_role.items()
        }
    }


def teardown(*, framework_id: FrameworkId) -> swire.RawCall:
    return {"type": "TEARDOWN", "framework_id": _id(framework_id)}


# -- operations ------------------------------------------------------------------------------


def reserve(
        resources: res.Resources, *, source: res.Resources | None = None
) -> wire.RawOperation:
    """RESERVE: ``resources`` in their target (reserved) form; ``source`` optionally."""
    body: wire.RawReserve = {"resources": cast(list[wire.RawResource], resources.to_raw())}
    if source is not None:
        body["source"] = cast(list[wire.RawResource], source.to_raw())
    return {"type": "RESERVE", "reserve": body}


def unreserve(resources: res.Resources) -> wire.RawOperation:
    return {
        "type": "UNRESERVE",
        "unreserve": {"resources": cast(list[wire.RawResource], resources.to_raw())},
    }


def accept(
        *,
        framework_id: FrameworkId,
        offer_ids: Sequence[OfferId],
        operations: Sequence[wire.RawOperation],
        refuse_seconds: float | None = None,
) -> swire.RawCall:
    if not offer_ids:
        raise ValueError("ACCEPT needs at least one offer id")
    body: swire.RawAccept = {
        "offer_ids": [_id(o) for o in offer_ids],
        "operations": list(operations),
    }
    if (flt := _filters(refuse_seconds)) is not None:
        body["filters"] = flt
    return {"type": "ACCEPT", "framework_id": _id(framework_id), "accept": body}


def decline(
        *,
        framework_id: FrameworkId,
        offer_ids: Sequence[OfferId],
        refuse_seconds: float | None = None,
) -> swire.RawCall:
    body: swire.RawDecline = {"offer_ids": [_id(o) for o in offer_ids]}
    if (flt := _filters(refuse_seconds)) is not None:
        body["filters"] = flt
    return {"type": "DECLINE", "framework_id": _id(framework_id), "decline": body}


def accept_inverse_offers(
        *,
        framework_id: FrameworkId,
        inverse_offer_ids: Sequence[str],
        refuse_seconds: float | None = None,
) -> swire.RawCall:
    """ACCEPT_INVERSE_OFFERS: agree to a maintenance window (no resources change hands)."""
    body: swire.RawAcceptInverseOffers = {"inverse_offer_ids": [_id(i) for i in inverse_offer_ids]}
    if (flt := _filters(refuse_seconds)) is not None:
        body["filters"] = flt
    return {
        "type": "ACCEPT_INVERSE_OFFERS",
        "framework_id": _id(framework_id),
        "accept_inverse_offers": body,
    }


def decline_inverse_offers(
        *,
        framework_id: FrameworkId,
        inverse_offer_ids: Sequence[str],
        refuse_seconds: float | None = None,
) -> swire.RawCall:
    body: swire.RawAcceptInverseOffers = {"inverse_offer_ids": [_id(i) for i in inverse_offer_ids]}
    if (flt := _filters(refuse_seconds)) is not None:
        body["filters"] = flt
    return {
        "type": "DECLINE_INVERSE_OFFERS",
        "framework_id": _id(framework_id),
        "decline_inverse_offers": body,
    }


def revive(*, framework_id: FrameworkId, roles: Sequence[str] | None = None) -> swire.RawCall:
    """REVIVE ``roles`` (None = every role of the framework)."""
    body: swire.RawRoles = {} if roles is None else {"roles": list(roles)}
    return {"type": "REVIVE", "framework_id": _id(framework_id), "revive": body}


def suppress(*, framework_id: FrameworkId, roles: Sequence[str] | None = None) -> swire.RawCall:
    body: swire.RawRoles = {} if roles is None else {"roles": list(roles)}
    return {"type": "SUPPRESS", "framework_id": _id(framework_id), "suppress": body}


def kill(
        *,
        framework_id: FrameworkId,
        task_id: TaskId,
        agent_id: AgentId | None = None,
        grace_period_seconds: float | None = None,
) -> swire.RawCall:
    body: swire.RawKill = {"task_id": _id(task_id)}
    if agent_id is not None:
        body["agent_id"] = _id(agent_id)
    if grace_period_seconds is not None:
        body["kill_policy"] = {"grace_period": render_duration(grace_period_seconds)}
    return {"type": "KILL", "framework_id": _id(framework_id), "kill": body}


def shutdown(
        *, framework_id: FrameworkId, executor_id: ExecutorId, agent_id: AgentId
) -> swire.RawCall:
    return {
        "type": "SHUTDOWN",
        "framework_id": _id(framework_id),
        "shutdown": {"executor_id": _id(executor_id), "agent_id": _id(agent_id)},
    }


def acknowledge(*, framework_id: FrameworkId, status: types.TaskStatus) -> swire.RawCall:
    """ACKNOWLEDGE an update; refused for updates without a uuid (those must not be acked)."""
    if not status.uuid:
        raise ValueError(f"status of {status.task_id} has no uuid: it must not be acknowledged")
    if status.agent_id is None:
        raise ValueError(f"status of {status.task_id} has no agent_id to acknowledge with")
    return {
        "type": "ACKNOWLEDGE",
        "framework_id": _id(framework_id),
        "acknowledge": {
            "agent_id": _id(status.agent_id),
            "task_id": _id(status.task_id),
            "uuid": status.uuid,
        },
    }


def acknowledge_operation_status(
        *,
        framework_id: FrameworkId,
        agent_id: AgentId,
        operation_id: str,
        uuid: str,
        resource_provider_id: str | None = None,
) -> swire.RawCall:
    body: swire.RawAcknowledgeOperationStatus = {
        "agent_id": _id(agent_id),
        "uuid": uuid,
        "operation_id": _id(operation_id),
    }
    if resource_provider_id is not None:
        body["resource_provider_id"] = _id(resource_provider_id)
    return {
        "type": "ACKNOWLEDGE_OPERATION_STATUS",
        "framework_id": _id(framework_id),
        "acknowledge_operation_status": body,
    }


def reconcile(
        *, framework_id: FrameworkId, tasks: Mapping[TaskId, AgentId | None] | None = None
) -> swire.RawCall:
    """RECONCILE: explicit for ``tasks``, implicit (every task the master knows) when empty."""
    items: list[swire.RawReconcileTask] = []
    for task_id, agent_id in (tasks or {}).items():
        item: swire.RawReconcileTask = {"task_id": _id(task_id)}
        if agent_id is not None:
            item["agent_id"] = _id(agent_id)
        items.append(item)
    return {"type": "RECONCILE", "framework_id": _id(framework_id), "reconcile": {"tasks": items}}


def reconcile_operations(
        *, framework_id: FrameworkId, operations: Mapping[str, AgentId | None] | None = None
) -> swire.RawCall:
    items: list[swire.RawReconcileOperation] = []
    for operation_id, agent_id in (operations or {}).items():
        item: swire.RawReconcileOperation = {"operation_id": _id(operation_id)}
        if agent_id is not None:
            item["agent_id"] = _id(agent_id)
        items.append(item)
    return {
        "type": "RECONCILE_OPERATIONS",
        "framework_id": _id(framework_id),
        "reconcile_operations": {"operations": items},
    }


def message(
        *, framework_id: FrameworkId, agent_id: AgentId, executor_id: ExecutorId, data: bytes
) -> swire.RawCall:
    return {
        "type": "MESSAGE",
        "framework_id": _id(framework_id),
        "message": {
            "agent_id": _id(agent_id),
            "executor_id": _id(executor_id),
            "data": types.encode_bytes(data),
        },
    }


def request(
        *, framework_id: FrameworkId, requests: Sequence[tuple[AgentId | None, res.Resources]]
) -> swire.RawCall:
    """REQUEST (ignored by the built-in allocator); ``requests`` nests under ``request``."""
    items: list[swire.RawRequest] = []
    for agent_id, resources in requests:
        item: swire.RawRequest = {"resources": cast(list[wire.RawResource], resources.to_raw())}
        if agent_id is not None:
            item["agent_id"] = _id(agent_id)
        items.append(item)
    return {"type": "REQUEST", "framework_id": _id(framework_id), "request": {"requests": items}}


def call_type(call: Mapping[str, Any]) -> str:
    return str(call.get("type", "UNKNOWN"))
