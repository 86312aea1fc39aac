"""Each Node reports its own agent's address (InternalIP from the agent's pid, Hostname its
hostname) as a kubelet reports its host's; the kubelet API listens on several addresses with
one port, so an API server dialling any Node's InternalIP reaches it."""

from __future__ import annotations

import asyncio
import dataclasses

from k8sbridge import settings as bridge_settings
from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import api as kubelet_api
from k8sbridge.kubelet import nodes
from k8sbridge.model import ids
from k8sbridge.model.resources import parse_resources_flag


def _agent(n: int, address: str) -> mesos_agents.AgentInfo:
    return mesos_agents.AgentInfo(
        agent_id=ids.AgentId(f"S{n}"), hostname=f"agent-{n}.example.com", address=address,
        active=True, total=parse_resources_flag("cpus:1;mem:512"), attributes=(),
        region=None, zone=None)


def _addresses(agent: mesos_agents.AgentInfo, settings: bridge_settings.BridgeSettings
               ) -> list[tuple[str, str]]:
    node = nodes.render_node(agent, settings=settings, now="2026-01-01T00:00:00Z")
    return [(a["type"], a["address"]) for a in node["status"]["addresses"]]


def test_each_node_reports_its_agents_ip_and_hostname() -> None:
    settings = bridge_settings.load(env={"K8SBRIDGE_KUBELET_ADVERTISE_ADDRESS": "10.9.9.9"})
    assert _addresses(_agent(1, "127.0.0.2:5051"), settings) == [
        ("InternalIP", "127.0.0.2"), ("Hostname", "agent-1.example.com")]
    assert _addresses(_agent(2, "[fd00::3]:5051"), settings) == [
        ("InternalIP", "fd00::3"), ("Hostname", "agent-2.example.com")]


def test_the_kubelets_address_when_the_api_server_must_dial_the_bridge() -> None:
    settings = bridge_settings.load(env={"K8SBRIDGE_KUBELET_ADVERTISE_ADDRESS": "10.9.9.9",
                                         "K8SBRIDGE_KUBELET_NODE_ADDRESS": "kubelet"})
    assert _addresses(_agent(1, "127.0.0.2:5051"), settings)[0] == ("InternalIP", "10.9.9.9")


async def test_the_kubelet_api_listens_on_every_address_with_one_port() -> None:
    settings = dataclasses.replace(bridge_settings.load(env={}).kubelet,
                                   host="127.0.0.1,127.0.0.2,127.0.0.3", port=0, anonymous=True)
    server = kubelet_api.KubeletServer(settings=settings, reader=None)  # type: ignore[arg-type]
    port = await server.start()
    try:
        for host in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            await writer.wait_closed()
    finally:
        await server.stop()
