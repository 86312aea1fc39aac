"""The OpenAPI v2 document in gnostic's protobuf form (``openapi_v2.Document``) and as JSON.

Why: client-go's ``OpenAPISchema()`` (kubectl's client-side validation, ``kubectl explain
--output plaintext-openapiv2``, older kubectl's explain and apply) fetches ``/openapi/v2`` as
``application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` and unmarshals it into gnostic's
Document. Only the parts of that message that the v2 documents use are encoded here: swagger,
info, definitions and, in each Schema, $ref, format, description, required, additionalProperties,
type, items, allOf, properties and the ``x-`` vendor extensions (a NamedAny whose Any carries
the value as YAML; JSON is YAML). Field numbers are gnostic's OpenAPIv2.proto.
"""

from __future__ import annotations

import json
from typing import Any

from k8sbridge.devkube import openapi

Obj = dict[str, Any]

CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
TITLE = "Kubernetes"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, raw: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(raw)) + raw


def _string(number: int, value: str) -> bytes:
    return _field(number, value.encode())


def _bool(number: int, value: bool) -> bytes:
    return _varint(number << 3) + (b"\x01" if value else b"\x00")


def _named_any(name: str, value: Any) -> bytes:
    return _string(1, name) + _field(2, _string(2, json.dumps(value, sort_keys=True) + "\n"))


def schema(value: Obj) -> bytes:
    """One gnostic ``Schema`` message."""
    out = b""
    if "$ref" in value:
        out += _string(1, value["$ref"])
    if "format" in value:
        out += _string(2, value["format"])
    if "description" in value:
        out += _string(4, value["description"])
    for name in value.get("required", []):
        out += _string(19, name)
    extra = value.get("additionalProperties")
    if isinstance(extra, dict):
        out += _field(21, _field(1, schema(extra)))
    elif isinstance(extra, bool):
        out += _field(21, _bool(2, extra))
    if "type" in value:
        out += _field(22, _string(1, value["type"]))
    if "items" in value:
        out += _field(23, _field(1, schema(value["items"])))
    for part in value.get("allOf", []):
        out += _field(24, schema(part))
    if "properties" in value:
        named = b"".join(_field(1, _string(1, k) + _field(2, schema(v)))
                         for k, v in value["properties"].items())
        out += _field(25, named)
    for key, ext in value.items():
        if key.startswith("x-"):
            out += _field(31, _named_any(key, ext))
    return out


def document_json(version: str, extra: tuple[openapi.GVK_, ...] = ()) -> Obj:
    return {"swagger": "2.0", "info": {"title": TITLE, "version": version}, "paths": {},
            "definitions": openapi.v2_definitions(extra)}


def document_protobuf(version: str, extra: tuple[openapi.GVK_, ...] = ()) -> bytes:
    info = _string(1, TITLE) + _string(2, version)
    definitions = b"".join(_field(1, _string(1, name) + _field(2, schema(value)))
                           for name, value in openapi.v2_definitions(extra).items())
    return _string(1, "2.0") + _field(2, info) + _field(9, definitions)
