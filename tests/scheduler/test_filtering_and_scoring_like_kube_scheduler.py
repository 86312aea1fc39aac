"""Each kube-scheduler plugin placement honours, table by table, as its documentation says.

Pure: static views and pods through ``stack.place``. Expected rejection texts are
kube-scheduler's (pkg/scheduler/framework/plugins/*: ErrReason...), counted and sorted as
its FitError prints them.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import pytest

from k8sbridge.model import cluster, ids, pods
from k8sbridge.model import resources as res
from k8sbridge.scheduler import stack
from tests.scheduler.test_placing_pods import NO_OVERHEAD, agent, pod, view, where

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def node(n: int, labels: dict[str, str] | None = None, *, taints: tuple[cluster.Taint, ...] = (),
         unschedulable: bool = False, resources: str = "cpus:4;mem:4096;ports:[31000-31010]",
         placed: tuple[cluster.PlacedPod, ...] = ()) -> cluster.AgentView:
    base = agent(n, resources, taints=(cluster.PROVIDER_TAINT, *taints), placed=placed)
    return cluster.AgentView.build(
        agent_id=str(base.agent_id), hostname=base.hostname, offers=base.offers,
        taints=base.taints, pods=base.pods, labels={**base.labels, **(labels or {})},
        unschedulable=unschedulable,
    )


def message(result: Any) -> str:
    return str(result.unplaced[0].explanation.message)


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": op}
    if values:
        out["values"] = list(values)
    return out


def required(*terms: list[dict[str, Any]], fields: list[dict[str, Any]] | None = None
             ) -> dict[str, Any]:
    node_terms: list[dict[str, Any]] = [{"matchExpressions": t} for t in terms]
    if fields:
        node_terms.append({"matchFields": fields})
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": node_terms}}}


# -- NodeAffinity ------------------------------------------------------------------------------

NODES = (node(1, {"disk": "ssd", "gen": "3"}), node(2, {"disk": "hdd", "gen": "5"}),
         node(3, {"gen": "x"}))


@pytest.mark.parametrize(("affinity", "fits"), [
    pytest.param(required([expr("disk", "In", "ssd", "nvme")]), {"a1"}, id="In"),
    pytest.param(required([expr("disk", "NotIn", "ssd")]), {"a2", "a3"}, id="NotIn-absent-fits"),
    pytest.param(required([expr("disk", "Exists")]), {"a1", "a2"}, id="Exists"),
    pytest.param(required([expr("disk", "DoesNotExist")]), {"a3"}, id="DoesNotExist"),
    pytest.param(required([expr("gen", "Gt", "4")]), {"a2"}, id="Gt-non-integer-never"),
    pytest.param(required([expr("gen", "Lt", "4")]), {"a1"}, id="Lt"),
    pytest.param(required([expr("disk", "In", "ssd")], [expr("gen", "Gt", "4")]), {"a1", "a2"},
                 id="terms-ORed"),
    pytest.param(required([expr("disk", "Exists"), expr("gen", "Lt", "4")]), {"a1"},
                 id="expressions-ANDed"),
    pytest.param(required(fields=[expr("metadata.name", "In", "h3")]), {"a3"},
                 id="matchFields-name"),
])
def test_required_node_affinity_operators(affinity: dict[str, Any], fits: set[str]) -> None:
    result = stack.place(pending=[pod(f"p{i}", cpu="100m") for i in range(3)],
                         view=view(*NODES), settings=NO_OVERHEAD)
    assert len(result.assignments) == 3
    constrained = [pod(f"c{i}", cpu="100m", affinity=affinity) for i in range(6)]
    result = stack.place(pending=constrained, view=view(*NODES), settings=NO_OVERHEAD)
    assert {str(a.agent_id) for a in result.assignments} == fits
    if len(fits) < 3:
        refused = stack.place(pending=[pod("r", cpu="100m", affinity=affinity)],
                              view=view(*(n for n in NODES if str(n.agent_id) not in fits)))
        assert message(refused) == (
            f"0/{3 - len(fits)} nodes are available: {3 - len(fits)} node(s) didn't match "
            "Pod's node affinity/selector.")


def test_node_selector_and_affinity_must_both_match() -> None:
    p = pod("p", nodeSelector={"disk": "ssd"}, affinity=required([expr("gen", "Gt", "4")]))
    assert message(stack.place(pending=[p], view=view(*NODES))) == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.")


def test_preferred_node_affinity_weights_pick_the_node() -> None:
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [expr("disk", "Exists")]}},
        {"weight": 80, "preference": {"matchExpressions": [expr("gen", "In", "x")]}},
    ]}}
    result = stack.place(pending=[pod("p", cpu="100m", affinity=preferred)], view=view(*NODES))
    assert where(result) == {"p": "a3"}


# -- TaintToleration and NodeUnschedulable ------------------------------------------------------

GPU = cluster.Taint(key="dedicated", value="gpu", effect="NoSchedule")
EVICT = cluster.Taint(key="maint", value="", effect="NoExecute")
SOFT = cluster.Taint(key="spot", value="yes", effect="PreferNoSchedule")


@pytest.mark.parametrize(("tolerations", "placed"), [
    pytest.param([], False, id="none"),
    pytest.param([{"key": "dedicated", "operator": "Equal", "value": "gpu"}], True,
                 id="Equal-any-effect"),
    pytest.param([{"key": "dedicated", "operator": "Equal", "value": "cpu"}], False,
                 id="Equal-other-value"),
    pytest.param([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}], True,
                 id="Exists-key"),
    pytest.param([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}], False,
                 id="Exists-other-effect"),
    pytest.param([{"operator": "Exists"}], True, id="Exists-everything"),
])
def test_no_schedule_taints_need_a_toleration(
    tolerations: list[dict[str, Any]], placed: bool
) -> None:
    result = stack.place(pending=[pod("p", tolerations=tolerations)],
                         view=view(node(1, taints=(GPU,))))
    assert bool(result.assignments) == placed
    if not placed:
        assert message(result) == (
            "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}.")


def test_no_execute_taints_filter_and_prefer_no_schedule_only_scores() -> None:
    result = stack.place(pending=[pod("p")], view=view(node(1, taints=(EVICT,))))
    assert message(result) == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {maint: }.")
    # the PreferNoSchedule node is used only when the other is full
    soft, plain = node(1, taints=(SOFT,)), node(2, resources="cpus:1.5;mem:4096")
    result = stack.place(pending=[pod("a"), pod("b")], view=view(soft, plain))
    assert where(result) == {"a": "a2", "b": "a1"}
    tolerant = pod("t", tolerations=[{"key": "spot", "operator": "Exists"}])
    result = stack.place(pending=[tolerant], view=view(node(1, taints=(SOFT,)), node(2)))
    assert len(result.assignments) == 1  # tolerated: both score alike


def test_cordoned_nodes_take_only_pods_tolerating_unschedulable() -> None:
    cordoned = node(1, unschedulable=True)
    result = stack.place(pending=[pod("p")], view=view(cordoned, node(2, taints=(GPU,))))
    assert message(result) == (
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
        "1 node(s) were unschedulable.")
    tolerant = pod("t", tolerations=[
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
         "effect": "NoSchedule"}])
    assert where(stack.place(pending=[tolerant], view=view(cordoned))) == {"t": "a1"}
    # a pod already bound to the cordoned node (a restart) still goes there
    bound = pod("b", nodeName="h1")
    assert where(stack.place(pending=[bound], view=view(cordoned))) == {"b": "a1"}


# -- NodeResourcesFit ---------------------------------------------------------------------------

def test_ephemeral_storage_is_mesos_disk() -> None:
    big = pods.parse_pod({"metadata": {"name": "big", "uid": "u"}, "spec": {"containers": [
        {"name": "c", "resources": {"requests": {"ephemeral-storage": "2Gi"}}}]}})
    result = stack.place(pending=[big], view=view(agent(1, "cpus:4;mem:4096;disk:1024")),
                         settings=NO_OVERHEAD)
    assert message(result) == ("0/1 nodes are available: 1 Insufficient ephemeral-storage "
                               "(requested 2048 MiB, largest offer 1024 MiB).")


# -- InterPodAffinity --------------------------------------------------------------------------

def running(name: str, labels: dict[str, str], namespace: str = "default", *,
            anti_affinity: tuple[pods.PodAffinityTerm, ...] = (),
            preferred_affinity: tuple[pods.PodAffinityTerm, ...] = ()) -> cluster.PlacedPod:
    return cluster.PlacedPod(key=ids.PodKey(f"{namespace}/{name}"), namespace=namespace,
                             labels=tuple(sorted(labels.items())), anti_affinity=anti_affinity,
                             preferred_affinity=preferred_affinity)


def term(key: str, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"topologyKey": key, "labelSelector": {"matchLabels": labels}, **extra}


def pod_affinity(kind: str, *terms: dict[str, Any], preferred: bool = False) -> dict[str, Any]:
    if preferred:
        return {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": t} for t in terms]}}
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


ZONED = (node(1, {ZONE: "z1"}), node(2, {ZONE: "z1"}), node(3, {ZONE: "z2"}))


def with_db(on: int) -> tuple[cluster.AgentView, ...]:
    db = running("db", {"app": "db"})
    return tuple(node(n, {ZONE: "z1" if n < 3 else "z2"}, placed=(db,) if n == on else ())
                 for n in (1, 2, 3))


def test_required_pod_affinity_follows_the_matching_pod_by_host_and_zone() -> None:
    host = pod("h", affinity=pod_affinity("podAffinity", term(HOST, {"app": "db"})))
    assert where(stack.place(pending=[host], view=view(*with_db(2)))) == {"h": "a2"}
    zone = [pod(f"z{i}", cpu="100m", labels={"app": "z"},
                affinity=pod_affinity("podAffinity", term(ZONE, {"app": "db"})))
            for i in range(6)]
    placed = where(stack.place(pending=zone, view=view(*with_db(3))))
    assert set(placed.values()) == {"a3"}
    placed = where(stack.place(pending=zone, view=view(*with_db(1))))
    assert set(placed.values()) == {"a1", "a2"}


def test_the_first_replica_of_a_self_affine_group_goes_anywhere() -> None:
    affinity = pod_affinity("podAffinity", term(ZONE, {"app": "cache"}))
    replicas = [pod(f"c{i}", cpu="100m", labels={"app": "cache"}, affinity=affinity)
                for i in range(4)]
    placed = where(stack.place(pending=replicas, view=view(*ZONED)))
    zones = {"a1": "z1", "a2": "z1", "a3": "z2"}
    assert len(placed) == 4 and len({zones[a] for a in placed.values()}) == 1


def test_required_pod_affinity_unmatched_is_explained() -> None:
    p = pod("p", affinity=pod_affinity("podAffinity", term(ZONE, {"app": "db"})))
    assert message(stack.place(pending=[p], view=view(*ZONED))) == (
        "0/3 nodes are available: 3 node(s) didn't match pod affinity rules.")


def test_namespaces_and_namespace_selector_of_a_term() -> None:
    other = running("db", {"app": "db"}, namespace="prod")
    nodes = (node(1), node(2, placed=(other,)))
    own_ns = pod("p", affinity=pod_affinity("podAffinity", term(HOST, {"app": "db"})))
    assert not stack.place(pending=[own_ns], view=view(*nodes)).assignments
    named = pod("n", affinity=pod_affinity("podAffinity", term(HOST, {"app": "db"},
                                                             namespaces=["prod"])))
    assert where(stack.place(pending=[named], view=view(*nodes))) == {"n": "a2"}
    selected = pod("s", affinity=pod_affinity("podAffinity", term(
        HOST, {"app": "db"}, namespaceSelector={"matchLabels": {"tier": "prod"}})))
    labelled_view = cluster.ClusterView(agents=nodes,
                                        namespace_labels={"prod": {"tier": "prod"}})
    assert where(stack.place(pending=[selected], view=labelled_view)) == {"s": "a2"}
    everywhere = pod("e", affinity=pod_affinity("podAffinity", term(
        HOST, {"app": "db"}, namespaceSelector={})))
    assert where(stack.place(pending=[everywhere], view=view(*nodes))) == {"e": "a2"}


def test_existing_pods_anti_affinity_is_named_as_kube_scheduler_does() -> None:
    terms = pod("x", affinity=pod_affinity("podAntiAffinity", term(HOST, {"app": "web"}))
                ).anti_affinity
    guard = running("guard", {"app": "guard"}, anti_affinity=terms)
    result = stack.place(pending=[pod("w", labels={"app": "web"})],
                         view=view(node(1, placed=(guard,))))
    assert message(result) == ("0/1 nodes are available: 1 node(s) didn't satisfy existing "
                               "pods anti-affinity rules.")


def test_preferred_affinity_and_anti_affinity_steer_the_choice() -> None:
    near = pod("near", affinity=pod_affinity("podAffinity", term(ZONE, {"app": "db"}),
                                             preferred=True))
    assert where(stack.place(pending=[near], view=view(*with_db(3)))) == {"near": "a3"}
    away = pod("away", affinity=pod_affinity("podAntiAffinity", term(ZONE, {"app": "db"}),
                                             preferred=True))
    assert where(stack.place(pending=[away], view=view(*with_db(3))))["away"] in {"a1", "a2"}
    # symmetric: an existing pod's preferred affinity to the incoming pod attracts it
    wants = pod("x", affinity=pod_affinity("podAffinity", term(HOST, {"app": "web"}),
                                           preferred=True)).preferred_pod_affinity
    lover = running("lover", {"app": "lover"}, preferred_affinity=wants)
    nodes = (node(1), node(2, placed=(lover,)), node(3))
    assert where(stack.place(pending=[pod("w", labels={"app": "web"})], view=view(*nodes))) \
        == {"w": "a2"}


# -- PodTopologySpread -------------------------------------------------------------------------

def spread(key: str = ZONE, skew: int = 1, *, hard: bool = True, **extra: Any
           ) -> list[dict[str, Any]]:
    return [{"maxSkew": skew, "topologyKey": key,
             "whenUnsatisfiable": "DoNotSchedule" if hard else "ScheduleAnyway",
             "labelSelector": {"matchLabels": {"app": "s"}}, **extra}]


def zones_of(result: Any, nodes: tuple[cluster.AgentView, ...]) -> collections.Counter[str]:
    zone = {str(n.agent_id): n.labels.get(ZONE, "-") for n in nodes}
    return collections.Counter(zone[a] for a in where(result).values())


def replicas(count: int, constraints: list[dict[str, Any]], **spec: Any) -> list[pods.PodRequest]:
    return [pod(f"s{i}", cpu="100m", labels={"app": "s"}, topologySpreadConstraints=constraints,
                **spec) for i in range(count)]


def test_max_skew_spreads_over_zones_whatever_their_size() -> None:
    result = stack.place(pending=replicas(6, spread()), view=view(*ZONED))
    assert zones_of(result, ZONED) == {"z1": 3, "z2": 3}


def test_do_not_schedule_refuses_what_would_skew() -> None:
    small = (node(1, {ZONE: "z1"}), node(2, {ZONE: "z2"}, resources="cpus:0.35;mem:4096"))
    result = stack.place(pending=replicas(5, spread()), view=view(*small))
    assert zones_of(result, small) == {"z1": 2, "z2": 1}
    assert result.unplaced[0].explanation.message == (
        "0/2 nodes are available: 1 Insufficient cpu (requested 0.1 + 0.1 for the executor, "
        "largest offer 0.15), "
        "1 node(s) didn't match pod topology spread constraints.")


def test_schedule_anyway_prefers_but_never_refuses() -> None:
    small = (node(1, {ZONE: "z1"}), node(2, {ZONE: "z2"}, resources="cpus:0.35;mem:4096"))
    result = stack.place(pending=replicas(5, spread(hard=False)), view=view(*small))
    assert zones_of(result, small) == {"z1": 4, "z2": 1}  # all placed, z2 as full as it gets


def test_a_node_without_the_key_is_refused_missing_label() -> None:
    result = stack.place(pending=replicas(1, spread()), view=view(node(1)))
    assert message(result) == ("0/1 nodes are available: 1 node(s) didn't match pod "
                               "topology spread constraints (missing required label).")


def test_min_domains_counts_missing_domains_as_empty() -> None:
    two = (node(1, {ZONE: "z1"}), node(2, {ZONE: "z2"}))
    result = stack.place(pending=replicas(6, spread(minDomains=3)), view=view(*two))
    assert zones_of(result, two) == {"z1": 1, "z2": 1}  # global minimum 0 while < 3 domains


def test_node_affinity_and_taint_policies_choose_the_counted_nodes() -> None:
    nodes = (node(1, {ZONE: "z1"}), node(2, {ZONE: "z2", "pool": "b"}),
             node(3, {ZONE: "z3", "pool": "b"}, taints=(GPU,)))
    only_b = {"nodeSelector": {"pool": "b"}}
    # Honor (default): z1 is not the pod's, z3's node counts (taints Ignored): z2 gets 1
    result = stack.place(pending=replicas(3, spread(), **only_b), view=view(*nodes))
    assert zones_of(result, nodes) == {"z2": 1}
    honour = spread(nodeTaintsPolicy="Honor")
    result = stack.place(pending=replicas(3, honour, **only_b), view=view(*nodes))
    assert zones_of(result, nodes) == {"z2": 3}
    ignore = spread(nodeAffinityPolicy="Ignore", nodeTaintsPolicy="Honor")
    result = stack.place(pending=replicas(3, ignore, **only_b), view=view(*nodes))
    assert zones_of(result, nodes) == {"z2": 1}  # z1 counts (empty): skew holds it at 1


def test_match_label_keys_count_only_the_same_revision() -> None:
    old = tuple(running(f"old{i}", {"app": "s", "rev": "1"}) for i in range(3))
    nodes = (node(1, {ZONE: "z1"}, placed=old), node(2, {ZONE: "z2"}))
    constraints = spread(matchLabelKeys=["rev"])
    new = [pod(f"n{i}", cpu="100m", labels={"app": "s", "rev": "2"},
               topologySpreadConstraints=constraints) for i in range(2)]
    assert zones_of(stack.place(pending=new, view=view(*nodes)), nodes) == {"z1": 1, "z2": 1}


def test_pods_of_a_controller_get_the_default_constraints() -> None:
    def owned(i: int) -> pods.PodRequest:
        return pods.parse_pod({"metadata": {
            "name": f"r{i}", "uid": f"u{i}", "labels": {"app": "r"},
            "ownerReferences": [{"kind": "ReplicaSet", "uid": "rs", "controller": True}]},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]}})
    # the emptiest node (a3: the others are half used) would take them all without spreading
    half = res.parse_resources_flag("cpus:8;mem:8192")
    nodes = (dataclasses.replace(node(1, {ZONE: "z1"}), total=half),
             dataclasses.replace(node(2, {ZONE: "z1"}), total=half),
             node(3, {ZONE: "z2"}, resources="cpus:64;mem:65536"))
    result = stack.place(pending=[owned(i) for i in range(6)], view=view(*nodes))
    assert len(set(where(result).values())) == 3
    off = stack.place(pending=[owned(i) for i in range(6)], view=view(*nodes),
                      settings=stack.StackSettings(default_spread=()))
    assert set(where(off).values()) == {"a3"}


# -- the pod spec's bad input -------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "error"), [
    ({"topologySpreadConstraints": [{"maxSkew": 0, "topologyKey": ZONE,
                                     "whenUnsatisfiable": "DoNotSchedule"}]}, "maxSkew"),
    ({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": ZONE,
                                     "whenUnsatisfiable": "Sometimes"}]}, "whenUnsatisfiable"),
    ({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": ZONE, "minDomains": 2,
                                     "whenUnsatisfiable": "ScheduleAnyway"}]}, "minDomains"),
    ({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchExpressions": [expr("a", "Near", "b")]},
         "topologyKey": ZONE}]}}}, "operator"),
    ({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 101, "podAffinityTerm": term(ZONE, {})}]}}}, "weight"),
    ({"affinity": required([expr("gen", "Gt", "x")])}, "integer"),
])
def test_invalid_constraints_name_the_field(spec: dict[str, Any], error: str) -> None:
    with pytest.raises(pods.PodSpecError, match=error):
        pod("p", **spec)
