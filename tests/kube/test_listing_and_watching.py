"""``listwatch.run`` against devkube: the list fills the store whole, watch events follow each
change, and a new list after the watch was down replaces the store (an object deleted
meanwhile is gone from it, which kopf's event relay could not say)."""

from __future__ import annotations

import asyncio
from typing import Any

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import listwatch

SERVICES = "/api/v1/namespaces/default/services"


def _service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}]}}


class Store:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.lists = 0

    def replace(self, items: list[dict[str, Any]]) -> None:
        self.items = {i["metadata"]["name"]: i for i in items}
        self.lists += 1

    def update(self, kind: str, raw: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.items.pop(raw["metadata"]["name"], None)
        else:
            self.items[raw["metadata"]["name"]] = raw


async def _until(check: Any) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_the_store_follows_the_list_and_the_watch(kube: kube_client.KubeClient) -> None:
    await kube.create(SERVICES, _service("one"))
    store, stop = Store(), asyncio.Event()
    task = asyncio.create_task(listwatch.run(kube, "/api/v1/services", replace=store.replace,
                                             update=store.update, stop=stop))
    try:
        await _until(lambda: "one" in store.items)
        await kube.create(SERVICES, _service("two"))
        await _until(lambda: "two" in store.items)
        await kube.delete(f"{SERVICES}/one")
        await _until(lambda: "one" not in store.items)
        assert set(store.items) - {"kubernetes"} == {"two"} and store.lists == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await kube.delete(f"{SERVICES}/two")  # while nobody watches
    again = asyncio.create_task(listwatch.run(kube, "/api/v1/services", replace=store.replace,
                                              update=store.update, stop=stop))
    try:
        await _until(lambda: store.lists == 2)
        assert "two" not in store.items
    finally:
        stop.set()
        again.cancel()
        await asyncio.gather(again, return_exceptions=True)
