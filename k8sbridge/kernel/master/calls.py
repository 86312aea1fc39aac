"""Pure validation of scheduler calls, FrameworkInfo, offers and tasks, with Mesos' messages.

Why pure: every rule here is a table of "input -> answer" taken from Mesos' ``src/master/http.cpp``
and ``validation.cpp``; keeping them free of I/O and master state makes them table-testable and
lets the master stay a thin sequence of "validate, then apply". Functions raise ``CallError``
(an HTTP status plus Mesos' message) or ``TaskInvalid`` (the TASK_ERROR message).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from k8sbridge.kernel import protocol
from k8sbridge.kernel.master import transport
from k8sbridge.kernel.master.errors import CallError

RawJson = dict[str, Any]


CALL_TYPES = frozenset(
    {
        "SUBSCRIBE", "TEARDOWN", "ACCEPT", "DECLINE", "ACCEPT_INVERSE_OFFERS",
        "DECLINE_INVERSE_OFFERS", "REVIVE", "KILL", "SHUTDOWN", "ACKNOWLEDGE",
        "ACKNOWLEDGE_OPERATION_STATUS", "RECONCILE", "RECONCILE_OPERATIONS", "MESSAGE",
        "REQUEST", "SUPPRESS", "UPDATE_FRAMEWORK", "UNKNOWN",
    }
)  # fmt: skip

# Which sub-message each call type needs (Mesos: "Expecting '<field>' to be present").
_CALL_FIELDS = {
    "ACCEPT": "accept",
    "DECLINE": "decline",
    "ACCEPT_INVERSE_OFFERS": "accept_inverse_offers",
    "DECLINE_INVERSE_OFFERS": "decline_inverse_offers",
    "KILL": "kill",
    "SHUTDOWN": "shutdown",
    "ACKNOWLEDGE": "acknowledge",
    "ACKNOWLEDGE_OPERATION_STATUS": "acknowledge_operation_status",
    "RECONCILE": "reconcile",
    "RECONCILE_OPERATIONS": "reconcile_operations",
    "MESSAGE": "message",
    "REQUEST": "request",
    "UPDATE_FRAMEWORK": "update_framework",
}

CAPABILITIES = frozenset(
    {
        "REVOCABLE_RESOURCES", "TASK_KILLING_STATE", "GPU_RESOURCES", "SHARED_RESOURCES",
        "PARTITION_AWARE", "MULTI_ROLE", "RESERVATION_REFINEMENT", "REGION_AWARE",
    }
)  # fmt: skip

TERMINAL_STATES = protocol.TERMINAL_STATES
TASK_STATES = frozenset(protocol.TASK_STATES)

MIN_CPUS = 0.01
MIN_MEM = 32.0
MAX_REFUSE_SECONDS = 365 * 24 * 3600.0


# --------------------------------------------------------------------------------------------
# Transport and call envelope


def _missing(paths: list[str]) -> CallError:
    return CallError(
        400,
        "Failed to convert JSON into Call protobuf: Missing required fields: " + ", ".join(paths),
    )


def _obj(value: Any, path: str) -> RawJson:
    if not isinstance(value, dict):
        raise CallError(
            400, f"Failed to convert JSON into Call protobuf: '{path}' is not a JSON object"
        )
    return value


def _list(value: Any, path: str) -> list[Any]:
    """A repeated field; a single object is taken as a one-element list (as stout does)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise CallError(
            400, f"Failed to convert JSON into Call protobuf: '{path}' is not a JSON array"
        )
    return value


def id_value(raw: Any) -> str | None:
    """``{"value": "x"}`` -> ``"x"``; anything else -> None."""
    if isinstance(raw, dict) and isinstance(raw.get("value"), str):
        return str(raw["value"])
    return None


def _require_id(container: RawJson, key: str, path: str, missing: list[str]) -> None:
    if key not in container:
        missing.append(f"{path}{key}")
    elif id_value(container[key]) is None:
        missing.append(f"{path}{key}.value")


def _require_str(container: RawJson, key: str, path: str, missing: list[str]) -> None:
    if not isinstance(container.get(key), str):
        missing.append(f"{path}{key}")


def normalize_call(call: RawJson) -> RawJson:
    """Check the proto2 "required" fields of a call (what Mesos' JSON->protobuf parse does).

    An unknown ``type`` string is dropped like any unknown optional enum, which later yields
    "Expecting 'type' to be present".
    """
    ctype = call.get("type")
    if ctype is not None and not isinstance(ctype, str):
        raise CallError(400, "Failed to convert JSON into Call protobuf: "
                             + transport.not_expecting(ctype, "type"))
    if ctype is not None and ctype not in CALL_TYPES:
        call = {k: v for k, v in call.items() if k != "type"}
    call = {k: v for k, v in call.items() if v is not None}  # JSON null = field not set
    for field in (*_CALL_FIELDS.values(), "subscribe", "revive", "suppress"):
        if field in call:
            _obj(call[field], field)
    missing: list[str] = []
    if "framework_id" in call and id_value(call["framework_id"]) is None:
        missing.append("framework_id.value")
    sub = call.get("subscribe")
    if sub is not None:
        sub = _obj(sub, "subscribe")
        if "framework_info" not in sub:
            missing.append("subscribe.framework_info")
        else:
            _check_framework_info(_obj(sub["framework_info"], "subscribe.framework_info"),
                                  "subscribe.framework_info.", missing)
    upd = call.get("update_framework")
    if upd is not None:
        upd = _obj(upd, "update_framework")
        if "framework_info" not in upd:
            missing.append("update_framework.framework_info")
        else:
            _check_framework_info(
                _obj(upd["framework_info"], "update_framework.framework_info"),
                "update_framework.framework_info.", missing,
            )
    kill = call.get("kill")
    if kill is not None:
        _require_id(_obj(kill, "kill"), "task_id", "kill.", missing)
    shutdown = call.get("shutdown")
    if shutdown is not None:
        shutdown = _obj(shutdown, "shutdown")
        _require_id(shutdown, "executor_id", "shutdown.", missing)
        _require_id(shutdown, "agent_id", "shutdown.", missing)
    ack = call.get("acknowledge")
    if ack is not None:
        ack = _obj(ack, "acknowledge")
        _require_id(ack, "agent_id", "acknowledge.", missing)
        _require_id(ack, "task_id", "acknowledge.", missing)
        _require_str(ack, "uuid", "acknowledge.", missing)
    rec = call.get("reconcile")
    if rec is not None:
        rec = _obj(rec, "reconcile")
        for i, t in enumerate(_list(rec.get("tasks"), "reconcile.tasks")):
            _require_id(_obj(t, f"reconcile.tasks[{i}]"), "task_id", f"reconcile.tasks[{i}].",
                        missing)
    msg = call.get("message")
    if msg is not None:
        msg = _obj(msg, "message")
        _require_id(msg, "agent_id", "message.", missing)
        _require_id(msg, "executor_id", "message.", missing)
        _require_str(msg, "data", "message.", missing)
    for key in ("accept", "decline"):
        body = call.get(key)
        if body is not None:
            body = _obj(body, key)
            for i, o in enumerate(_list(body.get("offer_ids"), f"{key}.offer_ids")):
                if id_value(o) is None:
                    missing.append(f"{key}.offer_ids[{i}].value")
    accept = call.get("accept")
    if isinstance(accept, dict):
        for i, op in enumerate(_list(accept.get("operations"), "accept.operations")):
            _check_operation(_obj(op, f"accept.operations[{i}]"), f"accept.operations[{i}].",
                             missing)
    if missing:
        raise _missing(missing)
    return call


_RESOURCE_TYPES = ("SCALAR", "RANGES", "SET")


def _check_resources(raw: Any, path: str, missing: list[str]) -> None:
    for i, r in enumerate(_list(raw, path.rstrip("."))):
        r = _obj(r, f"{path.rstrip('.')}[{i}]")
        here = f"{path.rstrip('.')}[{i}]."
        _require_str(r, "name", here, missing)
        if r.get("type") not in _RESOURCE_TYPES:  # required enum: unknown value = missing
            missing.append(f"{here}type")
        if r.get("type") == "SCALAR" and not isinstance(
            (r.get("scalar") or {}).get("value"), int | float | str
        ):
            missing.append(f"{here}scalar.value")


def _check_task(task: Any, path: str, missing: list[str]) -> None:
    task = _obj(task, path.rstrip("."))
    _require_str(task, "name", path, missing)
    _require_id(task, "task_id", path, missing)
    _require_id(task, "agent_id", path, missing)
    _check_resources(task.get("resources"), f"{path}resources", missing)
    if task.get("limits") is not None:  # map<string, Value.Scalar>: each needs a number
        for name, scalar in _obj(task["limits"], f"{path}limits").items():
            value = _obj(scalar, f"{path}limits.{name}").get("value")
            if isinstance(value, bool) or not isinstance(value, int | float):
                missing.append(f"{path}limits.{name}.value")
    if task.get("executor") is not None:
        _check_executor(task["executor"], f"{path}executor.", missing)


def _check_executor(executor: Any, path: str, missing: list[str]) -> None:
    executor = _obj(executor, path.rstrip("."))
    _require_id(executor, "executor_id", path, missing)
    _check_resources(executor.get("resources"), f"{path}resources", missing)


def _check_operation(op: RawJson, path: str, missing: list[str]) -> None:
    """Required fields inside an Offer.Operation (its own ``type`` is an optional enum)."""
    launch = op.get("launch")
    if isinstance(launch, dict):
        for j, task in enumerate(_list(launch.get("task_infos"), f"{path}launch.task_infos")):
            _check_task(task, f"{path}launch.task_infos[{j}].", missing)
    group = op.get("launch_group")
    if isinstance(group, dict):
        if "executor" not in group:
            missing.append(f"{path}launch_group.executor")
        else:
            _check_executor(group["executor"], f"{path}launch_group.executor.", missing)
        tg = group.get("task_group")
        if not isinstance(tg, dict):
            missing.append(f"{path}launch_group.task_group")
        else:
            for j, task in enumerate(_list(tg.get("tasks"), f"{path}launch_group.task_group")):
                _check_task(task, f"{path}launch_group.task_group.tasks[{j}].", missing)
    for key in ("reserve", "unreserve"):
        body = op.get(key)
        if isinstance(body, dict):
            _check_resources(body.get("resources"), f"{path}{key}.resources", missing)


def _check_framework_info(info: RawJson, path: str, missing: list[str]) -> None:
    _require_str(info, "user", path, missing)
    _require_str(info, "name", path, missing)
    if "id" in info and id_value(info["id"]) is None:
        missing.append(f"{path}id.value")


def validate_call(call: RawJson) -> None:
    """``validation::scheduler::call::validate`` (messages prefixed as http.cpp does)."""

    def bad(message: str) -> CallError:
        return CallError(400, "Failed to validate scheduler::Call: " + message)

    ctype = call.get("type")
    if ctype is None:
        raise bad("Expecting 'type' to be present")
    if ctype == "SUBSCRIBE":
        if "subscribe" not in call:
            raise bad("Expecting 'subscribe' to be present")
        info = call["subscribe"]["framework_info"]
        if id_value(info.get("id")) != id_value(call.get("framework_id")):
            raise bad("'framework_id' differs from 'subscribe.framework_info.id'")
        return
    if "framework_id" not in call:
        raise bad("Expecting 'framework_id' to be present")
    field = _CALL_FIELDS.get(ctype)
    if field is not None and field not in call:
        raise bad(f"Expecting '{field}' to be present")
    if ctype == "ACKNOWLEDGE":
        try:
            decode_uuid(call["acknowledge"]["uuid"])
        except ValueError as e:
            raise bad(str(e)) from e
    elif ctype == "ACKNOWLEDGE_OPERATION_STATUS":
        body = call["acknowledge_operation_status"]
        try:
            decode_uuid(body.get("uuid", ""))
        except ValueError as e:
            raise bad(str(e)) from e
        if "agent_id" not in body:
            raise bad("Expecting 'agent_id' to be present")
    elif ctype == "UPDATE_FRAMEWORK":
        info = call["update_framework"]["framework_info"]
        if id_value(info.get("id")) != id_value(call.get("framework_id")):
            raise bad("'framework_id' differs from 'update_framework.framework_info.id'")


def decode_uuid(text: Any) -> bytes:
    """A status uuid as sent (base64 of exactly 16 bytes), else ValueError.

    Like Mesos (``id::UUID::fromBytes``), bytes whose version nibble is not 1-5 are rejected.
    """
    if not isinstance(text, str):
        raise ValueError("Not a valid UUID")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError("Not a valid UUID") from e
    if len(raw) != 16 or not 1 <= raw[6] >> 4 <= 5:
        raise ValueError("Not a valid UUID")
    return raw


# --------------------------------------------------------------------------------------------
# FrameworkInfo


def validate_id(value: str) -> str | None:
    """``common::validation::validateID``."""
    if not value:
        return "ID must not be empty"
    if len(value) > 255:
        return "ID must not be greater than 255 characters"
    if value in (".", ".."):
        return "'.' and '..' are reserved IDs"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return f"'{value}' contains invalid characters"
    if "/" in value or "\\" in value:
        return f"'{value}' contains invalid characters"
    return None


def validate_role(role: Any) -> str | None:
    """``roles::validate``: names like ``eng/prod``; no ``.``/``..`` parts, no spaces."""
    if not isinstance(role, str):
        return "Role must be a string"
    if role == "*":
        return None
    if not role:
        return "Empty role name is invalid"
    if role.startswith("/") or role.endswith("/"):
        return f"Role '{role}' cannot start or end with a slash"
    for part in role.split("/"):
        if part in (".", ".."):
            return f"Role '{role}' cannot include '.' or '..' as a component"
        if part.startswith("-"):
            return f"Role '{role}' cannot start with '-'"
        if part == "*":
            return f"Role '{role}' cannot contain '*' as a component"
        if not part:
            return f"Role '{role}' cannot contain empty components"
        if any(c.isspace() or ord(c) < 32 or c == "\\" for c in part):
            return f"Role '{role}' contains invalid characters"
    return None


def capabilities(info: Mapping[str, Any]) -> frozenset[str]:
    """Known capability names (an unknown enum value is dropped, as protobuf does)."""
    out = set()
    for cap in info.get("capabilities") or []:
        if isinstance(cap, dict) and cap.get("type") in CAPABILITIES:
            out.add(str(cap["type"]))
    return frozenset(out)


def framework_roles(info: Mapping[str, Any]) -> tuple[str, ...]:
    if "MULTI_ROLE" in capabilities(info):
        return tuple(str(r) for r in info.get("roles") or [])
    return (str(info.get("role", "*")),)


def validate_framework_info(info: Mapping[str, Any]) -> str | None:
    """``validation::framework::validate``: roles, id, offer filters, failover timeout."""
    multi = "MULTI_ROLE" in capabilities(info)
    roles = info.get("roles") or []
    if not isinstance(roles, list):
        return "'FrameworkInfo.roles' must be a list"
    if multi:
        if "role" in info:
            return "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"
        dupes = sorted({r for r in roles if roles.count(r) > 1})
        if dupes:
            return "'FrameworkInfo.roles' contains duplicate items: { " + ", ".join(dupes) + " }"
        for role in roles:
            err = validate_role(role)
            if err is not None:
                return "'FrameworkInfo.roles' contains invalid role: " + err
    else:
        if roles:
            return (
                "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE "
                "capable"
            )
        err = validate_role(info.get("role", "*"))
        if err is not None:
            return "'FrameworkInfo.role' is not a valid role: " + err
    fid = id_value(info.get("id"))
    if fid:
        err = validate_id(fid)
        if err is not None:
            return err
    filters = info.get("offer_filters")
    if filters is not None:
        if not isinstance(filters, dict):
            return "'FrameworkInfo.offer_filters' must be an object keyed by role"
        for role, flt in filters.items():
            try:
                min_allocatable_of({role: flt})
            except ValueError as e:
                return str(e)
    timeout = info.get("failover_timeout", 0.0)
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0 or seconds * 1e9 > 2**63 - 1:
        return f"The framework failover_timeout ({timeout}) is invalid"
    return None


def min_allocatable_of(
    offer_filters: Mapping[str, Any] | None,
) -> dict[str, list[dict[str, float]]] | None:
    """``FrameworkInfo.offer_filters`` -> per-role alternatives of minimal quantities."""
    if not offer_filters:
        return None
    out: dict[str, list[dict[str, float]]] = {}
    for role, flt in offer_filters.items():
        if not isinstance(flt, dict):
            raise ValueError(f"offer_filters for role '{role}' is not an object")
        mar = flt.get("min_allocatable_resources")
        if mar is None:
            continue
        alternatives: list[dict[str, float]] = []
        for q in as_list(mar.get("quantities") if isinstance(mar, dict) else None):
            quantities = q.get("quantities") if isinstance(q, dict) else None
            if not isinstance(quantities, dict):
                raise ValueError("Invalid min_allocatable_resources: expecting 'quantities'")
            alt: dict[str, float] = {}
            for name, scalar in quantities.items():
                try:
                    value = float(scalar["value"] if isinstance(scalar, dict) else scalar)
                except (KeyError, TypeError, ValueError) as e:
                    raise ValueError(
                        f"Invalid min_allocatable_resources quantity for '{name}'"
                    ) from e
                if value < 0 or not math.isfinite(value):
                    raise ValueError(
                        f"Invalid min_allocatable_resources: negative quantity for '{name}'"
                    )
                alt[str(name)] = value
            alternatives.append(alt)
        out[str(role)] = alternatives
    return out


def as_list(value: Any) -> list[Any]:
    """A repeated field, leniently: a single value is a one-element list, null is empty."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def validate_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """``validation::framework::validateUpdate`` (UPDATE_FRAMEWORK and re-subscription)."""
    if old.get("principal") != new.get("principal"):
        return "Changing framework's principal is not allowed."
    if new.get("user") != old.get("user"):
        return (
            "Updating 'FrameworkInfo.user' is unsupported; attempted to update from "
            f"'{old.get('user')}' to '{new.get('user')}'"
        )
    if bool(new.get("checkpoint", False)) != bool(old.get("checkpoint", False)):
        return (
            "Updating 'FrameworkInfo.checkpoint' is unsupported; attempted to update from "
            f"'{str(bool(old.get('checkpoint', False))).lower()}' to "
            f"'{str(bool(new.get('checkpoint', False))).lower()}'"
        )
    return None


def validate_suppressed_and_constraints(
    roles: Collection[str], suppressed: Any, constraints: Any
) -> str | None:
    suppressed_list = as_list(suppressed)
    bad = sorted({str(r) for r in suppressed_list} - set(roles))
    if bad:
        return "Suppressed roles { " + ", ".join(bad) + " } are not contained in the set of roles"
    if constraints is not None:
        if not isinstance(constraints, dict):
            return "Offer constraints are not valid: expecting an object"
        role_constraints = constraints.get("role_constraints") or {}
        if not isinstance(role_constraints, dict):
            return "Offer constraints are not valid: 'role_constraints' must be an object"
        for role in role_constraints:
            if role not in roles:
                return (
                    f"Offer constraints specify `role_constraints` for a role '{role}'"
                    "not contained in the set of roles"
                )
    return None


def with_framework_defaults(info: Mapping[str, Any]) -> RawJson:
    """FrameworkInfo as the master outputs it: non-deprecated defaults filled in."""
    out = dict(info)
    out.setdefault("failover_timeout", 0.0)
    out.setdefault("checkpoint", False)
    if "capabilities" in out:
        out["capabilities"] = [
            c for c in as_list(out["capabilities"])
            if isinstance(c, dict) and c.get("type") in CAPABILITIES
        ]
    return out


def refuse_seconds(filters: Any, *, default: float) -> float:
    """``Filters.refuse_seconds``: default when absent or negative, capped at 365 days."""
    if not isinstance(filters, dict) or "refuse_seconds" not in filters:
        return default
    try:
        value = float(filters["refuse_seconds"])
    except (TypeError, ValueError):
        return default
    if math.isnan(value) or value < 0:
        return default
    return min(value, MAX_REFUSE_SECONDS)


# --------------------------------------------------------------------------------------------
# Offers


def validate_offer_ids(
    offer_ids: Sequence[str],
    *,
    offers: Mapping[str, tuple[str, str, str]],
    framework_id: str,
) -> None:
    """``validation::offer::validate``; ``offers`` maps id -> (framework, agent, role)."""
    if not offer_ids:
        raise ValueError("No offers specified")
    seen: set[str] = set()
    for oid in offer_ids:
        if oid in seen:
            raise ValueError(f"Duplicate offer {oid} in offer list")
        seen.add(oid)
    for oid in offer_ids:
        if oid not in offers:
            raise ValueError(f"Offer {oid} is no longer valid")
    for oid in offer_ids:
        owner = offers[oid][0]
        if owner != framework_id:
            raise ValueError(
                f"Offer {oid} has invalid framework {owner} while framework {framework_id} "
                "is expected"
            )
    role = offers[offer_ids[0]][2]
    for oid in offer_ids:
        if offers[oid][2] != role:
            raise ValueError(
                f"Aggregated offers must be allocated to the same role. Offer {oid} uses role "
                f"'{offers[oid][2]} but another is using role '{role}"
            )
    agent = offers[offer_ids[0]][1]
    for oid in offer_ids:
        if offers[oid][1] != agent:
            raise ValueError(
                f"Aggregated offers must belong to one single agent. Offer {oid} uses agent "
                f"{offers[oid][1]} and agent {agent}"
            )
