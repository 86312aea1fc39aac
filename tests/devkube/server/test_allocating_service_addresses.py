"""Service ClusterIPs and NodePorts as kube-apiserver allocates them: from the service CIDR and
the node-port range, requested values refused when taken or out of range (in its words),
addresses immutable, everything released on delete and still held after a restart."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from k8sbridge.devkube import main
from tests.devkube.server.conftest import Api

SVC = "/api/v1/namespaces/default/services"


def svc(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


async def test_cluster_ips_come_from_the_service_cidr(api: Api) -> None:
    status, kube = await api.request("GET", f"{SVC}/kubernetes")
    assert status == 200 and kube["spec"]["clusterIPs"] == ["10.96.0.1"]
    status, made = await api.request("POST", SVC, body=svc("a"))
    assert status == 201
    ip = made["spec"]["clusterIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")
    assert made["spec"]["clusterIPs"] == [ip] and made["spec"]["ipFamilies"] == ["IPv4"]
    assert made["spec"]["ipFamilyPolicy"] == "SingleStack"
    assert made["spec"]["internalTrafficPolicy"] == "Cluster"

    status, mine = await api.request("POST", SVC, body=svc("b", clusterIP="10.96.0.10"))
    assert status == 201 and mine["spec"]["clusterIPs"] == ["10.96.0.10"]
    status, refused = await api.request("POST", SVC, body=svc("c", clusterIP="10.96.0.10"))
    assert status == 422 and refused["reason"] == "Invalid"
    assert refused["message"] == (
        'Service "c" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.10"]: failed to '
        "allocate IP 10.96.0.10: provided IP is already allocated")
    assert refused["details"]["causes"][0]["field"] == "spec.clusterIPs"
    status, refused = await api.request("POST", SVC, body=svc("c", clusterIP="192.0.2.1"))
    assert status == 422 and refused["message"].endswith(
        "failed to allocate IP 192.0.2.1: the provided IP (192.0.2.1) is not in the valid "
        "range. The range of valid IPs is 10.96.0.0/12")

    status, headless = await api.request("POST", SVC, body=svc("h", clusterIP="None"))
    assert status == 201 and headless["spec"]["clusterIPs"] == ["None"]

    # the address stays for the Service's life: left out of an update, it is kept; changed,
    # it is refused
    del mine["spec"]["clusterIP"], mine["spec"]["clusterIPs"]
    mine["metadata"].pop("resourceVersion")
    status, kept = await api.request("PUT", f"{SVC}/b", body=mine)
    assert status == 200 and kept["spec"]["clusterIP"] == "10.96.0.10"
    status, refused = await api.request(
        "PATCH", f"{SVC}/b", body={"spec": {"clusterIP": "10.96.0.11"}},
        content_type="application/merge-patch+json")
    assert status == 422 and refused["message"] == (
        'Service "b" is invalid: spec.clusterIPs[0]: Invalid value: ["10.96.0.11"]: may not '
        "change once set")

    # deleting releases the address
    status, _ = await api.request("DELETE", f"{SVC}/b")
    assert status == 200
    status, again = await api.request("POST", SVC, body=svc("c", clusterIP="10.96.0.10"))
    assert status == 201, again


async def test_node_ports_come_from_the_node_port_range(api: Api) -> None:
    status, made = await api.request("POST", SVC, body=svc("np", type="NodePort"))
    assert status == 201
    port = made["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767
    assert made["spec"]["externalTrafficPolicy"] == "Cluster"
    status, refused = await api.request("POST", SVC, body=svc(
        "np2", type="NodePort", ports=[{"port": 80, "nodePort": port}]))
    assert status == 422 and refused["message"] == (
        f'Service "np2" is invalid: spec.ports[0].nodePort: Invalid value: {port}: provided '
        "port is already allocated")
    status, refused = await api.request("POST", SVC, body=svc(
        "np2", type="NodePort", ports=[{"port": 80, "nodePort": 8080}]))
    assert status == 422 and refused["message"].endswith(
        "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. "
        "The range of valid ports is 30000-32767")
    status, refused = await api.request("POST", SVC, body=svc(
        "cip", ports=[{"port": 80, "nodePort": 30100}]))
    assert status == 422 and refused["message"].endswith(
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'")
    status, refused = await api.request("POST", SVC, body=svc(
        "two", ports=[{"port": 80}, {"port": 81}]))
    assert status == 422 and refused["message"] == (
        'Service "two" is invalid: [spec.ports[0].name: Required value, spec.ports[1].name: '
        "Required value]")

    # an update that leaves the nodePort out keeps it; ClusterIP again releases it
    status, patched = await api.request(
        "PATCH", f"{SVC}/np", body={"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}},
        content_type="application/merge-patch+json")
    assert status == 200 and patched["spec"]["ports"][0]["nodePort"] == port
    status, patched = await api.request(
        "PATCH", f"{SVC}/np", body={"spec": {"type": "ClusterIP"}},
        content_type="application/merge-patch+json")
    assert status == 200 and "nodePort" not in patched["spec"]["ports"][0]
    status, taken = await api.request("POST", SVC, body=svc(
        "np3", type="LoadBalancer", ports=[{"port": 80, "nodePort": port}]))
    assert status == 201 and taken["spec"]["ports"][0]["nodePort"] == port
    assert taken["spec"]["allocateLoadBalancerNodePorts"] is True


async def test_allocations_survive_a_restart(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, controllers=False, data_dir=tmp_path / "data",
                                service_cluster_ip_range="10.100.0.0/24",
                                service_node_port_range="31000-31010")
    async with main.running(config) as kube, aiohttp.ClientSession() as session:
        api = Api(devkube=kube, session=session)
        status, kept = await api.request("GET", f"{SVC}/kubernetes")
        assert kept["spec"]["clusterIP"] == "10.100.0.1"
        status, made = await api.request("POST", SVC, body=svc(
            "keep", type="NodePort", clusterIP="10.100.0.20"))
        assert status == 201
        port = made["spec"]["ports"][0]["nodePort"]
        assert 31000 <= port <= 31010
    async with main.running(config) as kube, aiohttp.ClientSession() as session:
        api = Api(devkube=kube, session=session)
        status, refused = await api.request("POST", SVC, body=svc(
            "again", type="NodePort", clusterIP="10.100.0.20"))
        assert status == 422 and "provided IP is already allocated" in refused["message"]
        status, refused = await api.request("POST", SVC, body=svc(
            "again", type="NodePort", ports=[{"port": 80, "nodePort": port}]))
        assert status == 422 and "provided port is already allocated" in refused["message"]
        status, fresh = await api.request("POST", SVC, body=svc("fresh", type="NodePort"))
        assert status == 201 and fresh["spec"]["clusterIP"] != "10.100.0.20"
        assert fresh["spec"]["ports"][0]["nodePort"] != port


async def test_a_full_range_is_an_internal_error(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, controllers=False, kubeconfig=tmp_path / "kc",
                                service_cluster_ip_range="10.100.0.0/29")
    async with main.running(config) as kube, aiohttp.ClientSession() as session:
        api = Api(devkube=kube, session=session)
        codes = [(await api.request("POST", SVC, body=svc(f"s{i}")))[0] for i in range(6)]
        assert codes == [201] * 5 + [500]
        status, full = await api.request("POST", SVC, body=svc("more"))
        assert status == 500 and full["message"] == (
            "Internal error occurred: failed to allocate a serviceIP: range is full")


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "KUBECACHEDIR": str(kubeconfig.parent / "cache")})


async def test_kubectl_sees_the_refusals(devkube: main.Devkube) -> None:
    made = await asyncio.to_thread(kubectl, devkube.kubeconfig, "create", "service",
                                   "clusterip", "web", "--tcp=80:8080",
                                   "--clusterip=10.96.0.50")
    assert made.returncode == 0, made.stderr
    clash = await asyncio.to_thread(kubectl, devkube.kubeconfig, "create", "service",
                                    "clusterip", "web2", "--tcp=80:8080",
                                    "--clusterip=10.96.0.50")
    assert clash.returncode != 0
    assert ('Service "web2" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.50"]: '
            "failed to allocate IP 10.96.0.50: provided IP is already allocated") in clash.stderr
    np = await asyncio.to_thread(kubectl, devkube.kubeconfig, "create", "service", "nodeport",
                                 "np", "--tcp=80:8080", "--node-port=30500")
    assert np.returncode == 0, np.stderr
    table = await asyncio.to_thread(kubectl, devkube.kubeconfig, "get", "svc")
    assert "10.96.0.50" in table.stdout and "80:30500/TCP" in table.stdout
