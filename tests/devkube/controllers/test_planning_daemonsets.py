"""``daemonplan`` decisions, pure: which nodes should run a daemon pod (nodeSelector, node
affinity, taints and the daemon tolerations), pinning, misplaced and extra pods, and the
RollingUpdate with maxUnavailable and maxSurge."""

from __future__ import annotations

import datetime
from typing import Any

from k8sbridge.devkube.controllers import daemonplan
from k8sbridge.devkube.controllers.raw import RawObject

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def node(name: str, *, labels: dict[str, str] | None = None,
         taints: list[dict[str, str]] | None = None) -> RawObject:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or []}}


def ds(*, strategy: dict[str, Any] | None = None, **pod_spec: Any) -> RawObject:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "d"}},
                            "template": {"metadata": {"labels": {"app": "d"}},
                                         "spec": {"containers": [{"name": "c"}], **pod_spec}}}
    if strategy is not None:
        spec["updateStrategy"] = strategy
    return {"metadata": {"name": "d", "generation": 1}, "spec": spec}


def pod(name: str, on: str, *, hash_: str = "h1", ready: bool = True,
        bound: bool = True) -> RawObject:
    spec: dict[str, Any] = {}
    daemonplan.pin(spec, on)
    if bound:
        spec["nodeName"] = on
    return {"metadata": {"name": name, "labels": {"controller-revision-hash": hash_},
                         "creationTimestamp": "2026-01-01T10:00:00Z"},
            "spec": spec,
            "status": {"phase": "Running" if bound else "Pending", "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


BRIDGE = {"key": "virtual-kubelet.io/provider", "value": "mesos", "effect": "NoSchedule"}


def test_eligibility_follows_selectors_affinity_and_taints() -> None:
    plain: dict[str, Any] = {}
    assert daemonplan.should_run(plain, node("a")) == (True, True)
    assert daemonplan.should_run(plain, node("a", taints=[BRIDGE])) == (False, True)
    assert daemonplan.should_run(plain, node("a", taints=[
        {"key": "x", "effect": "NoExecute"}])) == (False, False)
    assert daemonplan.should_run(plain, node("a", taints=[
        {"key": "x", "effect": "PreferNoSchedule"}])) == (True, True)
    for automatic in ("node.kubernetes.io/unschedulable", "node.kubernetes.io/not-ready",
                      "node.kubernetes.io/unreachable", "node.kubernetes.io/memory-pressure"):
        effect = "NoExecute" if automatic.endswith(("ready", "reachable")) else "NoSchedule"
        assert daemonplan.should_run(plain, node("a", taints=[
            {"key": automatic, "effect": effect}])) == (True, True)
    tolerant = {"tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}]}
    assert daemonplan.should_run(tolerant, node("a", taints=[BRIDGE])) == (True, True)
    ssd = {"nodeSelector": {"disk": "ssd"}}
    assert daemonplan.should_run(ssd, node("a"))[0] is False
    assert daemonplan.should_run(ssd, node("a", labels={"disk": "ssd"}))[0] is True
    affinity = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["z1", "z2"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}}
    assert daemonplan.should_run(affinity, node("a", labels={"zone": "z2"}))[0] is True
    assert daemonplan.should_run(affinity, node("a", labels={"zone": "z3"}))[0] is False
    assert daemonplan.should_run(affinity, node("b"))[0] is True


def test_pinning_replaces_the_required_terms_and_adds_the_tolerations() -> None:
    spec: dict[str, Any] = {"tolerations": [{"key": "k", "operator": "Exists"}],
                            "hostNetwork": True}
    daemonplan.pin(spec, "n1")
    assert daemonplan.target_node({"spec": spec}) == "n1"
    keys = [t["key"] for t in spec["tolerations"]]
    assert keys[0] == "k" and "node.kubernetes.io/network-unavailable" in keys
    assert len(keys) == len(set(keys)) == 8


def test_missing_extra_misplaced_and_orphaned_pods() -> None:
    nodes = [node("a"), node("b"), node("c", taints=[{"key": "x", "effect": "NoExecute"}])]
    pods = [pod("p1", "a"), pod("p2", "a"), pod("p3", "c"), pod("p4", "gone")]
    plan = daemonplan.plan(ds(), nodes, pods, hash_="h1", now=NOW)
    assert plan.create == ("b",)
    assert set(plan.delete) == {"p2", "p3", "p4"}


def test_rolling_update_within_max_unavailable() -> None:
    nodes = [node(n) for n in "abc"]
    pods = [pod(f"p{n}", n) for n in "abc"]
    plan = daemonplan.plan(ds(), nodes, pods, hash_="h2", now=NOW)
    assert plan == daemonplan.Plan(delete=("pa",))
    two = ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}})
    assert daemonplan.plan(two, nodes, pods, hash_="h2", now=NOW).delete == ("pa", "pb")
    unready = [pod("pa", "a", hash_="h2", ready=False), pod("pb", "b"), pod("pc", "c")]
    assert daemonplan.plan(ds(), nodes, unready, hash_="h2", now=NOW) == daemonplan.Plan()
    on_delete = ds(strategy={"type": "OnDelete"})
    assert daemonplan.plan(on_delete, nodes, pods, hash_="h2", now=NOW) == daemonplan.Plan()


def test_rolling_update_with_max_surge() -> None:
    nodes = [node(n) for n in "ab"]
    surge = ds(strategy={"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    pods = [pod("pa", "a"), pod("pb", "b")]
    assert daemonplan.plan(surge, nodes, pods, hash_="h2", now=NOW) == daemonplan.Plan(
        create=("a",))
    waiting = [*pods, pod("na", "a", hash_="h2", ready=False, bound=False)]
    assert daemonplan.plan(surge, nodes, waiting, hash_="h2", now=NOW) == daemonplan.Plan()
    ready = [*pods, pod("na", "a", hash_="h2")]
    assert daemonplan.plan(surge, nodes, ready, hash_="h2", now=NOW).delete == ("pa",)


def test_status_counters() -> None:
    nodes = [node("a"), node("b"), node("c", taints=[BRIDGE])]
    pods = [pod("pa", "a"), pod("pb", "b", hash_="h0", ready=False), pod("pc", "c")]
    assert daemonplan.status(ds(), nodes, pods, hash_="h1", now=NOW) == {
        "observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
        "numberMisscheduled": 1, "numberReady": 1, "numberAvailable": 1,
        "updatedNumberScheduled": 1, "numberUnavailable": 1}
