"""The performance paths of ``model.resources`` give exactly what the straightforward code gives.

Why: OFFERS decoding (issue 3 benchmark) got fast paths -- already-merged ranges kept as is,
already-normalised bags kept as is, slot-level constructors, fast TEXT/SCALAR attributes,
interned reservations. Each is compared here with a reference written the plain way (the code
as it was before), over generated input including the awkward cases (unsorted, adjacent and
inverted ranges, duplicates, empties, ints vs floats, -0.0, NaN).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.model import attributes, values
from k8sbridge.model import resource as one
from k8sbridge.model import resources as r


def reference_merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for begin, end in sorted(ranges):
        if begin > end:
            raise r.ResourceError("begin > end")
        if out and begin <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([begin, end])
    return tuple((b, e) for b, e in out)


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - the exception type is the outcome compared
        return type(e)


ranges = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(ranges)
def test_merge_ranges_equals_sorting_and_coalescing(given_ranges: list[tuple[int, int]]) -> None:
    expected = outcome(reference_merge, given_ranges)
    assert outcome(r.merge_ranges, given_ranges) == expected
    assert outcome(r.merge_ranges, tuple(given_ranges)) == expected
    assert outcome(r.merge_ranges, iter(given_ranges)) == expected


def test_merge_ranges_normalises_odd_input_like_before() -> None:
    assert r.merge_ranges([[1, 2], [4, 5]]) == ((1, 2), (4, 5))  # type: ignore[list-item]
    assert r.merge_ranges([(5, 6), (1, 2)]) == ((1, 2), (5, 6))
    assert r.merge_ranges([(1, 2), (3, 4)]) == ((1, 4),)  # adjacent
    with pytest.raises(r.ResourceError):
        r.merge_ranges([(1, 2), (7, 3)])
    with pytest.raises(ValueError):
        r.merge_ranges([(1, 2, 3)])  # type: ignore[list-item]


roles = st.sampled_from(["*", "k8s", "eng"])


@st.composite
def resource(draw: st.DrawFn) -> r.Resource:
    kind = draw(st.sampled_from(["SCALAR", "RANGES", "SET"]))
    name = draw(st.sampled_from(["cpus", "mem", "ports"]))
    reservations = () if (role := draw(roles)) == "*" else (r.Reservation("STATIC", role),)
    return r.Resource(
        name=name,
        type=kind,
        scalar=draw(st.sampled_from([0.0, 0.5, 1.0, 2.25])) if kind == "SCALAR" else 0.0,
        ranges=reference_merge(draw(st.lists(st.tuples(st.integers(0, 9), st.integers(9, 12)),
                                             max_size=2))) if kind == "RANGES" else (),
        items=frozenset(draw(st.sets(st.sampled_from("ab")))) if kind == "SET" else frozenset(),
        reservations=reservations,
        allocation_role=draw(st.sampled_from([None, "k8s"])),
    )


def reference_of(items: list[r.Resource]) -> tuple[r.Resource, ...]:
    merged: dict[tuple[Any, ...], r.Resource] = {}
    for res in items:
        if res.is_empty():
            continue
        prev = merged.get(res.key)
        if prev is None:
            merged[res.key] = res
        elif res.type == "SCALAR":
            total = values.fix_scalar(prev.scalar + res.scalar)
            merged[res.key] = dataclasses.replace(prev, scalar=total)
        elif res.type == "RANGES":
            merged[res.key] = dataclasses.replace(
                prev, ranges=reference_merge(list(prev.ranges + res.ranges))
            )
        else:
            merged[res.key] = dataclasses.replace(prev, items=prev.items | res.items)
    return tuple(merged.values())


@settings(max_examples=300, deadline=None)
@given(st.lists(resource(), max_size=7))
def test_resources_of_equals_merging_by_key(items: list[r.Resource]) -> None:
    expected = reference_of(items)
    bag = r.Resources.of(items)
    assert type(bag) is r.Resources and bag.items == expected
    assert r.Resources.of(iter(items)).items == expected
    assert r.Resources.parse([x.to_raw() for x in items]).items == expected


def test_fast_constructors_build_ordinary_dataclass_values() -> None:
    made = one.make("ports", "RANGES", 0.0, ((1, 2),), frozenset(), (), "k8s", "")
    plain = r.Resource(name="ports", type="RANGES", ranges=((1, 2),), allocation_role="k8s")
    assert made == plain and hash(made) == hash(plain) and repr(made) == repr(plain)
    assert dataclasses.replace(made, allocation_role=None).allocation_role is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.name = "x"  # type: ignore[misc]
    attr = attributes._attribute("rack", "TEXT", "r1", 0.0, (), frozenset())
    assert attr == r.Attribute(name="rack", type="TEXT", text="r1") and hash(attr) == hash(
        r.Attribute(name="rack", type="TEXT", text="r1")
    )
    assert [f.name for f in dataclasses.fields(r.Resource)] == [
        "name", "type", "scalar", "ranges", "items", "reservations", "allocation_role", "extra"
    ]
    assert [f.name for f in dataclasses.fields(r.Attribute)] == [
        "name", "type", "text", "scalar", "ranges", "items"
    ]


def test_the_scalar_fast_path_treats_ints_and_signed_zeros_like_the_general_parser() -> None:
    for first, second in [(10**20, 1e20), (1e20, 10**20), (0.0, -0.0), (-0.0, 0.0), (3, 3.0)]:
        for value in (first, second):
            raw = {"name": "cpus", "type": "SCALAR", "scalar": {"value": value}}
            got = r.Resource.parse(raw)
            want = r.Resource._parse_general(raw)
            assert repr(got) == repr(want), (first, second)


def test_interned_reservations_are_shared_and_the_cache_is_bounded() -> None:
    raw = {"type": "STATIC", "role": "k8s"}
    assert r.Reservation.parse(raw) is r.Reservation.parse(dict(raw))
    for i in range(one._CACHE_SIZE + 10):
        r.Reservation.parse({"type": "DYNAMIC", "role": f"role-{i}"})
    assert 0 < len(one._RESERVATIONS) <= one._CACHE_SIZE
    odd = {"name": "mem", "type": "SCALAR", "scalar": {"value": 1.0}, "allocation_info":
           {"role": ["not", "hashable"]}}
    assert r.Resource.parse(odd) == r.Resource._parse_general(odd)


attribute_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 10**21),
    st.sampled_from(["", "r1", "linux", "0"]),
    st.booleans(),
    st.none(),
    st.just([1]),
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["rack", "level"]),
    atype=st.sampled_from(["TEXT", "SCALAR", "RANGES", "SET", "BOGUS"]),
    body=st.sampled_from(["text", "scalar", "ranges"]),
    value=attribute_values,
)
def test_attribute_parse_equals_the_plain_parser(
    name: str, atype: str, body: str, value: Any
) -> None:
    raw = {"name": name, "type": atype, body: {"value": value}}
    for _ in range(2):  # the same twice: no state carried between parses
        got = outcome(r.Attribute.parse, raw)
        want = outcome(r.Attribute._parse_general, name, atype, raw)
        assert repr(got) == repr(want)


@settings(max_examples=200, deadline=None)
@given(
    role=st.one_of(st.sampled_from(["k8s", "eng", ""]), st.integers(0, 3)),
    rtype=st.sampled_from(["STATIC", "DYNAMIC", None]),
    principal=st.sampled_from([None, "ops"]),
)
def test_reservations_parse_as_plain_dataclasses(role: Any, rtype: Any, principal: Any) -> None:
    raw: dict[str, Any] = {"role": role}
    if rtype is not None:
        raw["type"] = rtype
    if principal is not None:
        raw["principal"] = principal
    expected: Any
    if not isinstance(role, str) or not role:
        expected = r.ResourceError
    else:
        expected = r.Reservation(
            type=rtype or ("DYNAMIC" if principal else "STATIC"), role=role, principal=principal
        )
    assert outcome(r.Reservation.parse, raw) == expected
    legacy = {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "role": role}
    parsed = outcome(r.Resource.parse, legacy)
    if not role:  # a falsy role is "*"
        assert parsed.reservations == ()
    else:
        assert parsed.reservations == (r.Reservation(type="STATIC", role=role),)
    assert not math.isnan(parsed.scalar)


bounds = st.one_of(st.integers(-2, 40), st.booleans(), st.just(1.5), st.just("7"), st.none())
spans = st.fixed_dictionaries({}, optional={"begin": bounds, "end": bounds})
members = st.one_of(st.sampled_from(["a", "b", ""]), st.integers(0, 2), st.none())
other_raws = st.fixed_dictionaries(
    {"name": st.sampled_from(["ports", "zones", ""]), "type": st.sampled_from(["RANGES", "SET"])},
    optional={
        "ranges": st.one_of(
            st.fixed_dictionaries({}, optional={"range": st.one_of(
                st.lists(st.one_of(spans, st.just([1, 2])), max_size=4), st.just({}))}),
            st.none(),
        ),
        "set": st.one_of(
            st.fixed_dictionaries({}, optional={"item": st.one_of(
                st.lists(members, max_size=4), st.just("ab"))}),
            st.none(),
        ),
        "allocation_info": st.one_of(
            st.fixed_dictionaries({}, optional={"role": st.sampled_from(["k8s", "a/b"])}),
            st.none(),
            st.just("k8s"),
        ),
        "role": st.sampled_from(["*", "k8s"]),
        "disk": st.just({"persistence": {"id": "v"}}),
    },
)


@settings(max_examples=400, deadline=None)
@given(raw=other_raws)
def test_the_ranges_and_set_fast_path_equals_the_general_parser(raw: dict[str, Any]) -> None:
    want = outcome(r.Resource._parse_general, raw)
    assert outcome(r.Resource.parse, raw) == want
    bag = outcome(r.Resources.parse, [raw])
    if isinstance(want, r.Resource):
        assert bag == r.Resources.of([want])
    else:
        assert bag == want


def test_plain_ports_and_sets_take_the_fast_path() -> None:
    ports = {"name": "ports", "type": "RANGES", "allocation_info": {"role": "k8s"},
             "ranges": {"range": [{"begin": 31000, "end": 31005}, {"begin": 31006, "end": 31010}]}}
    fast = one.parse_plain_ranges_or_set(ports)
    assert fast is not None and fast == r.Resource._parse_general(ports)
    assert fast.ranges == ((31000, 31010),) and fast.allocation_role == "k8s"
    zones = {"name": "zones", "type": "SET", "set": {"item": ["b", "a", "b"]}}
    fast = one.parse_plain_ranges_or_set(zones)
    assert fast is not None and fast.items == frozenset({"a", "b"})
    assert one.parse_plain_ranges_or_set({**zones, "role": "k8s"}) is None  # reserved: general
