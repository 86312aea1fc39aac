"""Cluster views: node labels from attributes, hostname and fault domain; offers from wire JSON."""

from __future__ import annotations

from k8sbridge.model import cluster, ids, pods
from k8sbridge.model import resources as res
from k8sbridge.scheduler import stack


def test_labels_from_attributes_hostname_and_fault_domain() -> None:
    labels = cluster.node_labels(
        hostname="Agent_1.Example",
        attributes=res.parse_attributes_flag("rack:r1;level:10;keys:[1000-1500];bad key:x;"
                                             "tags:{a,b};example.com/x:y"),
        region="eu-west",
        zone="eu-west-1a",
    )
    assert labels == {
        "rack": "r1",
        "level": "10",
        "kubernetes.io/hostname": "agent-1.example",
        "kubernetes.io/os": "linux",
        "kubernetes.io/role": "agent",
        "node.kubernetes.io/exclude-from-external-load-balancers": "true",
        "type": "virtual-kubelet",
        "topology.kubernetes.io/region": "eu-west",
        "topology.kubernetes.io/zone": "eu-west-1a",
    }
    assert cluster.node_name_for("Agent_1.Example") == "agent-1.example"
    assert cluster.node_name_for("--") == "mesos-agent"


def test_label_key_and_value_validation() -> None:
    assert cluster.is_label_key("example.com/rack")
    assert not cluster.is_label_key("Example.com/rack")
    assert not cluster.is_label_key("/rack")
    assert cluster.is_label_value("")
    assert not cluster.is_label_value("-x")
    assert not cluster.is_label_value("x" * 64)


RAW_OFFER = {
    "id": {"value": "offer-1"},
    "framework_id": {"value": "fw"},
    "agent_id": {"value": "agent-1"},
    "hostname": "host-1",
    "domain": {"fault_domain": {"region": {"name": "r"}, "zone": {"name": "z"}}},
    "allocation_info": {"role": "kubernetes"},
    "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": "r9"}}],
    "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2},
         "allocation_info": {"role": "kubernetes"}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024},
         "allocation_info": {"role": "kubernetes"}},
        {"name": "disk", "type": "SCALAR", "scalar": {"value": 1024},
         "allocation_info": {"role": "kubernetes"}},
    ],
}


def test_cluster_view_from_raw_mesos_offers() -> None:
    view = cluster.ClusterView.from_raw_offers([RAW_OFFER])
    (agent,) = view.agents
    assert agent.agent_id == "agent-1" and agent.node_name == "host-1"
    assert agent.labels["rack"] == "r9"
    assert agent.labels["topology.kubernetes.io/zone"] == "z"
    assert agent.offers[0].id == ids.OfferId("offer-1")
    assert agent.offers[0].allocation_role == "kubernetes"
    assert agent.taints == (cluster.PROVIDER_TAINT,)
    p = pods.parse_pod({"metadata": {"name": "p"}, "spec": {
        "nodeSelector": {"rack": "r9"},
        "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}})
    plan = stack.place(pending=[p], view=view)
    assert plan.assignments[0].offer_ids == ("offer-1",)
    assert plan.assignments[0].allocation_role == "kubernetes"


def test_offers_without_ids_are_rejected_clearly() -> None:
    import pytest

    with pytest.raises(res.ResourceError, match="offer without"):
        cluster.OfferView.from_raw({"resources": []})
    with pytest.raises(res.ResourceError, match="agent_id"):
        cluster.ClusterView.from_raw_offers([{"id": {"value": "x"}}])
