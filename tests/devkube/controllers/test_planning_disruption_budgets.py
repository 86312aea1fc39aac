"""The disruption controller's arithmetic and the eviction verdict, table-driven: minAvailable
and maxUnavailable as numbers and percentages against the controllers' scale, unmanaged pods,
unknown controllers, recorded disruptions and the unhealthy-pod eviction policy."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from k8sbridge.devkube import errors, policy
from k8sbridge.devkube.controllers import disruptionplan as plan

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
STAMP = "2026-01-01T12:00:00Z"


def pod(name: str, *, ready: bool = True, owner: str | None = "rs-a", phase: str = "Running",
        terminating: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app": "web"}}
    if owner is not None:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": owner,
                                    "controller": True}]
    if terminating:
        meta["deletionTimestamp"] = STAMP
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def budget(generation: int = 1, status: dict[str, Any] | None = None,
           **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "b", "generation": generation},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
            "status": status or {}}


def scales(replicas: dict[str, int]) -> plan.ScaleOf:
    def scale_of(p: dict[str, Any]) -> plan.Scale | None:
        uid = p["metadata"]["ownerReferences"][0]["uid"]
        return plan.Scale(uid=uid, replicas=replicas[uid]) if uid in replicas else None
    return scale_of


@pytest.mark.parametrize(("spec", "pods", "replicas", "expected"), [
    # (spec, pods, controller replicas) -> (expectedPods, desiredHealthy, currentHealthy, allowed)
    ({"minAvailable": 2}, ["ok", "ok", "ok"], {"rs-a": 3}, (3, 2, 3, 1)),
    ({"minAvailable": 3}, ["ok", "ok", "ok"], {"rs-a": 3}, (3, 3, 3, 0)),
    ({"minAvailable": 2}, ["ok", "unready", "ok"], {"rs-a": 3}, (3, 2, 2, 0)),
    ({"minAvailable": "50%"}, ["ok", "ok", "ok"], {"rs-a": 5}, (5, 3, 3, 0)),
    ({"maxUnavailable": 1}, ["ok", "ok", "ok"], {"rs-a": 3}, (3, 2, 3, 1)),
    ({"maxUnavailable": "34%"}, ["ok", "ok", "ok"], {"rs-a": 3}, (3, 1, 3, 2)),
    ({"maxUnavailable": 5}, ["ok", "ok"], {"rs-a": 2}, (2, 0, 2, 2)),
    ({"maxUnavailable": 1}, ["ok", "gone", "ok"], {"rs-a": 3}, (3, 2, 2, 0)),
    ({"maxUnavailable": 1}, [], {}, (0, 0, 0, 0)),
    ({"maxUnavailable": 1}, ["ok", "ok", "unmanaged"], {"rs-a": 2}, (2, 1, 3, 2)),
])
def test_status_from_pods_and_scale(spec: dict[str, Any], pods: list[str],
                                    replicas: dict[str, int],
                                    expected: tuple[int, int, int, int]) -> None:
    made = [pod(f"p{i}", ready=kind != "unready", terminating=kind == "gone",
                owner=None if kind == "unmanaged" else "rs-a") for i, kind in enumerate(pods)]
    status = plan.plan(budget(3, **spec), made, scales(replicas), now=NOW).status
    assert (status["expectedPods"], status["desiredHealthy"], status["currentHealthy"],
            status["disruptionsAllowed"]) == expected
    assert status["observedGeneration"] == 3
    [cond] = status["conditions"]
    assert (cond["status"], cond["reason"]) == (
        ("True", "SufficientPods") if expected[3] else ("False", "InsufficientPods"))


def test_a_pod_of_an_unknown_controller_fails_the_sync() -> None:
    status = plan.plan(budget(maxUnavailable=1, status={"disruptionsAllowed": 2}), [pod("p0")],
                       scales({}), now=NOW).status
    assert status["disruptionsAllowed"] == 0
    [cond] = status["conditions"]
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False", "SyncFailed", 'found no controllers for pod "p0"')


def test_recorded_disruptions_count_as_unhealthy_for_two_minutes() -> None:
    recent = (NOW - datetime.timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = (NOW - datetime.timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    pdb = budget(minAvailable=1, status={"disruptedPods": {"p0": recent, "p1": old}})
    result = plan.plan(pdb, [pod("p0"), pod("p1"), pod("p2")], scales({"rs-a": 3}), now=NOW)
    assert result.status["disruptedPods"] == {"p0": recent}
    assert result.status["currentHealthy"] == 2 and result.recheck == 90.0


def test_the_condition_keeps_its_transition_time_until_it_flips() -> None:
    first = plan.set_condition([], allowed=True, reason="SufficientPods", stamp="t1")
    same = plan.set_condition(first, allowed=True, reason="SufficientPods", stamp="t2")
    flipped = plan.set_condition(same, allowed=False, reason="InsufficientPods", stamp="t3")
    assert [c["lastTransitionTime"] for c in (*first, *same, *flipped)] == ["t1", "t1", "t3"]


def ready_budget(**status: Any) -> dict[str, Any]:
    return budget(1, status={"observedGeneration": 1, "currentHealthy": 3, "desiredHealthy": 2,
                             **status})


def test_eviction_charges_the_budget() -> None:
    verdict = policy.decide(pod("p0"), [ready_budget(disruptionsAllowed=1)], stamp=STAMP)
    assert verdict.budget is not None
    assert verdict.budget["status"]["disruptionsAllowed"] == 0
    assert verdict.budget["status"]["conditions"][0]["reason"] == "InsufficientPods"
    assert policy.record_disruption(verdict.budget, "p0", stamp=STAMP)["status"][
        "disruptedPods"] == {"p0": STAMP}


@pytest.mark.parametrize(("victim", "pdb", "code", "message"), [
    (pod("p0"), ready_budget(disruptionsAllowed=0), 429,
     "The disruption budget b needs 2 healthy pods and has 3 currently"),
    (pod("p0"), budget(2, status={"observedGeneration": 1, "disruptionsAllowed": 1}), 429,
     "The disruption budget b is still being processed by the server."),
    (pod("p0"), ready_budget(disruptionsAllowed=-1), 403, ""),
])
def test_eviction_refusals(victim: dict[str, Any], pdb: dict[str, Any], code: int,
                           message: str) -> None:
    with pytest.raises(errors.ApiError) as refused:
        policy.decide(victim, [pdb], stamp=STAMP)
    assert refused.value.code == code
    if code == 429:
        assert refused.value.message == policy.VIOLATION
        assert refused.value.details is not None
        assert refused.value.details["causes"] == [{"reason": "DisruptionBudget",
                                                    "message": message}]


@pytest.mark.parametrize(("victim", "policy_name", "status", "charged"), [
    (pod("p0", phase="Pending"), None, {"disruptionsAllowed": 0}, False),
    (pod("p0", phase="Succeeded"), None, {"disruptionsAllowed": 0}, False),
    (pod("p0", ready=False), "AlwaysAllow", {"disruptionsAllowed": 0}, False),
    (pod("p0", ready=False), None, {"disruptionsAllowed": 0}, False),  # 3 healthy >= 2
    (pod("p0", ready=False), "IfHealthyBudget", {"disruptionsAllowed": 1,
                                                 "currentHealthy": 1}, True),
])
def test_pods_evicted_without_asking_the_budget(victim: dict[str, Any], policy_name: str | None,
                                                status: dict[str, Any], charged: bool) -> None:
    pdb = ready_budget(**status)
    if policy_name is not None:
        pdb["spec"]["unhealthyPodEvictionPolicy"] = policy_name
    assert (policy.decide(victim, [pdb], stamp=STAMP).budget is not None) == charged


def test_budgets_that_select_nothing_or_another_app_do_not_count() -> None:
    nil = {**budget(), "spec": {}}
    other = budget(selector={"matchLabels": {"app": "db"}})
    everything = budget(selector={}, status={"observedGeneration": 1, "disruptionsAllowed": 0})
    assert policy.decide(pod("p0"), [nil, other], stamp=STAMP).budget is None
    with pytest.raises(errors.ApiError):
        policy.decide(pod("p0"), [nil, everything], stamp=STAMP)
