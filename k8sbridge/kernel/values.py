"""Mesos ``Value``s as the kernel needs them: fixed-point scalars, interval sets, text parsing.

Why a module: this is Mesos' ``src/common/values.cpp`` layer under ``resources.cpp``: the
arithmetic on ``Value.Scalar`` (thousandths, ``llround``) and ``Value.Ranges`` (coalescing
closed intervals), ``values::parse`` (how ``--resources`` and ``--attributes`` values are read:
``[a-b,...]`` ranges, ``{x,...}`` sets, a number, else text) and agent ``Attribute``s, which are
plain values. ``resources`` builds ``Resource``/``Resources`` on top.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, Literal, TypeAlias

__all__ = ["Attribute", "AttributeType", "Range", "ResourceError", "coalesce", "from_fixed",
           "normalize_scalar", "parse_attributes_flag", "parse_value", "to_fixed"]

AttributeType: TypeAlias = Literal["SCALAR", "RANGES", "SET", "TEXT"]
Range: TypeAlias = tuple[int, int]  # closed interval, as Value.Range


class ResourceError(ValueError):
    """A resource, attribute or flag Mesos would refuse; the message says why."""


# -- fixed-point scalars -------------------------------------------------------------------------


def to_fixed(value: float) -> int:
    """``convertToFixed``: thousandths, rounded half away from zero (``std::llround``)."""
    scaled = value * 1000.0
    return int(scaled + 0.5) if scaled >= 0 else -int(0.5 - scaled)


def from_fixed(fixed: int) -> float:
    return fixed / 1000.0


def normalize_scalar(value: float) -> float:
    return from_fixed(to_fixed(value))


# -- interval sets -------------------------------------------------------------------------------


def coalesce(spans: Iterable[Range]) -> tuple[Range, ...]:
    """Sorted, disjoint, non-adjacent intervals covering the same integers."""
    out: list[list[int]] = []
    for begin, end in sorted(spans):
        if out and begin <= out[-1][1] + 1:
            if end > out[-1][1]:
                out[-1][1] = end
        else:
            out.append([begin, end])
    return tuple((b, e) for b, e in out)


def _ranges_minus(have: tuple[Range, ...], take: tuple[Range, ...]) -> tuple[Range, ...]:
    out: list[Range] = []
    for begin, end in have:
        pieces = [(begin, end)]
        for t_begin, t_end in take:
            nxt: list[Range] = []
            for p_begin, p_end in pieces:
                if t_end < p_begin or t_begin > p_end:
                    nxt.append((p_begin, p_end))
                    continue
                if p_begin < t_begin:
                    nxt.append((p_begin, t_begin - 1))
                if t_end < p_end:
                    nxt.append((t_end + 1, p_end))
            pieces = nxt
        out.extend(pieces)
    return coalesce(out)


def _ranges_cover(have: tuple[Range, ...], want: tuple[Range, ...]) -> bool:
    return all(any(b <= w_begin and w_end <= e for b, e in have) for w_begin, w_end in want)


def _ranges_text(spans: tuple[Range, ...]) -> str:
    return "[" + ", ".join(f"{b}-{e}" for b, e in spans) + "]"


def _set_text(items: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(items)) + "}"


# -- values::parse and the agent flags ------------------------------------------------------------


def _brackets_match(text: str, opening: str, closing: str) -> bool:
    depth = 0
    for c in text:
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _tokens(text: str, delimiters: str) -> list[str]:
    out, current = [], ""
    for c in text:
        if c in delimiters:
            if current:
                out.append(current)
            current = ""
        else:
            current += c
    if current:
        out.append(current)
    return out


def parse_value(text: str) -> tuple[AttributeType, Any]:
    """``values::parse``: spaces removed; ``[..]`` ranges, ``{..}`` set, a number, else text."""
    value = text.replace(" ", "")
    if not value:
        raise ResourceError("Expecting non-empty string")
    if not all(_brackets_match(value, o, c) for o, c in ("{}", "[]", "()")):
        raise ResourceError("Mismatched brackets")
    if value.find("[") == 0:
        bounds = _tokens(value, "[]-,\n")
        if len(bounds) % 2:
            raise ResourceError('Expecting one or more "ranges"')
        spans = []
        for i in range(0, len(bounds), 2):
            if not (bounds[i].isdigit() and bounds[i + 1].isdigit()):
                raise ResourceError(f"Expecting non-negative integers in '{bounds[i]}'")
            spans.append((int(bounds[i]), int(bounds[i + 1])))
        return "RANGES", coalesce(spans)
    if "[" in value:
        raise ResourceError("Unexpected '[' found")
    if value.find("{") == 0:
        return "SET", frozenset(_tokens(value, "{},\n"))
    if "{" in value:
        raise ResourceError("Unexpected '{' found")
    try:
        number = float(value)
    except ValueError:
        return "TEXT", value
    if math.isinf(number) or math.isnan(number) or number < 0:
        return "TEXT", value  # numify failed as a usable scalar: Mesos keeps it as text
    if number != 0 and abs(number) < 2.2250738585072014e-308:
        raise ResourceError("Subnormal values not supported")
    return "SCALAR", number


@dataclasses.dataclass(frozen=True, slots=True)
class Attribute:
    """An agent ``Attribute``."""

    name: str
    type: AttributeType
    text: str = ""
    scalar: float = 0.0
    ranges: tuple[Range, ...] = ()
    items: frozenset[str] = frozenset()

    @staticmethod
    def from_json(raw: Any) -> Attribute:
        if not isinstance(raw, dict):
            raise ResourceError("Invalid attribute: not an object")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ResourceError("Invalid attribute: empty name")
        kind = raw.get("type")
        try:
            if kind == "TEXT":
                return Attribute(name, "TEXT", text=str(raw["text"]["value"]))
            if kind == "SCALAR":
                return Attribute(name, "SCALAR", scalar=float(raw["scalar"]["value"]))
            if kind == "RANGES":
                spans = [(int(s["begin"]), int(s["end"])) for s in raw["ranges"]["range"]]
                return Attribute(name, "RANGES", ranges=coalesce(spans))
            if kind == "SET":
                return Attribute(name, "SET", items=frozenset(map(str, raw["set"]["item"])))
        except (KeyError, TypeError, ValueError) as e:
            raise ResourceError(f"Invalid attribute '{name}': {e}") from e
        raise ResourceError(f"Invalid attribute '{name}': unknown type {kind!r}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type == "TEXT":
            out["text"] = {"value": self.text}
        elif self.type == "SCALAR":
            out["scalar"] = {"value": self.scalar}
        elif self.type == "RANGES":
            out["ranges"] = {"range": [{"begin": b, "end": e} for b, e in self.ranges]}
        else:
            out["set"] = {"item": sorted(self.items)}
        return out

    def legacy_value(self) -> float | str:
        """``model(Attributes)``: a scalar as a number, the others as Mesos prints them."""
        if self.type == "SCALAR":
            return self.scalar
        if self.type == "TEXT":
            return self.text
        if self.type == "RANGES":
            return _ranges_text(self.ranges)
        return _set_text(self.items)

    parse = from_json
    to_raw = to_json


def parse_attributes_flag(spec: str) -> tuple[Attribute, ...]:
    """The agent's ``--attributes``: ``name:value;...`` with values as ``values::parse``."""
    out: list[Attribute] = []
    for token in _tokens(spec, ";\n"):
        pair = _tokens(token, ":")
        if len(pair) != 2:
            raise ResourceError(f"Invalid attribute key:value pair '{token}'")
        name = pair[0].strip()
        kind, value = parse_value(pair[1])
        if kind == "SCALAR":
            out.append(Attribute(name, "SCALAR", scalar=value))
        elif kind == "RANGES":
            out.append(Attribute(name, "RANGES", ranges=value))
        elif kind == "SET":
            out.append(Attribute(name, "SET", items=value))
        else:
            out.append(Attribute(name, "TEXT", text=value))
    return tuple(out)
