"""OpenAPI v2/v3 from devkube: kubectl explain (v3 and v2 paths, both kubectls), client-side
validation, the documents' extensions and kube-openapi's caching headers."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from k8sbridge.devkube import kinds, main, openapi, protoschema
from tests.devkube.server.conftest import Api

# the pinned kubectl of the test extras and the machine's older one
KUBECTLS = ("kubectl", "/usr/bin/kubectl")


def kubectl(binary: str, kubeconfig: Path, *args: str,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cache = kubeconfig.parent / f"cache-{Path(binary).name}-{binary.count('/')}"
    return subprocess.run([binary, "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "KUBECACHEDIR": str(cache)})


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_explain_shows_a_field_with_its_description(devkube: main.Devkube,
                                                          binary: str) -> None:
    done = await asyncio.to_thread(kubectl, binary, devkube.kubeconfig, "explain",
                                   "deployment.spec.strategy")
    assert done.returncode == 0, done.stderr
    assert "FIELD: strategy <DeploymentStrategy>" in done.stdout
    assert "The deployment strategy to use to replace existing pods with new ones." in done.stdout
    assert "rollingUpdate\t<RollingUpdateDeployment>" in done.stdout
    assert 'Type of deployment. Can be "Recreate" or "RollingUpdate".' in done.stdout


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_explain_recursive_walks_the_references(devkube: main.Devkube, binary: str) -> None:
    done = await asyncio.to_thread(kubectl, binary, devkube.kubeconfig, "explain",
                                   "pod.spec.containers", "--recursive")
    assert done.returncode == 0, done.stderr
    assert "name\t<string> -required-" in done.stdout
    assert "ports\t<[]ContainerPort>" in done.stdout
    assert "containerPort\t<integer> -required-" in done.stdout
    assert "cpu" not in done.stdout  # resources maps are leaves
    assert "limits\t<map[string]Quantity>" in done.stdout


async def test_explain_over_openapi_v2_protobuf(devkube: main.Devkube) -> None:
    done = await asyncio.to_thread(kubectl, "kubectl", devkube.kubeconfig, "explain",
                                   "cronjob.spec.jobTemplate.spec.completionMode",
                                   "--output", "plaintext-openapiv2")
    assert done.returncode == 0, done.stderr
    assert "FIELD:    completionMode <string>" in done.stdout
    assert "completionMode specifies how Pod completions are tracked." in done.stdout


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_client_side_validation_uses_the_schemas(devkube: main.Devkube,
                                                        binary: str) -> None:
    listed = ("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"
              "  metadata: {name: c1}\n  bogus: 1\n")
    done = await asyncio.to_thread(kubectl, binary, devkube.kubeconfig, "apply", "-f", "-",
                                   stdin=listed)
    assert done.returncode != 0
    assert ('ValidationError(ConfigMap): unknown field "bogus" in io.k8s.api.core.v1.ConfigMap'
            in done.stderr)


async def test_v3_documents_are_cached_by_hash(api: Api) -> None:
    status, index = await api.request("GET", "/openapi/v3")
    assert status == 200
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    path, digest = url.split("?hash=")
    assert len(digest) == 128
    async with api.session.get(api.devkube.url + url, headers=api.headers,
                               ssl=api.ssl) as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "public, immutable"
        assert resp.headers["ETag"] == f'"{digest}"'
        doc = await resp.json()
    deployment = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    containers = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"][
        "containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    assert "io.k8s.api.core.v1.Pod" not in doc["components"]["schemas"]  # apps/v1 only
    async with api.session.get(api.devkube.url + path + "?hash=0", headers=api.headers,
                               ssl=api.ssl, allow_redirects=False) as resp:
        assert resp.status == 301
        assert resp.headers["Location"] == url
    async with api.session.get(api.devkube.url + url, ssl=api.ssl,
                               headers={**api.headers, "If-None-Match": f'"{digest}"'}) as resp:
        assert resp.status == 304


async def test_v2_is_served_as_json_and_protobuf(api: Api) -> None:
    status, doc = await api.request("GET", "/openapi/v2")
    assert status == 200
    ports = doc["definitions"]["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    assert ports["items"] == {"$ref": "#/definitions/io.k8s.api.core.v1.ContainerPort"}
    accept = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    async with api.session.get(api.devkube.url + "/openapi/v2", ssl=api.ssl,
                               headers={**api.headers, "Accept": accept}) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        assert (await resp.read()).startswith(b"\n\x032.0")


def test_every_served_kind_has_the_fields_of_its_message() -> None:
    schemas = openapi.v3_schemas()
    for table in kinds.BY_GROUP_VERSION.values():
        for kind in table.values():
            message = openapi.message_of(kind)
            if message is None:
                continue
            schema = schemas[openapi.definition_name(message)]
            fields = {name for name, label, _ in protoschema.MESSAGES[message].values()}
            assert fields | {"apiVersion", "kind"} == set(schema["properties"]), kind.kind
            assert {"group": kind.group, "kind": kind.kind, "version": kind.version} in \
                schema["x-kubernetes-group-version-kind"]


async def test_unknown_documents_are_not_found(api: Api) -> None:
    for path in ("/openapi/v3/apis/nope/v1", "/openapi/v3/api", "/openapi/v4"):
        status, body = await api.request("GET", path)
        assert (status, body["reason"]) == (404, "NotFound"), path


async def test_the_create_only_reviews_are_explained(devkube: main.Devkube) -> None:
    done = await asyncio.to_thread(kubectl, "kubectl", devkube.kubeconfig, "explain",
                                   "selfsubjectaccessreview.spec.resourceAttributes")
    assert done.returncode == 0, done.stderr
    assert "GROUP:      authorization.k8s.io" in done.stdout
    assert "verb\t<string>" in done.stdout
