"""The kernel's own Mesos resource values: what a Mesos master and agent do with ``Resource``.

Why the kernel has its own: the kernel stands in for Apache Mesos in tests of the bridge. If it
shared the bridge's resource arithmetic, a bug in that arithmetic would be on both sides of every
test and nothing would notice. This module is written from Mesos' ``src/common/resources.cpp``
and ``src/common/values.cpp`` only, for the kernel's needs (master, allocator and agents):

* a scalar is fixed point with three decimals: every operation rounds both operands to
  thousandths (``llround(v * 1000)``) and works on integers, so ``0.1 + 0.2 == 0.3``;
* ranges are sets of integers: adjacent or overlapping intervals coalesce (``[1-2,3-4]`` is
  ``[1-4]``); sets are sets of strings;
* two resources are one "addable" value when everything but the value agrees: name, type,
  reservation stack, allocation role and the opaque details (disk, revocable, shared, provider);
* subtraction drops what would become empty or negative (``Resources::subtract``);
* reservations are held in the post-refinement form, a stack; the pre-refinement wire form
  (``role`` + ``reservation``) is accepted on input (``upgradeResource``);
* the agent ``--resources`` flag is a JSON array of ``Resource`` or ``name(role):value;...``
  and ``--attributes`` is ``name:value;...`` (``values::parse``: ranges, set, scalar, text).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, TypeAlias

from k8sbridge.kernel.values import (
    Attribute,
    Range,
    ResourceError,
    _ranges_cover,
    _ranges_minus,
    _ranges_text,
    _set_text,
    _tokens,
    coalesce,
    from_fixed,
    normalize_scalar,
    parse_attributes_flag,
    parse_value,
    to_fixed,
)

__all__ = [
    "Attribute",
    "Range",
    "Reservation",
    "Resource",
    "ResourceError",
    "Resources",
    "parse_attributes_flag",
    "parse_resources_flag",
]

ValueType: TypeAlias = Literal["SCALAR", "RANGES", "SET"]

_DETAIL_FIELDS = ("disk", "revocable", "shared", "provider_id")


# -- reservations --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Reservation:
    """One ``Resource.ReservationInfo`` of the refined reservation stack."""

    type: Literal["STATIC", "DYNAMIC"]
    role: str
    principal: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def from_json(raw: Any) -> Reservation:
        if not isinstance(raw, dict):
            raise ResourceError("Invalid reservation: not an object")
        role = raw.get("role")
        if not isinstance(role, str) or not role:
            raise ResourceError("Invalid reservation: 'role' must be set")
        kind = raw.get("type")
        if kind is None:  # a reservation by a principal is dynamic
            kind = "DYNAMIC" if raw.get("principal") is not None else "STATIC"
        if kind != "STATIC" and kind != "DYNAMIC":
            raise ResourceError(f"Invalid reservation type {kind!r}")
        principal = raw.get("principal")
        return Reservation(
            type="STATIC" if kind == "STATIC" else "DYNAMIC", role=role,
            principal=None if principal is None else str(principal),
            labels=_labels_from_json(raw.get("labels")),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "role": self.role}
        if self.principal is not None:
            out["principal"] = self.principal
        if self.labels:
            out["labels"] = {"labels": [{"key": k, "value": v} for k, v in self.labels]}
        return out

    # names the master code uses
    parse = from_json
    to_raw = to_json


def _labels_from_json(raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    entries = raw.get("labels") if isinstance(raw, dict) else raw
    if not isinstance(entries, list):
        raise ResourceError("Invalid labels: expected a list")
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ResourceError("Invalid labels: expected objects")
        out.append((str(entry.get("key", "")), str(entry.get("value", ""))))
    return tuple(out)


# -- one resource --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Resource:
    """One Mesos ``Resource``: identity fields first, then the value (one of three kinds).

    ``extra`` holds what the kernel only carries along (disk, revocable, shared, provider_id)
    as sorted JSON, so that it takes part in equality and in which values may be added.
    """

    name: str
    type: ValueType
    reservations: tuple[Reservation, ...] = ()  # the refined stack, innermost last
    allocation_role: str | None = None
    extra: str = ""
    scalar: float = 0.0  # SCALAR
    ranges: tuple[Range, ...] = ()  # RANGES
    items: frozenset[str] = frozenset()  # SET

    @property
    def key(self) -> tuple[Any, ...]:
        """Values with equal keys are addable (``Resources::add`` merges them)."""
        return (self.name, self.type, self.reservations, self.allocation_role, self.extra)

    @property
    def role(self) -> str:
        """The role of the innermost reservation; ``*`` when unreserved."""
        if not self.reservations:
            return "*"
        return self.reservations[-1].role

    @property
    def revocable(self) -> bool:
        return bool(self.extra) and "revocable" in json.loads(self.extra)

    @property
    def shared(self) -> bool:
        return bool(self.extra) and "shared" in json.loads(self.extra)

    def is_empty(self) -> bool:
        if self.type == "SCALAR":
            return self.scalar < 0.0005  # to_fixed(scalar) <= 0, without the rounding
        if self.type == "RANGES":
            return not self.ranges
        return not self.items

    def with_(self, **changes: Any) -> Resource:
        return dataclasses.replace(self, **changes)

    def revalued(self, *, scalar: float = 0.0, ranges: tuple[Range, ...] = (),
                 items: frozenset[str] = frozenset()) -> Resource:
        """The same resource with another value (cheaper than ``dataclasses.replace``)."""
        return Resource(self.name, self.type, self.reservations, self.allocation_role,
                        self.extra, scalar, ranges, items)

    def reallocated(self, role: str | None) -> Resource:
        return Resource(self.name, self.type, self.reservations, role, self.extra,
                        self.scalar, self.ranges, self.items)

    @staticmethod
    def scalar_of(name: str, value: float, *, role: str = "*") -> Resource:
        return Resource(name=name, type="SCALAR", scalar=normalize_scalar(value),
                        reservations=_static_stack(role))

    @staticmethod
    def ranges_of(name: str, spans: Iterable[Range], *, role: str = "*") -> Resource:
        return Resource(name=name, type="RANGES", ranges=coalesce(spans),
                        reservations=_static_stack(role))

    @staticmethod
    def set_of(name: str, members: Iterable[str], *, role: str = "*") -> Resource:
        return Resource(name=name, type="SET", items=frozenset(members),
                        reservations=_static_stack(role))

    @staticmethod
    def from_json(raw: Any) -> Resource:
        """A ``Resource`` from its JSON (either reservation format), checked as Mesos does."""
        if not isinstance(raw, dict):
            raise ResourceError("Invalid resource: not an object")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ResourceError("Empty resource name")
        kind = raw.get("type")
        if kind not in ("SCALAR", "RANGES", "SET"):
            raise ResourceError(f"Invalid resource type for '{name}'")
        scalar, spans, members = _value_from_json(name, kind, raw)
        stack = _stack_from_json(raw)
        alloc = raw.get("allocation_info")
        alloc_role: str | None = None
        if alloc is not None:
            if not isinstance(alloc, dict):
                raise ResourceError(f"Invalid allocation_info for '{name}'")
            role = alloc.get("role")
            alloc_role = None if role is None else str(role)
        details = {k: raw[k] for k in _DETAIL_FIELDS if k in raw}
        extra = json.dumps(details, sort_keys=True) if details else ""
        return Resource(name=name, type=kind, reservations=stack, allocation_role=alloc_role,
                        extra=extra, scalar=scalar, ranges=spans, items=members)

    def to_json(self, *, refined: bool = True) -> dict[str, Any]:
        """The wire form; ``refined=False`` is the pre-refinement ``role``/``reservation`` one."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type == "SCALAR":
            out["scalar"] = {"value": self.scalar}
        elif self.type == "RANGES":
            out["ranges"] = {"range": [{"begin": b, "end": e} for b, e in self.ranges]}
        else:
            out["set"] = {"item": sorted(self.items)}
        if refined:
            if self.reservations:
                out["reservations"] = [r.to_json() for r in self.reservations]
        else:
            out["role"] = self.role
            top = self.reservations[-1] if self.reservations else None
            if top is not None and top.type == "DYNAMIC":
                info = top.to_json()
                info.pop("type")
                info.pop("role")
                out["reservation"] = info
        if self.allocation_role is not None:
            out["allocation_info"] = {"role": self.allocation_role}
        if self.extra:
            out.update(json.loads(self.extra))
        return out

    def legacy_value(self) -> float | str:
        """How the legacy ``/state`` JSON prints the value (``model(Resources)``)."""
        if self.type == "SCALAR":
            return self.scalar
        if self.type == "RANGES":
            return _ranges_text(self.ranges)
        return _set_text(self.items)

    parse = from_json
    to_raw = to_json


def _static_stack(role: str) -> tuple[Reservation, ...]:
    return () if role in ("", "*") else (Reservation(type="STATIC", role=role),)


def _value_from_json(
        name: str, kind: str, raw: Mapping[str, Any],
) -> tuple[float, tuple[Range, ...], frozenset[str]]:
    try:
        if kind == "SCALAR":
            body = raw.get("scalar")
            value = body.get("value") if isinstance(body, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ResourceError(f"Invalid scalar resource '{name}': missing value")
            number = float(value)
            if not math.isfinite(number) or number < 0:
                raise ResourceError(f"Invalid scalar resource '{name}': {value}")
            return normalize_scalar(number), (), frozenset()
        if kind == "RANGES":
            body = raw.get("ranges")
            spans = body.get("range", []) if isinstance(body, dict) else None
            if not isinstance(spans, list):
                raise ResourceError(f"Invalid ranges resource '{name}'")
            parsed = []
            for span in spans:
                begin, end = int(span["begin"]), int(span["end"])
                if begin > end or begin < 0:
                    raise ResourceError(f"Invalid ranges resource '{name}'")
                parsed.append((begin, end))
            return 0.0, coalesce(parsed), frozenset()
        body = raw.get("set")
        members = body.get("item", []) if isinstance(body, dict) else None
        if not isinstance(members, list):
            raise ResourceError(f"Invalid set resource '{name}'")
        if len(set(map(str, members))) != len(members):
            raise ResourceError(f"Invalid set resource '{name}': duplicate items")
        return 0.0, (), frozenset(str(m) for m in members)
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        if isinstance(e, ResourceError):
            raise
        raise ResourceError(f"Invalid {kind.lower()} resource '{name}': {e}") from e


def _stack_from_json(raw: Mapping[str, Any]) -> tuple[Reservation, ...]:
    refined = raw.get("reservations")
    if refined:
        if not isinstance(refined, list):
            raise ResourceError("Invalid resource: 'reservations' must be a list")
        return tuple(Reservation.from_json(r) for r in refined)
    role = raw.get("role")
    if role is None or role == "*":
        return ()
    if not isinstance(role, str) or not role:
        raise ResourceError("Invalid resource: bad 'role'")
    dynamic = raw.get("reservation")
    if dynamic is None:
        return (Reservation(type="STATIC", role=role),)
    if not isinstance(dynamic, dict):
        raise ResourceError("Invalid resource: 'reservation' must be an object")
    return (Reservation.from_json({**dynamic, "role": role, "type": "DYNAMIC"}),)


def _plus(a: Resource, b: Resource) -> Resource:
    match a.type:
        case "SCALAR":
            return a.revalued(scalar=from_fixed(to_fixed(a.scalar) + to_fixed(b.scalar)))
        case "RANGES":
            return a.revalued(ranges=coalesce(a.ranges + b.ranges))
        case _:
            return a.revalued(items=a.items | b.items)


def _minus(a: Resource, b: Resource) -> Resource:
    """``a - b`` for addable values; a scalar that would go below zero becomes empty."""
    match a.type:
        case "SCALAR":
            return a.revalued(scalar=from_fixed(max(0, to_fixed(a.scalar) - to_fixed(b.scalar))))
        case "RANGES":
            return a.revalued(ranges=_ranges_minus(a.ranges, b.ranges))
        case _:
            return a.revalued(items=a.items - b.items)


def _covers(a: Resource, b: Resource) -> bool:
    match a.type:
        case "SCALAR":
            return to_fixed(a.scalar) >= to_fixed(b.scalar)
        case "RANGES":
            return _ranges_cover(a.ranges, b.ranges)
        case _:
            return a.items.issuperset(b.items)


# -- a bag of resources --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Resources:
    """Immutable ``Resources``: addable resources merged, empty ones dropped, order kept."""

    items: tuple[Resource, ...] = ()

    @staticmethod
    def of(resources: Iterable[Resource]) -> Resources:
        """``resources`` with addable values added (``Resources::add``), in order of first
        appearance. A scalar added to more than once is summed in thousandths and made once
        at the end: the same value as adding one by one (``to_fixed(from_fixed(n)) == n``),
        without a new ``Resource`` per addition (a node's sum over its pods)."""
        merged: dict[tuple[Any, ...], Resource] = {}
        sums: dict[tuple[Any, ...], int] = {}
        for r in resources:
            if r.is_empty():
                continue
            key = r.key
            have = merged.get(key)
            if have is None:
                merged[key] = r
            elif r.type == "SCALAR":
                total = sums.get(key)
                sums[key] = (to_fixed(have.scalar) if total is None else total) + \
                    to_fixed(r.scalar)
            else:
                merged[key] = _plus(have, r)
        for key, total in sums.items():
            merged[key] = merged[key].revalued(scalar=from_fixed(total))
        return Resources(tuple(merged.values()))

    @staticmethod
    def parse(raw: Any) -> Resources:
        """From the JSON of a repeated ``Resource`` (a lone object counts as a list of one)."""
        if raw is None:
            return Resources()
        if isinstance(raw, dict):
            raw = [raw]
        if not isinstance(raw, list):
            raise ResourceError("Invalid resources: expected a list")
        return Resources.of([Resource.from_json(r) for r in raw])

    @staticmethod
    def from_scalars(scalars: Mapping[str, float], *, role: str = "*") -> Resources:
        return Resources.of(Resource.scalar_of(n, v, role=role) for n, v in scalars.items())

    def to_raw(self, *, refined: bool = True) -> list[dict[str, Any]]:
        return [r.to_json(refined=refined) for r in self.items]

    def to_legacy(self) -> dict[str, float | str]:
        """``model(Resources)`` of the legacy endpoints: cpus/gpus/mem/disk always present."""
        legacy: dict[str, float | str] = dict.fromkeys(("cpus", "gpus", "mem", "disk"), 0.0)
        legacy.update((r.name, r.legacy_value()) for r in self.flatten().items)
        return legacy

    def _indexed(self) -> dict[tuple[Any, ...], Resource]:
        return {r.key: r for r in self.items}

    def __add__(self, other: Resources) -> Resources:
        return Resources.of(self.items + other.items)

    def __sub__(self, other: Resources) -> Resources:
        """``Resources::subtract``: per addable value; what turns empty or negative goes."""
        index = self._indexed()
        for taken in other.items:
            if taken.key in index:
                index[taken.key] = _minus(index[taken.key], taken)
        return Resources.of(index.values())

    def contains(self, other: Resources) -> bool:
        index = self._indexed()
        return all(
            want.key in index and _covers(index[want.key], want)
            for want in Resources.of(other.items).items
        )

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.items)

    def __bool__(self) -> bool:
        return len(self.items) > 0

    def is_empty(self) -> bool:
        return not self.items

    def filter(self, predicate: Callable[[Resource], bool]) -> Resources:
        return Resources(tuple(r for r in self.items if predicate(r)))

    def names(self) -> set[str]:
        return {r.name for r in self.items}

    def scalar(self, name: str) -> float:
        """A scalar summed over reservations and allocations; 0.0 when absent."""
        return from_fixed(sum(to_fixed(r.scalar) for r in self.items
                              if r.name == name and r.type == "SCALAR"))

    def scalars(self) -> dict[str, float]:
        total: dict[str, int] = {}
        for r in self.items:
            if r.type == "SCALAR":
                total[r.name] = total.get(r.name, 0) + to_fixed(r.scalar)
        return {k: from_fixed(v) for k, v in total.items()}

    def ranges(self, name: str) -> tuple[Range, ...]:
        return coalesce(s for r in self.items if r.name == name and r.type == "RANGES"
                        for s in r.ranges)

    def unreserved(self) -> Resources:
        return self.filter(lambda r: not r.reservations)

    def reserved(self, role: str | None = None) -> Resources:
        """Reserved resources; given ``role``, those whose innermost reservation is for it."""
        return self.filter(lambda r: bool(r.reservations) and (role is None or r.role == role))

    def allocatable_to(self, role: str) -> Resources:
        """Unreserved, or reserved to ``role`` or an ancestor of it (hierarchical roles)."""
        lineage = {role}.union("/".join(role.split("/")[:i]) for i in range(1, role.count("/") + 1))
        return self.filter(lambda r: not r.reservations or r.role in lineage)

    def allocated_to(self, role: str) -> Resources:
        return Resources.of(r.reallocated(role) for r in self.items)

    def unallocated(self) -> Resources:
        return Resources.of(r.reallocated(None) for r in self.items)

    def flatten(self) -> Resources:
        """Quantities only: no reservation, allocation or details."""
        return Resources.of(
            r.with_(reservations=(), allocation_role=None, extra="") for r in self.items
        )

    def reserve(self, reservation: Reservation) -> Resources:
        return Resources.of(r.with_(reservations=r.reservations + (reservation,))
                            for r in self.items)

    def pop_reservation(self) -> Resources:
        return Resources.of(r.with_(reservations=r.reservations[:-1]) for r in self.items)

    def __str__(self) -> str:
        parts = []
        for r in self.items:
            role = f"({r.role})" if r.reservations else ""
            alloc = f"{{{r.allocation_role}}}" if r.allocation_role else ""
            parts.append(f"{r.name}{role}{alloc}:{r.legacy_value()}")
        return ";".join(parts)


def parse_resources_flag(spec: str, *, default_role: str = "*") -> Resources:
    """The agent's ``--resources``: a JSON array of ``Resource``, or ``name(role):value;...``."""
    try:
        loaded = json.loads(spec)
    except ValueError:
        loaded = None
    if isinstance(loaded, list):
        with_roles = [
            r if not isinstance(r, dict) or "role" in r or r.get("reservations")
            else {**r, "role": default_role}
            for r in loaded
        ]
        return Resources.parse(with_roles)
    out: list[Resource] = []
    for token in _tokens(spec, ";"):
        pair = _tokens(token, ":")
        if len(pair) != 2:
            raise ResourceError(f"Bad value for resources, missing or extra ':' in {token}")
        head = pair[0]
        if "(" in head:
            close = head.find(")")
            if close < head.find("("):
                raise ResourceError(f"Bad value for resources, mismatched parentheses in {token}")
            name, role = head[:head.find("(")].strip(), head[head.find("(") + 1:close].strip()
        else:
            name, role = head.strip(), default_role
        if not name:
            raise ResourceError("Empty resource name")
        try:
            kind, value = parse_value(pair[1])
        except ResourceError as e:
            raise ResourceError(
                f"Failed to parse resource {name} value {pair[1]} error {e}") from e
        if kind == "SCALAR":
            out.append(Resource.scalar_of(name, value, role=role))
        elif kind == "RANGES":
            out.append(Resource.ranges_of(name, value, role=role))
        elif kind == "SET":
            out.append(Resource.set_of(name, value, role=role))
        else:
            raise ResourceError(
                f"Bad type for resource {name} value {pair[1]} type {kind}")
    return Resources.of(out)
