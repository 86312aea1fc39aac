"""Properties of any placement pass: nothing over-committed, nothing lost, nothing left behind."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.model import cluster, ids, pods
from k8sbridge.model import resources as res
from k8sbridge.scheduler import launch, select, stack

RACKS = ["r1", "r2", "r3"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[cluster.ClusterView, list[pods.PodRequest], str]:
    agents = []
    for n in range(draw(st.integers(1, 6))):
        cpus = draw(st.sampled_from([0.5, 1, 2, 3.5, 8]))
        mem = draw(st.sampled_from([256, 1024, 4096]))
        reserved = draw(st.sampled_from([0, 0.5, 1]))
        disk = draw(st.sampled_from([0, 15, 1000]))  # 0 and 15: no room for a 2nd executor
        spec = f"cpus:{cpus};mem:{mem};disk:{disk};ports:[31000-31003]"
        if reserved:
            spec += f";cpus(kubernetes):{reserved}"
        bag = res.parse_resources_flag(spec).allocated_to("kubernetes")
        agents.append(cluster.AgentView.build(
            agent_id=f"a{n}", hostname=f"h{n}",
            attributes=res.parse_attributes_flag(f"rack:{draw(st.sampled_from(RACKS))}"),
            offers=[cluster.OfferView(id=ids.OfferId(f"o{n}"), agent_id=ids.AgentId(f"a{n}"),
                                      resources=bag, allocation_role="kubernetes")],
        ))
    pending = []
    for i in range(draw(st.integers(1, 25))):
        container: dict[str, Any] = {"name": "c", "resources": {"requests": {
            "cpu": draw(st.sampled_from(["100m", "250m", "1", "2"])),
            "memory": draw(st.sampled_from(["32Mi", "128Mi", "1Gi"]))}}}
        port = draw(st.sampled_from([None, None, 31001, 31002, 9999]))
        if port:
            container["ports"] = [{"containerPort": 80, "hostPort": port}]
        spec: dict[str, Any] = {"containers": [container]}
        if draw(st.booleans()):
            spec["nodeSelector"] = {"rack": draw(st.sampled_from(RACKS))}
        app = draw(st.sampled_from(["db", "web", "cache"]))
        if app == "db":  # one db per agent
            spec["affinity"] = {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"app": "db"}},
                    "topologyKey": "kubernetes.io/hostname"}]}}
        pending.append(pods.parse_pod({"metadata": {"name": f"p{i}", "uid": f"u{i}",
                                                    "labels": {"app": app}},
                                       "spec": spec}))
    strategy = draw(st.sampled_from(["spread", "binpack"]))
    return cluster.ClusterView(agents=tuple(agents)), pending, strategy


@settings(max_examples=80, deadline=None)
@given(scenarios(), st.integers(0, 3))
def test_any_pass_is_consistent(
    scenario: tuple[cluster.ClusterView, list[pods.PodRequest], str], seed: int
) -> None:
    view, pending, strategy = scenario
    config = stack.StackSettings(strategy=strategy, seed=seed)  # type: ignore[arg-type]
    result = stack.place(pending=pending, view=view, settings=config)

    # every pod exactly once, and the same result for the same seed
    keys = [a.pod_key for a in result.assignments] + [u.pod_key for u in result.unplaced]
    assert sorted(keys) == sorted(p.key for p in pending)
    assert result == stack.place(pending=pending, view=view, settings=config)

    agents = {a.agent_id: a for a in view.agents}
    by_key = {p.key: p for p in pending}
    used: dict[str, res.Resources] = {}
    for a in result.assignments:
        used[a.agent_id] = used.get(a.agent_id, res.Resources()) + a.total
        pod = by_key[a.pod_key]
        # constraints hold and the carve matches the request plus executor overhead
        for key, value in pod.node_selector:
            assert agents[a.agent_id].labels.get(key) == value
        assert a.total.scalar("cpus") == round(pod.scalar("cpus") + 0.1, 3)
        assert a.total.scalar("mem") == round(pod.scalar("mem") + 32, 3)
    dbs = [a.agent_id for a in result.assignments if by_key[a.pod_key].anti_affinity]
    assert len(dbs) == len(set(dbs))  # anti-affinity on hostname holds
    for agent_id, total in used.items():
        offered = agents[agent_id].offers[0].resources
        assert offered.contains(total), (agent_id, str(total), str(offered))  # no overcommit
    for a in result.assignments:
        assert a.offer_ids == (f"o{a.agent_id[1:]}",)
    assert set(result.unused_offer_ids) == {
        o.id for ag in view.agents for o in ag.offers if ag.agent_id not in used
    }

    # nothing left behind: an unplaced pod fits on no agent with what remains
    for u in result.unplaced:
        pod = by_key[u.pod_key]
        assert sum(r.count for r in u.explanation.reasons) == len(view.agents)
        for ag in view.agents:
            if any(ag.labels.get(k) != v for k, v in pod.node_selector):
                continue
            if pod.anti_affinity and ag.agent_id in dbs:
                continue
            left = ag.offers[0].resources - used.get(ag.agent_id, res.Resources())
            fits = (left.scalar("cpus") >= round(pod.scalar("cpus") + 0.1, 3)
                    and left.scalar("mem") >= round(pod.scalar("mem") + 32, 3)
                    and left.scalar("disk") >= 10
                    and all(res.ranges_contain(left.ranges("ports"), ((p.host_port,) * 2,))
                            for p in pod.host_ports))
            assert not fits, (u.pod_key, ag.agent_id, str(left), u.explanation.message)


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.integers(0, 3))
def test_selection_is_exact_whichever_path_finds_the_best(
    scenario: tuple[cluster.ClusterView, list[pods.PodRequest], str], seed: int
) -> None:
    """Walking the whole ranking is the definition of "best"; the per-group heaps (used when
    the walk is cut short) must agree with it for both strategies."""
    view, pending, strategy = scenario
    config = stack.StackSettings(strategy=strategy, seed=seed)  # type: ignore[arg-type]
    assert _placed_with_heaps(view, pending, config) == _placed_by_walking(view, pending, config)


def _placed_by_walking(
    view: cluster.ClusterView, pending: list[pods.PodRequest], config: stack.StackSettings
) -> Any:
    saved = select.WALK, select.LAZY
    try:  # every ranking in order, walked to its end
        select.WALK, select.LAZY = 10**9, False
        return stack.place(pending=pending, view=view, settings=config)
    finally:
        select.WALK, select.LAZY = saved


def _placed_with_heaps(
    view: cluster.ClusterView, pending: list[pods.PodRequest], config: stack.StackSettings
) -> Any:
    saved = select.WALK, select.LAZY
    try:
        select.WALK, select.LAZY = 0, True
        return stack.place(pending=pending, view=view, settings=config)
    finally:
        select.WALK, select.LAZY = saved


def _preferring(rack: str, cpu: str, name: str) -> pods.PodRequest:
    return pods.parse_pod({
        "metadata": {"name": name, "namespace": "default", "uid": name},
        "spec": {
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu,
                                                                    "memory": "64Mi"}}}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "preference": {"matchExpressions": [
                    {"key": "rack", "operator": "In", "values": [rack]}]}}]}},
        },
    })


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
def test_a_ranking_of_one_group_kept_out_of_order_decides_as_the_full_walk(
    strategy: str,
) -> None:
    """A group whose static scores no other group shares reads a lazy ranking (re-keyed in
    its heap, ``select.LAZY``); a second group with the same candidates and scores, arriving
    after the first has placed pods, puts it back in order. Both must pick what walking
    every ranking in order picks, pod by pod."""
    agents = [cluster.AgentView.build(
        agent_id=f"a{i}", hostname=f"h{i}",
        attributes=res.parse_attributes_flag(f"rack:r{i % 3}"), zone=f"z{i % 2}",
        taints=[cluster.PROVIDER_TAINT],
        offers=[cluster.OfferView(
            id=ids.OfferId(f"o{i}"), agent_id=ids.AgentId(f"a{i}"),
            resources=res.parse_resources_flag(
                f"cpus:{2 + i % 4};mem:8192;disk:1000").allocated_to("kubernetes"),
            allocation_role="kubernetes")],
    ) for i in range(12)]
    view = cluster.ClusterView(agents=tuple(agents))
    pending = [_preferring("r1", "300m", f"a{n}") for n in range(6)]  # alone: lazy
    for n in range(40):  # then a second group on the same ranking, and one of its own
        pending.append(_preferring("r1", "500m", f"b{n}"))
        pending.append(_preferring("r1", "300m", f"a{n + 6}"))
        pending.append(_preferring("r2", "700m", f"c{n}"))
    config = stack.StackSettings(strategy=strategy)  # type: ignore[arg-type]
    reference = _placed_by_walking(view, pending, config)
    assert len(reference.assignments) > 60 and reference.unplaced  # the agents fill up
    assert _placed_with_heaps(view, pending, config) == reference
    saved = select.WALK
    try:  # the walk as the pass runs it, with the lazy ranking
        select.WALK = 16
        assert stack.place(pending=pending, view=view, settings=config) == reference
    finally:
        select.WALK = saved


@st.composite
def rich_scenarios(draw: st.DrawFn) -> tuple[cluster.ClusterView, list[pods.PodRequest]]:
    """Several offers and roles per agent, reservations, init containers, sidecars, ports."""
    agents = []
    for n in range(draw(st.integers(1, 4))):
        offers = []
        for k, role in enumerate(draw(st.lists(st.sampled_from(["kubernetes", "batch"]),
                                               min_size=0, max_size=3))):
            spec = draw(st.sampled_from([
                "cpus:1;mem:512;disk:100", "cpus(kubernetes):1;cpus:0.5;mem:256;disk:50",
                "cpus:4;mem:4096;disk:1000;ports:[31000-31001]", "gpus:1;cpus:2;mem:1024;disk:20",
            ]))
            bag = res.parse_resources_flag(spec).allocated_to(role)
            offers.append(cluster.OfferView(id=ids.OfferId(f"o{n}.{k}"),
                                            agent_id=ids.AgentId(f"a{n}"), resources=bag,
                                            allocation_role=role))
        agents.append(cluster.AgentView.build(
            agent_id=f"a{n}", hostname=f"h{n}", zone=draw(st.sampled_from([None, "z1", "z2"])),
            offers=offers, max_pods=draw(st.sampled_from([None, 1, 3])),
        ))
    pending = []
    for i in range(draw(st.integers(1, 12))):
        def container(name: str) -> dict[str, Any]:
            c: dict[str, Any] = {"name": name, "resources": {"requests": {
                "cpu": draw(st.sampled_from(["100m", "700m", "2"])),
                "memory": draw(st.sampled_from(["16Mi", "300Mi"]))}}}
            if draw(st.booleans()):
                c["resources"]["limits"] = {"nvidia.com/gpu": 1}
            if draw(st.integers(0, 3)) == 0:
                c["ports"] = [{"containerPort": 1, "hostPort": 31001, "protocol": proto}
                              for proto in draw(st.sampled_from([["TCP"], ["TCP", "UDP"]]))]
            return c
        spec: dict[str, Any] = {"containers": [container("app")]}
        if draw(st.booleans()):
            init = container("init")
            init.pop("ports", None)
            spec["initContainers"] = [init]
            if draw(st.booleans()):
                sidecar = container("side")
                sidecar.pop("ports", None)
                spec["initContainers"].append({**sidecar, "restartPolicy": "Always"})
        if draw(st.booleans()):
            spec["affinity"] = {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"app": "x"}},
                    "topologyKey": draw(st.sampled_from(["kubernetes.io/hostname",
                                                         "topology.kubernetes.io/zone"]))}]}}
        pending.append(pods.parse_pod({"metadata": {"name": f"p{i}", "uid": f"u{i}",
                                                    "labels": {"app": "x"}}, "spec": spec}))
    return cluster.ClusterView(agents=tuple(agents)), pending


@settings(max_examples=80, deadline=None)
@given(rich_scenarios(), st.sampled_from(["spread", "binpack"]))
def test_rich_inputs_never_overcommit_a_pool(
    scenario: tuple[cluster.ClusterView, list[pods.PodRequest]], strategy: str
) -> None:
    view, pending = scenario
    result = stack.place(pending=pending, view=view,
                         settings=stack.StackSettings(strategy=strategy))  # type: ignore[arg-type]
    assert len(result.assignments) + len(result.unplaced) == len(pending)
    held: dict[tuple[str, str | None], res.Resources] = {}
    for a in result.assignments:
        key = (a.agent_id, a.allocation_role)
        held[key] = held.get(key, res.Resources()) + a.total
        pod = next(p for p in pending if p.key == a.pod_key)
        requests = {c.name: {n: v for n, v in c.requests if v} for c in pod.init_containers}
        for c in a.init_containers:  # init containers run inside what the pod holds
            assert (a.total - a.executor).flatten().contains(c.resources.flatten())
            assert c.resources.scalars() == requests[c.name]  # and get their full request
        assert [c.name for c in a.init_containers] == [c.name for c in pod.init_containers]
    for (agent_id, role), total in held.items():
        offered = res.Resources()
        for ag in view.agents:
            for o in ag.offers:
                if ag.agent_id == agent_id and o.allocation_role == role:
                    offered = offered + o.resources
        assert offered.contains(total), (agent_id, role, str(total), str(offered))
    for ag in view.agents:
        if ag.max_pods is not None:
            assert sum(a.agent_id == ag.agent_id for a in result.assignments) <= ag.max_pods


def _task_ports(task: dict[str, Any]) -> list[int]:
    ports = res.Resources.parse(task["resources"]).ranges("ports")
    return [p for begin, end in ports for p in range(begin, end + 1)]


@settings(max_examples=80, deadline=None)
@given(rich_scenarios(), st.sampled_from(["spread", "binpack"]))
def test_rendered_operations_are_what_was_offered(
    scenario: tuple[cluster.ClusterView, list[pods.PodRequest]], strategy: str
) -> None:
    """The operations production sends (rendered from the plan, never carved again): per
    ACCEPT they never exceed its offers, each pod's pieces come from its ``sources``, the
    resources add up to what placement held for it, host ports are unique on an agent, and
    limits are only ever what the master takes."""
    view, pending = scenario
    result = stack.place(pending=pending, view=view,
                         settings=stack.StackSettings(strategy=strategy))  # type: ignore[arg-type]
    offers = {o.id: o.resources for ag in view.agents for o in ag.offers}
    by_key = {p.key: p for p in pending}
    ports_on: dict[str, list[int]] = {}
    for agent_id, offer_ids, assignments in result.by_agent():
        offered = res.Resources.of(r for o in offer_ids for r in offers[o])
        sent = res.Resources()
        for a in assignments:
            pod = by_key[a.pod_key]
            assert a.sources and set(a.sources) <= set(offer_ids)
            from_sources = res.Resources.of(r for o in a.sources for r in offers[o])
            group = launch.render_launch_group(
                pod={}, request=pod, assignment=a, framework_id="f", generation=1,
                env={}, master_version=(1, 11), agent_version=(1, 11),
            )
            json.dumps(group.operation, allow_nan=False)
            tasks = group.operation["launch_group"]["task_group"]["tasks"]
            used = res.Resources.parse(group.operation["launch_group"]["executor"]["resources"])
            for task in tasks:
                used = used + res.Resources.parse(task["resources"])
                assert set(task.get("limits") or {}) <= {"cpus", "mem"}
            assert used == group.used
            assert all(r.allocation_role == a.allocation_role for r in used)
            assert from_sources.contains(used), (a.pod_key, str(used), str(from_sources))
            # the app group's scalars are the executor's share plus the app requests, and
            # with the sidecars and the init reserve they are exactly what the pod holds
            want = {"cpus": 0.1, "mem": 32.0, "disk": 10.0}
            for c in pod.containers:
                for name, value in c.requests:
                    want[name] = want.get(name, 0.0) + value
            got = used.scalars()
            assert {n: round(v, 3) for n, v in got.items() if v} == {
                n: round(v, 3) for n, v in want.items() if v
            }
            sidecars = [r for c in a.init_containers if c.sidecar for r in c.resources]
            assert used + res.Resources.of(sidecars) + a.reserve == a.total
            shares = {(t.get("container") or {}).get("linux_info", {}).get("share_cgroups")
                      for t in tasks}
            assert len(shares) == 1  # all tasks of a group agree on share_cgroups
            # host ports: each asked port is in exactly one task of the pod's group
            pod_ports = [p for t in tasks for p in _task_ports(t)]
            assert sorted(pod_ports) == sorted({p.host_port for p in pod.host_ports})
            ports_on.setdefault(agent_id, []).extend(pod_ports)
            for k, init in enumerate(a.init_containers):
                if init.sidecar:
                    continue  # runs in the pod's steady share
                phase = launch.render_launch_group(
                    pod={}, request=pod, assignment=a, framework_id="f",
                    generation=1, env={}, init_phase=k,
                )
                assert a.total.contains(phase.used)  # an init phase runs in the pod's share
            sent = sent + used
        assert offered.contains(sent), (agent_id, str(sent), str(offered))
    for agent_id, ports in ports_on.items():
        assert len(ports) == len(set(ports)), (agent_id, ports)
