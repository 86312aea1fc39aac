"""The client's wire (``kube.wire``): credentials from the official client's Configuration read
at most once a second and anew after a 401 (an exec credential plugin is run as kubectl runs
it), TLS verified against the kubeconfig's CA, and what a broken server does reaching the caller
as ``kube.errors``."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from k8sbridge.devkube import main as devkube_main
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors

PLUGIN = """\
import json, sys
from pathlib import Path
calls = Path(sys.argv[1])
calls.write_text(str(int(calls.read_text() or 0) + 1) if calls.exists() else "1")
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1",
                  "kind": "ExecCredential", "status": {"token": sys.argv[2]}}))
"""


@pytest.fixture
async def devkube(tmp_path: Path) -> AsyncIterator[devkube_main.Devkube]:
    config = devkube_main.DevkubeConfig(
        port=0, kubeconfig=tmp_path / "kubeconfig", controllers=False)
    async with devkube_main.running(config) as dk:
        yield dk


def _kubeconfig(path: Path, *, server: str, cluster: dict[str, object],
                user: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "x", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
    }))
    return path


def _cluster_of(dk: devkube_main.Devkube) -> dict[str, object]:
    doc = yaml.safe_load(dk.kubeconfig.read_text())
    cluster: dict[str, object] = doc["clusters"][0]["cluster"]
    return {k: v for k, v in cluster.items() if k != "server"}


async def test_an_exec_credential_plugin_gives_the_token(
    devkube: devkube_main.Devkube, tmp_path: Path,
) -> None:
    assert devkube.token
    script = tmp_path / "plugin.py"
    script.write_text(PLUGIN)
    calls = tmp_path / "calls"

    def plugin(token: str) -> dict[str, object]:
        return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                         "command": sys.executable, "args": [str(script), str(calls), token],
                         "interactiveMode": "Never"}}

    good = _kubeconfig(tmp_path / "good", server=devkube.url, cluster=_cluster_of(devkube),
                       user=plugin(devkube.token))
    client = kube_client.KubeClient.from_kubeconfig(path=good, connections=2)
    try:
        reply = await client.get("/api/v1/namespaces/default")
        assert reply["metadata"]["name"] == "default"
    finally:
        await client.close()
    assert int(calls.read_text()) >= 1  # the plugin was run for the token

    wrong = _kubeconfig(tmp_path / "wrong", server=devkube.url, cluster=_cluster_of(devkube),
                        user=plugin("not-a-token"))
    client = kube_client.KubeClient.from_kubeconfig(path=wrong, connections=2)
    try:
        with pytest.raises(kube_errors.Unauthorized):
            await client.get("/api/v1/namespaces/default")
    finally:
        await client.close()


def _other_ca(directory: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "someone else")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = directory / "other-ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


async def test_the_server_certificate_is_verified_against_the_kubeconfig_ca(
    devkube: devkube_main.Devkube, tmp_path: Path,
) -> None:
    assert devkube.url.startswith("https://") and devkube.token
    other = base64.b64encode(_other_ca(tmp_path).read_bytes()).decode()
    foreign = _kubeconfig(tmp_path / "foreign", server=devkube.url,
                          cluster={"certificate-authority-data": other},
                          user={"token": devkube.token})
    client = kube_client.KubeClient.from_kubeconfig(path=foreign, connections=1)
    try:
        with pytest.raises(kube_errors.TransportError, match="(?i)certificate"):
            await client.get("/api/v1/namespaces/default")
    finally:
        await client.close()
    skipping = _kubeconfig(tmp_path / "skipping", server=devkube.url,
                           cluster={"insecure-skip-tls-verify": True},
                           user={"token": devkube.token})
    client = kube_client.KubeClient.from_kubeconfig(path=skipping, connections=1)
    try:
        assert (await client.get("/api/v1/namespaces/default"))["kind"] == "Namespace"
    finally:
        await client.close()


async def _broken_server() -> tuple[web.AppRunner, str]:
    async def unavailable(_: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "status": "Failure", "code": 503,
                                  "reason": "ServiceUnavailable", "message": "etcd is down"},
                                 status=503)

    async def reset(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return web.Response()

    async def garbage(_: web.Request) -> web.Response:
        return web.Response(body=b"<html>proxy</html>", content_type="text/html")

    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()

    app = web.Application()
    app.router.add_get("/unavailable", unavailable)
    app.router.add_get("/reset", reset)
    app.router.add_get("/garbage", garbage)
    app.router.add_get("/hang", hang)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def test_a_broken_server_gives_kube_errors_and_the_client_keeps_working(
    tmp_path: Path,
) -> None:
    runner, url = await _broken_server()
    kubeconfig = _kubeconfig(tmp_path / "kc", server=url, cluster={}, user={"token": "t"})
    client = kube_client.KubeClient.from_kubeconfig(path=kubeconfig, connections=1,
                                                    timeout=1.0)
    try:
        with pytest.raises(kube_errors.ServerError, match="etcd is down") as unavailable:
            await client.get("/unavailable")
        assert unavailable.value.status == 503 and unavailable.value.reason == "ServiceUnavailable"
        with pytest.raises(kube_errors.TransportError):
            await client.get("/reset")
        with pytest.raises(kube_errors.ApiError, match="reply is not JSON"):
            await client.get("/garbage")
        with pytest.raises(kube_errors.TransportError):
            await client.get("/hang")
        # the one connection slot was handed back each time
        with pytest.raises(kube_errors.ServerError):
            await client.get("/unavailable")
    finally:
        await client.close()
        await runner.cleanup()


async def test_bodies_and_queries_go_out_as_json_and_url_encoding(tmp_path: Path) -> None:
    seen: list[tuple[str, str, str, bytes, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.method, request.raw_path, request.headers.get("Content-Type", ""),
                     await request.read(), request.headers.get("Authorization", "")))
        return web.json_response({"kind": "Status", "status": "Success"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    kubeconfig = _kubeconfig(tmp_path / "kc", server=url, cluster={}, user={"token": "s3cret"})
    client = kube_client.KubeClient.from_kubeconfig(path=kubeconfig, connections=1)
    try:
        await client.get("/api/v1/pods", fieldSelector="spec.nodeName=a b,status.phase!=x")
        await client.patch("/api/v1/namespaces/n%2Fx/pods/p/status", {"status": {"a": 1}})
    finally:
        await client.close()
        await runner.cleanup()
    (get_method, get_path, _, _, auth), (method, path, ctype, body, _) = seen
    assert (get_method, auth) == ("GET", "Bearer s3cret")
    assert get_path == "/api/v1/pods?fieldSelector=spec.nodeName%3Da+b%2Cstatus.phase%21%3Dx"
    assert (method, path, ctype) == (
        "PATCH", "/api/v1/namespaces/n%2Fx/pods/p/status", "application/merge-patch+json")
    assert json.loads(body) == {"status": {"a": 1}}


EXPIRING_PLUGIN = """\
import json, sys
from pathlib import Path
calls = Path(sys.argv[1])
calls.write_text(str(int(calls.read_text() or 0) + 1) if calls.exists() else "1")
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1",
                  "kind": "ExecCredential",
                  "status": {"token": Path(sys.argv[2]).read_text().strip(),
                             "expirationTimestamp": "2000-01-01T00:00:00Z"}}))
"""


async def test_credentials_are_read_once_a_second_and_anew_after_a_401(
    devkube: devkube_main.Devkube, tmp_path: Path,
) -> None:
    # A credential that is always expired: the official client's hook runs the plugin at
    # every read, so the number of runs counts the reads.
    assert devkube.token
    script, calls, token = tmp_path / "plugin.py", tmp_path / "calls", tmp_path / "token"
    script.write_text(EXPIRING_PLUGIN)
    token.write_text(devkube.token)
    config = _kubeconfig(tmp_path / "kc", server=devkube.url, cluster=_cluster_of(devkube),
                         user={"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                        "command": sys.executable,
                                        "args": [str(script), str(calls), str(token)],
                                        "interactiveMode": "Never"}})
    client = kube_client.KubeClient.from_kubeconfig(path=config, connections=2)
    try:
        await client.get("/api/v1/namespaces/default")
        loaded = int(calls.read_text())
        started = asyncio.get_running_loop().time()
        for _ in range(10):
            await client.get("/api/v1/namespaces/default")
        took = asyncio.get_running_loop().time() - started
        # ten calls: one read per AUTH_HEADERS_SECONDS they took (plus the expiry of the first
        # read's), never one per call
        assert int(calls.read_text()) - loaded <= \
            int(took / kube_client.AUTH_HEADERS_SECONDS) + 1 < 10
        token.write_text("rotated-away")
        await asyncio.sleep(kube_client.AUTH_HEADERS_SECONDS + 0.2)
        with pytest.raises(kube_errors.Unauthorized):
            await client.get("/api/v1/namespaces/default")
        token.write_text(devkube.token)
        reads = int(calls.read_text())
        reply = await client.get("/api/v1/namespaces/default")  # within the second: read anew
        assert reply["metadata"]["name"] == "default"
        assert int(calls.read_text()) == reads + 1
    finally:
        await client.close()
