"""Bad input gets a clear Kubernetes Status error and never hurts the server."""

from __future__ import annotations

import json

from tests.devkube.server.conftest import Api, pod

PODS = "/api/v1/namespaces/default/pods"
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"


def _deployment(name: str, *, selector: dict[str, str], labels: dict[str, str],
                restart: str | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"containers": [{"name": "c", "image": "nginx"}]}
    if restart:
        spec["restartPolicy"] = restart
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": labels}, "spec": spec}},
    }


async def test_malformed_json_and_yaml(api: Api) -> None:
    status, body = await api.request("POST", PODS, body=b"{not json")
    assert status == 400 and body["kind"] == "Status" and "error decoding" in body["message"]
    status, body = await api.request("POST", PODS, body=b"metadata: [oops",
                                     content_type="application/yaml")
    assert status == 400
    status, body = await api.request("POST", PODS, body=b"[1, 2]")
    assert status == 400 and body["reason"] == "BadRequest"
    status, body = await api.request("PATCH", f"{PODS}/x", body=b"{}", content_type="text/plain")
    assert status == 415


async def test_unknown_kinds_and_paths(api: Api) -> None:
    status, body = await api.request("GET", "/api/v1/namespaces/default/widgets")
    assert status == 404 and body["kind"] == "Status"
    status, _ = await api.request("GET", "/apis/example.com/v1")
    assert status == 404
    wrong = pod("w")
    wrong["kind"] = "Service"
    status, body = await api.request("POST", PODS, body=wrong)
    assert status == 400 and "does not match the expected kind" in body["message"]


async def test_invalid_names_and_missing_fields(api: Api) -> None:
    status, body = await api.request("POST", PODS, body=pod("Bad_Name"))
    assert status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    no_containers = pod("empty")
    no_containers["spec"] = {"containers": []}
    status, body = await api.request("POST", PODS, body=no_containers)
    assert status == 422
    assert {c["field"] for c in body["details"]["causes"]} == {"spec.containers"}
    status, body = await api.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "has.dot"}})
    assert status == 422


async def test_selector_template_mismatch_and_restart_policy(api: Api) -> None:
    status, body = await api.request("POST", DEPLOYS, body=_deployment(
        "d", selector={"app": "a"}, labels={"app": "b"}))
    assert status == 422
    assert "`selector` does not match template `labels`" in body["message"]
    assert body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    status, body = await api.request("POST", DEPLOYS, body=_deployment(
        "d", selector={"app": "a"}, labels={"app": "a"}, restart="Never"))
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "spec.template.spec.restartPolicy"
    status, created = await api.request("POST", DEPLOYS, body=_deployment(
        "d", selector={"app": "a"}, labels={"app": "a"}))
    assert status == 201
    strategy = created["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}


async def test_huge_objects_are_refused(api: Api) -> None:
    big = pod("big")
    big["metadata"]["annotations"] = {"blob": "x" * (4 * 1024 * 1024)}
    status, body = await api.request("POST", PODS, body=big)
    assert status == 413 and body["reason"] == "RequestEntityTooLarge"
    # under the 3 MiB request limit, over the 1.5 MiB object limit
    status, body = await api.request("POST", "/api/v1/namespaces/default/configmaps", body={
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
        "data": {"blob": "x" * (2 * 1024 * 1024)}})
    assert status == 413 and "object is too large" in body["message"]
    status, _ = await api.request("POST", PODS, body=pod("small"))
    assert status == 201


async def test_failed_json_patch_test_is_422(api: Api) -> None:
    await api.request("POST", PODS, body=pod("t"))
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
           {"op": "add", "path": "/metadata/labels/x", "value": "y"}]
    status, body = await api.request("PATCH", f"{PODS}/t", body=ops,
                                     content_type="application/json-patch+json")
    assert status == 422 and body["kind"] == "Status"
    status, body = await api.request("PATCH", f"{PODS}/t", body={"metadata": {
        "resourceVersion": "1", "labels": {"x": "y"}}}, content_type="application/merge-patch+json")
    assert status == 409


async def test_the_server_survives(api: Api) -> None:
    for raw in (b"", b"\x00\xff", json.dumps({"metadata": "nope"}).encode(), b"null"):
        status, _ = await api.request("POST", PODS, body=raw)
        assert 400 <= status < 500
    status, _ = await api.request("GET", "/version")
    assert status == 200


async def test_field_validation_strict_and_warn(api: Api) -> None:
    typo = pod("typo")
    typo["spec"]["containers"][0]["imagePolicy"] = "Always"
    typo["spek"] = {}
    status, body = await api.request("POST", PODS, body=typo, params={"fieldValidation": "Strict"})
    assert status == 400 and "strict decoding error" in body["message"]
    assert 'unknown field "spec.containers[0].imagePolicy"' in body["message"]
    assert 'unknown field "spek"' in body["message"]
    async with api.session.post(f"{api.devkube.url}{PODS}", data=json.dumps(typo),
                                headers={**api.headers, "Content-Type": "application/json"},
                                ssl=api.ssl) as resp:
        assert resp.status == 201
        assert '299 - "unknown field \\"spek\\""' in resp.headers.getall("Warning")


async def test_binary_encodings_are_415(api: Api) -> None:
    status, body = await api.request("POST", PODS, body=b"k8s\x00\n",
                                     content_type="application/cbor")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


async def test_secret_string_data(api: Api) -> None:
    secrets = "/api/v1/namespaces/default/secrets"
    status, created = await api.request("POST", secrets, body={
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "stringData": {"user": "admin"}, "data": {"other": "eA=="}})
    assert status == 201 and "stringData" not in created
    assert created["data"] == {"other": "eA==", "user": "YWRtaW4="}
    assert created["type"] == "Opaque"
    status, _ = await api.request("POST", secrets, body={
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"},
        "stringData": {"flag": True}})
    assert status == 422
