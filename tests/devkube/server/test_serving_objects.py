"""CRUD, resourceVersion and concurrency semantics over real HTTPS with a bearer token."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from k8sbridge.devkube import main
from tests.devkube.server.conftest import Api, pod


async def test_create_get_update_delete_a_pod(api: Api) -> None:
    status, created = await api.request("POST", "/api/v1/namespaces/default/pods", body=pod("a"))
    assert status == 201
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and meta["generation"] == 1
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    spec = created["spec"]
    assert spec["restartPolicy"] == "Always" and spec["schedulerName"] == "default-scheduler"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert {t["key"] for t in spec["tolerations"]} == {
        "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}

    status, got = await api.request("GET", "/api/v1/namespaces/default/pods/a")
    assert status == 200 and got == created

    got["metadata"]["labels"] = {"x": "1"}
    status, updated = await api.request("PUT", "/api/v1/namespaces/default/pods/a", body=got)
    assert status == 200
    assert int(updated["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert updated["metadata"]["generation"] == 1  # metadata change: no generation bump

    # stale resourceVersion -> 409 Conflict
    status, body = await api.request("PUT", "/api/v1/namespaces/default/pods/a", body=got)
    assert status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]

    # a no-op write keeps the resourceVersion
    status, same = await api.request("PUT", "/api/v1/namespaces/default/pods/a", body=updated)
    assert status == 200
    assert same["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]

    # unscheduled pod: deletion is immediate and echoes the pod
    status, deleted = await api.request("DELETE", "/api/v1/namespaces/default/pods/a")
    assert status == 200 and deleted["kind"] == "Pod"
    status, body = await api.request("GET", "/api/v1/namespaces/default/pods/a")
    assert status == 404 and body["reason"] == "NotFound"
    assert body["message"] == 'pods "a" not found'


async def test_already_exists_and_missing_namespace(api: Api) -> None:
    assert (await api.request("POST", "/api/v1/namespaces/default/pods", body=pod("b")))[0] == 201
    status, body = await api.request("POST", "/api/v1/namespaces/default/pods", body=pod("b"))
    assert status == 409 and body["reason"] == "AlreadyExists"
    status, body = await api.request("POST", "/api/v1/namespaces/nope/pods", body=pod("b"))
    assert status == 404 and body["message"] == 'namespaces "nope" not found'


async def test_generate_name(api: Api) -> None:
    body = pod("")
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "web-"
    status, created = await api.request("POST", "/api/v1/namespaces/default/pods", body=body)
    assert status == 201
    name = created["metadata"]["name"]
    assert name.startswith("web-") and len(name) == len("web-") + 5
    assert set(name[4:]) <= set("bcdfghjklmnpqrstvwxz2456789")


async def test_token_is_required(api: Api) -> None:
    status, body = await api.request("GET", "/api/v1/pods", headers={"Authorization": "Bearer x"})
    assert status == 401 and body["reason"] == "Unauthorized"


async def test_insecure_http_mode(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, controllers=False, insecure_http=True,
                                kubeconfig=tmp_path / "kc")
    async with main.running(config) as dk, aiohttp.ClientSession() as session:
        assert dk.url.startswith("http://") and dk.token is None and dk.ca_file is None
        client = Api(devkube=dk, session=session)
        status, created = await client.request(
            "POST", "/api/v1/namespaces/default/pods", body=pod("c"))
        assert status == 201
        status, listed = await client.request("GET", "/api/v1/namespaces/default/pods")
        assert [p["metadata"]["name"] for p in listed["items"]] == ["c"]
        assert listed["kind"] == "PodList" and listed["apiVersion"] == "v1"


async def test_watch_sees_changes_in_order(api: Api) -> None:
    _, created = await api.request("POST", "/api/v1/namespaces/default/pods", body=pod("w"))
    rv = created["metadata"]["resourceVersion"]
    patch = {"metadata": {"labels": {"k": "v"}}}
    await api.request("PATCH", "/api/v1/namespaces/default/pods/w", body=patch,
                      content_type="application/merge-patch+json")
    await api.request("DELETE", "/api/v1/namespaces/default/pods/w")
    events = await api.watch("/api/v1/namespaces/default/pods",
                             params={"resourceVersion": rv}, stop_on=2)
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[0]["object"]["kind"] == "Pod"
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


async def test_probes_hooks_and_volumes_get_the_api_servers_defaults(api: Api) -> None:
    """SetDefaults_Probe, _HTTPGetAction and the volume sources' defaultMode, as kube-apiserver:
    the bridge reads thresholds and modes from the stored pod, so a stand-in that left them
    out would hide a bridge that mishandles the values every real pod carries."""
    body = pod("probed")
    container = body["spec"]["containers"][0]
    container["readinessProbe"] = {"httpGet": {"port": 8080}}
    container["livenessProbe"] = {"tcpSocket": {"port": 8080}, "failureThreshold": 5}
    container["lifecycle"] = {"preStop": {"httpGet": {"port": 8080, "path": "/quit"}}}
    body["spec"]["volumes"] = [
        {"name": "c", "configMap": {"name": "x"}},
        {"name": "s", "secret": {"secretName": "x", "defaultMode": 0o400}},
        {"name": "d", "downwardAPI": {"items": []}},
        {"name": "p", "projected": {"sources": []}},
        {"name": "h", "hostPath": {"path": "/tmp"}},
    ]
    status, created = await api.request("POST", "/api/v1/namespaces/default/pods", body=body)
    assert status == 201, created
    got = created["spec"]["containers"][0]
    assert got["readinessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
        "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert got["livenessProbe"]["failureThreshold"] == 5
    assert got["livenessProbe"]["periodSeconds"] == 10
    assert got["lifecycle"]["preStop"]["httpGet"] == {
        "port": 8080, "path": "/quit", "scheme": "HTTP"}
    volumes = {v["name"]: v for v in created["spec"]["volumes"]}
    assert volumes["c"]["configMap"]["defaultMode"] == 420
    assert volumes["s"]["secret"]["defaultMode"] == 0o400
    assert volumes["d"]["downwardAPI"]["defaultMode"] == 420
    assert volumes["p"]["projected"]["defaultMode"] == 420
    assert volumes["h"]["hostPath"]["type"] == ""
