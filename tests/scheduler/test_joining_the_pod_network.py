"""Pods join the configured CNI network through their executor's ContainerInfo, unless they
use the host's network or a hostPort; the agent then writes their hosts files; their
containers find the Kubernetes API in the kubernetes Service's variables (pure rendering)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from k8sbridge import settings as bridge_settings
from k8sbridge.model import cluster, ids, pods
from k8sbridge.model.resources import parse_resources_flag
from k8sbridge.scheduler import launch, podenv, podfiles, stack

NETWORK = podfiles.Network(pod_ips=("127.0.0.2",), cluster_dns=("10.96.0.10",))


def _pod(container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "command": ["sleep", "9"],
                                     **(container or {})}], **spec}}


def _render(pod: dict[str, Any], *, pod_network: str = "k8sbridge") -> launch.LaunchGroup:
    request = pods.parse_pod(pod)
    offer = parse_resources_flag("cpus:8;mem:8192;disk:1000;ports:[31000-32000]").allocated_to(
        "k8s")
    view = cluster.ClusterView(agents=(cluster.AgentView.build(
        agent_id="a1", hostname="h1",
        offers=[cluster.OfferView(id=ids.OfferId("o1"), agent_id=ids.AgentId("a1"),
                                  resources=offer, allocation_role="k8s")]),))
    assignment = stack.place(pending=[request], view=view).assignment(request.key)
    assert assignment is not None
    return launch.render_launch_group(
        pod=pod, request=request, assignment=assignment, framework_id="f", generation=1,
        env={}, network=NETWORK, pod_network=pod_network)


def _executor(group: launch.LaunchGroup) -> dict[str, Any]:
    executor: dict[str, Any] = group.operation["launch_group"]["executor"]
    return executor


def _paths(group: launch.LaunchGroup) -> list[str]:
    task = group.operation["launch_group"]["task_group"]["tasks"][0]
    return [v["container_path"] for v in (task.get("container") or {}).get("volumes") or []]


def test_a_pod_names_the_network_on_its_executor_with_its_hostname_and_labels() -> None:
    group = _render(_pod(hostname="db", subdomain="backend", setHostnameAsFQDN=True))
    container = _executor(group)["container"]
    assert container["type"] == "MESOS"
    [info] = container["network_infos"]
    assert info["name"] == "k8sbridge"
    assert {x["key"]: x["value"] for x in info["labels"]["labels"]} == {
        launch.LABEL_NAMESPACE: "shop", launch.LABEL_NAME: "web-0", launch.LABEL_UID: "u1"}
    assert container["hostname"] == "db.backend.shop.svc.cluster.local"
    # the agent's isolator writes /etc/hosts and /etc/hostname (it knows the IP)
    assert _paths(group) == ["/etc/resolv.conf"]


@pytest.mark.parametrize("pod", [
    pytest.param(_pod(hostNetwork=True), id="hostNetwork"),
    pytest.param(_pod({"ports": [{"containerPort": 80, "hostPort": 31080}]}), id="hostPort"),
])
def test_host_network_and_host_port_pods_keep_the_agents_network(pod: dict[str, Any]) -> None:
    group = _render(pod)
    assert "container" not in _executor(group)


def test_a_host_port_stays_a_share_of_the_agents_ports() -> None:
    group = _render(_pod({"ports": [{"containerPort": 80, "hostPort": 31080}]}))
    task = group.operation["launch_group"]["task_group"]["tasks"][0]
    assert [r["ranges"] for r in task["resources"] if r["name"] == "ports"] == [
        {"range": [{"begin": 31080, "end": 31080}]}]
    assert _paths(group) == ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]


def test_without_a_pod_network_every_pod_keeps_the_agents_network() -> None:
    group = _render(_pod(), pod_network="")
    assert "container" not in _executor(group)
    assert _paths(group) == ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]


def test_host_aliases_on_the_pod_network_are_refused_with_the_reason() -> None:
    with pytest.raises(podenv.LaunchError) as e:
        _render(_pod(hostAliases=[{"ip": "192.0.2.1", "hostnames": ["a"]}]))
    assert str(e.value) == podfiles.HOST_ALIASES_OWN_NETWORK
    assert e.value.reason == "CreateContainerConfigError"


def test_containers_get_the_kubernetes_service_variables_unless_they_set_them() -> None:
    env = podenv.with_api_service([("KUBERNETES_SERVICE_PORT", "1"), ("A", "b")],
                                  host="10.88.255.254", port=6443)
    assert env == [
        ("KUBERNETES_SERVICE_HOST", "10.88.255.254"),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "6443"),
        ("KUBERNETES_PORT", "tcp://10.88.255.254:6443"),
        ("KUBERNETES_PORT_6443_TCP", "tcp://10.88.255.254:6443"),
        ("KUBERNETES_PORT_6443_TCP_PROTO", "tcp"),
        ("KUBERNETES_PORT_6443_TCP_PORT", "6443"),
        ("KUBERNETES_PORT_6443_TCP_ADDR", "10.88.255.254"),
        ("KUBERNETES_SERVICE_PORT", "1"), ("A", "b")]
    assert podenv.with_api_service([("A", "b")], host="", port=443) == [("A", "b")]


def test_the_pod_ip_in_env_comes_from_the_executor_on_the_pod_network() -> None:
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "odd.name", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    pod = _pod({"env": env, "command": ["server", "--listen", "$(POD_IP)"]})
    command = _task(_render(pod))["command"]
    assert command["arguments"][:4] == ["/bin/sh", "-c", launch.POD_IP_SCRIPT, "sh"]
    assert command["arguments"][4] == "server"
    variables = {v["name"]: v["value"] for v in command["environment"]["variables"]}
    assert variables[launch.POD_IP_VARS] == "POD_IP"  # a name sh cannot export keeps its value
    # on the agent's network the value is the agent's address, known at launch
    on_host = _task(_render(pod, pod_network=""))["command"]
    assert on_host["arguments"][0] == "server"
    assert launch.POD_IP_VARS not in {v["name"] for v in on_host["environment"]["variables"]}


def _task(group: launch.LaunchGroup) -> dict[str, Any]:
    task: dict[str, Any] = group.operation["launch_group"]["task_group"]["tasks"][0]
    return task


@pytest.mark.parametrize(("env", "message"), [
    ({"K8SBRIDGE_EMBEDDED_CLUSTER_CIDR": "10.88.0.0/24"}, "/22 or larger"),
    ({"K8SBRIDGE_EMBEDDED_CLUSTER_CIDR": "fd00::/64"}, "an IPv4 network"),
    ({"K8SBRIDGE_EMBEDDED_CLUSTER_CIDR": "10.88.0.1/16"}, "embedded.cluster_cidr"),
    ({"K8SBRIDGE_KUBELET_NODE_ADDRESS": "pod"}, "'agent' or 'kubelet'"),
    ({"K8SBRIDGE_SCHEDULER_API_SERVICE_PORT": "0"}, "1..65535"),
])
def test_network_settings_are_checked(env: dict[str, str], message: str) -> None:
    with pytest.raises(bridge_settings.SettingsError, match=re.escape(message)):
        bridge_settings.load(env=env)


def test_the_network_settings_defaults() -> None:
    settings = bridge_settings.load(env={"K8SBRIDGE_SCHEDULER_POD_NETWORK": ""})
    assert settings.scheduler.pod_network == ""
    default = bridge_settings.load(env={})
    assert default.scheduler.pod_network == "k8sbridge"
    assert default.embedded.cluster_cidr == "10.88.0.0/16" and default.embedded.cluster_network
