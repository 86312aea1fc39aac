"""Decoding Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``) to JSON.

Why: client-go typed clients, and so ``kubectl create <generator>``, write built-in kinds as
protobuf and never retry with JSON. The wire form is the magic ``k8s\\0`` followed by a
``runtime.Unknown`` envelope (typeMeta, raw) whose ``raw`` is the kind's message. Field numbers
come from the generated tables in protoschema.py; devkube answers in JSON, which every client
accepts.

Go marshals non-pointer fields even when empty; their zero values are dropped here (except the
fields listed in protoschema.KEEP_ZERO) so the result looks like the JSON the same client would
have sent (``omitempty``).

    ProtobufError    the body is not a decodable Kubernetes protobuf message (→ 400 / 415)
"""

from __future__ import annotations

import base64
import datetime
import json
import struct
from typing import Any

from k8sbridge.devkube import protoschema

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# (apiVersion, kind) -> message name in protoschema.MESSAGES
TYPES: dict[tuple[str, str], str] = {
    ("v1", "Pod"): "core.v1.Pod",
    ("v1", "Node"): "core.v1.Node",
    ("v1", "Namespace"): "core.v1.Namespace",
    ("v1", "Event"): "core.v1.Event",
    ("v1", "ConfigMap"): "core.v1.ConfigMap",
    ("v1", "Secret"): "core.v1.Secret",
    ("v1", "Service"): "core.v1.Service",
    ("v1", "ServiceAccount"): "core.v1.ServiceAccount",
    ("v1", "Endpoints"): "core.v1.Endpoints",
    ("v1", "Binding"): "core.v1.Binding",
    ("apps/v1", "Deployment"): "apps.v1.Deployment",
    ("apps/v1", "ReplicaSet"): "apps.v1.ReplicaSet",
    ("apps/v1", "StatefulSet"): "apps.v1.StatefulSet",
    ("apps/v1", "DaemonSet"): "apps.v1.DaemonSet",
    ("apps/v1", "ControllerRevision"): "apps.v1.ControllerRevision",
    ("v1", "ReplicationController"): "core.v1.ReplicationController",
    ("batch/v1", "Job"): "batch.v1.Job",
    ("batch/v1", "CronJob"): "batch.v1.CronJob",
    ("coordination.k8s.io/v1", "Lease"): "coordination.v1.Lease",
    ("discovery.k8s.io/v1", "EndpointSlice"): "discovery.v1.EndpointSlice",
    ("events.k8s.io/v1", "Event"): "events.v1.Event",
    ("autoscaling/v1", "Scale"): "autoscaling.v1.Scale",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "autoscaling.v2.HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "policy.v1.PodDisruptionBudget",
    ("policy/v1", "Eviction"): "policy.v1.Eviction",
    ("scheduling.k8s.io/v1", "PriorityClass"): "scheduling.v1.PriorityClass",
    ("v1", "DeleteOptions"): "meta.DeleteOptions",
    ("meta.k8s.io/v1", "DeleteOptions"): "meta.DeleteOptions",
    ("authentication.k8s.io/v1", "TokenRequest"): "authentication.v1.TokenRequest",
    ("authentication.k8s.io/v1", "TokenReview"): "authentication.v1.TokenReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "authentication.v1.SelfSubjectReview",
    ("rbac.authorization.k8s.io/v1", "Role"): "rbac.v1.Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "rbac.v1.ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rbac.v1.RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "rbac.v1.ClusterRoleBinding",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"):
        "authorization.v1.SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"):
        "authorization.v1.SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"):
        "authorization.v1.LocalSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"):
        "authorization.v1.SelfSubjectRulesReview",
}

_VARINT_TYPES = frozenset({"int32", "int64", "uint32", "uint64", "bool"})


class ProtobufError(Exception):
    """The body is not a Kubernetes protobuf message devkube can decode."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) in order."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            if pos + 8 > len(data):
                raise ProtobufError("truncated fixed64")
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated length-delimited field")
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            if pos + 4 > len(data):
                raise ProtobufError("truncated fixed32")
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(typ: str, wire: int, raw: Any) -> Any:
    if typ in _VARINT_TYPES:
        if wire != 0:
            raise ProtobufError(f"{typ} field with wire type {wire}")
        return bool(raw) if typ == "bool" else _signed(raw)
    if typ == "string":
        try:
            return bytes(raw).decode()
        except (UnicodeDecodeError, TypeError) as e:
            raise ProtobufError("invalid UTF-8 in a string field") from e
    if typ == "bytes":
        return base64.b64encode(bytes(raw)).decode()
    if typ == "double":
        return struct.unpack("<d", raw)[0]
    if typ == "float":
        return struct.unpack("<f", raw)[0]
    raise ProtobufError(f"unsupported scalar type {typ}")


def _time(data: bytes, *, micro: bool) -> str | None:
    seconds = nanos = 0
    for number, _, value in _fields(data):
        if number == 1:
            seconds = _signed(value)
        elif number == 2:
            nanos = _signed(value)
    if seconds == 0 and nanos == 0:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _special(typ: str, data: bytes) -> tuple[bool, Any]:
    if typ == "meta.Time":
        return True, _time(data, micro=False)
    if typ == "meta.MicroTime":
        return True, _time(data, micro=True)
    if typ == "api.resource.Quantity":
        fields = {n: v for n, _, v in _fields(data)}
        return True, bytes(fields.get(1, b"")).decode() or None
    if typ == "util.intstr.IntOrString":
        fields = {n: v for n, _, v in _fields(data)}
        if fields.get(1, 0) == 1:
            return True, bytes(fields.get(3, b"")).decode()
        value = _signed(fields.get(2, 0))
        return True, value if value or 1 in fields or 2 in fields else None
    if typ in ("runtime.RawExtension", "meta.FieldsV1"):
        fields = {n: v for n, _, v in _fields(data)}
        raw = bytes(fields.get(1, b""))
        try:
            return True, json.loads(raw) if raw else None
        except ValueError as e:
            raise ProtobufError(f"{typ} does not hold JSON") from e
    if typ == "meta.Duration":
        fields = {n: v for n, _, v in _fields(data)}
        return True, f"{_signed(fields.get(1, 0)) / 1e9:g}s"
    return False, None


def _decode_value(typ: str, wire: int, raw: Any) -> Any:
    if typ in protoschema.MESSAGES or "." in typ:
        if wire != 2:
            raise ProtobufError(f"message {typ} with wire type {wire}")
        handled, value = _special(typ, bytes(raw))
        if handled:
            return value
        return decode_message(typ, bytes(raw))
    return _scalar(typ, wire, raw)


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    schema = protoschema.MESSAGES.get(name)
    if schema is None:
        raise ProtobufError(f"no protobuf schema for {name}")
    out: dict[str, Any] = {}
    for number, wire, raw in _fields(data):
        entry = schema.get(number)
        if entry is None:
            raise ProtobufError(f"unknown field {number} in {name}")
        field, label, typ = entry
        if label == "map":
            key = val = None
            for n, w, v in _fields(bytes(raw)):
                if n == 1:
                    key = _scalar("string", w, v)
                elif n == 2:
                    val = _decode_value(typ, w, v)
            out.setdefault(field, {})[key or ""] = val if val is not None else (
                "" if typ in ("string", "bytes") else val)
            continue
        if label == "repeated" and wire == 2 and typ in _VARINT_TYPES:
            # packed repeated scalars
            pos, items = 0, []
            payload = bytes(raw)
            while pos < len(payload):
                item, pos = _varint(payload, pos)
                items.append(_scalar(typ, 0, item))
            out.setdefault(field, []).extend(items)
            continue
        value = _decode_value(typ, wire, raw)
        if label == "inline":  # an embedded struct: its fields are the enclosing object's
            if isinstance(value, dict):
                out.update(value)
            continue
        if label == "repeated":
            out.setdefault(field, []).append(value)
        elif not _is_zero(value) or (value is not None and (name, field) in protoschema.KEEP_ZERO):
            out[field] = value
    return out


def _is_zero(value: Any) -> bool:
    if value is None or value == "" or value is False:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def decode(body: bytes) -> dict[str, Any]:
    """A ``k8s\\0``-framed protobuf body as the equivalent JSON object."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf magic")
    envelope = decode_message("runtime.Unknown", body[len(MAGIC):])
    type_meta = envelope.get("typeMeta") or {}
    api_version = str(type_meta.get("apiVersion", ""))
    kind = str(type_meta.get("kind", ""))
    message = TYPES.get((api_version, kind))
    if message is None:
        raise ProtobufError(f"devkube cannot decode {kind or '?'} ({api_version or '?'}) "
                            "from protobuf")
    raw = base64.b64decode(envelope.get("raw", ""))
    obj = decode_message(message, raw)
    return {"apiVersion": api_version, "kind": kind, **obj}
