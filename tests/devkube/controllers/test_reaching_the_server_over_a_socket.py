"""devkube's own controllers reach it over a private Unix socket: same API, same token."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import aiohttp

from k8sbridge.devkube import main
from k8sbridge.devkube.controllers import client as api


async def test_the_socket_is_private_authenticated_and_removed(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig")
    async with main.running(config) as kube:
        sock = kube.controllers_socket
        assert sock is not None and sock.is_socket()
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        connector = aiohttp.UnixConnector(path=str(sock))
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.get("http://localhost/api/v1/namespaces") as resp:
                assert resp.status == 401  # the socket is no way around the token
        async with api.ApiClient(url="http://localhost", token=kube.token, ca_file=None,
                                 unix_socket=sock) as client:
            names = [n["metadata"]["name"] for n in
                     (await client.list(api.NAMESPACES)).get("items") or []]
            assert "default" in names
            # and the controllers work through it: a ReplicaSet gets its pods
            await client.create(api.REPLICASETS, {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "rs", "namespace": "default"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "a"}},
                         "template": {"metadata": {"labels": {"app": "a"}},
                                      "spec": {"containers": [{"name": "c",
                                                               "image": "busybox"}]}}},
            }, namespace="default")
            for _ in range(100):
                pods = (await client.list(api.PODS, namespace="default")).get("items") or []
                if len(pods) == 2:
                    break
                await asyncio.sleep(0.1)
            assert len(pods) == 2
    assert not sock.exists() and not sock.parent.exists()


async def test_no_socket_without_controllers(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, controllers=False, kubeconfig=tmp_path / "kubeconfig")
    async with main.running(config) as kube:
        assert kube.controllers_socket is None
