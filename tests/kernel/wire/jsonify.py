"""Check a JSON document against the Mesos schema the way stout's ``jsonify`` prints protobuf.

Why: a client written against real Mesos parses what Mesos prints; the kernel must print the
same shape. stout's jsonify prints a field when it is set, or when it is a singular field with a
declared default; it never prints an empty repeated field; enums by name; 64-bit integers as JSON
numbers; maps as objects. Anything else (a field the proto does not have, a wrong JSON kind, a
missing required field, a default left out) is a difference a strict client could trip on.
"""

from __future__ import annotations

from typing import Any

from tests.kernel.wire.mesos_schema import ENUMS, MESSAGES

_INTS = {"int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64",
         "sfixed32", "sfixed64"}


def problems(doc: Any, message: str, path: str = "$") -> list[str]:
    """Every way ``doc`` differs from what jsonify would print for ``message``."""
    out: list[str] = []
    if not isinstance(doc, dict):
        return [f"{path}: expected an object for {message}, got {type(doc).__name__}"]
    fields = MESSAGES[message]
    for key, value in doc.items():
        spec = fields.get(key)
        if spec is None:
            out.append(f"{path}.{key}: no such field in {message}")
            continue
        ftype, label, _ = spec
        if label == "repeated":
            if not isinstance(value, list):
                out.append(f"{path}.{key}: repeated field is not an array")
            elif not value:
                out.append(f"{path}.{key}: empty repeated field printed")
            else:
                for i, item in enumerate(value):
                    out.extend(_value(item, ftype, f"{path}.{key}[{i}]"))
        else:
            out.extend(_value(value, ftype, f"{path}.{key}"))
    for key, (ftype, label, default) in fields.items():
        if key in doc:
            continue
        if label == "required":
            out.append(f"{path}.{key}: required field of {message} missing")
        elif default is not None and label == "optional" and not ftype.startswith("msg:"):
            out.append(f"{path}.{key}: field with default {default!r} not printed")
    return out


def _value(value: Any, ftype: str, path: str) -> list[str]:
    if ftype.startswith("msg:"):
        return problems(value, ftype[4:], path)
    if ftype.startswith("enum:"):
        values = ENUMS[ftype[5:]]
        if not isinstance(value, str) or value not in values:
            return [f"{path}: {value!r} is not a value of {ftype[5:]}"]
        return []
    if ftype.startswith("map:"):
        _, _, vtype = ftype.split(":", 2)
        if not isinstance(value, dict):
            return [f"{path}: map is not an object"]
        return [p for k, v in value.items() for p in _value(v, vtype, f"{path}[{k}]")]
    if ftype in _INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: {ftype} printed as {type(value).__name__} ({value!r})"]
        return []
    if ftype in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return [f"{path}: {ftype} printed as {type(value).__name__}"]
        return []
    if ftype == "bool":
        return [] if isinstance(value, bool) else [f"{path}: bool printed as {value!r}"]
    if ftype in ("string", "bytes"):
        return [] if isinstance(value, str) else [f"{path}: {ftype} printed as {value!r}"]
    return [f"{path}: unknown type {ftype}"]
