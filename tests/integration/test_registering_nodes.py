"""One Node per agent (labels, taint, capacity, addresses, lease); when the agent goes away the
bridge goes silent for it, as a partitioned kubelet, and the node lifecycle controller marks the
Node Unknown and taints it unreachable; a Node the master forgot is deleted in the end."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from k8sbridge import app, embedded
from k8sbridge import settings as bridge_settings
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.master import config as master_config
from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import nodes
from k8sbridge.model import ids
from k8sbridge.model.resources import parse_attributes_flag, parse_resources_flag
from tests.integration.conftest import eventually, fast_settings


def test_rendering_a_node_from_an_agent() -> None:
    agent = mesos_agents.AgentInfo(
        agent_id=ids.AgentId("M-S1"),
        hostname="Agent_7.example.com",
        address="10.0.0.7:5051",
        active=True,
        total=parse_resources_flag(
            "cpus:3.5;mem:2048;disk:1000;gpus:1;ports:[31000-32000];cpus(marathon):2"
        ),
        attributes=parse_attributes_flag("rack:r1;level:10;keys:[1-5]"),
        region="eu",
        zone="eu-1",
    )
    settings = bridge_settings.load(env={})
    node = nodes.render_node(agent, settings=settings, now="2026-01-01T00:00:00Z")
    assert node["metadata"]["name"] == "agent-7.example.com"
    labels = node["metadata"]["labels"]
    assert labels["rack"] == "r1" and labels["level"] == "10" and "keys" not in labels
    assert labels["type"] == "virtual-kubelet"
    assert labels["kubernetes.io/hostname"] == "agent-7.example.com"
    assert labels["topology.kubernetes.io/region"] == "eu"
    assert labels["topology.kubernetes.io/zone"] == "eu-1"
    assert node["spec"]["taints"] == [
        {"key": "virtual-kubelet.io/provider", "value": "mesos", "effect": "NoSchedule"}
    ]
    status = node["status"]
    assert status["capacity"] == {"cpu": "5500m", "memory": "2048Mi", "pods": "110",
                                  "ephemeral-storage": "1000Mi", "nvidia.com/gpu": "1"}
    # cpus reserved for another role (marathon) are not allocatable to us.
    assert status["allocatable"]["cpu"] == "3500m"
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert {"type": "Hostname", "address": "Agent_7.example.com"} in status["addresses"]
    assert status["nodeInfo"]["kubeletVersion"].startswith("v")
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    later = nodes.render_node(agent, settings=settings, now="2026-01-01T00:01:00Z",
                              previous_conditions={"Ready": ready})
    again = {c["type"]: c for c in later["status"]["conditions"]}["Ready"]
    assert again["lastHeartbeatTime"] == "2026-01-01T00:01:00Z"
    assert again["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    # after the controller's Unknown, Ready=True is a transition again
    unknown = dict(ready, status="Unknown", reason="NodeStatusUnknown")
    back = nodes.render_node(agent, settings=settings, now="2026-01-01T00:02:00Z",
                             previous_conditions={"Ready": unknown})
    ready_again = {c["type"]: c for c in back["status"]["conditions"]}["Ready"]
    assert ready_again["lastTransitionTime"] == "2026-01-01T00:02:00Z"


def test_the_bridge_touches_only_its_own_taint() -> None:
    own = nodes.own_taints("virtual-kubelet.io/provider=mesos:NoSchedule")
    controllers = [
        {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
         "timeAdded": "2026-01-01T00:00:00Z"},
        {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
    ]
    assert nodes.with_own_taints(controllers, own) == [*controllers, *own]
    assert nodes.with_own_taints([*controllers, *own], own) is None
    assert nodes.with_own_taints(list(reversed([*controllers, *own])), own) is None
    stale = {"key": "virtual-kubelet.io/provider", "value": "other", "effect": "NoExecute"}
    assert nodes.with_own_taints([stale, *controllers], own) == [*controllers, *own]
    assert nodes.with_own_taints(None, own) == own
    assert nodes.with_own_taints(controllers, nodes.own_taints("")) is None


async def test_nodes_and_leases_follow_the_agents(tmp_path: Path) -> None:
    base = fast_settings(tmp_path / "run")
    # a node grace period of 2 s (devkube's) needs leases renewed well within it
    base = dataclasses.replace(base, kubelet=dataclasses.replace(base.kubelet,
                                                                 lease_renew_seconds=0.5))
    agents = embedded.embedded_agent_configs(data_dir=tmp_path / "run", count=2)
    async with kernel_main.running_kernel(
        master=master_config.MasterConfig(port=0), agents=agents
    ) as kernel, devkube_main.running(
        devkube_main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig",
                                   node_grace_seconds=2.0)
    ) as dk:
        settings = dataclasses.replace(
            base,
            mesos=dataclasses.replace(base.mesos, masters=(kernel.master_url,)),
            kube=dataclasses.replace(base.kube, kubeconfig=dk.kubeconfig),
        )
        async with app.running_bridge(settings) as bridge:
            kube = bridge.kube

            async def node_list() -> list[dict[str, Any]]:
                reply = await kube.get("/api/v1/nodes")
                items: list[dict[str, Any]] = reply.get("items") or []
                return items if len(items) == 2 else []

            items = await eventually(node_list, what="2 nodes")
            by_name = {n["metadata"]["name"]: n for n in items}
            assert set(by_name) == {"127.0.0.1", "127.0.0.2"}
            assert by_name["127.0.0.1"]["metadata"]["labels"]["rack"] == "r1"
            assert by_name["127.0.0.2"]["status"]["capacity"]["cpu"] == "2"
            port = by_name["127.0.0.1"]["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            assert port == bridge.kubelet_port
            lease = await kube.get(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/127.0.0.1"
            )
            assert lease["spec"]["holderIdentity"] == "127.0.0.1"
            assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"

            await kernel.stop_agent(1)

            async def not_ready() -> dict[str, Any] | None:
                node = await kube.get("/api/v1/nodes/127.0.0.2")
                for c in node["status"]["conditions"]:
                    if c["type"] == "Ready" and c["status"] != "True":
                        return dict(node)
                return None

            node = await eventually(not_ready, what="node 127.0.0.2 NotReady")
            ready = {c["type"]: c for c in node["status"]["conditions"]}["Ready"]
            assert ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown"
            assert {"key": "virtual-kubelet.io/provider", "value": "mesos",
                    "effect": "NoSchedule"} in node["spec"]["taints"]
            healthy = await kube.get("/api/v1/nodes/127.0.0.1")
            statuses = {c["type"]: c["status"] for c in healthy["status"]["conditions"]}
            assert statuses["Ready"] == "True"


class _Agents:
    """What GET_AGENTS returns, set by the test (the kernel cannot forget an agent)."""

    def __init__(self, agents: list[mesos_agents.AgentInfo]) -> None:
        self.agents = agents

    async def get_agents(self) -> list[mesos_agents.AgentInfo]:
        return list(self.agents)


async def test_a_forgotten_agent_is_no_longer_reported_then_its_node_is_deleted(
    tmp_path: Path,
) -> None:
    from k8sbridge.kube import client as kube_client
    from k8sbridge.kube import errors as kube_errors

    agent = mesos_agents.AgentInfo(
        agent_id=ids.AgentId("M-S9"), hostname="gone-agent", address="127.0.0.9:5051",
        active=True, total=parse_resources_flag("cpus:1;mem:512"), attributes=(),
        region=None, zone=None,
    )
    reader = _Agents([agent])
    now = [1000.0]
    async with devkube_main.running(
        devkube_main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kc", controllers=False)
    ) as dk:
        kube = kube_client.KubeClient.from_kubeconfig(path=dk.kubeconfig)
        try:
            controller = nodes.NodeController(
                kube=kube, reader=reader,  # type: ignore[arg-type]
                settings=bridge_settings.load(env={}), _clock=lambda: now[0],
            )
            await controller.sync_once()
            node = await kube.get("/api/v1/nodes/gone-agent")
            assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == (
                "True"
            )
            lease_path = kube_client.lease_path("gone-agent")
            lease = await kube.get(lease_path)
            reader.agents = []
            for _ in range(3):  # well past the status report and lease periods: nothing
                now[0] += 100
                await controller.sync_once()
            after = await kube.get("/api/v1/nodes/gone-agent")
            assert after["metadata"]["resourceVersion"] == node["metadata"]["resourceVersion"]
            assert (await kube.get(lease_path))["spec"]["renewTime"] == lease["spec"][
                "renewTime"]
            now[0] += nodes.NODE_GONE_SECONDS
            await controller.sync_once()
            try:
                await kube.get("/api/v1/nodes/gone-agent")
            except kube_errors.NotFound:
                pass
            else:
                raise AssertionError("the Node of a forgotten agent was not deleted")
            assert controller.node_for_agent(ids.AgentId("M-S9")) is None
        finally:
            await kube.close()
