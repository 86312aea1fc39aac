"""The Node watch as placement reads it (``nodebook``): labels, taints, cordon; only real
changes ask for a pass; the pass's view takes the Node's facts over the agent's own."""

from __future__ import annotations

from typing import Any

from k8sbridge.model import cluster
from k8sbridge.scheduler import nodebook, stack
from tests.scheduler.test_placing_pods import agent, pod, view


def raw_node(name: str, *, labels: dict[str, str], taints: list[dict[str, str]] | None = None,
             unschedulable: bool = False, heartbeat: str = "t0") -> dict[str, Any]:
    spec: dict[str, Any] = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": name, "labels": labels}, "spec": spec,
            "status": {"conditions": [{"type": "Ready", "lastHeartbeatTime": heartbeat}]}}


def test_only_what_placement_reads_counts_as_a_change() -> None:
    book = nodebook.NodeBook()
    first = raw_node("h1", labels={"rack": "r1"})
    assert book.observe(None, first)
    assert not book.observe("MODIFIED", raw_node("h1", labels={"rack": "r1"}, heartbeat="t1"))
    assert book.observe("MODIFIED", raw_node("h1", labels={"rack": "r1", "team": "blue"}))
    assert book.observe("MODIFIED", raw_node("h1", labels={"rack": "r1", "team": "blue"},
                                             unschedulable=True))
    tainted = raw_node("h1", labels={"rack": "r1", "team": "blue"}, unschedulable=True,
                       taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    assert book.observe("MODIFIED", tainted)
    facts = book.get("h1")
    assert facts is not None
    assert facts.labels == {"rack": "r1", "team": "blue"}
    assert facts.taints == (cluster.Taint(key="dedicated", value="gpu", effect="NoSchedule"),)
    assert facts.unschedulable
    assert book.observe("DELETED", tainted)
    assert book.get("h1") is None and not book.observe("DELETED", tainted)


def test_the_nodes_labels_replace_the_derived_ones_in_the_view() -> None:
    derived = agent(1, attributes="rack:r1")
    facts = nodebook.facts_of(raw_node("h1", labels={**derived.labels, "team": "blue"}))
    from_node = cluster.AgentView.build(
        agent_id="a1", hostname="h1", offers=derived.offers, labels=facts.labels,
        taints=facts.taints)
    blue = pod("blue", nodeSelector={"team": "blue"})
    assert not stack.place(pending=[blue], view=view(derived)).assignments
    assert stack.place(pending=[blue], view=view(from_node)).assignments
