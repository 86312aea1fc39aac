"""discovery.k8s.io/v1 EndpointSlices are served like the other kinds: discovery, JSON and
protobuf bodies (a false condition survives), kube-apiserver's validation and its columns."""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube import protobuf
from tests.devkube.server.conftest import Api
from tests.devkube.server.test_decoding_protobuf import _field

SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def slice_body(name: str, address: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 8080}], **extra}


async def test_discovery_lists_endpointslices(api: Api) -> None:
    status, resources = await api.request("GET", "/apis/discovery.k8s.io/v1")
    assert status == 200
    [entry] = [r for r in resources["resources"] if r["name"] == "endpointslices"]
    assert entry["kind"] == "EndpointSlice" and entry["namespaced"] is True
    assert "watch" in entry["verbs"]
    status, groups = await api.request("GET", "/apis")
    assert "discovery.k8s.io" in [g["name"] for g in groups["groups"]]


async def test_endpointslices_are_validated_and_defaulted(api: Api) -> None:
    status, made = await api.request("POST", SLICES, body=slice_body("web-1", "10.1.0.1"))
    assert status == 201, made
    assert made["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    status, refused = await api.request("POST", SLICES, body=slice_body("web-2", "127.0.0.1"))
    assert status == 422 and refused["message"] == (
        'EndpointSlice.discovery.k8s.io "web-2" is invalid: endpoints[0].addresses[0]: Invalid '
        'value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)')
    status, refused = await api.request("POST", SLICES, body=slice_body("web-2", "fd00::1"))
    assert status == 422 and refused["message"].endswith(
        'endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address')
    body = slice_body("web-2", "10.1.0.2", addressType="Carrier")
    status, refused = await api.request("POST", SLICES, body=body)
    assert status == 422 and refused["message"].endswith(
        'addressType: Unsupported value: "Carrier": supported values: "FQDN", "IPv4", "IPv6"')
    body = slice_body("web-2", "10.1.0.2")
    body["endpoints"].append({"addresses": []})
    status, refused = await api.request("POST", SLICES, body=body)
    assert status == 422 and refused["message"].endswith(
        "endpoints[1].addresses: Required value: must contain at least 1 address")
    made["addressType"] = "IPv6"
    status, refused = await api.request("PUT", f"{SLICES}/web-1", body=made)
    assert status == 422 and 'addressType: Invalid value: "IPv6": field is immutable' in \
        refused["message"]


async def test_protobuf_bodies_keep_false_conditions(api: Api) -> None:
    meta = _field(1, b"web-pb")
    conditions = _field(1, 0) + _field(2, 1) + _field(3, 0)  # ready=false serving=true
    endpoint = _field(1, b"10.1.0.3") + _field(2, conditions) + _field(6, b"node-1")
    port = _field(1, b"http") + _field(2, b"TCP") + _field(3, 8080)
    body = _field(1, meta) + _field(2, endpoint) + _field(3, port) + _field(4, b"IPv4")
    type_meta = _field(1, b"discovery.k8s.io/v1") + _field(2, b"EndpointSlice")
    raw = protobuf.MAGIC + _field(1, type_meta) + _field(2, body)
    status, made = await api.request("POST", SLICES, body=raw,
                                     content_type=protobuf.CONTENT_TYPE)
    assert status == 201, made
    assert made["endpoints"] == [{"addresses": ["10.1.0.3"], "nodeName": "node-1", "conditions": {
        "ready": False, "serving": True, "terminating": False}}]
    assert made["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]


async def test_tables_have_the_kubectl_columns(api: Api) -> None:
    await api.request("POST", SLICES, body=slice_body("web-1", "10.1.0.1"))
    status, table = await api.request(
        "GET", SLICES, headers={"Accept": "application/json;as=Table;g=meta.k8s.io;v=v1"})
    assert status == 200
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "AddressType", "Ports", "Endpoints", "Age"]
    [row] = [r for r in table["rows"] if r["cells"][0] == "web-1"]
    assert row["cells"][1:4] == ["IPv4", "8080", "10.1.0.1"]
