"""Offer shaping (``scheduler.shaping``), pure: the pending pods' needs as Mesos offer
constraints and min_allocatable_resources, never tighter than what the pods can use."""

from __future__ import annotations

from typing import Any

from k8sbridge.model import cluster, pods
from k8sbridge.scheduler import shaping

OVERHEAD = {"cpus": 0.1, "mem": 32.0, "disk": 10.0}


def _pod(name: str, *, selector: dict[str, str] | None = None, cpu: str = "500m",
         memory: str = "64Mi", node: str = "") -> pods.PodRequest:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox", "resources": {
        "requests": {"cpu": cpu, "memory": memory}}}]}
    if selector:
        spec["nodeSelector"] = selector
    if node:
        spec["nodeName"] = node
    return pods.parse_pod({"metadata": {"name": name, "uid": name}, "spec": spec})


def _agent(rack: str, zone: str, user: dict[str, str] | None = None) -> shaping.AgentLabels:
    own = {"rack": rack, "disk": "ssd", cluster.LABEL_ZONE: zone,
           cluster.LABEL_HOSTNAME: f"h-{rack}", "kubernetes.io/os": "linux"}
    return shaping.AgentLabels(node_labels={**own, **(user or {})}, own_labels=own)


AGENTS = [_agent("r1", "z1"), _agent("r2", "z1"), _agent("r3", "z2")]


def test_selectors_on_attributes_and_zones_become_or_ed_groups() -> None:
    got = shaping.shape([_pod("a", selector={"rack": "r1"}),
                         _pod("b", selector={"rack": "r2", cluster.LABEL_ZONE: "z1"}),
                         _pod("c", selector={"rack": "r1"})], agents=AGENTS, overhead=OVERHEAD)
    assert got.groups == ((("attribute", "rack", "r1"),),
                          (("attribute", "rack", "r2"), ("pseudo", "ZONE", "z1")))


def test_one_pod_that_may_run_anywhere_lifts_the_constraints() -> None:
    got = shaping.shape([_pod("a", selector={"rack": "r1"}), _pod("b")], agents=AGENTS,
                        overhead=OVERHEAD)
    assert got.groups == ()


def test_keys_users_set_or_the_bridge_fixes_are_never_constraints() -> None:
    # a user labelled one Node rack=r9 by hand: the attribute no longer says where rack=r9 is
    edited = [_agent("r1", "z1", {"rack": "r9"}), *AGENTS[1:]]
    assert shaping.shape([_pod("a", selector={"rack": "r9"})], agents=edited,
                         overhead=OVERHEAD).groups == ()
    # a label only users set (team), the hostname and the fixed labels: looser, not wrong
    for selector in ({"team": "blue"}, {cluster.LABEL_HOSTNAME: "h-r1"},
                     {"kubernetes.io/os": "linux"}):
        assert shaping.shape([_pod("a", selector=selector)], agents=AGENTS,
                             overhead=OVERHEAD).groups == ()
    # mixed: only the agent's own key is kept
    got = shaping.shape([_pod("a", selector={"team": "blue", "disk": "ssd"})], agents=AGENTS,
                        overhead=OVERHEAD)
    assert got.groups == ((("attribute", "disk", "ssd"),),)


def test_minimums_are_each_shape_plus_the_executor_and_their_floor_past_eight() -> None:
    got = shaping.shape([_pod("a", cpu="1", memory="128Mi"), _pod("b", cpu="1", memory="128Mi"),
                         _pod("c", cpu="250m", memory="1Gi")], agents=AGENTS,
                        overhead=OVERHEAD)
    assert got.minimums == ((("cpus", 1.1), ("mem", 160.0), ("disk", 10.0)),
                            (("cpus", 0.35), ("mem", 1056.0), ("disk", 10.0)))
    many = [_pod(f"p{i}", cpu=f"{100 + 10 * i}m", memory=f"{1000 - 10 * i}Mi")
            for i in range(shaping.MAX_ALTERNATIVES + 1)]
    floor = shaping.shape(many, agents=AGENTS, overhead=OVERHEAD).minimums
    assert floor == ((("cpus", 0.2), ("mem", 952.0), ("disk", 10.0)),)


def test_a_bound_pod_or_no_pod_shapes_nothing() -> None:
    assert shaping.shape([], agents=AGENTS, overhead=OVERHEAD) == shaping.NO_SHAPE
    relaunch = _pod("r", selector={"rack": "r1"}, node="h-r1")
    got = shaping.shape([_pod("a", selector={"rack": "r2"}), relaunch], agents=AGENTS,
                        overhead=OVERHEAD)
    assert got.empty
