"""Helpers that read and render the small v1 values every message shares: ids, base64, labels,
durations, numbers, resources and attributes.

Why a module of their own: the parsed framework/offer values (``types.py``), the events
(``events.py``) and the calls (``calls.py``) read and write the same wrappers the same way, and
every helper raises ``ProtocolError`` naming the bad field, so a master's garbage is reported
where it is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from k8sbridge.mesos import raw as wire
from k8sbridge.mesos.errors import ProtocolError
from k8sbridge.model import resources as res

NANOS = 1_000_000_000

Labels = tuple[tuple[str, str], ...]


def encode_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_bytes(text: Any, *, what: str) -> bytes:
    if not isinstance(text, str):
        raise ProtocolError(f"{what}: expected base64 text, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ProtocolError(f"{what}: invalid base64") from e


def as_obj(raw: Any, *, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ProtocolError(f"{what}: expected an object, got {type(raw).__name__}")
    return raw


def as_list(raw: Any, *, what: str) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, Mapping):  # the stout parser accepts one object for a repeated field
        return [raw]
    if not isinstance(raw, list):
        raise ProtocolError(f"{what}: expected a list, got {type(raw).__name__}")
    return raw


def id_value(raw: Any, *, what: str) -> str:
    value = as_obj(raw, what=what).get("value")
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{what}: missing id value")
    return value


def opt_id(raw: Mapping[str, Any], key: str, *, what: str) -> str | None:
    if raw.get(key) is None:
        return None
    return id_value(raw[key], what=f"{what}.{key}")


def str_field(raw: Mapping[str, Any], key: str, *, what: str, default: str = "") -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ProtocolError(f"{what}.{key}: expected a string")
    return value


def req_str(raw: Mapping[str, Any], key: str, *, what: str) -> str:
    if key not in raw:
        raise ProtocolError(f"{what}: missing required field {key!r}")
    return str_field(raw, key, what=what)


def num_field(raw: Mapping[str, Any], key: str, *, what: str, default: float = 0.0) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ProtocolError(f"{what}.{key}: expected a number")
    try:
        return float(value)
    except ValueError as e:
        raise ProtocolError(f"{what}.{key}: expected a number") from e


def parse_labels(raw: Any) -> Labels:
    if not raw:
        return ()
    items = as_list(as_obj(raw, what="labels").get("labels"), what="labels.labels")
    out = []
    for item in items:
        item = as_obj(item, what="label")
        out.append((str(item.get("key", "")), str(item.get("value", ""))))
    return tuple(out)


def render_labels(labels: Labels) -> wire.RawLabels:
    return {"labels": [{"key": k, "value": v} for k, v in labels]}


def parse_duration(raw: Any, *, what: str) -> float:
    nanos = as_obj(raw, what=what).get("nanoseconds", 0)
    if isinstance(nanos, bool) or not isinstance(nanos, int | float):
        raise ProtocolError(f"{what}.nanoseconds: expected an integer")
    return nanos / NANOS


def render_duration(seconds: float) -> wire.RawDuration:
    return {"nanoseconds": int(round(seconds * NANOS))}


def parse_resources(raw: Any, *, what: str) -> res.Resources:
    try:
        return res.Resources.parse(as_list(raw, what=what))
    except (res.ResourceError, AttributeError, TypeError) as e:
        raise ProtocolError(f"{what}: {e}") from e


def parse_attributes(raw: Any, *, what: str) -> tuple[res.Attribute, ...]:
    try:
        return tuple(res.Attribute.parse(a) for a in as_list(raw, what=what))
    except (res.ResourceError, AttributeError, TypeError, KeyError, ValueError) as e:
        raise ProtocolError(f"{what}: {e}") from e
