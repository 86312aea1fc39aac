"""The kubelet API's authentication settings, one server against a real devkube (no kernel).

The external-mode default bind (0.0.0.0), anonymous on, token review off, the cache TTL, and an
API server that cannot be reached (refused, not cached). Real TLS, real TokenReviews.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from k8sbridge import settings as bridge_settings
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kube import client as kube_client
from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import api as kubelet_api
from tests.conftest import free_port


@pytest.fixture
async def devkube(tmp_path: Path) -> AsyncIterator[devkube_main.Devkube]:
    config = devkube_main.DevkubeConfig(port=0, controllers=False,
                                        kubeconfig=tmp_path / "kubeconfig")
    async with devkube_main.running(config) as dk:
        yield dk


@pytest.fixture
async def kube(devkube: devkube_main.Devkube) -> AsyncIterator[kube_client.KubeClient]:
    client = kube_client.KubeClient.from_kubeconfig(path=devkube.kubeconfig, connections=2)
    yield client
    await client.close()


@contextlib.asynccontextmanager
async def _serving(
    kube: kube_client.KubeClient, **changes: object
) -> AsyncIterator[kubelet_api.KubeletServer]:
    settings = dataclasses.replace(bridge_settings.KubeletSettings(), port=0, **changes)
    reader = mesos_agents.MesosReader(masters=(f"http://127.0.0.1:{free_port()}",))
    server = kubelet_api.KubeletServer(settings=settings, reader=reader)
    await server.start()
    server.attach(scheduler=None, kube=kube, nodes=None)
    try:
        yield server
    finally:
        await server.stop()
        await reader.close()


async def _status(host: str, port: int, path: str, token: str | None = None) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, http.get(
        f"https://{host}:{port}{path}", ssl=ctx, headers=headers
    ) as r:
        await r.read()
        return r.status


async def test_external_default_binds_all_interfaces_and_reviews_tokens(
    kube: kube_client.KubeClient, devkube: devkube_main.Devkube
) -> None:
    assert devkube.token
    async with _serving(kube, token_cache_ttl_seconds=0.5) as server:
        # "" is 0.0.0.0 outside the embedded default: another local address reaches it too.
        assert await _status("127.0.0.2", server.port, "/healthz") == 401
        assert await _status("127.0.0.1", server.port, "/healthz", devkube.token) == 200
        assert await _status("127.0.0.1", server.port, "/healthz", devkube.token) == 200
        assert server.token_reviews == 1
        await asyncio.sleep(0.7)  # the cached answer expired: asked again
        assert await _status("127.0.0.1", server.port, "/healthz", devkube.token) == 200
        assert server.token_reviews == 2


async def test_anonymous_only_when_configured(
    kube: kube_client.KubeClient, devkube: devkube_main.Devkube
) -> None:
    async with _serving(kube, host="127.0.0.1", anonymous=True) as server:
        assert await _status("127.0.0.1", server.port, "/healthz") == 200
        assert await _status("127.0.0.1", server.port, "/pods") == 200
        # A token that does not pass review is refused even so (as in Kubernetes).
        assert await _status("127.0.0.1", server.port, "/healthz", "bogus") == 401
    async with _serving(kube, host="127.0.0.1", token_review=False) as server:
        assert await _status("127.0.0.1", server.port, "/healthz", devkube.token) == 401
        assert server.token_reviews == 0


async def test_an_unreachable_api_server_refuses_and_is_not_cached(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "gone"
    devkube_main.write_kubeconfig(path=kubeconfig, url=f"http://127.0.0.1:{free_port()}",
                                  token="t", ca_file=None)
    client = kube_client.KubeClient.from_kubeconfig(path=kubeconfig, connections=1)
    try:
        async with _serving(client, host="127.0.0.1") as server:
            for _ in range(2):
                assert await _status("127.0.0.1", server.port, "/pods", "t") == 401
            assert server.token_reviews == 2
    finally:
        await client.close()


def test_run_documents_the_kubelet_flags() -> None:
    done = subprocess.run([sys.executable, "-m", "k8sbridge", "run", "--help"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for flag in ("--kubelet-bind", "--kubelet-client-ca", "--kubelet-anonymous"):
        assert flag in done.stdout
    bad = subprocess.run([sys.executable, "-m", "k8sbridge", "run", "--master", "http://x:1",
                          "--kubelet-port", "70000"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "kubelet.port" in bad.stderr
