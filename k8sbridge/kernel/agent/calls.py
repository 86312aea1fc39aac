"""Parsing and validating ``mesos.v1.agent.Call`` JSON the way the Mesos agent does, before any
handler looks at it.

Why a separate step: handlers used to read fields straight from the decoded JSON, so a body
with a ``type`` that is an object, a ``read_file`` that is a list, an offset of 10^60 or JSON
nested a thousand levels deep raised inside a handler and became ``500 Internal Server Error``.
Mesos answers all of these with ``400 Bad Request`` and a message: stout's JSON parser refuses
documents nested more than 200 levels, ``protobuf::parse`` refuses a value
of the wrong JSON kind for a field ("Not expecting a JSON ... for field ..."), an unknown enum
name on the optional ``type`` is dropped (so "Expecting 'type' to be present"), and
``validation::agent::call::validate`` names missing required fields.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["CallError", "KNOWN_TYPES", "MAX_DEPTH", "parse_call", "uint64"]

MAX_DEPTH = 200  # stout's JSON nesting limit (the master's transport.py uses the same)
_UINT64_MAX = (1 << 64) - 1

KNOWN_TYPES = frozenset({
    "UNKNOWN", "GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS", "GET_LOGGING_LEVEL",
    "SET_LOGGING_LEVEL", "LIST_FILES", "READ_FILE", "GET_STATE", "GET_CONTAINERS",
    "GET_FRAMEWORKS", "GET_EXECUTORS", "GET_OPERATIONS", "GET_TASKS", "GET_AGENT",
    "GET_RESOURCE_PROVIDERS", "LAUNCH_NESTED_CONTAINER", "WAIT_NESTED_CONTAINER",
    "KILL_NESTED_CONTAINER", "REMOVE_NESTED_CONTAINER", "LAUNCH_NESTED_CONTAINER_SESSION",
    "ATTACH_CONTAINER_INPUT", "ATTACH_CONTAINER_OUTPUT", "LAUNCH_CONTAINER", "WAIT_CONTAINER",
    "KILL_CONTAINER", "REMOVE_CONTAINER", "ADD_RESOURCE_PROVIDER_CONFIG",
    "UPDATE_RESOURCE_PROVIDER_CONFIG", "REMOVE_RESOURCE_PROVIDER_CONFIG",
    "MARK_RESOURCE_PROVIDER_GONE", "PRUNE_IMAGES",
})


class CallError(Exception):
    """The body is not a valid agent call; the message is what the 400 says."""


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except RecursionError as e:
        raise CallError(f"Failed to parse body into JSON: nested deeper than {MAX_DEPTH} "
                        "levels") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CallError(f"Failed to parse body into JSON: {e}") from e


def parse_call(body: bytes) -> dict[str, Any]:
    """The call as a dict whose ``type`` is a known type name and whose sub-message, if the
    handler reads one, is an object; raises ``CallError`` otherwise."""
    call = _decode(body)
    if _too_deep(call):
        raise CallError(f"Failed to parse body into JSON: nested deeper than {MAX_DEPTH} levels")
    if not isinstance(call, dict):
        raise CallError(f"Failed to convert JSON into Call protobuf: expecting a JSON object, "
                        f"got a JSON {_kind(call)}")
    kind = call.get("type")
    if kind is not None and not isinstance(kind, str):
        raise CallError("Failed to convert JSON into Call protobuf: Not expecting a JSON "
                        f"{_kind(kind)} for field 'type'")
    if kind is None or kind not in KNOWN_TYPES:
        # An enum name this protobuf does not know is dropped: as if 'type' were absent.
        raise CallError("Expecting 'type' to be present")
    sub = kind.lower()
    if sub in call and not isinstance(call[sub], dict):
        raise CallError(f"Failed to convert JSON into Call protobuf: Not expecting a JSON "
                        f"{_kind(call[sub])} for field '{sub}'")
    return call


def field(call: dict[str, Any], name: str, expected: type, *, required: bool,
          default: Any = None) -> Any:
    """``call[<sub-message>][name]`` of the JSON kind ``expected`` (400 otherwise)."""
    sub = str(call["type"]).lower()
    body = call.get(sub)
    if not isinstance(body, dict) or name not in body:
        if required:
            raise CallError(f"Expecting '{sub}.{name}' to be present")
        return default
    value = body[name]
    ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
    if not ok:
        raise CallError(f"Failed to convert JSON into Call protobuf: Not expecting a JSON "
                        f"{_kind(value)} for field '{name}'")
    return value


def uint64(call: dict[str, Any], name: str, *, required: bool) -> int | None:
    """A ``uint64`` field: a JSON number (or a numeric string, as stout accepts) that is a
    whole number in range."""
    value = field(call, name, object, required=required)
    if value is None and not required:
        return None
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            number = None
    if number is None or not 0 <= number <= _UINT64_MAX:
        sub = str(call["type"]).lower()
        raise CallError(f"Failed to convert JSON into Call protobuf: '{sub}.{name}' is not an "
                        f"unsigned 64-bit integer: {str(value)[:64]!r}")
    return number
