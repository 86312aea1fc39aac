"""Mesos resources as immutable values: parse, render, add, subtract, compare.

Why here: the allocator of the embedded kernel, the Mesos client and the bridge's placement all
reason about the same thing (what an agent has, what an offer holds, what a pod asks for). One
pure implementation, property-tested, keeps the three from disagreeing about arithmetic.

Values follow Mesos' own rules (``src/common/resources.cpp``):

* scalars are fixed-point with three decimal digits (``0.1 + 0.2 == 0.3`` here, as in Mesos);
* two resources merge only when everything but the value matches (name, type, reservation
  stack, allocation role, disk/revocable/shared/provider details);
* reservations are kept in the post-refinement form (a stack of ``Reservation``); the
  pre-refinement wire form (``role`` + ``reservation``) is accepted on input and can be rendered
  for frameworks without RESERVATION_REFINEMENT.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal, TypeAlias

__all__ = [
    "Attribute",
    "Range",
    "Reservation",
    "Resource",
    "ResourceError",
    "Resources",
    "merge_ranges",
    "parse_attributes_flag",
    "parse_resources_flag",
    "ranges_contain",
    "ranges_size",
    "subtract_ranges",
]

ValueType: TypeAlias = Literal["SCALAR", "RANGES", "SET"]
ReservationType: TypeAlias = Literal["STATIC", "DYNAMIC"]
Range: TypeAlias = tuple[int, int]  # inclusive [begin, end], as Mesos' Value.Range

RawResource: TypeAlias = dict[str, Any]
RawAttribute: TypeAlias = dict[str, Any]

_SCALE = 1000  # Mesos keeps three decimal digits of a scalar


class ResourceError(ValueError):
    """A resource or attribute that Mesos would reject (the message names the problem)."""


def _fix(value: float) -> float:
    return round(value * _SCALE) / _SCALE


# --------------------------------------------------------------------------------------------
# Ranges


def merge_ranges(ranges: Iterable[Range]) -> tuple[Range, ...]:
    """Sort and coalesce overlapping or adjacent ranges: [1-3],[4-5] -> [1-5]."""
    given = ranges if type(ranges) is tuple or type(ranges) is list else list(ranges)
    # Fast path: input that is already merged (sorted, disjoint, not adjacent, begin <= end)
    # -- what Mesos sends and what this module produces -- is returned as is, without sorting.
    last: int | None = None
    for rng in given:
        if type(rng) is not tuple or len(rng) != 2:
            break
        begin, end = rng
        if begin > end or (last is not None and begin <= last + 1):
            break
        last = end
    else:
        return given if type(given) is tuple else tuple(given)
    out: list[list[int]] = []
    for begin, end in sorted(given):
        if begin > end:
            raise ResourceError(f"range [{begin}-{end}] has begin > end")
        if out and begin <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([begin, end])
    return tuple((b, e) for b, e in out)


def subtract_ranges(left: tuple[Range, ...], right: tuple[Range, ...]) -> tuple[Range, ...]:
    """Remove every number of ``right`` from ``left`` (both merged); splits ranges as needed."""
    out: list[Range] = []
    j = 0
    for begin, end in left:
        cur = begin
        while j < len(right) and right[j][1] < cur:
            j += 1
        k = j
        while k < len(right) and right[k][0] <= end and cur <= end:
            rb, re_ = right[k]
            if rb > cur:
                out.append((cur, rb - 1))
            cur = max(cur, re_ + 1)
            k += 1
        if cur <= end:
            out.append((cur, end))
    return tuple(out)


def ranges_contain(outer: tuple[Range, ...], inner: tuple[Range, ...]) -> bool:
    """True when every number of ``inner`` lies in ``outer`` (both merged)."""
    return not subtract_ranges(inner, outer)


def ranges_size(ranges: tuple[Range, ...]) -> int:
    return sum(end - begin + 1 for begin, end in ranges)


# --------------------------------------------------------------------------------------------
# Reservations and resources


@dataclasses.dataclass(frozen=True, slots=True)
class Reservation:
    """One level of the post-refinement reservation stack (``ReservationInfo``)."""

    type: ReservationType
    role: str
    principal: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Reservation:
        role = raw.get("role")
        if not isinstance(role, str) or not role:
            raise ResourceError("reservation without a role")
        rtype = raw.get("type", "DYNAMIC" if raw.get("principal") else "STATIC")
        if rtype not in ("STATIC", "DYNAMIC"):
            raise ResourceError(f"unknown reservation type {rtype!r}")
        if cls is Reservation and raw.get("principal") is None and not raw.get("labels"):
            return _simple_reservation(rtype, role)
        return cls(
            type=rtype,
            role=role,
            principal=raw.get("principal"),
            labels=_parse_labels(raw.get("labels")),
        )

    def to_raw(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"type": self.type, "role": self.role}
        if self.principal is not None:
            raw["principal"] = self.principal
        if self.labels:
            raw["labels"] = {"labels": [{"key": k, "value": v} for k, v in self.labels]}
        return raw


def _parse_labels(raw: Any) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    items = raw.get("labels", []) if isinstance(raw, Mapping) else raw
    return tuple((str(i.get("key", "")), str(i.get("value", ""))) for i in items)


@dataclasses.dataclass(frozen=True, slots=True)
class Resource:
    """One Mesos ``Resource``: a named quantity with its reservation and allocation."""

    name: str
    type: ValueType
    scalar: float = 0.0
    ranges: tuple[Range, ...] = ()
    items: frozenset[str] = frozenset()
    reservations: tuple[Reservation, ...] = ()
    allocation_role: str | None = None
    # disk / revocable / shared / provider_id, as canonical JSON: opaque but part of identity.
    extra: str = ""

    @property
    def role(self) -> str:
        """The role this resource is reserved for, or ``"*"`` when unreserved."""
        return self.reservations[-1].role if self.reservations else "*"

    @property
    def key(self) -> tuple[Any, ...]:
        """Everything but the value: resources with equal keys merge."""
        return (self.name, self.type, self.reservations, self.allocation_role, self.extra)

    def is_empty(self) -> bool:
        if self.type == "SCALAR":
            return self.scalar <= 0
        if self.type == "RANGES":
            return not self.ranges
        return not self.items

    def with_value_of(self, other: Resource) -> Resource:
        return _replace(self, scalar=other.scalar, ranges=other.ranges, items=other.items)

    @classmethod
    def scalar_of(cls, name: str, value: float, *, role: str = "*") -> Resource:
        return cls(name=name, type="SCALAR", scalar=_fix(value), reservations=_static(role))

    @classmethod
    def ranges_of(cls, name: str, ranges: Iterable[Range], *, role: str = "*") -> Resource:
        return cls(
            name=name, type="RANGES", ranges=merge_ranges(ranges), reservations=_static(role)
        )

    @classmethod
    def set_of(cls, name: str, items: Iterable[str], *, role: str = "*") -> Resource:
        return cls(name=name, type="SET", items=frozenset(items), reservations=_static(role))

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Resource:
        """Parse wire JSON in either reservation form (pre- or post-refinement)."""
        plain = _parse_plain_scalar(raw)
        if plain is None:
            plain = _parse_plain_ranges_or_set(raw)
        if plain is not None:
            return plain
        return cls._parse_general(raw)

    @classmethod
    def _parse_general(cls, raw: Mapping[str, Any]) -> Resource:
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ResourceError("resource without a name")
        rtype = raw.get("type")
        if rtype not in ("SCALAR", "RANGES", "SET"):
            raise ResourceError(f"resource {name!r} has unknown type {rtype!r}")
        scalar = 0.0
        ranges: tuple[Range, ...] = ()
        items: frozenset[str] = frozenset()
        try:
            if rtype == "SCALAR":
                scalar = _fix(float((raw.get("scalar") or {}).get("value", 0.0)))
                if scalar < 0:
                    raise ResourceError(f"resource {name!r} has a negative value")
            elif rtype == "RANGES":
                ranges = merge_ranges(
                    [
                        (int(r["begin"]), int(r["end"]))
                        for r in (raw.get("ranges") or {}).get("range", [])
                    ]
                )
            else:
                items = frozenset([str(i) for i in (raw.get("set") or {}).get("item", [])])
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, ResourceError):
                raise
            raise ResourceError(f"resource {name!r} has a malformed value: {e}") from e
        if raw.get("reservations"):
            reservations = tuple([Reservation.parse(r) for r in raw["reservations"]])
        else:
            role = raw.get("role", "*") or "*"
            if role == "*":
                reservations = ()
            elif "reservation" in raw:
                res = raw["reservation"] or {}
                reservations = (
                    Reservation(
                        type="DYNAMIC",
                        role=role,
                        principal=res.get("principal"),
                        labels=_parse_labels(res.get("labels")),
                    ),
                )
            else:
                reservations = (_simple_reservation("STATIC", role),)
        alloc = (raw.get("allocation_info") or {}).get("role")
        extra = ""
        if not _EXTRA_KEYS.isdisjoint(raw):
            extras = {k: raw[k] for k in ("disk", "revocable", "shared", "provider_id") if k in raw}
            extra = json.dumps(extras, sort_keys=True)
        if cls is not Resource:
            return cls(name, rtype, scalar, ranges, items, reservations, alloc, extra)
        return _resource(name, rtype, scalar, ranges, items, reservations, alloc, extra)

    def to_raw(self, *, refined: bool = True) -> RawResource:
        """Render wire JSON; ``refined=False`` gives the pre-refinement ``role`` form."""
        raw: RawResource = {"name": self.name, "type": self.type}
        if self.type == "SCALAR":
            raw["scalar"] = {"value": self.scalar}
        elif self.type == "RANGES":
            raw["ranges"] = {"range": [{"begin": b, "end": e} for b, e in self.ranges]}
        else:
            raw["set"] = {"item": sorted(self.items)}
        if refined:
            if self.reservations:
                raw["reservations"] = [r.to_raw() for r in self.reservations]
        else:
            raw["role"] = self.role
            if self.reservations and self.reservations[-1].type == "DYNAMIC":
                top = self.reservations[-1]
                res: dict[str, Any] = {}
                if top.principal is not None:
                    res["principal"] = top.principal
                if top.labels:
                    res["labels"] = {"labels": [{"key": k, "value": v} for k, v in top.labels]}
                raw["reservation"] = res
        if self.allocation_role is not None:
            raw["allocation_info"] = {"role": self.allocation_role}
        if self.extra:
            raw.update(json.loads(self.extra))
        return raw

    def legacy_value(self) -> float | str:
        """The value as the legacy ``/state`` JSON shows it (``"[31000-32000]"``, ``"{a,b}"``)."""
        if self.type == "SCALAR":
            return self.scalar
        if self.type == "RANGES":
            return "[" + ", ".join(f"{b}-{e}" for b, e in self.ranges) + "]"
        return "{" + ", ".join(sorted(self.items)) + "}"


# --------------------------------------------------------------------------------------------
# Fast constructors
#
# A frozen dataclass' ``__init__`` sets each field through ``object.__setattr__`` (about 1 us for
# a ``Resource``); an OFFERS event builds tens of thousands of these values. The helpers below
# build the very same instances (no ``__post_init__`` or validation is skipped: there is none)
# by calling the slot descriptors directly, about twice as fast. They are private: everything
# public still goes through the dataclasses.

_new = object.__new__


def _slot_setter(cls: type, name: str) -> Any:
    return cls.__dict__[name].__set__


_R_NAME = _slot_setter(Resource, "name")
_R_TYPE = _slot_setter(Resource, "type")
_R_SCALAR = _slot_setter(Resource, "scalar")
_R_RANGES = _slot_setter(Resource, "ranges")
_R_ITEMS = _slot_setter(Resource, "items")
_R_RESERVATIONS = _slot_setter(Resource, "reservations")
_R_ALLOC = _slot_setter(Resource, "allocation_role")
_R_EXTRA = _slot_setter(Resource, "extra")
_EMPTY_SET: frozenset[str] = frozenset()


def _resource(
    name: str,
    rtype: ValueType,
    scalar: float,
    ranges: tuple[Range, ...],
    items: frozenset[str],
    reservations: tuple[Reservation, ...],
    alloc: str | None,
    extra: str,
) -> Resource:
    """``Resource(...)`` with all fields given positionally, without the dataclass' init."""
    obj: Resource = _new(Resource)
    _R_NAME(obj, name)
    _R_TYPE(obj, rtype)
    _R_SCALAR(obj, scalar)
    _R_RANGES(obj, ranges)
    _R_ITEMS(obj, items)
    _R_RESERVATIONS(obj, reservations)
    _R_ALLOC(obj, alloc)
    _R_EXTRA(obj, extra)
    return obj


def _replace(
    r: Resource,
    *,
    scalar: float | None = None,
    ranges: tuple[Range, ...] | None = None,
    items: frozenset[str] | None = None,
) -> Resource:
    """``dataclasses.replace`` of a value field, for the arithmetic's hot paths."""
    return _resource(
        r.name,
        r.type,
        r.scalar if scalar is None else scalar,
        r.ranges if ranges is None else ranges,
        r.items if items is None else items,
        r.reservations,
        r.allocation_role,
        r.extra,
    )


_PLAIN_SCALAR_KEYS = frozenset({"name", "type", "scalar", "allocation_info"})
_EXTRA_KEYS = frozenset({"disk", "revocable", "shared", "provider_id"})


def _parse_plain_scalar(raw: Mapping[str, Any]) -> Resource | None:
    """Fast path for the most common resource on the wire: an unreserved scalar.

    OFFERS events carry thousands of these; skipping the general path's reservation and extras
    handling roughly halves parsing time. Anything unusual (another key, a reservation, a
    non-numeric, negative or non-finite value) returns None and takes the general path, so the
    result is always identical to ``Resource._parse_general``.
    """
    if type(raw) is not dict or raw.get("type") != "SCALAR" or not raw.keys() <= _PLAIN_SCALAR_KEYS:
        return None
    name = raw.get("name")
    scalar = raw.get("scalar")
    if type(name) is not str or not name or type(scalar) is not dict:
        return None
    value = scalar.get("value", 0.0)
    if type(value) is not float:
        if type(value) is not int:
            return None
        value = float(value)  # first, as the general parser does (10**20 -> 1e20, then fixed)
    if not 0 <= value < math.inf:
        return None
    info = raw.get("allocation_info")
    if info is None:
        alloc = None
    elif type(info) is dict:
        alloc = info.get("role")
    else:
        return None
    # Not interned (a cache of parsed values was tried): with values that change from offer to
    # offer, the misses and the long-lived cached objects cost the collector more than the hits
    # saved (docs/bench/mesos-client.md).
    return _resource(name, "SCALAR", _fix(value), (), _EMPTY_SET, (), alloc, "")


_PLAIN_RANGES_KEYS = frozenset({"name", "type", "ranges", "allocation_info"})
_PLAIN_SET_KEYS = frozenset({"name", "type", "set", "allocation_info"})


def _parse_plain_ranges_or_set(raw: Mapping[str, Any]) -> Resource | None:
    """Fast path for unreserved RANGES (``ports``) and SET resources, as in every offer.

    Same contract as ``_parse_plain_scalar``: anything unusual (another key, a reservation, a
    non-integer bound, a non-string item) returns None and takes the general path, so the result
    is always identical to ``Resource._parse_general``.
    """
    if type(raw) is not dict:
        return None
    name = raw.get("name")
    if type(name) is not str or not name:
        return None
    rtype = raw.get("type")
    if rtype == "RANGES":
        if not raw.keys() <= _PLAIN_RANGES_KEYS:
            return None
        body = raw.get("ranges")
        if type(body) is not dict:
            return None
        spans = body.get("range", [])
        if type(spans) is not list:
            return None
        bounds: list[Range] = []
        for span in spans:
            if type(span) is not dict:
                return None
            begin = span.get("begin")
            end = span.get("end")
            if type(begin) is not int or type(end) is not int:
                return None
            bounds.append((begin, end))
        ranges = merge_ranges(bounds)  # raises ResourceError as the general path does
        items = _EMPTY_SET
    elif rtype == "SET":
        if not raw.keys() <= _PLAIN_SET_KEYS:
            return None
        body = raw.get("set")
        if type(body) is not dict:
            return None
        members = body.get("item", [])
        if type(members) is not list:
            return None
        for member in members:
            if type(member) is not str:
                return None
        ranges = ()
        items = frozenset(members)
    else:
        return None
    info = raw.get("allocation_info")
    if info is None:
        alloc = None
    elif type(info) is dict:
        alloc = info.get("role")
    else:
        return None
    return _resource(name, rtype, 0.0, ranges, items, (), alloc, "")


# Reservations are interned: a cluster has a handful of (type, role) pairs, so this stays small
# (bounded anyway: cleared when full). Values are immutable, so a shared instance is
# indistinguishable from a fresh one except by ``is``.
_CACHE_SIZE = 1024
_RESERVATIONS: dict[tuple[str, str], Reservation] = {}


def _simple_reservation(rtype: ReservationType, role: str) -> Reservation:
    """A reservation without principal or labels, interned (offers repeat the same few)."""
    if type(role) is not str:  # garbage from the wire: kept as before, but not hashed
        return Reservation(type=rtype, role=role)
    key = (rtype, role)
    made = _RESERVATIONS.get(key)
    if made is None:
        made = Reservation(type=rtype, role=role)
        if len(_RESERVATIONS) >= _CACHE_SIZE:
            _RESERVATIONS.clear()
        _RESERVATIONS[key] = made
    return made


def _static(role: str) -> tuple[Reservation, ...]:
    return () if role == "*" else (_simple_reservation("STATIC", role),)


def _add(a: Resource, b: Resource) -> Resource:
    if a.type == "SCALAR":
        return _replace(a, scalar=_fix(a.scalar + b.scalar))
    if a.type == "RANGES":
        return _replace(a, ranges=merge_ranges(a.ranges + b.ranges))
    return _replace(a, items=a.items | b.items)


def _sub(a: Resource, b: Resource) -> Resource:
    if a.type == "SCALAR":
        return _replace(a, scalar=max(0.0, _fix(a.scalar - b.scalar)))
    if a.type == "RANGES":
        return _replace(a, ranges=subtract_ranges(a.ranges, b.ranges))
    return _replace(a, items=a.items - b.items)


def _contains(a: Resource, b: Resource) -> bool:
    if a.type == "SCALAR":
        return a.scalar >= b.scalar
    if a.type == "RANGES":
        return ranges_contain(a.ranges, b.ranges)
    return b.items <= a.items


def _is_ancestor_or_self(ancestor: str, role: str) -> bool:
    return role == ancestor or role.startswith(ancestor + "/")


@dataclasses.dataclass(frozen=True, slots=True)
class Resources:
    """An immutable, normalised bag of ``Resource`` (equal keys merged, empties dropped)."""

    items: tuple[Resource, ...] = ()

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> Resources:
        given = resources if type(resources) is tuple else tuple(resources)
        # Fast path: already normalised input (no empties, no two with the same key) -- what
        # the master sends in an offer -- is kept as is, in the same order.
        seen: set[tuple[Any, ...]] = set()
        for res in given:
            key = (res.name, res.type, res.reservations, res.allocation_role, res.extra)
            if key in seen:
                break
            rtype = res.type  # ``res.is_empty()``, inlined
            if rtype == "SCALAR":
                if res.scalar <= 0:
                    break
            elif not (res.ranges if rtype == "RANGES" else res.items):
                break
            seen.add(key)
        else:
            if cls is Resources:
                made: Resources = _new(Resources)
                _RS_ITEMS(made, given)
                return made
            return cls(given)
        merged: dict[tuple[Any, ...], Resource] = {}
        for res in given:
            if res.is_empty():
                continue
            prev = merged.get(res.key)
            merged[res.key] = res if prev is None else _add(prev, res)
        return cls(tuple(merged.values()))

    @classmethod
    def parse(cls, raw: Iterable[Mapping[str, Any]] | Mapping[str, Any] | None) -> Resources:
        if raw is None:
            return cls()
        if isinstance(raw, Mapping):  # a single object where a list is expected: Mesos accepts
            raw = [raw]
        # ``Resource.parse`` inlined (this is the OFFERS hot loop): fast paths, else general.
        plain = _parse_plain_scalar
        other = _parse_plain_ranges_or_set
        general = Resource._parse_general
        parsed = []
        for r in raw:
            made = plain(r)
            if made is None:
                made = other(r)
                if made is None:
                    made = general(r)
            parsed.append(made)
        return cls.of(tuple(parsed))

    @classmethod
    def from_scalars(cls, scalars: Mapping[str, float], *, role: str = "*") -> Resources:
        return cls.of(Resource.scalar_of(n, v, role=role) for n, v in scalars.items())

    def to_raw(self, *, refined: bool = True) -> list[RawResource]:
        return [r.to_raw(refined=refined) for r in self.items]

    def to_legacy(self) -> dict[str, float | str]:
        """Legacy ``/state`` shape: ``{"cpus": 1.0, "mem": 128.0, "ports": "[31000-32000]"}``."""
        out: dict[str, float | str] = {"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0}
        flat = self.flatten()
        for res in flat.items:
            out[res.name] = res.legacy_value()
        return out

    # -- arithmetic ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __add__(self, other: Resources) -> Resources:
        return Resources.of(self.items + other.items)

    def __sub__(self, other: Resources) -> Resources:
        """Saturating subtraction per key (what is not here is ignored), like Mesos' ``-``."""
        by_key = {r.key: r for r in self.items}
        for res in other.items:
            mine = by_key.get(res.key)
            if mine is not None:
                by_key[res.key] = _sub(mine, res)
        return Resources.of(by_key.values())

    def contains(self, other: Resources) -> bool:
        by_key = {r.key: r for r in self.items}
        for res in other.items:
            mine = by_key.get(res.key)
            if mine is None or not _contains(mine, res):
                return False
        return True

    def is_empty(self) -> bool:
        return not self.items

    # -- queries ------------------------------------------------------------------------------

    def filter(self, predicate: Any) -> Resources:
        return Resources(tuple(r for r in self.items if predicate(r)))

    def names(self) -> set[str]:
        return {r.name for r in self.items}

    def scalar(self, name: str) -> float:
        """Sum of a scalar across every reservation and allocation (0.0 when absent)."""
        return _fix(sum(r.scalar for r in self.items if r.name == name and r.type == "SCALAR"))

    def scalars(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for res in self.items:
            if res.type == "SCALAR":
                out[res.name] = _fix(out.get(res.name, 0.0) + res.scalar)
        return out

    def ranges(self, name: str) -> tuple[Range, ...]:
        return merge_ranges(
            rng for r in self.items if r.name == name and r.type == "RANGES" for rng in r.ranges
        )

    def unreserved(self) -> Resources:
        return self.filter(lambda r: not r.reservations)

    def reserved(self, role: str | None = None) -> Resources:
        """Reserved resources; with ``role``, those reserved for exactly that role."""
        if role is None:
            return self.filter(lambda r: bool(r.reservations))
        return self.filter(lambda r: bool(r.reservations) and r.role == role)

    def allocatable_to(self, role: str) -> Resources:
        """Unreserved ones plus those reserved for ``role`` or one of its ancestors."""
        return self.filter(lambda r: not r.reservations or _is_ancestor_or_self(r.role, role))

    def allocated_to(self, role: str) -> Resources:
        """The same resources with ``allocation_info.role`` set (as offered to ``role``)."""
        return Resources.of(
            _resource(r.name, r.type, r.scalar, r.ranges, r.items, r.reservations, role, r.extra)
            for r in self.items
        )

    def unallocated(self) -> Resources:
        return Resources.of(
            _resource(r.name, r.type, r.scalar, r.ranges, r.items, r.reservations, None, r.extra)
            for r in self.items
        )

    def flatten(self) -> Resources:
        """Drop reservations and allocation info: quantities only (totals, DRF shares)."""
        return Resources.of(
            _resource(r.name, r.type, r.scalar, r.ranges, r.items, (), None, "")
            for r in self.items
        )

    def reserve(self, reservation: Reservation) -> Resources:
        """Push a reservation onto every resource's stack (RESERVE's target form)."""
        return Resources.of(
            dataclasses.replace(r, reservations=r.reservations + (reservation,))
            for r in self.items
        )

    def pop_reservation(self) -> Resources:
        """Pop the top reservation of every resource (UNRESERVE's result)."""
        return Resources.of(
            dataclasses.replace(r, reservations=r.reservations[:-1]) for r in self.items
        )

    def __str__(self) -> str:
        parts = []
        for r in self.items:
            role = f"({r.role})" if r.reservations else ""
            alloc = f"{{{r.allocation_role}}}" if r.allocation_role else ""
            parts.append(f"{r.name}{role}{alloc}:{r.legacy_value()}")
        return ";".join(parts)


_RS_ITEMS = _slot_setter(Resources, "items")


# --------------------------------------------------------------------------------------------
# Agent flag syntax

_FLAG_ITEM = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(?:\(([^)]*)\))?\s*:\s*(.+?)\s*$")


def _parse_range_list(text: str, *, what: str) -> tuple[Range, ...]:
    inner = text.strip()[1:-1].strip()
    if not inner:
        return ()
    out: list[Range] = []
    for part in inner.split(","):
        bounds = part.strip().split("-")
        try:
            if len(bounds) == 1:
                out.append((int(bounds[0]), int(bounds[0])))
            elif len(bounds) == 2:
                out.append((int(bounds[0]), int(bounds[1])))
            else:
                raise ValueError(part)
        except ValueError as e:
            raise ResourceError(f"{what}: bad range {part.strip()!r}") from e
    return merge_ranges(out)


def parse_resources_flag(spec: str, *, default_role: str = "*") -> Resources:
    """Parse Mesos' ``--resources`` syntax.

    ``cpus:4;mem:8192;disk:40960;ports:[31000-32000,33000-34000];bugs:{a,b};cpus(marathon):2``.
    A JSON array of ``Resource`` objects is accepted too. A role in parentheses makes a static
    reservation; ``default_role`` applies to entries without one.
    """
    text = spec.strip()
    if not text:
        return Resources()
    if text.startswith("["):
        try:
            return Resources.parse(json.loads(text))
        except json.JSONDecodeError as e:
            raise ResourceError(f"resources: invalid JSON: {e}") from e
    out: list[Resource] = []
    for item in text.split(";"):
        if not item.strip():
            continue
        m = _FLAG_ITEM.match(item)
        if m is None:
            raise ResourceError(f"resources: cannot parse {item.strip()!r} (want name:value)")
        name, role, value = m.group(1), m.group(2), m.group(3)
        role = (role or default_role).strip() or "*"
        if value.startswith("["):
            if not value.endswith("]"):
                raise ResourceError(f"resources: unterminated range in {item.strip()!r}")
            out.append(Resource.ranges_of(name, _parse_range_list(value, what=name), role=role))
        elif value.startswith("{"):
            if not value.endswith("}"):
                raise ResourceError(f"resources: unterminated set in {item.strip()!r}")
            members = [m.strip() for m in value[1:-1].split(",") if m.strip()]
            out.append(Resource.set_of(name, members, role=role))
        else:
            try:
                number = float(value)
            except ValueError as e:
                raise ResourceError(f"resources: {name} has a non-numeric value {value!r}") from e
            if number < 0:
                raise ResourceError(f"resources: {name} has a negative value {value!r}")
            out.append(Resource.scalar_of(name, number, role=role))
    return Resources.of(out)


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
            rngs = merge_ranges([(int(r["begin"]), int(r["end"])) for r in spans])
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


_A_NAME = _slot_setter(Attribute, "name")
_A_TYPE = _slot_setter(Attribute, "type")
_A_TEXT = _slot_setter(Attribute, "text")
_A_SCALAR = _slot_setter(Attribute, "scalar")
_A_RANGES = _slot_setter(Attribute, "ranges")
_A_ITEMS = _slot_setter(Attribute, "items")


def _attribute(
    name: str,
    atype: Literal["TEXT", "SCALAR", "RANGES", "SET"],
    text: str,
    scalar: float,
    ranges: tuple[Range, ...],
    items: frozenset[str],
) -> Attribute:
    """``Attribute(...)`` with all fields given positionally, without the dataclass' init."""
    obj: Attribute = _new(Attribute)
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
                Attribute(name=name, type="RANGES", ranges=_parse_range_list(value, what=name))
            )
        elif value.startswith("{") and value.endswith("}"):
            members = frozenset(m.strip() for m in value[1:-1].split(",") if m.strip())
            out.append(Attribute(name=name, type="SET", items=members))
        elif _NUMBER.match(value):
            out.append(Attribute(name=name, type="SCALAR", scalar=float(value)))
        else:
            out.append(Attribute(name=name, type="TEXT", text=value))
    return tuple(out)
