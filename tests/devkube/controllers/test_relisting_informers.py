"""Informers against a real devkube: cache follows watch events, and an expired
resourceVersion (in-stream ERROR 410) leads to a relist that repairs the cache."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from k8sbridge.devkube import main
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject

from .conftest import eventually


def _cm(name: str, value: str = "v") -> RawObject:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"k": value}}


async def test_informer_relists_after_expired_resource_version(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, insecure_http=True, controllers=False, history_size=20,
                                kubeconfig=tmp_path / "kubeconfig")
    async with main.running(config) as kube, api.ApiClient(
            url=kube.url, token=kube.token, ca_file=None) as client:
        inf = Informer(client=client, resource=api.CONFIGMAPS, namespace="default")
        seen: list[tuple[str | None, str | None]] = []
        inf.add_handler(lambda old, new: seen.append((
            old["metadata"]["name"] if old else None, new["metadata"]["name"] if new else None)))
        stop = asyncio.Event()
        task = asyncio.create_task(inf.run(stop=stop))
        await asyncio.wait_for(inf.synced.wait(), 10)
        await client.create(api.CONFIGMAPS, _cm("first"), namespace="default")

        async def cached_first() -> bool:
            return inf.get(ObjectKey("default/first")) is not None

        await eventually(cached_first, what="watch event in cache")
        # stop watching, then churn far beyond the server's watch history
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.delete(api.CONFIGMAPS, namespace="default", name="first")
        for i in range(60):
            await client.create(api.CONFIGMAPS, _cm(f"cm-{i}"), namespace="default")
        for i in range(0, 60, 2):
            await client.delete(api.CONFIGMAPS, namespace="default", name=f"cm-{i}")
        # resuming from the old resourceVersion gets ERROR 410 in-stream → relist
        seen.clear()
        task = asyncio.create_task(inf.run(stop=stop))

        async def repaired() -> bool:
            names = {o["metadata"]["name"] for o in inf.items("default")}
            return names == {f"cm-{i}" for i in range(1, 60, 2)} | {"kube-root-ca.crt"} or \
                names == {f"cm-{i}" for i in range(1, 60, 2)}

        await eventually(repaired, what="cache repaired by relist")
        assert ("first", None) in seen  # the relist reported the deletion it missed
        assert inf.relists == 2
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
