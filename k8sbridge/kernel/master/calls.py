"""Pure validation of scheduler calls, FrameworkInfo, offers and tasks, with Mesos' messages.

Why pure: every rule here is a table of "input -> answer" taken from Mesos' ``src/master/http.cpp``
and ``validation.cpp``; keeping them free of I/O and master state makes them table-testable and
lets the master stay a thin sequence of "validate, then apply". Functions raise ``CallError``
(an HTTP status plus Mesos' message) or ``TaskInvalid`` (the TASK_ERROR message).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from k8sbridge.kernel import protocol
from k8sbridge.kernel import resources as res
from k8sbridge.kernel.master.errors import CallError, TaskInvalid

RawJson = dict[str, Any]

APPLICATION_JSON = "application/json"
APPLICATION_PROTOBUF = "application/x-protobuf"

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


def check_content_type(content_type: str | None) -> None:
    """Mesos: missing -> 400, protobuf -> (we do not speak it) 415, anything else -> 415.

    The comparison is exact, as in ``src/master/http.cpp`` (``application/json; charset=utf-8``
    is refused by Mesos too).
    """
    if content_type is None:
        raise CallError(400, "Expecting 'Content-Type' to be present")
    media = content_type
    if media == APPLICATION_PROTOBUF:
        raise CallError(
            415,
            "Expecting 'Content-Type' of application/json: this master speaks only JSON "
            "(application/x-protobuf is not supported by the embedded kernel)",
        )
    if media != APPLICATION_JSON:
        raise CallError(
            415, "Expecting 'Content-Type' of application/json or application/x-protobuf"
        )


def accepts_json(accept: str | None) -> bool:
    """``Accept`` check for SUBSCRIBE (none = anything)."""
    if accept is None or not accept.strip():
        return True
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in ("application/json", "application/*", "*/*"):
            return True
    return False


def parse_body(body: bytes) -> RawJson:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CallError(400, f"Failed to parse body into JSON: {e}") from e
    if not isinstance(value, dict):
        raise CallError(
            400, "Failed to convert JSON into Call protobuf: Expecting a JSON object"
        )
    return value


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


# --------------------------------------------------------------------------------------------
# Tasks


def parse_resources(raw: Any, *, role: str, what: str) -> res.Resources:
    """Resources of a task or executor, with the offer's allocation role filled in if absent."""
    try:
        parsed = res.Resources.parse(raw if raw is not None else [])
    except (res.ResourceError, AttributeError, TypeError) as e:
        raise TaskInvalid(f"{what} uses invalid resources: {e}") from e
    out: list[res.Resource] = []
    for r in parsed:
        if r.allocation_role is None:
            r = res.Resource(
                name=r.name, type=r.type, scalar=r.scalar, ranges=r.ranges, items=r.items,
                reservations=r.reservations, allocation_role=role, extra=r.extra,
            )
        elif r.allocation_role != role:
            raise TaskInvalid(
                f"{what} uses resources allocated to role '{r.allocation_role}' while the "
                f"offer is allocated to role '{role}'"
            )
        out.append(r)
    return res.Resources.of(out)


def _task_common(
    task: Any, *, agent_id: str, known_task_ids: Collection[str], role: str,
    also_known: Collection[str] = (),
) -> tuple[str, res.Resources]:
    if not isinstance(task, dict):
        raise TaskInvalid("TaskInfo must be a JSON object")
    tid = id_value(task.get("task_id"))
    if tid is None:
        raise TaskInvalid("Missing required fields: task_id")
    if not isinstance(task.get("name"), str):
        raise TaskInvalid("Missing required fields: name")
    err = validate_id(tid)
    if err is not None:
        raise TaskInvalid(f"Task ID is invalid: {err}")
    if tid in known_task_ids or tid in also_known:
        raise TaskInvalid(f"Task has duplicate ID: {tid}")
    tagent = id_value(task.get("agent_id"))
    if tagent is None:
        raise TaskInvalid("Missing required fields: agent_id")
    if tagent != agent_id:
        raise TaskInvalid(f"Task uses invalid agent {tagent} while agent {agent_id} is expected")
    grace = ((task.get("kill_policy") or {}).get("grace_period") or {}).get("nanoseconds")
    if grace is not None and (not isinstance(grace, int | float) or grace < 0):
        raise TaskInvalid("Task's 'kill_policy.grace_period' must be non-negative")
    mct = (task.get("max_completion_time") or {}).get("nanoseconds")
    if mct is not None and (not isinstance(mct, int | float) or mct < 0):
        raise TaskInvalid("Task's `max_completion_time` must be non-negative")
    if not task.get("resources"):
        raise TaskInvalid("Task uses no resources")
    resources = parse_resources(task.get("resources"), role=role, what="Task")
    if resources.is_empty():
        raise TaskInvalid("Task uses no resources")
    container = task.get("container")
    if container is not None:
        if not isinstance(container, dict) or container.get("type") not in ("MESOS", "DOCKER"):
            raise TaskInvalid("Task's `ContainerInfo` is invalid: 'ContainerInfo.type' is missing "
                              "or unknown")
    command = task.get("command")
    if command is not None and not isinstance(command, dict):
        raise TaskInvalid("Task's `CommandInfo` is invalid: expecting an object")
    if isinstance(command, dict) and command.get("shell", True) is False and not isinstance(
        command.get("value"), str
    ):
        raise TaskInvalid("Task's `CommandInfo` is invalid: 'value' is required when "
                          "'shell' is false")
    return tid, resources


def validate_executor(
    executor: Any, *, framework_id: str, role: str, for_group: bool
) -> tuple[str, res.Resources]:
    if not isinstance(executor, dict):
        raise TaskInvalid("ExecutorInfo must be a JSON object")
    eid = id_value(executor.get("executor_id"))
    if eid is None:
        raise TaskInvalid("Missing required fields: executor.executor_id")
    err = validate_id(eid)
    if err is not None:
        raise TaskInvalid(f"Executor ID is invalid: {err}")
    fid = executor.get("framework_id")
    if fid is None:
        raise TaskInvalid("'ExecutorInfo.framework_id' must be set")
    if id_value(fid) != framework_id:
        raise TaskInvalid(
            f"ExecutorInfo has an invalid FrameworkID (Actual: {id_value(fid)} vs Expected: "
            f"{framework_id})"
        )
    grace = (executor.get("shutdown_grace_period") or {}).get("nanoseconds")
    if grace is not None and (not isinstance(grace, int | float) or grace < 0):
        raise TaskInvalid("ExecutorInfo's 'shutdown_grace_period' must be non-negative")
    resources = parse_resources(executor.get("resources"), role=role, what="Executor")
    if for_group:
        etype = executor.get("type")
        if etype is None:
            raise TaskInvalid("'ExecutorInfo.type' must be set")
        if etype not in ("DEFAULT", "CUSTOM"):
            raise TaskInvalid("Unknown executor type")
        if (executor.get("container") or {}).get("type") == "DOCKER":
            raise TaskInvalid("Docker ContainerInfo is not supported on the executor")
        cpus = resources.scalar("cpus") if "cpus" in resources.names() else None
        if cpus is None or cpus < MIN_CPUS:
            raise TaskInvalid(
                f"Executor '{eid}' uses less CPUs ({_num(cpus)}) than the minimum required "
                f"({MIN_CPUS:g})"
            )
        mem = resources.scalar("mem") if "mem" in resources.names() else None
        if mem is None or mem < MIN_MEM:
            raise TaskInvalid(
                f"Executor '{eid}' uses less memory ({_num(mem, 'MB')}) than the minimum "
                f"required ({MIN_MEM:g}MB)"
            )
        if "disk" not in resources.names():
            raise TaskInvalid(f"Executor '{eid}' uses no disk")
    else:
        if executor.get("type") not in (None, "CUSTOM"):
            raise TaskInvalid("'ExecutorInfo.type' must be 'CUSTOM'")
        if executor.get("command") is None:
            raise TaskInvalid("'ExecutorInfo.command' must be set")
    return eid, resources


def _num(value: float | None, unit: str = "") -> str:
    return "None" if value is None else f"{value:g}{unit}"


def validate_launch_task(
    task: Any,
    *,
    framework_id: str,
    agent_id: str,
    role: str,
    known_task_ids: Collection[str],
    known_executors: Mapping[str, Any],
    offered: res.Resources,
) -> tuple[str, res.Resources, str | None, res.Resources]:
    """One TaskInfo of a LAUNCH: ``(task_id, task resources, executor id, new executor res)``.

    ``known_executors`` maps this framework's executor ids on the agent to their ExecutorInfo;
    an executor already running adds no resources.
    """
    tid, resources = _task_common(
        task, agent_id=agent_id, known_task_ids=known_task_ids, role=role
    )
    has_exec = task.get("executor") is not None
    if has_exec == (task.get("command") is not None):
        raise TaskInvalid(
            "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
        )
    total = resources
    eid: str | None = None
    exec_resources = res.Resources()
    if has_exec:
        eid, exec_resources = validate_executor(
            task["executor"], framework_id=framework_id, role=role, for_group=False
        )
        if eid in known_executors:
            exec_resources = res.Resources()
        total = total + exec_resources
    if not offered.contains(total):
        raise TaskInvalid(
            f"Total resources {total} required by task and its executor is more than "
            f"available {offered}"
        )
    return tid, resources, eid, exec_resources


def validate_task_group(
    executor: Any,
    tasks: Any,
    *,
    framework_id: str,
    agent_id: str,
    role: str,
    known_task_ids: Collection[str],
    known_executors: Mapping[str, Any],
    offered: res.Resources,
) -> tuple[str, list[tuple[str, res.Resources]], res.Resources]:
    """A LAUNCH_GROUP: ``(executor id, [(task id, resources)], new executor resources)``."""
    if not isinstance(tasks, list) or not tasks:
        raise TaskInvalid("Task group is empty")
    seen: set[str] = set()
    parsed: list[tuple[str, res.Resources]] = []
    for task in tasks:
        try:
            tid, resources = _task_common(
                task, agent_id=agent_id, known_task_ids=known_task_ids, role=role,
                also_known=seen,
            )
        except TaskInvalid as e:
            tid_text = id_value(task.get("task_id")) if isinstance(task, dict) else None
            raise TaskInvalid(f"Task '{tid_text}' is invalid: {e}") from e
        seen.add(tid)
        if task.get("command") is not None and task.get("executor") is not None:
            raise TaskInvalid(
                f"Task '{tid}' is invalid: Task should have at least one (but not both) of "
                "CommandInfo or ExecutorInfo present"
            )
        if (task.get("container") or {}).get("type") == "DOCKER":
            raise TaskInvalid(
                f"Task '{tid}' is invalid: Docker ContainerInfo is not supported on the task"
            )
        parsed.append((tid, resources))
    eid, exec_resources = validate_executor(
        executor, framework_id=framework_id, role=role, for_group=True
    )
    for task in tasks:
        if task.get("executor") is not None and task["executor"] != executor:
            raise TaskInvalid(
                f"The `ExecutorInfo` of task '{id_value(task.get('task_id'))}' is different "
                f"from executor '{eid}'"
            )
    if eid in known_executors:
        exec_resources = res.Resources()
    total = exec_resources
    for _, r in parsed:
        total = total + r
    if not offered.contains(total):
        raise TaskInvalid(
            f"Total resources {total} required by task group and its executor are more than "
            f"available {offered}"
        )
    return eid, parsed, exec_resources


# --------------------------------------------------------------------------------------------
# Reservations (RESERVE / UNRESERVE in ACCEPT and the operator API)


def parse_reserve(raw: Any, *, roles: Collection[str] | None, principal: str | None
                  ) -> tuple[res.Resources, res.Resources]:
    """RESERVE ``resources`` -> ``(consumed unreserved-ish source, converted)``."""
    try:
        target = res.Resources.parse(raw if raw is not None else []).unallocated()
    except (res.ResourceError, AttributeError, TypeError) as e:
        raise ValueError(f"Invalid resources: {e}") from e
    if target.is_empty():
        raise ValueError("Invalid resources: Resource cannot be empty")
    for r in target:
        if not r.reservations or r.reservations[-1].type != "DYNAMIC":
            raise ValueError(
                f"Invalid reservation resources: resource {r.name} is not dynamically reserved"
            )
        role = r.reservations[-1].role
        if validate_role(role) is not None or role == "*":
            raise ValueError(f"Invalid reservation resources: invalid role '{role}'")
        if roles is not None and role not in roles:
            raise ValueError(
                f"A reserve operation was attempted for a role '{role}' the framework is not "
                "subscribed to"
            )
        top = r.reservations[-1]
        if principal is not None and top.principal not in (None, principal):
            raise ValueError(
                f"A reserve operation was attempted by authenticated principal '{principal}', "
                f"which does not match a reserved resource in the request with principal "
                f"'{top.principal}'"
            )
    consumed = target.pop_reservation()
    return consumed, target


def parse_unreserve(raw: Any) -> tuple[res.Resources, res.Resources]:
    """UNRESERVE ``resources`` -> ``(consumed reserved, converted)``."""
    try:
        target = res.Resources.parse(raw if raw is not None else []).unallocated()
    except (res.ResourceError, AttributeError, TypeError) as e:
        raise ValueError(f"Invalid resources: {e}") from e
    if target.is_empty():
        raise ValueError("Invalid resources: Resource cannot be empty")
    for r in target:
        if not r.reservations or r.reservations[-1].type != "DYNAMIC":
            raise ValueError(
                f"Invalid resources: resource {r.name} is not dynamically reserved"
            )
    return target, target.pop_reservation()
