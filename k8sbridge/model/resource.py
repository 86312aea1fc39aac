"""One Mesos ``Resource`` (and its reservation stack): parse, render, and per-item arithmetic.

Why apart from ``resources.py``: a ``Resource`` is one named quantity with its reservation and
allocation; ``Resources`` (the normalised bag, in ``resources.py``) is built on it, and so is
the wire parser of the Mesos client, which builds tens of thousands per OFFERS event through
the fast constructors below. Mesos splits its ``Resource`` helpers the same way
(``src/common/resources.cpp``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias

from k8sbridge.model import values
from k8sbridge.model.values import Range, ResourceError

__all__ = [
    "RawResource",
    "Reservation",
    "ReservationType",
    "Resource",
    "ValueType",
]

ValueType: TypeAlias = Literal["SCALAR", "RANGES", "SET"]
ReservationType: TypeAlias = Literal["STATIC", "DYNAMIC"]
RawResource: TypeAlias = dict[str, Any]


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
        return replace(self, scalar=other.scalar, ranges=other.ranges, items=other.items)

    @classmethod
    def scalar_of(cls, name: str, value: float, *, role: str = "*") -> Resource:
        return cls(name=name, type="SCALAR", scalar=values.fix_scalar(value),
                   reservations=static_reservations(role))

    @classmethod
    def ranges_of(cls, name: str, ranges: Iterable[Range], *, role: str = "*") -> Resource:
        return cls(
            name=name, type="RANGES", ranges=values.merge_ranges(ranges),
            reservations=static_reservations(role),
        )

    @classmethod
    def set_of(cls, name: str, items: Iterable[str], *, role: str = "*") -> Resource:
        return cls(name=name, type="SET", items=frozenset(items),
                   reservations=static_reservations(role))

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Resource:
        """Parse wire JSON in either reservation form (pre- or post-refinement)."""
        plain = parse_plain_scalar(raw)
        if plain is None:
            plain = parse_plain_ranges_or_set(raw)
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
                scalar = values.fix_scalar(float((raw.get("scalar") or {}).get("value", 0.0)))
                if scalar < 0:
                    raise ResourceError(f"resource {name!r} has a negative value")
            elif rtype == "RANGES":
                ranges = values.merge_ranges(
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
        return make(name, rtype, scalar, ranges, items, reservations, alloc, extra)

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
# by calling the slot descriptors directly, about twice as fast. Only the model's own modules
# use them (``resources.py``, the wire parsers through ``Resource.parse``); everything outside
# goes through the dataclasses.

_R_NAME = values.slot_setter(Resource, "name")
_R_TYPE = values.slot_setter(Resource, "type")
_R_SCALAR = values.slot_setter(Resource, "scalar")
_R_RANGES = values.slot_setter(Resource, "ranges")
_R_ITEMS = values.slot_setter(Resource, "items")
_R_RESERVATIONS = values.slot_setter(Resource, "reservations")
_R_ALLOC = values.slot_setter(Resource, "allocation_role")
_R_EXTRA = values.slot_setter(Resource, "extra")
_EMPTY_SET: frozenset[str] = frozenset()


def make(
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
    obj: Resource = values.new_instance(Resource)
    _R_NAME(obj, name)
    _R_TYPE(obj, rtype)
    _R_SCALAR(obj, scalar)
    _R_RANGES(obj, ranges)
    _R_ITEMS(obj, items)
    _R_RESERVATIONS(obj, reservations)
    _R_ALLOC(obj, alloc)
    _R_EXTRA(obj, extra)
    return obj


def replace(
    r: Resource,
    *,
    scalar: float | None = None,
    ranges: tuple[Range, ...] | None = None,
    items: frozenset[str] | None = None,
) -> Resource:
    """``dataclasses.replace`` of a value field, for the arithmetic's hot paths."""
    return make(
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


def parse_plain_scalar(raw: Mapping[str, Any]) -> Resource | None:
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
    return make(name, "SCALAR", values.fix_scalar(value), (), _EMPTY_SET, (), alloc, "")


_PLAIN_RANGES_KEYS = frozenset({"name", "type", "ranges", "allocation_info"})
_PLAIN_SET_KEYS = frozenset({"name", "type", "set", "allocation_info"})


def parse_plain_ranges_or_set(raw: Mapping[str, Any]) -> Resource | None:
    """Fast path for unreserved RANGES (``ports``) and SET resources, as in every offer.

    Same contract as ``parse_plain_scalar``: anything unusual (another key, a reservation, a
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
        ranges = values.merge_ranges(bounds)  # raises ResourceError as the general path does
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
    return make(name, rtype, 0.0, ranges, items, (), alloc, "")


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


def static_reservations(role: str) -> tuple[Reservation, ...]:
    return () if role == "*" else (_simple_reservation("STATIC", role),)


def add(a: Resource, b: Resource) -> Resource:
    if a.type == "SCALAR":
        return replace(a, scalar=values.fix_scalar(a.scalar + b.scalar))
    if a.type == "RANGES":
        return replace(a, ranges=values.merge_ranges(a.ranges + b.ranges))
    return replace(a, items=a.items | b.items)


def subtract(a: Resource, b: Resource) -> Resource:
    if a.type == "SCALAR":
        return replace(a, scalar=max(0.0, values.fix_scalar(a.scalar - b.scalar)))
    if a.type == "RANGES":
        return replace(a, ranges=values.subtract_ranges(a.ranges, b.ranges))
    return replace(a, items=a.items - b.items)


def contains(a: Resource, b: Resource) -> bool:
    if a.type == "SCALAR":
        return a.scalar >= b.scalar
    if a.type == "RANGES":
        return values.ranges_contain(a.ranges, b.ranges)
    return b.items <= a.items


def is_ancestor_or_self(ancestor: str, role: str) -> bool:
    return role == ancestor or role.startswith(ancestor + "/")
