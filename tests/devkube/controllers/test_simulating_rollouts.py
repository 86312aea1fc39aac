"""Property test of the rollout arithmetic: for any size and strategy, and pods that become
available in any order and pace, a rolling update never exceeds maxSurge, never drops below
``replicas - maxUnavailable`` available pods, and always finishes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.devkube.controllers import rollout
from k8sbridge.devkube.controllers.rollout import ReplicaSetCounts

int_or_percent = st.one_of(st.integers(min_value=0, max_value=6),
                           st.integers(min_value=0, max_value=100).map(lambda p: f"{p}%"))


@settings(max_examples=200, deadline=None)
@given(replicas=st.integers(min_value=0, max_value=30), surge_raw=int_or_percent,
       unavail_raw=int_or_percent,
       # pods become available at some pace, sometimes not at all for a while, never forever
       paces=st.lists(st.integers(min_value=0, max_value=3), min_size=1,
                      max_size=10).filter(any))
def test_rolling_update_invariants(replicas: int, surge_raw: object, unavail_raw: object,
                                   paces: list[int]) -> None:
    surge, unavail = rollout.resolve_fenceposts(max_surge=surge_raw,
                                                max_unavailable=unavail_raw, replicas=replicas)
    old = ReplicaSetCounts(name="old", replicas=replicas, available=replicas, created=1.0)
    new = ReplicaSetCounts(name="new", replicas=0, available=0, created=2.0)
    for step in range(500):
        grow = rollout.new_rs_replicas(replicas=replicas, max_surge=surge, new_rs=new,
                                       all_rs=[old, new])
        new = ReplicaSetCounts(name="new", replicas=grow, available=min(new.available, grow),
                               created=2.0)
        assert old.replicas + new.replicas <= replicas + surge
        # some of the new pods become available (possibly none this round)
        pace = paces[step % len(paces)]
        new = ReplicaSetCounts(name="new", replicas=new.replicas,
                               available=min(new.replicas, new.available + pace), created=2.0)
        down = rollout.scale_down_old(replicas=replicas, max_unavailable=unavail,
                                      new_rs=new, old_rs=[old])
        if "old" in down:
            assert down["old"] < old.replicas
            old = ReplicaSetCounts(name="old", replicas=down["old"],
                                   available=min(old.available, down["old"]), created=1.0)
        assert old.available + new.available >= min(replicas - unavail, replicas)
        if new.replicas == replicas and new.available == replicas and old.replicas == 0:
            return
    raise AssertionError("rollout did not finish")
