"""devkube as a kubelet's API server: TokenReview for its own token (with discovery; the
service-account tokens are in test_issuing_service_account_tokens.py), and the
kubelet client certificate it presents when proxying pods/log to a kubelet that requires one."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509

from k8sbridge.devkube import certs, main
from tests.conftest import free_port
from tests.devkube.server.conftest import Api

REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"


def _review(token: str) -> dict[str, Any]:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token}}


async def test_token_review_answers_for_its_own_token(api: Api) -> None:
    assert api.devkube.token
    code, body = await api.request("POST", REVIEWS, body=_review(api.devkube.token))
    assert code == 201 and body["kind"] == "TokenReview"
    assert body["status"]["authenticated"] is True
    assert body["status"]["user"]["username"] == "devkube-admin"
    assert "system:authenticated" in body["status"]["user"]["groups"]
    code, body = await api.request("POST", REVIEWS, body=_review("nope"))
    assert code == 201 and not body["status"].get("authenticated")
    assert body["status"]["error"]
    # Bad input is a clear error, never a crash; reviews are create-only.
    code, body = await api.request("POST", REVIEWS, body={"kind": "TokenReview", "spec": {}})
    assert code == 422 and "spec.token" in body["message"]
    code, body = await api.request("POST", REVIEWS, body=b"{not json")
    assert code == 400
    code, _ = await api.request("GET", REVIEWS)
    assert code == 405
    # The endpoint itself needs authentication, as on a real API server.
    saved, api.headers = api.headers, {}
    try:
        code, _ = await api.request("POST", REVIEWS, body=_review(api.devkube.token))
    finally:
        api.headers = saved
    assert code == 401


async def test_discovery_and_kubectl_see_token_reviews(
    api: Api, devkube: main.Devkube, tmp_path: Path
) -> None:
    code, groups = await api.request("GET", "/apis")
    assert "authentication.k8s.io" in {g["name"] for g in groups["groups"]}
    code, resources = await api.request("GET", "/apis/authentication.k8s.io/v1")
    assert code == 200
    assert resources["resources"] == [
        {"name": "selfsubjectreviews", "singularName": "selfsubjectreview", "namespaced": False,
         "kind": "SelfSubjectReview", "verbs": ["create"]},
        {"name": "tokenreviews", "singularName": "tokenreview", "namespaced": False,
         "kind": "TokenReview", "verbs": ["create"]}]
    kc = str(devkube.kubeconfig)
    listed = await asyncio.to_thread(subprocess.run, [
        "kubectl", "--kubeconfig", kc, "api-resources", "--api-group=authentication.k8s.io",
        "--no-headers"], capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0 and "tokenreviews" in listed.stdout, listed.stderr
    manifest = tmp_path / "review.json"
    manifest.write_text(json.dumps(_review(str(devkube.token))))
    created = await asyncio.to_thread(subprocess.run, [
        "kubectl", "--kubeconfig", kc, "create", "-f", str(manifest), "-o", "json"],
        capture_output=True, text=True, timeout=60, check=False)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["status"]["authenticated"] is True


@pytest.fixture
async def strict_kubelet(
    devkube: main.Devkube, tmp_path: Path
) -> AsyncIterator[tuple[int, list[str]]]:
    """A kubelet endpoint that requires a client certificate signed by devkube's CA."""
    subjects: list[str] = []

    async def logs(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subjects.append(json.dumps(peer.get("subject") if peer else None))
        return web.Response(text="authenticated line\n")

    app = web.Application()
    app.router.add_get("/containerLogs/{ns}/{pod}/{ctr}", logs)
    own = certs.ensure(directory=tmp_path / "kubelet-pki", hosts=["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(own.cert_file, own.key_file)
    assert devkube.ca_file is not None
    context.load_verify_locations(str(devkube.ca_file))
    context.verify_mode = ssl.CERT_REQUIRED
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield port, subjects
    finally:
        await runner.cleanup()


async def test_log_proxy_presents_the_kubelet_client_certificate(
    api: Api, devkube: main.Devkube, strict_kubelet: tuple[int, list[str]]
) -> None:
    port, subjects = strict_kubelet
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}
    code, _ = await api.request("POST", "/api/v1/nodes", body=node)
    assert code == 201
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}
    code, _ = await api.request("POST", "/api/v1/namespaces/default/pods", body=pod)
    assert code == 201
    code, text = await api.request("GET", "/api/v1/namespaces/default/pods/p/log")
    assert code == 200 and text == "authenticated line\n"
    assert certs.KUBELET_CLIENT_CN in subjects[0] and certs.KUBELET_CLIENT_ORG in subjects[0]
    assert devkube.ca_file is not None
    pem = (devkube.ca_file.parent / "apiserver-kubelet-client.crt").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.issuer == x509.load_pem_x509_certificate(devkube.ca_file.read_bytes()).subject
