"""A small kopf operator against devkube: each handler fires once, with no 5 s consistency stalls.

kopf waits (up to 5 s) after each PATCH for a watch event carrying the PATCH's resourceVersion,
needs in-stream 410s, ``kind`` on list replies and JSON-patch ``test`` → 422; this exercises all of
that through kopf's own client.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf

from k8sbridge.devkube import main
from tests.devkube.server.conftest import Api

CMS = "/api/v1/namespaces/default/configmaps"


async def _until(predicate: Any, *, timeout: float) -> float:
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def test_kopf_handlers_fire_once_each_without_stalls(
    devkube: main.Devkube, api: Api
) -> None:
    registry = kopf.OperatorRegistry()
    calls: dict[str, list[str]] = {"create": [], "update": [], "delete": []}

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(
            server=devkube.url, ca_path=str(devkube.ca_file), token=devkube.token,
            scheme="Bearer", default_namespace="default",
        )

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = True
        settings.watching.connect_timeout = 5
        settings.networking.request_timeout = 10

    @kopf.on.create("configmaps", registry=registry)
    def on_create(name: str, **_: Any) -> dict[str, str]:
        calls["create"].append(name)
        return {"seen": name}

    @kopf.on.update("configmaps", registry=registry)
    def on_update(name: str, **_: Any) -> None:
        calls["update"].append(name)

    @kopf.on.delete("configmaps", registry=registry)
    def on_delete(name: str, **_: Any) -> None:
        calls["delete"].append(name)

    stop = asyncio.Event()
    ready = asyncio.Event()
    operator = asyncio.create_task(kopf.operator(
        registry=registry, standalone=True, clusterwide=True, stop_flag=stop, ready_flag=ready,
    ))
    try:
        await asyncio.wait_for(ready.wait(), timeout=20)
        await asyncio.sleep(1.0)  # let the watchers start
        status, _ = await api.request("POST", CMS, body={
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
            "data": {"k": "1"}})
        assert status == 201
        took = await _until(lambda: calls["create"] == ["cm"], timeout=10)
        assert took < 2, took  # far below kopf's 5 s consistency timeout
        # kopf finished its bookkeeping (finalizer, annotations) on the object
        await asyncio.sleep(1.0)
        _, live = await api.request("GET", f"{CMS}/cm")
        assert "kopf.zalando.org/KopfFinalizerMarker" in live["metadata"]["finalizers"]

        status, _ = await api.request("PATCH", f"{CMS}/cm", body={"data": {"k": "2"}},
                                      content_type="application/merge-patch+json")
        assert status == 200
        took = await _until(lambda: calls["update"] == ["cm"], timeout=10)
        assert took < 2, took  # far below kopf's 5 s consistency timeout

        status, _ = await api.request("DELETE", f"{CMS}/cm")
        assert status == 200
        took = await _until(lambda: calls["delete"] == ["cm"], timeout=10)
        assert took < 2, took  # far below kopf's 5 s consistency timeout
        for _ in range(100):
            status, _ = await api.request("GET", f"{CMS}/cm")
            if status == 404:
                break
            await asyncio.sleep(0.05)
        assert status == 404  # finalizer removed by kopf -> object released
        await asyncio.sleep(1.0)
        assert calls == {"create": ["cm"], "update": ["cm"], "delete": ["cm"]}
    finally:
        stop.set()
        await asyncio.wait_for(operator, timeout=20)
