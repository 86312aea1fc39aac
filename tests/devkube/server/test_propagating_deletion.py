"""propagationPolicy: the server adds the ``orphan`` / ``foregroundDeletion`` finalizers as the
apiserver does, and devkube's garbage collector (controllers) completes the deletion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.devkube import main
from tests.devkube.server.conftest import Api

CMS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
async def with_controllers(tmp_path: Path) -> AsyncIterator[Api]:
    config = main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig")
    async with main.running(config) as dk, aiohttp.ClientSession() as session:
        yield Api(devkube=dk, session=session)


async def _owner_and_dependent(api: Api) -> dict[str, Any]:
    _, owner = await api.request("POST", CMS, body={
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
           "uid": owner["metadata"]["uid"], "blockOwnerDeletion": True}
    status, dep = await api.request("POST", CMS, body={
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dependent", "ownerReferences": [ref]}})
    assert status == 201
    return dep  # type: ignore[no-any-return]


async def _gone(api: Api, path: str) -> bool:
    for _ in range(200):
        if (await api.request("GET", path))[0] == 404:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_orphan_finalizer_without_controllers(api: Api) -> None:
    await _owner_and_dependent(api)
    status, owner = await api.request("DELETE", f"{CMS}/owner",
                                      body={"propagationPolicy": "Orphan"})
    assert status == 200 and owner["metadata"]["finalizers"] == ["orphan"]
    assert owner["metadata"]["deletionTimestamp"]
    status, body = await api.request("DELETE", f"{CMS}/dependent",
                                      params={"propagationPolicy": "Sideways"})
    assert status == 422


async def test_orphan_keeps_dependents(with_controllers: Api) -> None:
    api = with_controllers
    await _owner_and_dependent(api)
    await api.request("DELETE", f"{CMS}/owner", body={"propagationPolicy": "Orphan"})
    assert await _gone(api, f"{CMS}/owner")
    _, dep = await api.request("GET", f"{CMS}/dependent")
    assert "ownerReferences" not in dep["metadata"] or not dep["metadata"]["ownerReferences"]


async def test_foreground_deletes_dependents_first(with_controllers: Api) -> None:
    api = with_controllers
    await _owner_and_dependent(api)
    status, owner = await api.request("DELETE", f"{CMS}/owner",
                                      body={"propagationPolicy": "Foreground"})
    assert status == 200 and "foregroundDeletion" in owner["metadata"]["finalizers"]
    assert await _gone(api, f"{CMS}/dependent")
    assert await _gone(api, f"{CMS}/owner")


async def test_background_is_the_default(with_controllers: Api) -> None:
    api = with_controllers
    await _owner_and_dependent(api)
    status, body = await api.request("DELETE", f"{CMS}/owner")
    assert status == 200 and body["kind"] == "Status"
    assert await _gone(api, f"{CMS}/dependent")
