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

Layout: ``values.py`` (scalars, ranges, ``ResourceError``) < ``resource.py`` (one ``Resource``
and its reservations) < this module (the ``Resources`` bag and the agent flag syntax);
``attributes.py`` holds agent attributes. Every name is importable from here, as before.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from k8sbridge.model import resource as one
from k8sbridge.model import values
from k8sbridge.model.attributes import Attribute, RawAttribute, parse_attributes_flag
from k8sbridge.model.resource import (
    RawResource,
    Reservation,
    ReservationType,
    Resource,
    ValueType,
)
from k8sbridge.model.values import (
    Range,
    ResourceError,
    merge_ranges,
    ranges_contain,
    ranges_size,
    subtract_ranges,
)

__all__ = [
    "Attribute",
    "Range",
    "RawAttribute",
    "RawResource",
    "Reservation",
    "ReservationType",
    "Resource",
    "ResourceError",
    "Resources",
    "ValueType",
    "merge_ranges",
    "parse_attributes_flag",
    "parse_resources_flag",
    "ranges_contain",
    "ranges_size",
    "subtract_ranges",
]


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
                made: Resources = values.new_instance(Resources)
                _RS_ITEMS(made, given)
                return made
            return cls(given)
        merged: dict[tuple[Any, ...], Resource] = {}
        for res in given:
            if res.is_empty():
                continue
            prev = merged.get(res.key)
            merged[res.key] = res if prev is None else one.add(prev, res)
        return cls(tuple(merged.values()))

    @classmethod
    def parse(cls, raw: Iterable[Mapping[str, Any]] | Mapping[str, Any] | None) -> Resources:
        if raw is None:
            return cls()
        if isinstance(raw, Mapping):  # a single object where a list is expected: Mesos accepts
            raw = [raw]
        # ``Resource.parse`` inlined (this is the OFFERS hot loop): fast paths, else general.
        plain = one.parse_plain_scalar
        other = one.parse_plain_ranges_or_set
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
                by_key[res.key] = one.subtract(mine, res)
        return Resources.of(by_key.values())

    def contains(self, other: Resources) -> bool:
        by_key = {r.key: r for r in self.items}
        for res in other.items:
            mine = by_key.get(res.key)
            if mine is None or not one.contains(mine, res):
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
        return values.fix_scalar(
            sum(r.scalar for r in self.items if r.name == name and r.type == "SCALAR")
        )

    def scalars(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for res in self.items:
            if res.type == "SCALAR":
                out[res.name] = values.fix_scalar(out.get(res.name, 0.0) + res.scalar)
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
        return self.filter(lambda r: not r.reservations or one.is_ancestor_or_self(r.role, role))

    def allocated_to(self, role: str) -> Resources:
        """The same resources with ``allocation_info.role`` set (as offered to ``role``)."""
        return Resources.of(
            one.make(r.name, r.type, r.scalar, r.ranges, r.items, r.reservations, role, r.extra)
            for r in self.items
        )

    def unallocated(self) -> Resources:
        return Resources.of(
            one.make(r.name, r.type, r.scalar, r.ranges, r.items, r.reservations, None, r.extra)
            for r in self.items
        )

    def flatten(self) -> Resources:
        """Drop reservations and allocation info: quantities only (totals, DRF shares)."""
        return Resources.of(
            one.make(r.name, r.type, r.scalar, r.ranges, r.items, (), None, "")
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


_RS_ITEMS = values.slot_setter(Resources, "items")


# --------------------------------------------------------------------------------------------
# Agent flag syntax

_FLAG_ITEM = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(?:\(([^)]*)\))?\s*:\s*(.+?)\s*$")
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
            ranges = values.parse_range_list(value, what=name)
            out.append(Resource.ranges_of(name, ranges, role=role))
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
