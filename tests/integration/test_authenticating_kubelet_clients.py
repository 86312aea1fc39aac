"""The kubelet API authenticates as a kubelet does: client certificates, TokenReview, no anonymous.

Everything runs for real: the embedded kernel, devkube (which answers TokenReview and presents
its kubelet client certificate when it proxies pods/log), the bridge's kubelet API over TLS, and
the real kubectl binary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k8sbridge import app
from tests.integration.conftest import eventually, fast_settings


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[app.EmbeddedTargets]:
    """The embedded default with the kubelet settings left at their defaults (bind included)."""
    settings = fast_settings(tmp_path / "run")
    settings = dataclasses.replace(
        settings, kubelet=dataclasses.replace(settings.kubelet, host="")
    )
    async with app.running_embedded(settings) as targets:
        yield targets


def _insecure_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the kubelet's serving certificate is self-signed
    return ctx


def _foreign_client_cert(directory: Path) -> tuple[Path, Path]:
    """A client certificate from a CA the kubelet API does not trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intruder")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "intruder.crt", directory / "intruder.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def _status(url: str, *, ctx: ssl.SSLContext, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, http.get(url, ssl=ctx, headers=headers) as r:
        await r.read()
        return r.status


def _kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=60,
                          check=False)


async def test_requests_need_a_certificate_or_a_reviewed_token(
    secured: app.EmbeddedTargets, tmp_path: Path
) -> None:
    bridge = secured.bridge
    port = bridge.kubelet_port
    base = f"https://127.0.0.1:{port}"
    assert secured.api_token and secured.api_ca_file is not None
    assert bridge.settings.kubelet.client_ca_file == secured.api_ca_file
    assert bridge.settings.kubelet.anonymous is False

    # Embedded default: loopback and the agents' own addresses (the Nodes' InternalIPs, where
    # the API server dials it) only; any other address is another socket.
    hosts = bridge.settings.kubelet.host.split(",")
    assert hosts[0] == "127.0.0.1" and all(h.startswith("127.0.0.") for h in hosts), hosts
    with pytest.raises(OSError):
        _, writer = await asyncio.open_connection("127.0.0.200", port)
        writer.close()

    # No credentials: 401 everywhere, /healthz included (as a kubelet on 10250).
    for path in ("/healthz", "/pods", "/runningpods/", "/stats/summary",
                 "/containerLogs/default/x/y"):
        assert await _status(base + path, ctx=_insecure_ctx()) == 401, path
    # A token the API server rejects: 401, asked once then remembered for a while.
    api_server = _kubelet_server(secured)
    before = api_server.token_reviews
    for _ in range(3):
        assert await _status(base + "/pods", ctx=_insecure_ctx(), token="not-a-token") == 401
    assert api_server.token_reviews == before + 1
    # A malformed Authorization header is no credential at all.
    async with aiohttp.ClientSession() as http, http.get(
        base + "/pods", ssl=_insecure_ctx(), headers={"Authorization": "Basic eDp5"}
    ) as r:
        assert r.status == 401
    # devkube's own token: TokenReview says yes; the answer is cached.
    before = api_server.token_reviews
    for _ in range(3):
        assert await _status(base + "/pods", ctx=_insecure_ctx(),
                             token=secured.api_token) == 200
    assert api_server.token_reviews == before + 1

    # The client certificate devkube presents to kubelets (signed by its CA): accepted.
    pki = secured.api_ca_file.parent
    ctx = _insecure_ctx()
    ctx.load_cert_chain(pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key")
    assert await _status(base + "/healthz", ctx=ctx) == 200
    assert await _status(base + "/runningpods/", ctx=ctx) == 200
    # Exec, attach and port-forward: once authenticated, a clear 400 for a bad request.
    async with aiohttp.ClientSession() as http:
        for path, why in (("/exec/default/p/c?command=ls", "at least 1 of stdin"),
                          ("/attach/default/p/c", "at least 1 of stdin"),
                          ("/portForward/default/p", "at least one port"),
                          ("/exec/default/p/c?command=ls&output=1", "WebSocket")):
            async with http.post(base + path, ssl=ctx) as r:
                assert r.status == 400 and why in await r.text()

    # A certificate from another CA does not get through the handshake.
    foreign = _insecure_ctx()
    foreign.load_cert_chain(*_foreign_client_cert(tmp_path))
    with pytest.raises(aiohttp.ClientError):
        await _status(base + "/pods", ctx=foreign)

    # Real kubectl against the kubelet API itself: a bearer token works, a bad one is refused.
    ok = await asyncio.to_thread(
        _kubectl, "--server", base, "--insecure-skip-tls-verify", "--token", secured.api_token,
        "get", "--raw", "/pods")
    assert ok.returncode == 0 and '"PodList"' in ok.stdout, ok.stderr
    bad = await asyncio.to_thread(
        _kubectl, "--server", base, "--insecure-skip-tls-verify", "--token", "wrong",
        "get", "--raw", "/pods")
    assert bad.returncode != 0 and "You must be logged in" in bad.stderr  # kubectl on a 401


async def test_kubectl_logs_works_with_anonymous_off(secured: app.EmbeddedTargets) -> None:
    kube = secured.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "talker", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "main", "image": "busybox",
             "command": ["sh", "-c", "echo hello from the sandbox; sleep 300"]}]},
    })
    kubeconfig = str(secured.kubeconfig)

    async def logs() -> str | None:
        done = await asyncio.to_thread(_kubectl, "--kubeconfig", kubeconfig, "logs", "talker")
        return done.stdout if "hello from the sandbox" in done.stdout else None

    await eventually(logs, timeout=40, what="kubectl logs through devkube's proxy")
    await kube.delete("/api/v1/namespaces/default/pods/talker", grace_period_seconds=0)


def _kubelet_server(targets: app.EmbeddedTargets) -> Any:
    server = targets.bridge.kubelet_api
    assert server is not None
    return server
