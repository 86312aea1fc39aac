"""Pods join the configured CNI network through their executor's ContainerInfo, unless they
use the host's network or a hostPort; the agent then writes their hosts files; their
containers find the Kubernetes API in the kubernetes Service's variables (pure rendering)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from k8sbridge import settings as bridge_settings
from k8sbridge.model import cluster, ids, pods
from k8sbridge.model.resources import parse_resources_flag
from k8sbridge.scheduler import launch, podenv, podfiles, podnet, serviceenv, stack

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


def test_a_container_with_a_tty_asks_mesos_for_one() -> None:
    group = _render(_pod({"tty": True, "stdin": True}))
    task = group.operation["launch_group"]["task_group"]["tasks"][0]
    assert task["container"]["tty_info"] == {}
    plain = _render(_pod()).operation
    assert "tty_info" not in plain["launch_group"]["task_group"]["tasks"][0]["container"]


def test_host_aliases_on_the_pod_network_are_refused_with_the_reason() -> None:
    with pytest.raises(podenv.LaunchError) as e:
        _render(_pod(hostAliases=[{"ip": "192.0.2.1", "hostnames": ["a"]}]))
    assert str(e.value) == podfiles.HOST_ALIASES_OWN_NETWORK
    assert e.value.reason == "CreateContainerConfigError"


def test_containers_get_the_kubernetes_service_variables_unless_they_set_them() -> None:
    services = serviceenv.pod_service_env((), namespace="shop", enable_links=True,
                                          api_host="10.88.255.254", api_port=6443)
    env = asyncio.run(podenv.resolve_env(
        pod=_pod(), container={"name": "c", "env": [{"name": "KUBERNETES_SERVICE_PORT",
                                                     "value": "1"}, {"name": "A", "value": "b"}]},
        node_name="n1", host_ip="192.0.2.7", config_map=_nothing, secret=_nothing,
        services=services))
    assert env == [
        ("KUBERNETES_SERVICE_HOST", "10.88.255.254"),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "6443"),
        ("KUBERNETES_PORT", "tcp://10.88.255.254:6443"),
        ("KUBERNETES_PORT_6443_TCP", "tcp://10.88.255.254:6443"),
        ("KUBERNETES_PORT_6443_TCP_PROTO", "tcp"),
        ("KUBERNETES_PORT_6443_TCP_PORT", "6443"),
        ("KUBERNETES_PORT_6443_TCP_ADDR", "10.88.255.254"),
        ("KUBERNETES_SERVICE_PORT", "1"), ("A", "b")]
    assert serviceenv.pod_service_env((), namespace="shop", enable_links=True) == {}


async def _nothing(namespace: str, name: str) -> None:
    return None


def _env(pod: dict[str, Any], *, pod_ip: str | None) -> dict[str, list[tuple[str, str]]]:
    async def nothing(namespace: str, name: str) -> None:
        return None

    container = pod["spec"]["containers"][0]
    return {container["name"]: asyncio.run(podenv.resolve_env(
        pod=pod, container=container, node_name="n1", host_ip="192.0.2.7",
        config_map=nothing, secret=nothing, pod_ip=pod_ip))}


def _start(command: dict[str, Any], *, container_ip: str) -> subprocess.CompletedProcess[str]:
    """Run the task's command as the executor would: its argv, its variables, and the
    MESOS_CONTAINER_IP Mesos' default executor sets (empty: unset)."""
    env = {"PATH": os.environ["PATH"]}
    env.update({v["name"]: v["value"] for v in command["environment"]["variables"]})
    if container_ip:
        env["MESOS_CONTAINER_IP"] = container_ip
    return subprocess.run(command["arguments"], env=env, capture_output=True, text=True,
                          timeout=10, check=False)


PRINT = 'printf "<%s>" "$0" "$@" "$POD_IP" "$ADDR" "$PLAIN"; env | grep -c K8SBRIDGE_; exit 0'


def _ip_pod(**container: Any) -> dict[str, Any]:
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "ADDR", "value": "http://$(POD_IP):8080/$$(POD_IP)"},
           {"name": "PLAIN", "value": "a $b * 'c'"}]
    return _pod({"env": env, "command": ["sh", "-c", PRINT, "$(POD_IP)"],
                 "args": ["--bind=$(POD_IP):80", "$(ADDR)", "x y"], **container})


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_the_pod_ip_reaches_env_command_and_args_at_start_on_the_pod_network(
        shell: str, tmp_path: Path) -> None:
    pod = _ip_pod()
    command = _task(_render_env(pod, pod_network="k8sbridge"))["command"]
    assert command["arguments"][:4] == ["/bin/sh", "-c", launch.POD_IP_SCRIPT, "sh"]
    marker = podnet.ip_marker("u1")
    variables = {v["name"]: v["value"] for v in command["environment"]["variables"]}
    assert variables[launch.POD_IP_VARS] == "POD_IP ADDR"
    assert variables["ADDR"] == f"http://{marker}:8080/$(POD_IP)"  # $$ escapes, as kubelet
    # the constant script runs under the shells images have (dash, busybox's sh applet)
    (sh := tmp_path / "sh").symlink_to(shutil.which(shell) or "")
    command["arguments"][0] = str(sh)
    done = _start(command, container_ip="10.88.0.9")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("<10.88.0.9><--bind=10.88.0.9:80><http://10.88.0.9:8080/$(POD_IP)>"
                           "<x y><10.88.0.9><http://10.88.0.9:8080/$(POD_IP)><a $b * 'c'>0\n")
    # without the executor's IP the container does not start with a wrong one
    failed = _start(command, container_ip="")
    assert failed.returncode == 127 and "MESOS_CONTAINER_IP is not set" in failed.stderr
    assert "10.88" not in failed.stdout and marker not in failed.stdout


def test_on_the_agents_network_the_pod_ip_is_the_agents_address_at_launch() -> None:
    pod = _ip_pod()
    command = _task(_render_env(pod, pod_network=""))["command"]
    assert command["arguments"][:2] == ["sh", "-c"]
    assert command["arguments"][3:] == ["192.0.2.7", "--bind=192.0.2.7:80",
                                        "http://192.0.2.7:8080/$(POD_IP)", "x y"]
    names = {v["name"] for v in command["environment"]["variables"]}
    assert launch.POD_IP_VARS not in names and launch.POD_IP_MARK not in names


@pytest.mark.parametrize(("container", "message"), [
    pytest.param({"env": [{"name": "odd.name", "valueFrom": {
        "fieldRef": {"fieldPath": "status.podIPs"}}}]},
        launch.POD_IP_NOT_A_SHELL_NAME.format(container="c", name="odd.name"), id="name"),
    pytest.param({"command": [], "image": "nginx", "env": [{"name": "IP", "valueFrom": {
        "fieldRef": {"fieldPath": "status.podIP"}}}]},
        launch.POD_IP_NO_COMMAND.format(container="c"), id="entrypoint"),
])
def test_a_pod_ip_that_cannot_be_set_at_start_is_refused_with_the_reason(
        container: dict[str, Any], message: str) -> None:
    pod = _pod(container)
    with pytest.raises(podenv.LaunchError) as e:
        _render_env(pod, pod_network="k8sbridge")
    assert str(e.value) == message and e.value.reason == "CreateContainerConfigError"
    _render_env(pod, pod_network="")  # on the agent's network it is known at launch


def test_a_downward_api_file_of_the_pod_ip_is_refused_as_by_the_api_server() -> None:
    pod = _pod({"volumeMounts": [{"name": "info", "mountPath": "/info"}]}, volumes=[{
        "name": "info", "downwardAPI": {"items": [
            {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]}}])
    with pytest.raises(podenv.LaunchError, match="only metadata fields are supported"):
        _render(pod)


def _render_env(pod: dict[str, Any], *, pod_network: str) -> launch.LaunchGroup:
    request = pods.parse_pod(pod)
    offer = parse_resources_flag("cpus:8;mem:8192;disk:1000").allocated_to("k8s")
    view = cluster.ClusterView(agents=(cluster.AgentView.build(
        agent_id="a1", hostname="h1",
        offers=[cluster.OfferView(id=ids.OfferId("o1"), agent_id=ids.AgentId("a1"),
                                  resources=offer, allocation_role="k8s")]),))
    assignment = stack.place(pending=[request], view=view).assignment(request.key)
    assert assignment is not None
    joined = podnet.network_for(pod, request, setting=pod_network)
    return launch.render_launch_group(
        pod=pod, request=request, assignment=assignment, framework_id="f", generation=1,
        env=_env(pod, pod_ip=podnet.ip_marker("u1") if joined else None),
        image_mode="mesos", network=NETWORK, pod_network=pod_network)


def _task(group: launch.LaunchGroup) -> dict[str, Any]:
    task: dict[str, Any] = group.operation["launch_group"]["task_group"]["tasks"][0]
    return task


@pytest.mark.parametrize(("env", "message"), [
    ({"K8SBRIDGE_EMBEDDED_CLUSTER_CIDR": "10.88.0.0/24"}, "longer than the cluster CIDR's /24"),
    ({"K8SBRIDGE_EMBEDDED_NODE_CIDR_MASK_SIZE": "31"}, "at most 30"),
    ({"K8SBRIDGE_EMBEDDED_CLUSTER_CIDR": "10.88.0.0/23"},
     "has 1 /24 subnet(s) for pods, fewer than the 3 agents"),
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


def test_a_node_offers_no_more_pods_than_its_subnet_has_addresses() -> None:
    # 253 = a /24 less its network, broadcast and gateway addresses (host-local's range)
    fits = bridge_settings.load(env={"K8SBRIDGE_KUBELET_MAX_PODS": "253"})
    bridge_settings.check_embedded_pods(fits)
    over = bridge_settings.load(env={"K8SBRIDGE_KUBELET_MAX_PODS": "254"})
    with pytest.raises(bridge_settings.SettingsError,
                       match=re.escape("254 pods per node do not fit the 253 pod addresses")):
        bridge_settings.check_embedded_pods(over)
    wider = bridge_settings.load(env={"K8SBRIDGE_KUBELET_MAX_PODS": "1100",
                                      "K8SBRIDGE_EMBEDDED_NODE_CIDR_MASK_SIZE": "21"})
    bridge_settings.check_embedded_pods(wider)
    hostnet = bridge_settings.load(env={"K8SBRIDGE_KUBELET_MAX_PODS": "1100",
                                        "K8SBRIDGE_SCHEDULER_POD_NETWORK": ""})
    bridge_settings.check_embedded_pods(hostnet)  # pods keep the agents' network


def test_k8sbridge_run_refuses_more_pods_than_addresses_before_starting(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "k8sbridge", "run", "--data-dir", str(tmp_path / "d")],
        env={**os.environ, "K8SBRIDGE_KUBELET_MAX_PODS": "300"},
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "kubelet.max_pods: 300 pods per node do not fit the 253 pod addresses of a /24" \
        in done.stderr
    assert not (tmp_path / "d").exists()  # nothing was started
