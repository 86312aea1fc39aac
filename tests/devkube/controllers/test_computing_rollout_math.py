"""Pure parts of the controllers: hash, selectors, rollout arithmetic, deletion ranking, taints."""

from __future__ import annotations

import datetime

import pytest

from k8sbridge.devkube.controllers import hashing, pods, rollout, selectors, taints
from k8sbridge.devkube.controllers.rollout import ReplicaSetCounts

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def _ts(seconds_ago: float) -> str:
    return pods.format_time(NOW - datetime.timedelta(seconds=seconds_ago))


# -- pod-template-hash -------------------------------------------------------------------


def test_template_hash_is_stable_and_ignores_its_own_label() -> None:
    tpl = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c"}]}}
    h = hashing.pod_template_hash(tpl)
    assert h == hashing.pod_template_hash({"spec": tpl["spec"], "metadata": tpl["metadata"]})
    labelled = {"metadata": {"labels": {"app": "a", "pod-template-hash": h}},
                "spec": tpl["spec"]}
    assert hashing.pod_template_hash(labelled) == h
    assert set(h) <= set(hashing.SAFE_ALPHABET)
    assert 1 <= len(h) <= 10


def test_template_hash_changes_with_template_and_collision_count() -> None:
    a = {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}
    b = {"spec": {"containers": [{"name": "c", "image": "x:2"}]}}
    assert hashing.pod_template_hash(a) != hashing.pod_template_hash(b)
    assert hashing.pod_template_hash(a) != hashing.pod_template_hash(a, collision_count=1)


def test_fnv32a_matches_reference_vectors() -> None:
    assert hashing.fnv32a(b"") == 0x811C9DC5
    assert hashing.fnv32a(b"a") == 0xE40C292C
    assert hashing.fnv32a(b"foobar") == 0xBF9CF968


# -- label selectors ---------------------------------------------------------------------


def test_selector_match_labels_and_expressions() -> None:
    sel = selectors.parse_selector({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "team", "operator": "Exists"},
        ]})
    assert sel.matches({"app": "web", "tier": "a", "team": "x"})
    assert sel.matches({"app": "web", "tier": "b", "team": "x", "env": "dev"})
    assert not sel.matches({"app": "web", "tier": "c", "team": "x"})
    assert not sel.matches({"app": "web", "tier": "a", "team": "x", "canary": "1"})
    assert not sel.matches({"app": "web", "tier": "a", "team": "x", "env": "prod"})
    assert not sel.matches({"app": "web", "tier": "a"})
    assert not sel.matches(None)


def test_empty_selector_selects_everything_and_none_nothing() -> None:
    assert selectors.parse_selector({}).matches({"any": "thing"})
    assert not selectors.parse_selector(None).matches({})


@pytest.mark.parametrize("raw", [
    "app=web",
    {"matchLabels": ["app"]},
    {"matchExpressions": [{"key": "a", "operator": "Near", "values": ["x"]}]},
    {"matchExpressions": [{"key": "a", "operator": "In"}]},
    {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
    {"matchExpressions": [{"operator": "Exists"}]},
])
def test_bad_selectors_are_rejected_clearly(raw: object) -> None:
    with pytest.raises(selectors.SelectorError):
        selectors.parse_selector(raw)


# -- rollout arithmetic ------------------------------------------------------------------


@pytest.mark.parametrize(("value", "total", "up", "expected"), [
    (3, 10, True, 3), ("25%", 10, True, 3), ("25%", 10, False, 2), ("0%", 7, True, 0),
    ("100%", 4, False, 4), ("2", 5, True, 2), ("33%", 3, True, 1), ("33%", 3, False, 0),
])
def test_int_or_percent(value: object, total: int, up: bool, expected: int) -> None:
    assert rollout.resolve_int_or_percent(value, total=total, round_up=up) == expected


@pytest.mark.parametrize("value", [-1, "abc", "-5%", "x%", None, True, 1.5])
def test_int_or_percent_rejects_nonsense(value: object) -> None:
    with pytest.raises(rollout.StrategyError):
        rollout.resolve_int_or_percent(value, total=10, round_up=True)


def test_fenceposts_never_both_zero() -> None:
    assert rollout.resolve_fenceposts(max_surge=0, max_unavailable=0, replicas=3) == (0, 1)
    assert rollout.resolve_fenceposts(max_surge="25%", max_unavailable="25%", replicas=3) == (1, 0)
    assert rollout.resolve_fenceposts(max_surge="25%", max_unavailable="25%", replicas=10) == (3, 2)


def test_new_rs_grows_within_surge() -> None:
    old = ReplicaSetCounts(name="old", replicas=4, available=4)
    new = ReplicaSetCounts(name="new", replicas=0, available=0)
    assert rollout.new_rs_replicas(replicas=4, max_surge=1, new_rs=new, all_rs=[old, new]) == 1
    # at the ceiling: no growth
    new1 = ReplicaSetCounts(name="new", replicas=1, available=0)
    assert rollout.new_rs_replicas(replicas=4, max_surge=1, new_rs=new1, all_rs=[old, new1]) == 1
    # no old sets: straight to replicas; scale-down of the new set is to replicas
    assert rollout.new_rs_replicas(replicas=10, max_surge=3, new_rs=None, all_rs=[]) == 10
    big = ReplicaSetCounts(name="new", replicas=10, available=10)
    assert rollout.new_rs_replicas(replicas=2, max_surge=1, new_rs=big, all_rs=[big]) == 2


def test_old_rs_scale_down_respects_max_unavailable() -> None:
    old = ReplicaSetCounts(name="old", replicas=4, available=4)
    new = ReplicaSetCounts(name="new", replicas=1, available=0)
    # new pod not available yet, maxUnavailable 0: old may not shrink
    assert rollout.scale_down_old(replicas=4, max_unavailable=0, new_rs=new, old_rs=[old]) == {}
    # new pod available: one old pod may go
    new_ok = ReplicaSetCounts(name="new", replicas=1, available=1)
    assert rollout.scale_down_old(
        replicas=4, max_unavailable=0, new_rs=new_ok, old_rs=[old]) == {"old": 3}
    # maxUnavailable 2 lets two go even before the new pod is up
    assert rollout.scale_down_old(
        replicas=4, max_unavailable=2, new_rs=new, old_rs=[old]) == {"old": 2}


def test_old_rs_unhealthy_pods_go_first_and_oldest_set_first() -> None:
    older = ReplicaSetCounts(name="a", replicas=2, available=2, created=1.0)
    newer_old = ReplicaSetCounts(name="b", replicas=2, available=0, created=2.0)
    new = ReplicaSetCounts(name="c", replicas=0, available=0, created=3.0)
    got = rollout.scale_down_old(replicas=4, max_unavailable=2, new_rs=new,
                                 old_rs=[newer_old, older])
    # the 2 unavailable pods of "b" go first (they are not counted as available anyway)
    assert got == {"b": 0}
    # with all available, the oldest set shrinks first
    a = ReplicaSetCounts(name="a", replicas=2, available=2, created=1.0)
    b = ReplicaSetCounts(name="b", replicas=2, available=2, created=2.0)
    assert rollout.scale_down_old(replicas=4, max_unavailable=1, new_rs=new,
                                  old_rs=[b, a]) == {"a": 1}


def test_rollout_simulation_never_breaks_the_fenceposts() -> None:
    """Drive a full rollout with instantly-ready pods; check surge/unavailable at every step."""
    for replicas, surge_raw, unavail_raw in [(4, 1, 0), (10, "25%", "25%"), (3, 0, 1),
                                             (5, "50%", "0%"), (1, 1, 0)]:
        surge, unavail = rollout.resolve_fenceposts(
            max_surge=surge_raw, max_unavailable=unavail_raw, replicas=replicas)
        old = ReplicaSetCounts(name="old", replicas=replicas, available=replicas, created=1.0)
        new = ReplicaSetCounts(name="new", replicas=0, available=0, created=2.0)
        for _ in range(100):
            n = rollout.new_rs_replicas(replicas=replicas, max_surge=surge, new_rs=new,
                                        all_rs=[old, new])
            new = ReplicaSetCounts(name="new", replicas=n, available=new.available, created=2.0)
            assert old.replicas + new.replicas <= replicas + surge
            # pods become available
            new = ReplicaSetCounts(name="new", replicas=n, available=n, created=2.0)
            down = rollout.scale_down_old(replicas=replicas, max_unavailable=unavail,
                                          new_rs=new, old_rs=[old])
            if "old" in down:
                old = ReplicaSetCounts(name="old", replicas=down["old"],
                                       available=down["old"], created=1.0)
            assert old.available + new.available >= replicas - unavail
            if new.replicas == replicas and old.replicas == 0:
                break
        else:
            pytest.fail(f"rollout did not finish for {(replicas, surge_raw, unavail_raw)}")


def test_complete_matches_rollout_status_rules() -> None:
    assert rollout.is_complete(replicas=3, updated=3, total=3, available=3,
                               generation=2, observed_generation=2)
    assert not rollout.is_complete(replicas=3, updated=3, total=4, available=3,
                                   generation=2, observed_generation=2)
    assert not rollout.is_complete(replicas=3, updated=3, total=3, available=3,
                                   generation=3, observed_generation=2)


# -- deletion ranking --------------------------------------------------------------------


def _pod(name: str, *, node: str = "", phase: str = "Running", ready_ago: float | None = None,
         created_ago: float = 100.0, restarts: int = 0, cost: int | None = None) -> dict:
    conditions = []
    if ready_ago is not None:
        conditions.append({"type": "Ready", "status": "True",
                           "lastTransitionTime": _ts(ready_ago)})
    meta: dict = {"name": name, "uid": name, "creationTimestamp": _ts(created_ago)}
    if cost is not None:
        meta["annotations"] = {pods.DELETION_COST_ANNOTATION: str(cost)}
    return {"metadata": meta, "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"restartCount": restarts}]}}


def test_deletion_ranking_follows_the_replicaset_controller() -> None:
    unscheduled = _pod("unscheduled", phase="Pending")
    pending = _pod("pending", node="n1", phase="Pending")
    not_ready = _pod("notready", node="n2")
    ready_new = _pod("readynew", node="n3", ready_ago=5)
    ready_old = _pod("readyold", node="n4", ready_ago=500)
    ranked = pods.rank_for_deletion([ready_old, ready_new, not_ready, pending, unscheduled])
    assert [p["metadata"]["name"] for p in ranked] == [
        "unscheduled", "pending", "notready", "readynew", "readyold"]


def test_deletion_ranking_tie_breaks() -> None:
    a = _pod("a", node="n1", ready_ago=50, restarts=0, created_ago=10)
    b = _pod("b", node="n2", ready_ago=50, restarts=3, created_ago=10)
    c = _pod("c", node="n3", ready_ago=50, restarts=0, created_ago=5)
    assert [p["metadata"]["name"] for p in pods.rank_for_deletion([a, b, c])] == ["b", "c", "a"]
    # doubled-up on a node goes first
    d = _pod("d", node="n1", ready_ago=50, created_ago=1000)
    assert pods.rank_for_deletion([a, c, d])[0]["metadata"]["name"] in ("a", "d")
    # deletion cost: lower first
    cheap = _pod("cheap", node="n5", ready_ago=50, cost=-10)
    assert pods.pods_to_delete([a, b, c, cheap], 1)[0]["metadata"]["name"] == "cheap"
    assert pods.pods_to_delete([a], 0) == []


def test_availability_honours_min_ready_seconds() -> None:
    p = _pod("p", node="n", ready_ago=3)
    assert pods.is_available(p, min_ready_seconds=0, now=NOW)
    assert not pods.is_available(p, min_ready_seconds=10, now=NOW)
    left = pods.available_in(p, min_ready_seconds=10, now=NOW)
    assert left is not None and 6.9 < left < 7.1
    assert pods.available_in(_pod("q"), min_ready_seconds=0, now=NOW) is None
    assert not pods.is_active({"metadata": {"deletionTimestamp": _ts(0)}})
    assert not pods.is_active({"status": {"phase": "Failed"}})
    assert pods.is_active({"status": {"phase": "Pending"}})


# -- taints and evictions ----------------------------------------------------------------


def test_tolerations() -> None:
    t = taints.Taint(key=taints.UNREACHABLE, effect="NoExecute")
    assert taints.tolerates({"key": taints.UNREACHABLE, "operator": "Exists"}, t)
    assert taints.tolerates({"operator": "Exists"}, t)
    assert not taints.tolerates({"key": taints.UNREACHABLE, "effect": "NoSchedule",
                                 "operator": "Exists"}, t)
    assert taints.tolerates({"key": taints.UNREACHABLE, "value": ""}, t)
    assert not taints.tolerates({"key": "other", "operator": "Exists"}, t)


def test_eviction_time_uses_smallest_toleration_seconds() -> None:
    added = NOW - datetime.timedelta(seconds=10)
    t = [taints.Taint(key=taints.UNREACHABLE, effect="NoExecute", time_added=added)]
    pod = {"spec": {"tolerations": [
        {"key": taints.UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"operator": "Exists", "tolerationSeconds": 30}]}}
    assert taints.eviction_time(pod, t, now=NOW) == added + datetime.timedelta(seconds=30)
    forever = {"spec": {"tolerations": [{"operator": "Exists"}]}}
    assert taints.eviction_time(forever, t, now=NOW) is None
    assert taints.eviction_time({"spec": {}}, t, now=NOW) == NOW
    no_execute_free = [taints.Taint(key=taints.UNREACHABLE, effect="NoSchedule")]
    assert taints.eviction_time({"spec": {}}, no_execute_free, now=NOW) is None


def test_node_taints_follow_health() -> None:
    node = {"spec": {"taints": [{"key": "user", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    stale = taints.NodeVerdict(stale=True, ready_status="True")
    new = taints.reconcile_taints(node, stale, now=NOW)
    assert new is not None
    assert {(t["key"], t["effect"]) for t in new} == {
        ("user", "NoSchedule"), (taints.UNREACHABLE, "NoExecute"),
        (taints.UNREACHABLE, "NoSchedule")}
    node["spec"]["taints"] = new
    assert taints.reconcile_taints(node, stale, now=NOW) is None
    healthy = taints.NodeVerdict(stale=False, ready_status="True")
    assert taints.reconcile_taints(node, healthy, now=NOW) == [
        {"key": "user", "effect": "NoSchedule"}]
    conds = taints.mark_unknown(node, now=NOW)
    assert conds is not None
    ready = next(c for c in conds if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
    node["status"]["conditions"] = conds
    assert taints.mark_unknown(node, now=NOW) is None


# -- proportional scaling ----------------------------------------------------------------

Info = rollout.ScaleInfo


def test_scaling_event_detection() -> None:
    sets = [Info(name="a", replicas=3, desired_annotation=3), Info(name="b", replicas=0,
                                                                    desired_annotation=5)]
    assert not rollout.is_scaling_event(replicas=3, sets=sets)
    assert rollout.is_scaling_event(replicas=4, sets=sets)
    assert not rollout.is_scaling_event(replicas=4, sets=[Info(name="x", replicas=2)])


def test_single_active_set_takes_everything() -> None:
    only = Info(name="a", replicas=3, desired_annotation=3)
    assert rollout.scale(replicas=10, max_surge=3, rolling=True, new_rs=only, old_rs=[],
                         current_total=3) == {"a": 10}
    idle_new = Info(name="new", replicas=0)
    old = Info(name="old", replicas=4)
    assert rollout.scale(replicas=2, max_surge=1, rolling=True, new_rs=idle_new, old_rs=[old],
                         current_total=4) == {"old": 2}
    # nothing active: the new set (else the newest old one) is sized
    assert rollout.scale(replicas=2, max_surge=1, rolling=True, new_rs=idle_new,
                         old_rs=[Info(name="o", replicas=0)], current_total=0) == {"new": 2}
    assert rollout.scale(replicas=2, max_surge=1, rolling=True, new_rs=None,
                         old_rs=[Info(name="o1", replicas=0, created=1),
                                 Info(name="o2", replicas=0, created=2)],
                         current_total=0) == {"o2": 2}


def test_saturated_new_set_zeroes_the_old_ones() -> None:
    new = Info(name="new", replicas=5, available=5, desired_annotation=5)
    old = Info(name="old", replicas=2)
    assert rollout.scale(replicas=5, max_surge=1, rolling=True, new_rs=new, old_rs=[old],
                         current_total=7) == {"old": 0}


def test_proportional_scaling_mid_rollout() -> None:
    # 10 replicas, surge 3 (max 13): new has 5, old has 8; scale to 20 (surge 5, max 25)
    new = Info(name="new", replicas=5, created=2, desired_annotation=10, max_annotation=13)
    old = Info(name="old", replicas=8, created=1, desired_annotation=10, max_annotation=13)
    got = rollout.scale(replicas=20, max_surge=5, rolling=True, new_rs=new, old_rs=[old],
                        current_total=13)
    assert sum(got.values()) == 25
    assert got == {"old": 15, "new": 10}  # 8/13 and 5/13 of 25, rounded; leftovers to largest
    # and back down to 10 (max 13)
    new2 = Info(name="new", replicas=10, created=2, desired_annotation=20, max_annotation=25)
    old2 = Info(name="old", replicas=15, created=1, desired_annotation=20, max_annotation=25)
    down = rollout.scale(replicas=10, max_surge=3, rolling=True, new_rs=new2, old_rs=[old2],
                         current_total=25)
    assert sum(down.values()) == 13 and down == {"old": 8, "new": 5}
    # to zero: everything goes
    zero = rollout.scale(replicas=0, max_surge=0, rolling=True, new_rs=new2, old_rs=[old2],
                         current_total=25)
    assert zero == {"old": 0, "new": 0}
    # Recreate never scales proportionally
    assert rollout.scale(replicas=20, max_surge=0, rolling=False, new_rs=new, old_rs=[old],
                         current_total=13) == {}
