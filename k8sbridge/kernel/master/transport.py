"""From HTTP request to a JSON call, as Mesos' HTTP layer, JSON parser and protobuf conversion do.

Why a module: every API of the master (scheduler, operator) first checks the media types, parses
the body with stout's JSON rules (nesting at most 200 deep, 64-bit integers, no NaN), and maps an
enum-typed ``type`` the way stout's JSON -> protobuf conversion does (a wrong JSON kind is an
error; an unknown name leaves the field unset). Doing that once, before any call handling, is
what keeps hostile bodies from reaching code that assumes well-formed calls.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import re
from typing import Any

from k8sbridge.kernel.master.errors import CallError

APPLICATION_JSON = "application/json"
APPLICATION_PROTOBUF = "application/x-protobuf"
MAX_DEPTH = 200  # stout's STOUT_JSON_MAX_DEPTH

# master.proto ``Call.Type`` (the operator API), every value.
OPERATOR_CALL_TYPES = frozenset({
    "UNKNOWN", "GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS", "GET_LOGGING_LEVEL",
    "SET_LOGGING_LEVEL", "LIST_FILES", "READ_FILE", "GET_STATE", "GET_AGENTS", "GET_FRAMEWORKS",
    "GET_EXECUTORS", "GET_OPERATIONS", "GET_TASKS", "GET_ROLES", "GET_WEIGHTS", "UPDATE_WEIGHTS",
    "GET_MASTER", "SUBSCRIBE", "RESERVE_RESOURCES", "UNRESERVE_RESOURCES", "CREATE_VOLUMES",
    "DESTROY_VOLUMES", "GROW_VOLUME", "SHRINK_VOLUME", "GET_MAINTENANCE_STATUS",
    "GET_MAINTENANCE_SCHEDULE", "UPDATE_MAINTENANCE_SCHEDULE", "START_MAINTENANCE",
    "STOP_MAINTENANCE", "DRAIN_AGENT", "DEACTIVATE_AGENT", "REACTIVATE_AGENT", "GET_QUOTA",
    "UPDATE_QUOTA", "SET_QUOTA", "REMOVE_QUOTA", "TEARDOWN", "MARK_AGENT_GONE",
})

_INT64 = (-(2**63), 2**64 - 1)


def not_expecting(value: Any, field: str) -> str:
    """stout's message for a JSON value of the wrong kind in a scalar field."""
    kind = {dict: "object", list: "array", bool: "boolean", str: "string"}.get(
        type(value), "number")
    return f"Not expecting a JSON {kind} for field '{field}'"


# A JSON string as stout's scanner reads it: a backslash escapes whatever byte follows.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN_WEIGHTS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def _too_deep(body: bytes) -> bool:
    """Whether objects/arrays nest deeper than ``MAX_DEPTH`` (brackets in strings ignored).

    The scan runs in C (strings are cut out, an unterminated one hides the rest of the body;
    then prefix sums over the brackets alone): a byte-by-byte Python loop over a large ACCEPT
    cost four times its ``json.loads``."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False
    if b"\\" in body:
        outside = _STRING.sub(b"", body).split(b'"', 1)[0]
    else:  # no escapes: every other quote opens a string (the last one maybe unterminated)
        outside = b"".join(body.split(b'"')[::2])
    brackets = outside.translate(_OPEN_WEIGHTS, _NOT_BRACKETS)
    if len(brackets) <= MAX_DEPTH:
        return False
    # Depth after the k-th bracket is opens_k - closes_k = 2 * opens_k - k.
    deepest: int = max(map(operator.sub, itertools.accumulate(brackets),
                           range(1, len(brackets) + 1)))
    return deepest > MAX_DEPTH


def _no_constant(name: str) -> Any:
    raise ValueError(f"'{name}' is not JSON")


def _integer(text: str) -> int | float:
    """picojson keeps integers that fit 64 bits; others become doubles (or fail if infinite)."""
    value = int(text)
    if _INT64[0] <= value <= _INT64[1]:
        return value
    as_double = float(text)
    if math.isinf(as_double):
        raise ValueError("Value out of range")
    return as_double


def _double(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("Value out of range")
    return value


def double_field(value: Any, field: str) -> float:
    """A JSON value for a proto ``double`` field, as stout's parser takes it (Mesos >= 1.10).

    A number is itself; the strings ``"Infinity"``/``"-Infinity"`` are the infinities (which
    Mesos prints back as the bare tokens ``Infinity``/``-Infinity``, as ``json.dumps`` does);
    any other string must itself be a JSON number. Anything else is the 400 stout gives.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise CallError(400, "Failed to convert JSON into Call protobuf: "
                             + not_expecting(value, field))
    if not isinstance(value, str):
        return value
    if value in ("Infinity", "-Infinity"):
        return math.inf if value == "Infinity" else -math.inf
    try:
        number = json.loads(value, parse_constant=_no_constant, parse_int=_integer,
                            parse_float=_double)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError("not a number")
    except ValueError as e:
        raise CallError(400, "Failed to convert JSON into Call protobuf: Failed to parse "
                             f"'{value}' as a JSON number for field '{field}': {e}") from e
    return float(number)


def parse_json(body: bytes) -> Any:
    """Any JSON document under stout's rules, else ``CallError(400)``."""
    if _too_deep(body):
        raise CallError(400, f"Failed to parse body into JSON: nested deeper than {MAX_DEPTH} "
                             "levels")
    try:
        return json.loads(body, parse_constant=_no_constant, parse_int=_integer,
                          parse_float=_double)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CallError(400, f"Failed to parse body into JSON: {e}") from e


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


def parse_body(body: bytes) -> dict[str, Any]:
    value = parse_json(body)
    if not isinstance(value, dict):
        raise CallError(
            400, "Failed to convert JSON into Call protobuf: Expecting a JSON object"
        )
    return value


def operator_type(call: dict[str, Any]) -> str:
    """The ``type`` of a ``master::Call``; 400 as Mesos when it is absent, unknown or no enum."""
    ctype = call.get("type")
    if ctype is not None and not isinstance(ctype, str):
        raise CallError(400, "Failed to convert JSON into master::Call protobuf: "
                             + not_expecting(ctype, "type"))
    if ctype not in OPERATOR_CALL_TYPES:  # an unknown name leaves the optional enum unset
        raise CallError(400, "Failed to validate master::Call: Expecting 'type' to be present")
    assert isinstance(ctype, str)
    return ctype
