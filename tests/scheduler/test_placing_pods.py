"""Placement from static inputs: fit, constraints, many pods per offer, ranking, explanations."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from k8sbridge.model import cluster, ids, pods
from k8sbridge.model import resources as res
from k8sbridge.scheduler import feasible, plan, select, stack

NO_OVERHEAD = stack.StackSettings(executor_overhead=())
BINPACK = stack.StackSettings(strategy="binpack")


def agent(
    n: int,
    resources: str = "cpus:4;mem:4096;ports:[31000-31010]",
    *,
    attributes: str = "",
    zone: str | None = None,
    taints: tuple[cluster.Taint, ...] = (cluster.PROVIDER_TAINT,),
    role: str = "kubernetes",
    placed: tuple[cluster.PlacedPod, ...] = (),
    offers: int = 1,
) -> cluster.AgentView:
    if resources and "disk" not in resources:
        resources += ";disk:100000"  # plenty, unless a test says otherwise
    bag = res.parse_resources_flag(resources).allocated_to(role)
    return cluster.AgentView.build(
        agent_id=f"a{n}",
        hostname=f"h{n}",
        attributes=res.parse_attributes_flag(attributes),
        zone=zone,
        taints=taints,
        offers=[
            cluster.OfferView(
                id=ids.OfferId(f"o{n}" + (f".{i}" if i else "")),
                agent_id=ids.AgentId(f"a{n}"),
                resources=bag,
                allocation_role=role,
            )
            for i in range(offers)
        ]
        if resources
        else [],
        pods=placed,
    )


def view(*agents: cluster.AgentView) -> cluster.ClusterView:
    return cluster.ClusterView(agents=agents)


def pod(
    name: str,
    cpu: str = "1",
    mem: str = "100Mi",
    *,
    labels: dict[str, str] | None = None,
    ports: list[int] | None = None,
    **spec: Any,
) -> pods.PodRequest:
    c: dict[str, Any] = {
        "name": "app",
        "image": "busybox",
        "resources": {"requests": {"cpu": cpu, "memory": mem}},
    }
    if ports:
        c["ports"] = [{"containerPort": p, "hostPort": p} for p in ports]
    return pods.parse_pod(
        {
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "labels": labels or {"app": name}},
            "spec": {"containers": [c], **spec},
        }
    )


def where(p: stack.plan.Plan) -> dict[str, str]:
    return {a.pod_key.split("/")[1]: a.agent_id for a in p.assignments}


def test_many_pods_share_one_offer_and_it_shrinks() -> None:
    result = stack.place(pending=[pod(f"p{i}") for i in range(5)], view=view(agent(1)))
    # 4 cpus, each pod 1 cpu + 0.1 executor: three fit, the fourth finds 0.7 left
    assert len(result.assignments) == 3
    assert [u.pod_key for u in result.unplaced] == ["default/p3", "default/p4"]
    assert result.unplaced[0].explanation.message == (
        "0/1 nodes are available: 1 Insufficient cpu (requested 1, largest offer 0.7)."
    )
    assert result.unused_offer_ids == ()
    assert {a.offer_ids for a in result.assignments} == {("o1",)}


def test_executor_overhead_is_carved_once_per_pod_with_the_offer_role() -> None:
    result = stack.place(pending=[pod("p", cpu="500m", mem="256Mi")], view=view(agent(1)))
    a = result.assignments[0]
    assert a.executor.scalars() == {"cpus": 0.1, "mem": 32.0, "disk": 10.0}
    assert a.containers[0].resources.scalars() == {"cpus": 0.5, "mem": 256.0}
    assert a.total.scalars() == {"cpus": 0.6, "mem": 288.0, "disk": 10.0}
    assert a.allocation_role == "kubernetes"
    assert all(r.allocation_role == "kubernetes" for r in a.total)


def test_reserved_resources_are_spent_first_and_keep_their_reservation() -> None:
    bag = res.parse_resources_flag("cpus(kubernetes):1;cpus:4;mem:1024").allocated_to("kubernetes")
    a1 = cluster.AgentView.build(
        agent_id="a1", hostname="h1",
        offers=[cluster.OfferView(id=ids.OfferId("o1"), agent_id=ids.AgentId("a1"),
                                  resources=bag, allocation_role="kubernetes")],
    )
    result = stack.place(pending=[pod("p", cpu="1500m")], view=view(a1), settings=NO_OVERHEAD)
    cpus = [r for r in result.assignments[0].containers[0].resources if r.name == "cpus"]
    assert sorted((r.role, r.scalar) for r in cpus) == [("*", 0.5), ("kubernetes", 1.0)]


def test_unused_offers_are_listed_for_decline() -> None:
    result = stack.place(pending=[pod("p")], view=view(agent(1), agent(2, offers=2)))
    assert len(result.assignments) == 1
    used = set(result.assignments[0].offer_ids)
    assert set(result.unused_offer_ids) == {"o1", "o2", "o2.1"} - used


def test_offers_of_one_agent_and_role_are_pooled() -> None:
    result = stack.place(
        pending=[pod("p", cpu="6")], view=view(agent(1, offers=2)), settings=NO_OVERHEAD
    )
    assert result.assignments[0].offer_ids == ("o1", "o1.1")


def test_spread_fans_out_and_binpack_fills_up() -> None:
    cl = view(agent(1, "cpus:8;mem:8192"), agent(2, "cpus:8;mem:8192"),
              agent(3, "cpus:8;mem:8192"))
    pending = [pod(f"p{i}") for i in range(3)]
    spread = stack.place(pending=pending, view=cl)
    assert sorted(where(spread).values()) == ["a1", "a2", "a3"]
    binpack = stack.place(pending=pending, view=cl, settings=BINPACK)
    assert len(set(where(binpack).values())) == 1


def test_binpack_prefers_the_fuller_agent_across_groups() -> None:
    cl = view(agent(1, "cpus:8;mem:8192"), agent(2, "cpus:8;mem:8192"))
    pending = [pod("big", cpu="4"), pod("small", cpu="1")]  # two groups
    result = stack.place(pending=pending, view=cl, settings=BINPACK)
    assert where(result)["big"] == where(result)["small"]


def test_placement_is_deterministic_for_a_seed() -> None:
    cl = view(*(agent(i, "cpus:8;mem:8192") for i in range(10)))
    pending = [pod(f"p{i}") for i in range(7)]
    s1 = stack.StackSettings(seed=1)
    first = where(stack.place(pending=pending, view=cl, settings=s1))
    assert first == where(stack.place(pending=pending, view=cl, settings=s1))
    others = {
        tuple(sorted(where(stack.place(pending=pending, view=cl,
                                       settings=stack.StackSettings(seed=s))).values()))
        for s in range(2, 12)
    }
    assert len(others) > 1  # the seed does pick among equals


def test_higher_priority_pods_go_first() -> None:
    low = pod("low", cpu="3")
    high = pods.parse_pod({
        "metadata": {"name": "high", "uid": "u-h"},
        "spec": {"priority": 100, "containers": [
            {"name": "c", "resources": {"requests": {"cpu": "3"}}}]},
    })
    result = stack.place(pending=[low, high], view=view(agent(1)))
    assert [a.pod_key for a in result.assignments] == ["default/high"]


def test_explanation_counts_each_agent_once_in_the_documented_style() -> None:
    cl = view(
        agent(1, "cpus:1;mem:4096", attributes="rack:r9"),
        agent(2, "cpus:2;mem:4096", attributes="rack:r9"),
        agent(3, "cpus:8;mem:4096", attributes="rack:r1"),
    )
    result = stack.place(pending=[pod("big", cpu="4", nodeSelector={"rack": "r9"})], view=cl,
                         settings=NO_OVERHEAD)
    explanation = result.unplaced[0].explanation
    assert explanation.message == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "2 Insufficient cpu (requested 4, largest offer 2)."
    )
    assert explanation.count(feasible.REASON_INSUFFICIENT["cpus"]) == 2


def test_memory_explanation_names_units() -> None:
    result = stack.place(pending=[pod("m", cpu="100m", mem="8Gi")], view=view(agent(1)),
                         settings=NO_OVERHEAD)
    assert result.unplaced[0].explanation.message == (
        "0/1 nodes are available: 1 Insufficient memory (requested 8192 MiB, "
        "largest offer 4096 MiB)."
    )


def test_agents_without_offers_count_as_such() -> None:
    result = stack.place(pending=[pod("p")], view=view(agent(1, "")))
    assert result.unplaced[0].explanation.message == (
        "0/1 nodes are available: 1 node(s) had no offer from the Mesos master.")
    empty = stack.place(pending=[pod("p")], view=view())
    assert empty.unplaced[0].explanation.message == "no nodes available to schedule pods"


def test_host_ports_come_from_offered_ranges_and_are_not_given_twice() -> None:
    cl = view(agent(1, "cpus:8;mem:8192;ports:[31000-31005]"),
              agent(2, "cpus:8;mem:8192;ports:[31000-31005]"))
    result = stack.place(pending=[pod(f"p{i}", ports=[31002]) for i in range(3)], view=cl)
    assert sorted(where(result).values()) == ["a1", "a2"]
    choice = result.assignments[0].host_ports[0]
    assert (choice.container, choice.container_port, choice.host_port) == ("app", 31002, 31002)
    ports = [r for r in result.assignments[0].containers[0].resources if r.name == "ports"]
    assert ports[0].ranges == ((31002, 31002),)
    assert result.unplaced[0].explanation.message == (
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."
    )


def test_host_port_outside_offer_and_taken_by_a_placed_pod() -> None:
    taken = cluster.PlacedPod(key=ids.PodKey("default/old"), namespace="default",
                              host_ports=((31001, "TCP"),))
    cl = view(agent(1), agent(2, placed=(taken,)))
    result = stack.place(pending=[pod("p", ports=[31001]), pod("q", ports=[8080])], view=cl)
    assert where(result) == {"p": "a1"}
    cl2 = view(agent(2, placed=(taken,)))
    again = stack.place(pending=[pod("p", ports=[31001])], view=cl2)
    assert again.unplaced[0].explanation.message == (
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    )
    assert result.explanation("default/q").message == (  # type: ignore[union-attr]
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."
    )


@pytest.mark.parametrize(
    ("expression", "fits"),
    [
        ({"key": "rack", "operator": "In", "values": ["r1", "r2"]}, {"a1", "a2"}),
        ({"key": "rack", "operator": "NotIn", "values": ["r1"]}, {"a2", "a3"}),
        ({"key": "gpu", "operator": "Exists"}, {"a1"}),
        ({"key": "gpu", "operator": "DoesNotExist"}, {"a2", "a3"}),
        ({"key": "level", "operator": "Gt", "values": ["5"]}, {"a2"}),
        ({"key": "level", "operator": "Lt", "values": ["5"]}, {"a1"}),
        ({"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["z3"]}, {"a3"}),
        ({"key": "kubernetes.io/hostname", "operator": "In", "values": ["h2"]}, {"a2"}),
    ],
)
def test_node_affinity_operators(expression: dict[str, Any], fits: set[str]) -> None:
    cl = view(
        agent(1, attributes="rack:r1;gpu:yes;level:3", zone="z1"),
        agent(2, attributes="rack:r2;level:10", zone="z2"),
        agent(3, attributes="rack:r3", zone="z3"),
    )
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [expression]}]}}}
    pending = [pod(f"p{i}", affinity=affinity) for i in range(3)]
    result = stack.place(pending=pending, view=cl)
    assert set(where(result).values()) == fits
    for unplaced in result.unplaced:
        assert f"{3 - len(fits)} did not match required node affinity" in (
            unplaced.explanation.message
        )


def test_node_affinity_terms_are_ored_and_expressions_anded() -> None:
    cl = view(agent(1, attributes="rack:r1;disk:ssd"), agent(2, attributes="rack:r1"),
              agent(3, attributes="rack:r2"))
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["r1"]},
                                  {"key": "disk", "operator": "In", "values": ["ssd"]}]},
            {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["r2"]}]},
        ]}}}
    result = stack.place(pending=[pod(f"p{i}", affinity=affinity) for i in range(4)],
                         view=cl, settings=stack.StackSettings(strategy="spread"))
    assert set(where(result).values()) == {"a1", "a3"}


def test_match_fields_on_node_name() -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["h2"]}]}]}}}
    result = stack.place(pending=[pod("p", affinity=affinity)], view=view(agent(1), agent(2)))
    assert where(result) == {"p": "a2"}


def test_taints_tolerations_and_the_implicit_provider_toleration() -> None:
    dedicated = cluster.Taint(key="dedicated", value="gpu", effect="NoSchedule")
    prefer = cluster.Taint(key="soft", value="", effect="PreferNoSchedule")
    cl = view(agent(1, taints=(cluster.PROVIDER_TAINT, dedicated)),
              agent(2, taints=(cluster.PROVIDER_TAINT, prefer)))
    result = stack.place(pending=[pod("p"), pod("q", cpu="3500m")], view=cl)
    assert where(result) == {"p": "a2"}
    assert result.explanation("default/q").message == (  # type: ignore[union-attr]
        "0/2 nodes are available: 1 Insufficient cpu (requested 3.5, largest offer 2.9), "
        "1 node(s) had untolerated taint {dedicated: gpu}."
    )
    tolerant = pod("t", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                      "effect": "NoSchedule"}], cpu="3")
    assert where(stack.place(pending=[tolerant], view=cl)) == {"t": "a1"}
    strict = stack.StackSettings(implicit_tolerations=())
    assert stack.place(pending=[pod("p")], view=cl, settings=strict).unplaced[0].explanation \
        .message == ("0/2 nodes are available: 2 node(s) had untolerated taint "
                     "{virtual-kubelet.io/provider: mesos}.")
    everything = pod("e", tolerations=[{"operator": "Exists"}])
    assert where(stack.place(pending=[everything], view=view(agent(1, taints=(dedicated,))),
                             settings=strict)) == {"e": "a1"}


def test_no_execute_taints_count_too() -> None:
    taint = cluster.Taint(key="node.kubernetes.io/unreachable", effect="NoExecute")
    result = stack.place(pending=[pod("p")], view=view(agent(1, taints=(taint,))))
    assert result.unplaced[0].explanation.reasons[0].reason == feasible.REASON_TAINT


ANTI = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
    {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}


def test_anti_affinity_on_hostname_spreads_replicas_one_per_agent() -> None:
    cl = view(agent(1, "cpus:16;mem:16384"), agent(2, "cpus:16;mem:16384"))
    replicas = [pod(f"db{i}", labels={"app": "db"}, affinity=ANTI) for i in range(3)]
    result = stack.place(pending=replicas, view=cl, settings=BINPACK)
    assert sorted(where(result).values()) == ["a1", "a2"]
    assert result.unplaced[0].explanation.message == (
        "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."
    )


def test_anti_affinity_is_symmetric_with_existing_pods() -> None:
    terms = pod("x", labels={"app": "db"}, affinity=ANTI).anti_affinity
    existing = cluster.PlacedPod(key=ids.PodKey("default/old"), namespace="default",
                                 labels=(("app", "cache"),), anti_affinity=terms)
    cl = view(agent(1, placed=(existing,)), agent(2))
    # a plain pod labelled app=db must avoid the agent whose pod repels app=db
    result = stack.place(pending=[pod("new", labels={"app": "db"}), pod("free")], view=cl,
                         settings=BINPACK)
    assert where(result)["new"] == "a2"


def test_anti_affinity_on_zones_keeps_one_replica_per_zone() -> None:
    zone_anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "zk"}},
         "topologyKey": "topology.kubernetes.io/zone"}]}}
    cl = view(agent(1, zone="z1"), agent(2, zone="z1"), agent(3, zone="z2"))
    replicas = [pod(f"zk{i}", labels={"app": "zk"}, affinity=zone_anti) for i in range(4)]
    result = stack.place(pending=replicas, view=cl)
    zones = [cl.agents[int(a[1:]) - 1].labels["topology.kubernetes.io/zone"]
             for a in where(result).values()]
    assert sorted(zones) == ["z1", "z2"]
    assert result.unplaced[0].explanation.message == (
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    )
    # an agent without the topology label is in no zone: the term does not apply there
    unzoned = stack.place(pending=replicas, view=view(agent(4)))
    assert len(unzoned.assignments) == 3  # three fit the agent's 4 cpus


def test_required_pod_affinity_without_a_matching_pod_is_explained() -> None:
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}
    ]}}
    result = stack.place(pending=[pod("p", affinity=affinity)], view=view(agent(1)))
    assert result.unplaced[0].explanation.message == (
        "0/1 nodes are available: 1 node(s) didn't match pod affinity rules."
    )


def test_pods_bound_by_another_scheduler_go_to_their_node_only() -> None:
    cl = view(agent(1), agent(2, taints=(cluster.Taint(key="x", value="y"),)))
    result = stack.place(pending=[pod("p", nodeName="h2")], view=cl,
                         settings=stack.StackSettings(implicit_tolerations=()))
    assert where(result) == {"p": "a2"}
    missing = stack.place(pending=[pod("p", nodeName="h9")], view=cl)
    assert missing.unplaced[0].explanation.message == (
        "0/2 nodes are available: 2 node(s) didn't match the requested node name."
    )


def test_init_containers_hold_the_peak_and_get_their_share() -> None:
    raw = {
        "metadata": {"name": "p", "uid": "u"},
        "spec": {
            "initContainers": [{"name": "init", "resources": {"requests": {"cpu": "2",
                                                                          "memory": "64Mi"}}}],
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "500m",
                                                                      "memory": "256Mi"}},
                            "resources_ignored": True}],
        },
    }
    result = stack.place(pending=[pods.parse_pod(raw)], view=view(agent(1)), settings=NO_OVERHEAD)
    a = result.assignments[0]
    assert a.containers[0].resources.scalars() == {"cpus": 0.5, "mem": 256.0}
    assert a.reserve.scalars() == {"cpus": 1.5}
    assert a.init_containers[0].resources.scalars() == {"cpus": 2.0, "mem": 64.0}
    assert a.total.scalars() == {"cpus": 2.0, "mem": 256.0}


def test_gpus_and_limits_are_carried() -> None:
    raw = {
        "metadata": {"name": "g", "uid": "u"},
        "spec": {"containers": [{"name": "c", "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"}}}]},
    }
    req = pods.parse_pod(raw)
    cl = view(agent(1), agent(2, "cpus:4;mem:4096;gpus:2"))
    result = stack.place(pending=[req], view=cl)
    a = result.assignments[0]
    assert a.agent_id == "a2"
    assert a.containers[0].resources.scalar("gpus") == 1.0
    assert dict(a.containers[0].limits) == {"cpus": 2.0, "mem": 2048.0, "gpus": 1.0}
    none = stack.place(pending=[req], view=view(agent(1)))
    assert none.unplaced[0].explanation.message == (
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu (requested 1, largest offer 0)."
    )


def test_by_agent_groups_assignments_for_one_accept_each() -> None:
    result = stack.place(pending=[pod(f"p{i}", cpu="100m") for i in range(6)],
                         view=view(agent(1), agent(2)))
    groups = {agent_id: len(items) for agent_id, _, items in result.by_agent()}
    assert groups == {"a1": 3, "a2": 3}


def test_large_pass_places_every_pod_that_fits() -> None:
    cl = view(*(agent(i, "cpus:10;mem:10240") for i in range(50)))
    pending = [pod(f"p{i}", cpu="900m", mem="100Mi") for i in range(600)]
    result = stack.place(pending=pending, view=cl)
    assert len(result.assignments) == 500  # 10 per agent (1.0 each with overhead)
    per_agent: dict[str, int] = {}
    for a in result.assignments:
        per_agent[a.agent_id] = per_agent.get(a.agent_id, 0) + 1
    assert set(per_agent.values()) == {10}
    assert len({a.pod_key for a in result.assignments}) == 500


def test_a_pod_queued_twice_is_placed_once() -> None:
    p = pod("p")
    result = stack.place(pending=[p, p], view=view(agent(1)))
    assert [a.pod_key for a in result.assignments] == ["default/p"] and not result.unplaced


def test_the_nodes_pod_capacity_is_respected() -> None:
    old = cluster.PlacedPod(key=ids.PodKey("default/old"), namespace="default")
    a1 = dataclasses.replace(agent(1, "cpus:64;mem:65536", placed=(old,)), max_pods=3)
    result = stack.place(pending=[pod(f"p{i}", cpu="100m") for i in range(4)], view=view(a1))
    assert len(result.assignments) == 2
    assert result.unplaced[0].explanation.message == "0/1 nodes are available: 1 Too many pods."


@pytest.mark.parametrize("walk", [0, 16])
def test_binpack_follows_an_agent_that_another_group_filled(
    walk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group h sees agent a1 become the fullest through other groups' placements."""
    monkeypatch.setattr(select, "WALK", walk)
    total = res.parse_resources_flag("cpus:10;mem:8192")
    a1 = dataclasses.replace(agent(1, "cpus:8;mem:8192"), total=total)
    a2 = dataclasses.replace(agent(2, "cpus:6;mem:8192"), total=total)
    pending = [pod("h0", cpu="500m", labels={"app": "h"}), pod("g0", cpu="4"),
               pod("k0", cpu="7"), pod("h1", cpu="500m", labels={"app": "h"})]
    result = stack.place(pending=pending, view=view(a1, a2), settings=BINPACK)
    assert where(result) == {"h0": "a2", "g0": "a2", "k0": "a1", "h1": "a1"}


def test_offers_allocated_to_different_roles_are_not_mixed_in_one_pod() -> None:
    def offer(oid: str, role: str) -> cluster.OfferView:
        bag = res.parse_resources_flag("cpus:2;mem:2048").allocated_to(role)
        return cluster.OfferView(id=ids.OfferId(oid), agent_id=ids.AgentId("a1"), resources=bag,
                                 allocation_role=role)

    a1 = cluster.AgentView.build(agent_id="a1", hostname="h1",
                                 offers=[offer("oa", "kubernetes"), offer("ob", "batch")])
    big = stack.place(pending=[pod("big", cpu="3")], view=view(a1), settings=NO_OVERHEAD)
    assert big.unplaced[0].explanation.message == (
        "0/1 nodes are available: 1 Insufficient cpu (requested 3, largest offer 2)."
    )
    two = stack.place(pending=[pod("p", cpu="1500m"), pod("q", cpu="1500m")], view=view(a1),
                      settings=NO_OVERHEAD)
    used = {(a.offer_ids, a.allocation_role) for a in two.assignments}
    assert used == {(("oa",), "kubernetes"), (("ob",), "batch")}
    for a in two.assignments:
        assert {r.allocation_role for r in a.total} == {a.allocation_role}


def test_one_host_port_for_tcp_and_udp_is_carved_once() -> None:
    raw = {
        "metadata": {"name": "dns", "uid": "u"},
        "spec": {"containers": [{"name": "c", "ports": [
            {"containerPort": 53, "hostPort": 31003, "protocol": "UDP"},
            {"containerPort": 53, "hostPort": 31003, "protocol": "TCP"}]}]},
    }
    result = stack.place(pending=[pods.parse_pod(raw)], view=view(agent(1)))
    a = result.assignments[0]
    assert [(c.host_port, c.protocol) for c in a.host_ports] == [(31003, "UDP"), (31003, "TCP")]
    assert [r.ranges for r in a.containers[0].resources if r.name == "ports"] == [
        ((31003, 31003),)]


def test_explanation_reports_the_pods_own_request_not_the_executor_overhead() -> None:
    # cpu: 1000 used to read "requested 1000.1": the executor's 0.1 leaked into the figure
    impossible = stack.place(pending=[pod("impossible", cpu="1000")],
                             view=view(agent(1, "cpus:8;mem:4096"), agent(2)))
    assert impossible.unplaced[0].explanation.message == (
        "0/2 nodes are available: 2 Insufficient cpu (requested 1000, largest offer 8)."
    )
    # the overhead is named when it is what tips the balance: the pod alone would fit
    tipped = stack.place(pending=[pod("exact", cpu="4", mem="64Mi")], view=view(agent(1)))
    assert tipped.unplaced[0].explanation.message == (
        "0/1 nodes are available: 1 Insufficient cpu (requested 4 + 0.1 for the executor, "
        "largest offer 4)."
    )
    memory = stack.place(pending=[pod("m", cpu="100m", mem="4096Mi")], view=view(agent(1)))
    assert memory.unplaced[0].explanation.message == (
        "0/1 nodes are available: 1 Insufficient memory (requested 4096 MiB + 32 MiB for the "
        "executor, largest offer 4096 MiB)."
    )


def test_an_assignment_built_by_position_is_the_dataclass_value() -> None:
    # the pass builds its assignments with plan.new_assignment (the frozen dataclass's
    # __init__ is its most expensive constructor): the value must be the same in every way
    fields = [f.name for f in dataclasses.fields(plan.Assignment)]
    values = [f"v{i}" for i in range(len(fields))]
    fast = plan.new_assignment(*values)  # type: ignore[arg-type]
    slow = plan.Assignment(*values)  # type: ignore[arg-type]
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert [getattr(fast, name) for name in fields] == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.pod_key = "other"  # type: ignore[misc]


def test_a_lazy_ranking_answers_the_best_member_as_scores_move_both_ways() -> None:
    # a sub-ranking with one reader is not kept in order (its reader's heap re-keys what
    # surfaces, and an improved agent is pushed to it); a second reader puts it back in order
    views = [cluster.AgentView.build(
        agent_id=f"a{i}", hostname=f"h{i}", attributes=(), taints=[cluster.PROVIDER_TAINT],
        offers=[cluster.OfferView(id=ids.OfferId(f"o{i}"), agent_id=ids.AgentId(f"a{i}"),
                                  resources=res.parse_resources_flag("cpus:4;mem:4096"))],
    ) for i in range(12)]
    agents = [feasible.AgentState(view=v, index=i) for i, v in enumerate(views)]
    rng = random.Random(7)
    for agent in agents:
        agent.score = float(rng.randrange(100))
    tiebreak = list(range(12))
    rng.shuffle(tiebreak)
    rankings = select.Rankings(agents=agents, tiebreak=tiebreak)
    bonus = [float(i % 3) for i in range(12)]
    members = agents[:9]
    first = select.CandidateQueue(
        agents=members, ranking=rankings.for_group(members, bonus, heap=True))
    second: select.CandidateQueue | None = None

    def expected() -> feasible.AgentState:
        return max(members, key=lambda a: (a.score + bonus[a.index], -tiebreak[a.index]))

    for step in range(400):
        agent = agents[rng.randrange(12)]
        agent.score = max(0.0, agent.score + rng.choice([-7.0, -1.5, 0.0, 2.0, 9.0]))
        rankings.update(agent)
        assert first.best(agents) is expected(), step
        if step == 200:  # a second group with the same candidates and scores
            second = select.CandidateQueue(
                agents=members, ranking=rankings.for_group(members, bonus, heap=True))
        if second is not None:
            assert second.best(agents) is expected(), step
