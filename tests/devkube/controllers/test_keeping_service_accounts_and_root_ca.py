"""The ServiceAccounts controller and the root-CA publisher against a real devkube: every
namespace has a ``default`` ServiceAccount and a ``kube-root-ca.crt`` ConfigMap whose
``ca.crt`` is the CA devkube's clients trust; deleted ones come back, edited ones are
restored, and a pod created right after ``default`` was deleted is admitted once the
controller has recreated it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.devkube import main
from tests.devkube.server.conftest import Api

DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Api]:
    cfg = main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig")
    async with main.running(cfg) as dk, aiohttp.ClientSession() as session:
        yield Api(devkube=dk, session=session)


async def _eventually(probe: Callable[[], Awaitable[Any]], what: str) -> Any:
    for _ in range(100):
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _get(api: Api, path: str) -> Callable[[], Awaitable[Any]]:
    async def probe() -> Any:
        code, body = await api.request("GET", path)
        return body if code == 200 else None
    return probe


async def test_every_namespace_gets_the_root_ca_and_keeps_it(cluster: Api) -> None:
    api = cluster
    assert api.devkube.ca_file is not None
    ca = api.devkube.ca_file.read_text()
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        cm = await _eventually(_get(api, f"/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt"),
                               f"kube-root-ca.crt in {ns}")
        assert cm["data"] == {"ca.crt": ca}
        assert cm["metadata"]["annotations"] == {"kubernetes.io/description": DESCRIPTION}
    await api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "team"}})
    path = "/api/v1/namespaces/team/configmaps/kube-root-ca.crt"
    cm = await _eventually(_get(api, path), "kube-root-ca.crt in a new namespace")
    assert cm["data"] == {"ca.crt": ca}
    # Edited: restored (other annotations stay).
    await api.request("PATCH", path, content_type="application/merge-patch+json", body={
        "metadata": {"annotations": {"kubernetes.io/description": None, "mine": "x"}},
        "data": {"ca.crt": "forged", "extra": "y"}})

    async def restored() -> Any:
        body = await _get(api, path)()
        ok = body and body["data"] == {"ca.crt": ca} and body["metadata"]["annotations"] == {
            "kubernetes.io/description": DESCRIPTION, "mine": "x"}
        return body if ok else None

    await _eventually(restored, "the ConfigMap restored")
    # Deleted: created again.
    code, _ = await api.request("DELETE", path)
    assert code == 200
    cm = await _eventually(_get(api, path), "the ConfigMap recreated")
    assert cm["data"] == {"ca.crt": ca}


async def test_the_default_service_account_comes_back(cluster: Api) -> None:
    api = cluster
    await api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "team"}})
    path = "/api/v1/namespaces/team/serviceaccounts/default"
    first = await _eventually(_get(api, path), "default in a new namespace")
    code, _ = await api.request("DELETE", path)
    assert code == 200
    # A pod created right away is admitted: the plugin waits for the controller's new one.
    code, pod = await api.request("POST", "/api/v1/namespaces/team/pods", body={
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    assert code == 201, pod
    second = await _eventually(_get(api, path), "default recreated")
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    # Other ServiceAccounts are not the controller's business.
    await api.request("POST", "/api/v1/namespaces/team/serviceaccounts",
                      body={"metadata": {"name": "robot"}})
    await api.request("DELETE", "/api/v1/namespaces/team/serviceaccounts/robot")
    await asyncio.sleep(0.3)
    code, _ = await api.request("GET", "/api/v1/namespaces/team/serviceaccounts/robot")
    assert code == 404


async def test_an_insecure_server_publishes_an_empty_bundle(tmp_path: Path) -> None:
    """Without TLS there is no CA: kube-controller-manager publishes what it has (nothing)."""
    cfg = main.DevkubeConfig(port=0, insecure_http=True, kubeconfig=tmp_path / "kubeconfig")
    async with main.running(cfg) as dk, aiohttp.ClientSession() as session:
        api = Api(devkube=dk, session=session)
        cm = await _eventually(
            _get(api, "/api/v1/namespaces/default/configmaps/kube-root-ca.crt"), "the bundle")
    assert cm["data"] == {"ca.crt": ""}
