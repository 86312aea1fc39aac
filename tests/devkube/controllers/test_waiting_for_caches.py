"""Controllers act only once every informer they read has synced (client-go's
WaitForCacheSync). Before, a devkube restarted with a 200-replica ReplicaSet listed the
ReplicaSet before its pods and created up to 200 extra pods, then deleted them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from k8sbridge.devkube import main
from tests.devkube.server.conftest import Api

PODS = "/api/v1/namespaces/default/pods"
REPLICAS = 200


def _replicaset() -> dict[str, object]:
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "many"},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "many"}},
                 "template": {"metadata": {"labels": {"app": "many"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}},
    }


async def _count(api: Api) -> int:
    _, listed = await api.request("GET", PODS)
    return len(listed["items"])


async def _settled_resource_version(api: Api) -> str:
    """The resourceVersion once the controllers' status writes stopped (the same 1 s apart):
    a write after it would start the restarted devkube's history past it. (A fixed 1 s was
    too short on a loaded machine: 'too old resource version'.)"""
    last = None
    for _ in range(60):
        _, listed = await api.request("GET", PODS)
        version = str(listed["metadata"]["resourceVersion"])
        if version == last:
            return version
        last = version
        await asyncio.sleep(1.0)
    raise AssertionError(f"writes did not settle: resourceVersion still moving at {last}")


async def test_a_restart_with_200_replicas_creates_no_extra_pods(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, data_dir=tmp_path / "data")
    async with main.running(config) as dk, aiohttp.ClientSession() as session:
        api = Api(devkube=dk, session=session)
        status, _ = await api.request("POST", "/apis/apps/v1/namespaces/default/replicasets",
                                      body=_replicaset())
        assert status == 201
        for _ in range(600):
            if await _count(api) == REPLICAS:
                break
            await asyncio.sleep(0.05)
        assert await _count(api) == REPLICAS
        before_rv = await _settled_resource_version(api)
    for _ in range(3):  # the race is between two relists: try it a few times
        async with main.running(config) as dk, aiohttp.ClientSession(
                read_bufsize=1 << 20) as session:
            api = Api(devkube=dk, session=session)
            await asyncio.sleep(2.0)
            # every pod change since before the restart, from the resumable history
            created: list[str] = []
            async with session.get(
                dk.url + PODS, params={"watch": "1", "resourceVersion": before_rv,
                                       "timeoutSeconds": "1"},
                headers=api.headers, ssl=api.ssl) as resp:
                assert resp.status == 200
                async for raw in resp.content:
                    event = json.loads(raw)
                    assert event["type"] != "ERROR", event
                    if event["type"] == "ADDED":
                        created.append(event["object"]["metadata"]["name"])
            assert created == [], f"{len(created)} pods created after the restart"
            assert await _count(api) == REPLICAS
            before_rv = await _settled_resource_version(api)
