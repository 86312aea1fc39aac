"""Property tests of resource values across kinds, reservations and allocation roles (issue 3)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.model import resources as r

roles = st.sampled_from(["*", "k8s", "eng", "eng/prod"])
alloc = st.sampled_from([None, "k8s", "eng"])


@st.composite
def resource(draw: st.DrawFn) -> r.Resource:
    kind = draw(st.sampled_from(["SCALAR", "RANGES", "SET"]))
    role = draw(roles)
    if kind == "SCALAR":
        res = r.Resource.scalar_of(
            draw(st.sampled_from(["cpus", "mem", "disk"])),
            draw(st.integers(1, 10_000)) / 1000,
            role=role,
        )
    elif kind == "RANGES":
        spans = draw(st.lists(st.tuples(st.integers(1, 200), st.integers(0, 20)), min_size=1,
                              max_size=4))
        res = r.Resource.ranges_of("ports", [(b, b + n) for b, n in spans], role=role)
    else:
        res = r.Resource.set_of(
            "zones", draw(st.sets(st.sampled_from("abcdef"), min_size=1)), role=role
        )
    if draw(st.booleans()) and role != "*":
        res = r.Resource(**{  # a dynamic reservation on top of the static one
            **{f: getattr(res, f) for f in r.Resource.__dataclass_fields__},
            "reservations": res.reservations
            + (r.Reservation(type="DYNAMIC", role=role + "/sub", principal="p"),),
        })
    a = draw(alloc)
    if a is not None:
        res = r.Resources.of([res]).allocated_to(a).items[0]
    return res


bags = st.lists(resource(), max_size=8).map(r.Resources.of)


@settings(max_examples=100, deadline=None)
@given(bags, bags)
def test_a_sum_contains_both_parts_and_is_commutative(a: r.Resources, b: r.Resources) -> None:
    total = a + b
    assert total.contains(a) and total.contains(b)
    assert (b + a).contains(total) and total.contains(b + a)


@settings(max_examples=100, deadline=None)
@given(bags, bags)
def test_a_difference_is_contained_and_scalars_give_back(a: r.Resources, b: r.Resources) -> None:
    assert a.contains(a - b)
    assert ((a + b) - b).scalars() == a.scalars()
    assert (a - a).is_empty()


@settings(max_examples=100, deadline=None)
@given(bags)
def test_wire_round_trip(a: r.Resources) -> None:
    assert r.Resources.parse(a.to_raw()) == a


@settings(max_examples=100, deadline=None)
@given(bags)
def test_flatten_keeps_quantities_and_drops_roles(a: r.Resources) -> None:
    flat = a.flatten()
    assert flat.scalars() == a.scalars()
    assert flat.ranges("ports") == a.ranges("ports")
    assert all(not x.reservations and x.allocation_role is None for x in flat)


@settings(max_examples=100, deadline=None)
@given(bags, roles)
def test_allocatable_to_a_role_is_a_subset_of_unreserved_or_its_ancestors(
        a: r.Resources, role: str
) -> None:
    part = a.allocatable_to(role)
    assert a.contains(part)
    for x in part:
        assert not x.reservations or role == x.role or role.startswith(x.role + "/")
