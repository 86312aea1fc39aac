"""Mesos agent attributes (``rack:r1``): parse, render, and the ``--attributes`` flag syntax.

Why apart from resources: attributes are labels, not quantities; they share only the value
vocabulary (scalars, ranges, sets) of ``values.py``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from k8sbridge.model import values
from k8sbridge.model.values import Range, ResourceError

__all__ = ["Attribute", "RawAttribute", "parse_attributes_flag"]

RawAttribute: TypeAlias = dict[str, Any]

_EMPTY_SET: frozenset[str] = frozenset()


# --------------------------------------------------------------------------------------------
# Attributes


@dataclasses.dataclass(frozen=True, slots=True)
class Attribute:
    """An agent attribute (``rack:r1``); ``value`` is str, float, ranges or a frozenset."""

    name: str
    type: Literal["TEXT", "SCALAR", "RANGES", "SET"]
    text: str = ""
    scalar: float = 0.0
    ranges: tuple[Range, ...] = ()
    items: frozenset[str] = frozenset()

    @property
    def value_str(self) -> str:
        """The value as a string (node labels, offer-constraint predicates, legacy JSON)."""
        if self.type == "TEXT":
            return self.text
        if self.type == "SCALAR":
            return f"{self.scalar:g}"
        if self.type == "RANGES":
            return "[" + ",".join(f"{b}-{e}" for b, e in self.ranges) + "]"
        return "{" + ",".join(sorted(self.items)) + "}"

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Attribute:
        name = raw.get("name")
        atype = raw.get("type")
        if not isinstance(name, str) or not name:
            raise ResourceError("attribute without a name")
        if cls is Attribute and type(raw) is dict:
            # Fast path for the common well-formed TEXT and SCALAR attributes.
            if atype == "TEXT":
                body = raw.get("text")
                value = body.get("value") if type(body) is dict else None
                if type(value) is str:
                    return _attribute(name, "TEXT", value, 0.0, (), _EMPTY_SET)
            elif atype == "SCALAR":
                body = raw.get("scalar")
                value = body.get("value") if type(body) is dict else None
                if type(value) is float or type(value) is int:
                    return _attribute(name, "SCALAR", "", float(value), (), _EMPTY_SET)
        return cls._parse_general(name, atype, raw)

    @classmethod
    def _parse_general(cls, name: str, atype: Any, raw: Mapping[str, Any]) -> Attribute:
        if atype == "TEXT":
            return cls(name=name, type="TEXT", text=str((raw.get("text") or {}).get("value", "")))
        if atype == "SCALAR":
            return cls(
                name=name, type="SCALAR", scalar=float((raw.get("scalar") or {}).get("value", 0))
            )
        if atype == "RANGES":
            spans = (raw.get("ranges") or {}).get("range", [])
            rngs = values.merge_ranges([(int(r["begin"]), int(r["end"])) for r in spans])
            if cls is Attribute:
                return _attribute(name, "RANGES", "", 0.0, rngs, _EMPTY_SET)
            return cls(name=name, type="RANGES", ranges=rngs)
        if atype == "SET":
            members = frozenset([str(i) for i in (raw.get("set") or {}).get("item", [])])
            if cls is Attribute:
                return _attribute(name, "SET", "", 0.0, (), members)
            return cls(name=name, type="SET", items=members)
        raise ResourceError(f"attribute {name!r} has unknown type {atype!r}")

    def to_raw(self) -> RawAttribute:
        raw: RawAttribute = {"name": self.name, "type": self.type}
        if self.type == "TEXT":
            raw["text"] = {"value": self.text}
        elif self.type == "SCALAR":
            raw["scalar"] = {"value": self.scalar}
        elif self.type == "RANGES":
            raw["ranges"] = {"range": [{"begin": b, "end": e} for b, e in self.ranges]}
        else:
            raw["set"] = {"item": sorted(self.items)}
        return raw

    def legacy_value(self) -> float | str:
        return self.scalar if self.type == "SCALAR" else self.value_str


_A_NAME = values.slot_setter(Attribute, "name")
_A_TYPE = values.slot_setter(Attribute, "type")
_A_TEXT = values.slot_setter(Attribute, "text")
_A_SCALAR = values.slot_setter(Attribute, "scalar")
_A_RANGES = values.slot_setter(Attribute, "ranges")
_A_ITEMS = values.slot_setter(Attribute, "items")


def _attribute(
    name: str,
    atype: Literal["TEXT", "SCALAR", "RANGES", "SET"],
    text: str,
    scalar: float,
    ranges: tuple[Range, ...],
    items: frozenset[str],
) -> Attribute:
    """``Attribute(...)`` with all fields given positionally, without the dataclass' init."""
    obj: Attribute = values.new_instance(Attribute)
    _A_NAME(obj, name)
    _A_TYPE(obj, atype)
    _A_TEXT(obj, text)
    _A_SCALAR(obj, scalar)
    _A_RANGES(obj, ranges)
    _A_ITEMS(obj, items)
    return obj


_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def parse_attributes_flag(spec: str) -> tuple[Attribute, ...]:
    """Parse Mesos' ``--attributes`` syntax: ``rack:r1;zone:z1;level:10;keys:[1000-1500]``."""
    out: list[Attribute] = []
    seen: set[str] = set()
    for item in spec.split(";"):
        if not item.strip():
            continue
        name, sep, value = item.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise ResourceError(f"attributes: cannot parse {item.strip()!r} (want name:value)")
        if name in seen:
            raise ResourceError(f"attributes: {name!r} given twice")
        seen.add(name)
        if value.startswith("[") and value.endswith("]"):
            out.append(
                Attribute(name=name, type="RANGES",
                          ranges=values.parse_range_list(value, what=name))
            )
        elif value.startswith("{") and value.endswith("}"):
            members = frozenset(m.strip() for m in value[1:-1].split(",") if m.strip())
            out.append(Attribute(name=name, type="SET", items=members))
        elif _NUMBER.match(value):
            out.append(Attribute(name=name, type="SCALAR", scalar=float(value)))
        else:
            out.append(Attribute(name=name, type="TEXT", text=value))
    return tuple(out)
