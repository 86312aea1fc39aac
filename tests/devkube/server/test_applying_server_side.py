"""Server-side apply: managedFields per manager, conflicts, --force-conflicts and pruning, driven
by the real kubectl, the official client and raw HTTP against devkube."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from kubernetes import client, config

from k8sbridge.devkube import main
from tests.devkube.server.conftest import Api

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web, tier: front}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports: [{containerPort: 80}]
        env: [{name: A, value: "1"}]
"""
APPLY = "application/apply-patch+yaml"


def kubectl(kubeconfig: Path, *args: str,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "KUBECACHEDIR": str(kubeconfig.parent / "cache")})


def managers(obj: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    return {(m["manager"], m["operation"], m.get("subresource", "")): m["fieldsV1"]
            for m in obj["metadata"].get("managedFields", [])}


async def run(devkube: main.Devkube, *args: str,
              stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(kubectl, devkube.kubeconfig, *args, stdin=stdin)


async def test_kubectl_apply_server_side_end_to_end(devkube: main.Devkube) -> None:
    made = await run(devkube, "apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    assert (made.returncode, made.stdout) == (0, "deployment.apps/web serverside-applied\n"), \
        made.stderr
    shown = json.loads((await run(devkube, "get", "deploy", "web", "-o", "json",
                                  "--show-managed-fields")).stdout)
    applied = managers(shown)[("kubectl", "Apply", "")]
    container = applied["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']
    assert container["."] == {}
    assert container["f:ports"] == {'k:{"containerPort":80,"protocol":"TCP"}': {
        ".": {}, "f:containerPort": {}}}
    assert container["f:env"] == {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}}
    assert applied["f:metadata"] == {"f:labels": {"f:app": {}, "f:tier": {}}}

    scaled = await run(devkube, "scale", "deploy", "web", "--replicas=5")
    assert scaled.returncode == 0, scaled.stderr
    clash = await run(devkube, "apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    assert clash.returncode != 0
    assert ('Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" '
            'using apps/v1: .spec.replicas') in clash.stderr
    forced = await run(devkube, "apply", "--server-side", "--force-conflicts", "-f", "-",
                       stdin=DEPLOYMENT)
    assert forced.returncode == 0, forced.stderr
    shown = json.loads((await run(devkube, "get", "deploy", "web", "-o", "json",
                                  "--show-managed-fields")).stdout)
    assert shown["spec"]["replicas"] == 2
    assert ("kubectl", "Update", "scale") not in managers(shown)  # it owned nothing else

    # a label and a port the manager stops applying go; what another manager owns stays
    other = await run(devkube, "label", "deploy", "web", "team=a")
    assert other.returncode == 0, other.stderr
    trimmed = DEPLOYMENT.replace(", tier: front", "").replace(
        "        ports: [{containerPort: 80}]\n", "")
    pruned = await run(devkube, "apply", "--server-side", "-f", "-", stdin=trimmed)
    assert pruned.returncode == 0, pruned.stderr
    shown = json.loads((await run(devkube, "get", "deploy", "web", "-o", "json")).stdout)
    assert shown["metadata"]["labels"] == {"app": "web", "team": "a"}
    assert "ports" not in shown["spec"]["template"]["spec"]["containers"][0]
    assert shown["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"}]


async def test_two_appliers_conflict_and_share_equal_values(api: Api) -> None:
    path = "/api/v1/namespaces/default/configmaps/cm"
    alice = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
             "data": {"a": "1", "shared": "x"}}
    status, body = await api.request("PATCH", path, body=alice, content_type=APPLY,
                                     params={"fieldManager": "alice"})
    assert status == 201, body
    bob = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
           "data": {"shared": "x", "b": "2"}}
    status, body = await api.request("PATCH", path, body=bob, content_type=APPLY,
                                     params={"fieldManager": "bob"})
    assert status == 200, body
    bob["data"] = {"shared": "y", "a": "9"}
    status, body = await api.request("PATCH", path, body=bob, content_type=APPLY,
                                     params={"fieldManager": "bob"})
    assert status == 409
    assert body["reason"] == "Conflict"
    assert body["message"] == ('Apply failed with 2 conflicts: conflicts with "alice":\n'
                               "- .data.a\n- .data.shared")
    assert body["details"]["causes"] == [
        {"type": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".data.a"},
        {"type": "FieldManagerConflict", "message": 'conflict with "alice"',
         "field": ".data.shared"}]
    status, body = await api.request("PATCH", path, body=bob, content_type=APPLY,
                                     params={"fieldManager": "bob", "force": "true"})
    assert status == 200, body
    assert body["data"] == {"a": "9", "shared": "y"}  # bob's "b" pruned, alice's fields taken
    owned = managers(body)
    assert ("alice", "Apply", "") not in owned  # she owned only what bob took
    assert set(owned[("bob", "Apply", "")]["f:data"]) == {"f:a", "f:shared"}
    # so a re-apply of her old config conflicts with bob
    status, body = await api.request("PATCH", path, body=alice, content_type=APPLY,
                                     params={"fieldManager": "alice"})
    assert status == 409


async def test_apply_options_are_validated(api: Api) -> None:
    path = "/api/v1/namespaces/default/configmaps/cm2"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm2"}}
    status, body = await api.request("PATCH", path, body=cm, content_type=APPLY)
    assert status == 422
    assert body["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                               "Required value: is required for apply patch")
    status, body = await api.request("PATCH", path, body={}, params={"force": "true"},
                                     content_type="application/merge-patch+json")
    assert status == 422
    assert body["message"] == ('PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may '
                               "not be specified for non-apply patch")


async def test_updates_are_tracked_per_manager(api: Api) -> None:
    path = "/api/v1/namespaces/default/configmaps"
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "u", "labels": {"x": "1"}}, "data": {"k": "v"}}
    status, body = await api.request("POST", path, body=cm, params={"fieldManager": "maker"})
    assert status == 201, body
    assert managers(body)[("maker", "Update", "")] == {  # maps it made are members too
        "f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}}
    rv = body["metadata"]["resourceVersion"]
    status, same = await api.request("PUT", path + "/u", body=body,
                                     params={"fieldManager": "other"})
    assert status == 200
    assert same["metadata"]["resourceVersion"] == rv  # a no-op stays a no-op
    body["data"]["k"] = "w"
    status, body = await api.request("PUT", path + "/u", body=body,
                                     params={"fieldManager": "other"})
    assert managers(body)[("other", "Update", "")] == {"f:data": {"f:k": {}}}
    assert managers(body)[("maker", "Update", "")] == {
        "f:data": {}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}}


async def test_the_official_client_reads_managed_fields(devkube: main.Devkube) -> None:
    made = await run(devkube, "apply", "--server-side", "--field-manager=ci", "-f", "-",
                     stdin=DEPLOYMENT)
    assert made.returncode == 0, made.stderr
    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(devkube.kubeconfig))
    apps = client.AppsV1Api(api_client)
    deployment = await asyncio.to_thread(apps.read_namespaced_deployment, "web", "default")
    assert deployment.metadata is not None and deployment.metadata.managed_fields
    entries = {(m.manager, m.operation) for m in deployment.metadata.managed_fields}
    assert ("ci", "Apply") in entries
    entry = next(m for m in deployment.metadata.managed_fields if m.manager == "ci")
    assert entry.fields_type == "FieldsV1" and entry.api_version == "apps/v1"
    assert entry.fields_v1 is not None and "f:spec" in entry.fields_v1


async def test_a_repeated_apply_is_a_no_op_and_bad_configs_are_refused(api: Api) -> None:
    path = "/api/v1/namespaces/default/configmaps/same"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "same"},
          "data": {"a": "1"}}
    params = {"fieldManager": "m"}
    status, first = await api.request("PATCH", path, body=cm, content_type=APPLY, params=params)
    assert status == 201, first
    status, again = await api.request("PATCH", path, body=cm, content_type=APPLY, params=params)
    assert status == 200
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    status, body = await api.request("PATCH", path, content_type=APPLY, params=params,
                                     body={**cm, "apiVersion": "v2"})
    assert (status, body["message"]) == (400, "Incorrect version specified in apply patch. "
                                              "Specified patch version: v2, expected: v1")
    status, body = await api.request("PATCH", path, content_type=APPLY, params=params, body={
        **cm, "metadata": {"name": "same", "managedFields": []}})
    assert (status, body["message"]) == (400, "metadata.managedFields must be nil")
