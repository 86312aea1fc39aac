"""The sorters alone: DRF order, weights, hierarchical roles, activity, random order."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.kernel import sorter as sorting

TOTAL = {"cpus": 100.0, "mem": 1000.0}


def drf(*clients: str) -> sorting.DrfSorter:
    s = sorting.DrfSorter()
    s.update_total(TOTAL)
    for c in clients:
        s.add(c)
        s.activate(c)
    return s


def test_lowest_dominant_share_comes_first() -> None:
    s = drf("a", "b", "c")
    s.allocated("a", {"cpus": 10.0})  # 0.10
    s.allocated("b", {"mem": 50.0})  # 0.05
    s.allocated("c", {"cpus": 1.0, "mem": 300.0})  # 0.30 (mem dominates)
    assert s.sort() == ["b", "a", "c"]
    assert s.share("c") == pytest.approx(0.3)


def test_ties_break_on_grant_count_then_name() -> None:
    s = drf("b", "a", "c")
    assert s.sort() == ["a", "b", "c"]
    s.allocated("a", {"cpus": 10.0})
    s.allocated("b", {"cpus": 5.0})
    s.allocated("b", {"cpus": 5.0})
    # equal shares (0.1); a holds one grant, b two
    assert s.sort() == ["c", "a", "b"]


def test_unallocated_lowers_share_again() -> None:
    s = drf("a", "b")
    s.allocated("a", {"cpus": 50.0})
    s.allocated("b", {"cpus": 10.0})
    assert s.sort() == ["b", "a"]
    s.unallocated("a", {"cpus": 45.0})
    assert s.sort() == ["a", "b"]
    assert s.allocation("a") == {"cpus": 5.0}


def test_weights_divide_the_share() -> None:
    s = drf("a", "b")
    s.allocated("a", {"cpus": 30.0})  # 0.3 / 3 = 0.1
    s.allocated("b", {"cpus": 20.0})  # 0.2 / 1 = 0.2
    assert s.sort() == ["b", "a"]
    s.update_weights({"a": 3.0})
    assert s.sort() == ["a", "b"]
    assert s.share("a") == pytest.approx(0.1)


def test_inactive_clients_are_not_sorted() -> None:
    s = drf("a", "b")
    s.deactivate("a")
    assert s.sort() == ["b"]
    assert not s.is_active("a")
    s.activate("a")
    assert s.sort() == ["a", "b"]


def test_subroles_aggregate_into_their_parent() -> None:
    # eng/{x,y} hold 0.2 together; ops holds 0.15: ops first although eng/x alone is lower.
    s = drf("eng/x", "eng/y", "ops")
    s.allocated("eng/x", {"cpus": 5.0})
    s.allocated("eng/y", {"cpus": 15.0})
    s.allocated("ops", {"cpus": 15.0})
    assert s.sort() == ["ops", "eng/x", "eng/y"]
    assert s.subtree_allocation("eng") == {"cpus": 20.0}


def test_parent_weight_applies_to_the_whole_subtree() -> None:
    s = drf("eng/x", "eng/y", "ops")
    s.allocated("eng/x", {"cpus": 5.0})
    s.allocated("eng/y", {"cpus": 15.0})
    s.allocated("ops", {"cpus": 15.0})
    s.update_weights({"eng": 2.0})  # 0.2 / 2 = 0.1 < 0.15
    assert s.sort() == ["eng/x", "eng/y", "ops"]


def test_a_role_with_subroles_competes_through_a_virtual_leaf() -> None:
    s = drf("eng", "eng/x")
    s.allocated("eng", {"cpus": 20.0})
    s.allocated("eng/x", {"cpus": 10.0})
    assert s.sort() == ["eng/x", "eng"]
    s.allocated("eng/x", {"cpus": 20.0})
    assert s.sort() == ["eng", "eng/x"]


def test_removing_a_client_prunes_its_branch() -> None:
    s = drf("eng/x", "ops")
    s.allocated("eng/x", {"cpus": 10.0})
    s.remove("eng/x")
    assert s.sort() == ["ops"]
    assert s.subtree_allocation("eng") == {}
    assert not s.contains("eng/x")
    with pytest.raises(sorting.SorterError):
        s.share("eng/x")


def test_total_is_the_denominator() -> None:
    s = drf("a", "b")
    s.allocated("a", {"cpus": 10.0})
    s.allocated("b", {"mem": 200.0})
    assert s.sort() == ["a", "b"]  # 0.1 vs 0.2
    s.update_total({"cpus": 20.0, "mem": 1000.0})
    assert s.sort() == ["b", "a"]  # 0.5 vs 0.2


def test_bad_calls_raise_sorter_errors() -> None:
    s = drf("a")
    with pytest.raises(sorting.SorterError):
        s.add("a")
    with pytest.raises(sorting.SorterError):
        s.add("")
    with pytest.raises(sorting.SorterError):
        s.activate("nope")
    with pytest.raises(sorting.SorterError):
        s.update_weights({"a": 0.0})
    with pytest.raises(sorting.SorterError):
        sorting.make_sorter("fifo", rng=random.Random(1))


def test_random_sorter_is_seeded_and_weighted() -> None:
    def firsts(seed: int) -> Counter[str]:
        s = sorting.make_sorter("random", rng=random.Random(seed))
        for c in ("a", "b"):
            s.add(c)
            s.activate(c)
        s.update_weights({"a": 3.0})
        return Counter(s.sort()[0] for _ in range(2000))

    counts = firsts(7)
    assert counts == firsts(7)  # reproducible
    assert 0.65 < counts["a"] / 2000 < 0.85  # weight 3:1 -> a first 75% of the time


def test_random_sorter_skips_inactive_and_keeps_hierarchy_contiguous() -> None:
    s = sorting.make_sorter("random", rng=random.Random(3))
    for c in ("eng/x", "eng/y", "ops", "idle"):
        s.add(c)
        s.activate(c)
    s.deactivate("idle")
    for _ in range(50):
        order = s.sort()
        assert sorted(order) == ["eng/x", "eng/y", "ops"]
        i = order.index("eng/x")
        j = order.index("eng/y")
        assert abs(i - j) == 1  # a subtree is flattened as one block


# -- the incremental DRF order equals a from-scratch sort -----------------------------------

PATHS = ["a", "b", "a/x", "a/y", "a/x/deep", "c/z"]
sorter_op = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(PATHS)),
    st.tuples(st.just("remove"), st.sampled_from(PATHS)),
    st.tuples(st.just("activate"), st.sampled_from(PATHS)),
    st.tuples(st.just("deactivate"), st.sampled_from(PATHS)),
    st.tuples(st.just("allocated"), st.sampled_from(PATHS), st.integers(1, 40)),
    st.tuples(st.just("unallocated"), st.sampled_from(PATHS), st.integers(1, 40)),
    st.tuples(st.just("weights"), st.sampled_from(PATHS + ["c"]), st.integers(1, 4)),
    st.tuples(st.just("total"), st.integers(50, 200)),
)


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(sorter_op, max_size=60))
def test_incremental_drf_order_matches_a_full_sort(ops: list[tuple[object, ...]]) -> None:
    s = sorting.DrfSorter()
    s.update_total(TOTAL)
    for op in ops:
        kind, path = op[0], str(op[1])
        known = s.contains(path)
        if kind == "add" and not known:
            s.add(path)
        elif kind == "remove" and known:
            s.remove(path)
        elif kind == "activate" and known:
            s.activate(path)
        elif kind == "deactivate" and known:
            s.deactivate(path)
        elif kind == "allocated" and known:
            s.allocated(path, {"cpus": float(op[2]) / 4, "mem": float(op[2])})  # type: ignore[arg-type]
        elif kind == "unallocated" and known:
            s.unallocated(path, {"cpus": float(op[2]) / 2})  # type: ignore[arg-type]
        elif kind == "weights":
            s.update_weights({path: float(op[2])})  # type: ignore[arg-type]
        elif kind == "total":
            s.update_total({"cpus": float(op[1]), "mem": 1000.0})  # type: ignore[arg-type]
        assert s.sort() == s._sort_from_scratch() == list(s.iterate())
