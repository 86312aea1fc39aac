"""Resource arithmetic follows Mesos' rules: merge by key, saturating subtract, contains."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from k8sbridge.model import resources as r

ranges_st = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 20)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=6,
)


def _numbers(rngs: tuple[r.Range, ...]) -> set[int]:
    return {n for b, e in rngs for n in range(b, e + 1)}


@given(ranges_st)
def test_merging_ranges_keeps_every_number_and_sorts(rngs: list[r.Range]) -> None:
    merged = r.merge_ranges(rngs)
    assert _numbers(merged) == {n for b, e in rngs for n in range(b, e + 1)}
    for (_, e1), (b2, _) in zip(merged, merged[1:], strict=False):
        assert b2 > e1 + 1  # neither overlapping nor adjacent


@given(ranges_st, ranges_st)
def test_subtracting_ranges_is_set_difference(a: list[r.Range], b: list[r.Range]) -> None:
    left, right = r.merge_ranges(a), r.merge_ranges(b)
    assert _numbers(r.subtract_ranges(left, right)) == _numbers(left) - _numbers(right)
    assert r.ranges_contain(left, r.subtract_ranges(left, right))


scalars_st = st.dictionaries(
    st.sampled_from(["cpus", "mem", "disk", "gpus"]),
    st.integers(0, 10_000).map(lambda n: n / 1000),
    max_size=4,
)


@given(scalars_st, scalars_st)
def test_add_then_subtract_gives_back_the_original(
    a: dict[str, float], b: dict[str, float]
) -> None:
    ra, rb = r.Resources.from_scalars(a), r.Resources.from_scalars(b)
    total = ra + rb
    assert total.contains(ra) and total.contains(rb)
    assert (total - rb) == ra


def test_fixed_point_scalars_like_mesos() -> None:
    total = r.Resources.from_scalars({"cpus": 0.1}) + r.Resources.from_scalars({"cpus": 0.2})
    assert total.scalar("cpus") == 0.3
    assert total.contains(r.Resources.from_scalars({"cpus": 0.3}))


def test_subtraction_saturates_at_zero() -> None:
    left = r.Resources.from_scalars({"cpus": 1})
    assert (left - r.Resources.from_scalars({"cpus": 2})).is_empty()


def test_flag_syntax_with_reservations_ranges_and_sets() -> None:
    res = r.parse_resources_flag(
        "cpus:4;mem:8192;disk:40960;ports:[31000-32000,33000-34000];bugs:{a,b};cpus(marathon):2"
    )
    assert res.unreserved().scalar("cpus") == 4
    assert res.reserved("marathon").scalar("cpus") == 2
    assert res.scalar("cpus") == 6
    assert res.ranges("ports") == ((31000, 32000), (33000, 34000))
    assert res.allocatable_to("marathon").scalar("cpus") == 6
    assert res.allocatable_to("kubernetes").scalar("cpus") == 4
    assert res.allocatable_to("marathon/web").scalar("cpus") == 6  # sub-roles use the parent's


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("cpus", "want name:value", id="no-value"),
        pytest.param("cpus:lots", "non-numeric", id="not-a-number"),
        pytest.param("cpus:-1", "negative", id="negative"),
        pytest.param("ports:[5-", "unterminated range", id="open-range"),
        pytest.param("ports:[9-1]", "begin > end", id="inverted-range"),
    ],
)
def test_bad_flags_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(r.ResourceError, match=message):
        r.parse_resources_flag(spec)


def test_pre_and_post_refinement_forms_parse_to_the_same_value() -> None:
    pre = {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}, "role": "eng",
           "reservation": {"principal": "ops"}}
    post = {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2},
            "reservations": [{"type": "DYNAMIC", "role": "eng", "principal": "ops"}]}
    assert r.Resource.parse(pre) == r.Resource.parse(post)
    assert r.Resource.parse(pre).to_raw(refined=False) == pre
    assert r.Resource.parse(post).to_raw() == post


def test_allocation_info_round_trips_and_separates_keys() -> None:
    res = r.Resources.from_scalars({"cpus": 1}).allocated_to("kubernetes")
    raw = res.to_raw()
    assert raw == [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0},
                    "allocation_info": {"role": "kubernetes"}}]
    assert r.Resources.parse(raw) == res
    assert not r.Resources.from_scalars({"cpus": 1}).contains(res)


def test_attributes_flag_types() -> None:
    attrs = {a.name: a for a in r.parse_attributes_flag("rack:r1;level:10;keys:[1000-1500]")}
    assert attrs["rack"].to_raw() == {"name": "rack", "type": "TEXT", "text": {"value": "r1"}}
    assert attrs["level"].type == "SCALAR" and attrs["level"].value_str == "10"
    assert attrs["keys"].ranges == ((1000, 1500),)
    with pytest.raises(r.ResourceError, match="given twice"):
        r.parse_attributes_flag("rack:a;rack:b")


def test_legacy_state_shape() -> None:
    res = r.parse_resources_flag("cpus:2;mem:512;ports:[31000-32000]")
    assert res.to_legacy() == {"cpus": 2.0, "gpus": 0.0, "mem": 512.0, "disk": 0.0,
                               "ports": "[31000-32000]"}
