"""EndpointSlices and Endpoints follow the pods a Service selects, as kube-controller-manager's
controllers keep them: readiness, terminating pods, named ports, publishNotReadyAddresses,
headless Services, selector changes, slices of at most 100, selectorless Services left alone;
read back with kubectl and the official client."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from k8sbridge.devkube import main
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import errors
from k8sbridge.devkube.controllers.raw import RawObject
from tests.devkube.controllers.conftest import Cluster, devkube_cluster, eventually

MANAGED = "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with devkube_cluster(tmp_path, kubelet=False) as (c, _):
        yield c


async def service(cluster: Cluster, name: str, *, selector: dict[str, str] | None,
                  **spec: Any) -> RawObject:
    body: RawObject = {"metadata": {"name": name}, "spec": {
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}], **spec}}
    if selector is not None:
        body["spec"]["selector"] = selector
    return await cluster.client.create(api.SERVICES, body, namespace="default")


async def running_pod(cluster: Cluster, name: str, ip: str, *, labels: dict[str, str],
                      port: int = 8080, ready: bool = True,
                      finalizers: list[str] | None = None) -> RawObject:
    """A pod bound to node-1 and reported Running with ``ip`` (as a kubelet would)."""
    meta: RawObject = {"name": name, "labels": labels}
    if finalizers:
        meta["finalizers"] = finalizers
    pod = await cluster.client.create(api.PODS, {"metadata": meta, "spec": {
        "nodeName": "node-1",
        "containers": [{"name": "app", "image": "busybox:1.36",
                        "ports": [{"name": "http", "containerPort": port}]}]}},
        namespace="default")
    return await set_ready(cluster, pod, ready=ready, ip=ip)


async def set_ready(cluster: Cluster, pod: RawObject, *, ready: bool,
                    ip: str | None = None) -> RawObject:
    current = await cluster.client.get(api.PODS, namespace="default",
                                       name=pod["metadata"]["name"])
    status = current.setdefault("status", {})
    address = ip or status["podIP"]
    status.update(phase="Running", podIP=address, podIPs=[{"ip": address}],
                  conditions=[{"type": "Ready", "status": "True" if ready else "False"}])
    return await cluster.client.replace(api.PODS, current, subresource="status")


async def slices(cluster: Cluster, svc: str) -> list[RawObject]:
    reply = await cluster.client.list(api.ENDPOINTSLICES, namespace="default", params={
        "labelSelector": f"kubernetes.io/service-name={svc},{MANAGED}"})
    return list(reply.get("items") or [])


async def endpoints_by_pod(cluster: Cluster, svc: str) -> dict[str, RawObject]:
    return {e["targetRef"]["name"]: e for s in await slices(cluster, svc)
            for e in s.get("endpoints") or []}


async def subsets(cluster: Cluster, svc: str) -> list[RawObject]:
    try:
        ep = await cluster.client.get(api.ENDPOINTS, namespace="default", name=svc)
    except errors.NotFound:
        return []
    return list(ep.get("subsets") or [])


def addresses(subsets: list[RawObject], field: str = "addresses") -> set[str]:
    return {a["ip"] for s in subsets for a in s.get(field) or []}


async def test_endpoints_follow_readiness_with_named_ports_per_pod(cluster: Cluster) -> None:
    svc = await service(cluster, "web", selector={"app": "web"})
    await running_pod(cluster, "web-a", "10.1.0.1", labels={"app": "web"}, port=8080)
    b = await running_pod(cluster, "web-b", "10.1.0.2", labels={"app": "web"}, port=9090)
    await running_pod(cluster, "other", "10.1.0.9", labels={"app": "other"})

    async def both_ready() -> bool:
        eps = await endpoints_by_pod(cluster, "web")
        return set(eps) == {"web-a", "web-b"} and all(e["conditions"]["ready"]
                                                      for e in eps.values())
    await eventually(both_ready, what="both pods in the slices")
    found = await slices(cluster, "web")
    by_port = {s["ports"][0]["port"]: s for s in found}
    assert set(by_port) == {8080, 9090}  # the named targetPort resolved per pod
    assert by_port[9090]["endpoints"][0]["addresses"] == ["10.1.0.2"]
    only = by_port[9090]
    assert only["addressType"] == "IPv4"
    assert only["ports"] == [{"name": "http", "port": 9090, "protocol": "TCP"}]
    assert only["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
    assert only["endpoints"][0]["nodeName"] == "node-1"
    assert only["endpoints"][0]["targetRef"]["kind"] == "Pod"

    await set_ready(cluster, b, ready=False)

    async def b_not_ready() -> bool:
        eps = await endpoints_by_pod(cluster, "web")
        return eps.get("web-b", {}).get("conditions") == {
            "ready": False, "serving": False, "terminating": False}
    await eventually(b_not_ready, what="web-b to leave the ready set")

    async def b_in_not_ready_addresses() -> bool:
        got = await subsets(cluster, "web")
        return addresses(got) == {"10.1.0.1"} and addresses(
            got, "notReadyAddresses") == {"10.1.0.2"}
    await eventually(b_in_not_ready_addresses, what="the Endpoints to follow")
    ports = {a["ip"]: s["ports"][0]["port"] for s in await subsets(cluster, "web")
             for f in ("addresses", "notReadyAddresses") for a in s.get(f) or []}
    assert ports == {"10.1.0.1": 8080, "10.1.0.2": 9090}

    # publishNotReadyAddresses: the not-ready pod is ready for the Service
    await cluster.client.patch(api.SERVICES, namespace="default", name="web",
                               body={"spec": {"publishNotReadyAddresses": True}})

    async def published() -> bool:
        eps = await endpoints_by_pod(cluster, "web")
        return eps.get("web-b", {}).get("conditions", {}).get("ready") is True and addresses(
            await subsets(cluster, "web")) == {"10.1.0.1", "10.1.0.2"}
    await eventually(published, what="publishNotReadyAddresses to count web-b as ready")


async def test_a_terminating_pod_is_serving_and_terminating(cluster: Cluster) -> None:
    await service(cluster, "web", selector={"app": "web"})
    await running_pod(cluster, "web-a", "10.1.0.1", labels={"app": "web"})
    await running_pod(cluster, "web-b", "10.1.0.2", labels={"app": "web"},
                      finalizers=["example.com/hold"])

    async def two() -> bool:
        return len(addresses(await subsets(cluster, "web"))) == 2
    await eventually(two, what="two ready addresses")
    await cluster.client.delete(api.PODS, namespace="default", name="web-b", grace_seconds=60)

    async def terminating() -> bool:
        eps = await endpoints_by_pod(cluster, "web")
        return eps.get("web-b", {}).get("conditions") == {
            "ready": False, "serving": True, "terminating": True}
    await eventually(terminating, what="web-b serving and terminating in its slice")

    async def gone_from_endpoints() -> bool:
        got = await subsets(cluster, "web")
        return addresses(got) == {"10.1.0.1"} and not addresses(got, "notReadyAddresses")
    await eventually(gone_from_endpoints, what="the Endpoints to drop the terminating pod")
    await cluster.client.patch(api.PODS, namespace="default", name="web-b",
                               body={"metadata": {"finalizers": None}})


async def test_headless_services_and_selector_changes(cluster: Cluster) -> None:
    await service(cluster, "db", selector={"app": "db"}, clusterIP="None")
    await running_pod(cluster, "db-0", "10.1.0.5", labels={"app": "db"})
    await running_pod(cluster, "cache-0", "10.1.0.6", labels={"app": "cache"})

    async def db_listed() -> bool:
        return set(await endpoints_by_pod(cluster, "db")) == {"db-0"} and addresses(
            await subsets(cluster, "db")) == {"10.1.0.5"}
    await eventually(db_listed, what="the headless Service's slice")
    [only] = await slices(cluster, "db")
    assert only["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    ep = await cluster.client.get(api.ENDPOINTS, namespace="default", name="db")
    assert ep["metadata"]["labels"]["service.kubernetes.io/headless"] == ""

    await cluster.client.patch(api.SERVICES, namespace="default", name="db",
                               body={"spec": {"selector": {"app": "cache"}}})

    async def switched() -> bool:
        return set(await endpoints_by_pod(cluster, "db")) == {"cache-0"} and addresses(
            await subsets(cluster, "db")) == {"10.1.0.6"}
    await eventually(switched, what="the slices and Endpoints to follow the new selector")

    await cluster.client.patch(api.SERVICES, namespace="default", name="db",
                               body={"spec": {"selector": {"app": "nothing"}}})

    async def placeholder() -> bool:
        found = await slices(cluster, "db")
        return len(found) == 1 and found[0]["endpoints"] == [] and not await subsets(
            cluster, "db")
    await eventually(placeholder, what="one empty placeholder slice")


async def test_selectorless_services_keep_their_users_endpoints(cluster: Cluster) -> None:
    await service(cluster, "external", selector=None)
    await cluster.client.create(api.ENDPOINTS, {
        "metadata": {"name": "external"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}],
                     "ports": [{"name": "http", "port": 80}]}]}, namespace="default")
    await service(cluster, "web", selector={"app": "web"})
    await running_pod(cluster, "web-a", "10.1.0.1", labels={"app": "web"})

    async def web_listed() -> bool:
        return bool(await endpoints_by_pod(cluster, "web"))
    await eventually(web_listed, what="the selecting Service's slice")
    assert await slices(cluster, "external") == []
    assert addresses(await subsets(cluster, "external")) == {"192.0.2.10"}

    # ... and mirrored into EndpointSlices by the mirroring controller
    async def mirrored() -> list[RawObject]:
        reply = await cluster.client.list(api.ENDPOINTSLICES, namespace="default", params={
            "labelSelector": "kubernetes.io/service-name=external,endpointslice.kubernetes.io/"
                             "managed-by=endpointslicemirroring-controller.k8s.io"})
        return list(reply.get("items") or [])

    async def one_mirror() -> bool:
        return len(await mirrored()) == 1
    await eventually(one_mirror, what="the user's Endpoints mirrored into a slice")
    [mirror] = await mirrored()
    assert mirror["endpoints"] == [{"addresses": ["192.0.2.10"], "conditions": {"ready": True}}]
    assert mirror["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    described = await cluster.kubectl("describe", "svc", "external")
    assert "192.0.2.10:80" in described, described
    await cluster.client.patch(api.ENDPOINTS, namespace="default", name="external", body={
        "metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}})

    async def no_mirror() -> bool:
        return not await mirrored()
    await eventually(no_mirror, what="skip-mirror to remove the mirrored slice")
    # the user's Endpoints are validated as kube-apiserver validates them
    with pytest.raises(errors.Invalid) as refused:
        await cluster.client.create(api.ENDPOINTS, {
            "metadata": {"name": "bad"},
            "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                         "ports": [{"port": 80}, {"port": 81}]}]}, namespace="default")
    message = str(refused.value)
    assert "subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the " \
           "loopback range (127.0.0.0/8, ::1/128)" in message
    assert "subsets[0].ports[0].name: Required value" in message


async def test_a_service_of_250_pods_has_three_slices(cluster: Cluster) -> None:
    await service(cluster, "big", selector={"app": "big"})
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with sem:
            await running_pod(cluster, f"big-{i:03d}", f"10.2.{i // 200}.{i % 200 + 1}",
                              labels={"app": "big"})
    await asyncio.gather(*(one(i) for i in range(250)))

    async def all_listed() -> bool:
        found = await slices(cluster, "big")
        return sum(len(s["endpoints"]) for s in found) == 250 and len(
            addresses(await subsets(cluster, "big"))) == 250
    await eventually(all_listed, timeout=60, what="250 endpoints in slices and Endpoints")
    found = await slices(cluster, "big")
    assert len(found) == 3
    assert all(len(s["endpoints"]) <= 100 for s in found)


async def test_kubernetes_service_names_the_api_server(cluster: Cluster) -> None:
    port = int(cluster.kube.url.rsplit(":", 1)[1])
    ep = await cluster.client.get(api.ENDPOINTS, namespace="default", name="kubernetes")
    assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                              "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
    found = await cluster.client.get(api.ENDPOINTSLICES, namespace="default", name="kubernetes")
    assert found["endpoints"][0]["addresses"] == ["127.0.0.1"]
    assert found["ports"] == [{"name": "https", "port": port, "protocol": "TCP"}]
    svc = await cluster.client.get(api.SERVICES, namespace="default", name="kubernetes")
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["ports"][0]["targetPort"] == port


async def test_kubectl_and_the_official_client_read_them(cluster: Cluster) -> None:
    await service(cluster, "web", selector={"app": "web"})
    await running_pod(cluster, "web-a", "10.1.0.1", labels={"app": "web"})

    async def listed() -> bool:
        return bool(await endpoints_by_pod(cluster, "web")) and bool(
            addresses(await subsets(cluster, "web")))
    await eventually(listed, what="the web Service's endpoints")
    table = await cluster.kubectl("get", "endpointslices")
    assert "ADDRESSTYPE" in table and "10.1.0.1" in table and "8080" in table
    assert "kubernetes" in table
    ep_table = await cluster.kubectl("get", "ep", "web")
    assert "10.1.0.1:8080" in ep_table
    described = await cluster.kubectl("describe", "svc", "web")
    assert "10.1.0.1:8080" in described, described
    as_json = json.loads(await cluster.kubectl("get", "endpointslices", "-l",
                                               "kubernetes.io/service-name=web", "-o", "json"))
    assert as_json["items"][0]["endpoints"][0]["conditions"]["ready"] is True

    def official() -> tuple[list[str], list[str]]:
        api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(cluster.kube.kubeconfig))
        with contextlib.closing(api_client):
            listed = client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice(
                "default", label_selector="kubernetes.io/service-name=web")
            eps = client.CoreV1Api(api_client).read_namespaced_endpoints("web", "default")
            return ([a for s in listed.items for e in s.endpoints or [] for a in e.addresses],
                    [a.ip for s in eps.subsets or [] for a in s.addresses or []])
    slice_ips, ep_ips = await asyncio.to_thread(official)
    assert slice_ips == ["10.1.0.1"] and ep_ips == ["10.1.0.1"]


async def test_deleting_the_service_removes_its_endpoints(cluster: Cluster) -> None:
    await service(cluster, "web", selector={"app": "web"})
    await running_pod(cluster, "web-a", "10.1.0.1", labels={"app": "web"})

    async def listed() -> bool:
        return bool(await endpoints_by_pod(cluster, "web")) and bool(
            addresses(await subsets(cluster, "web")))
    await eventually(listed, what="the web Service's endpoints")
    await cluster.client.delete(api.SERVICES, namespace="default", name="web")

    async def gone() -> bool:
        remaining = await cluster.client.list(api.ENDPOINTSLICES, namespace="default", params={
            "labelSelector": "kubernetes.io/service-name=web"})
        try:
            await cluster.client.get(api.ENDPOINTS, namespace="default", name="web")
        except errors.NotFound:
            return not remaining.get("items")
        return False
    await eventually(gone, what="the slices (garbage collector) and Endpoints to go")


async def test_an_ipv6_service_cidr_gives_ipv6_services_and_slices(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig",
                                service_cluster_ip_range="fd00:10:96::/112")
    async with main.running(config) as kube, api.ApiClient(
            url=kube.url, token=kube.token, ca_file=kube.ca_file) as client:
        cluster = Cluster(kube=kube, client=client, cache_dir=tmp_path / "cache")
        kubernetes = await client.get(api.SERVICES, namespace="default", name="kubernetes")
        assert kubernetes["spec"]["clusterIPs"] == ["fd00:10:96::1"]
        made = await service(cluster, "six", selector={"app": "six"})
        assert made["spec"]["ipFamilies"] == ["IPv6"]
        assert ipaddress.ip_address(made["spec"]["clusterIP"]) in ipaddress.ip_network(
            "fd00:10:96::/112")
        await running_pod(cluster, "six-a", "fd00:1::5", labels={"app": "six"})

        async def listed() -> bool:
            found = await slices(cluster, "six")
            return [(s["addressType"], [a for e in s["endpoints"] for a in e["addresses"]])
                    for s in found] == [("IPv6", ["fd00:1::5"])] and addresses(
                await subsets(cluster, "six")) == {"fd00:1::5"}
        await eventually(listed, what="an IPv6 slice and Endpoints")
