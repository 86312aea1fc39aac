"""A standby's warm watch (``kube.warm``) against a real devkube: the cache fills, follows
changes, hands its Nodes and Services and later events to a bridge that attaches, serves the
first pod list without a LIST, and sweeps out pods a relisting watch cannot report as gone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from k8sbridge import app
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import warm

PODS = "/api/v1/namespaces/default/pods"
NODES = "/api/v1/nodes"


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"]}]},
    }


async def _until(probe: Callable[[], bool], what: str, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not probe():
            await asyncio.sleep(0.05)


class _Lists:
    """The real LIST, counted (the cache must spare it)."""

    def __init__(self, kube: kube_client.KubeClient) -> None:
        self.kube = kube
        self.calls = 0

    async def __call__(self) -> list[dict[str, Any]]:
        self.calls += 1
        return await self.kube.list_pods()


async def _running(watch: warm.WarmWatch) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(watch.run(stop=stop, ready=ready))
    async with asyncio.timeout(30):
        await ready.wait()
    app.restore_signal_handlers()  # kopf took SIGINT/SIGTERM of this (main) thread
    return stop, task


async def _stopped(stop: asyncio.Event, task: Awaitable[None]) -> None:
    stop.set()
    async with asyncio.timeout(30):
        await task


async def test_the_cache_fills_follows_and_feeds_a_bridge_that_attaches(
    kube: kube_client.KubeClient,
) -> None:
    for name in ("a", "b"):
        await kube.create(PODS, _pod(name))
    await kube.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    lists = _Lists(kube)
    watch = warm.WarmWatch(connection=kube.connection(), list_pods=lists)
    stop, task = await _running(watch)
    try:
        await _until(lambda: watch.synced and watch.counts()["nodes"] == 1, "filled")
        assert watch.counts()["pods"] == 2
        await kube.create(PODS, _pod("c"))
        await kube.delete(f"{PODS}/a")
        await _until(lambda: watch.counts()["pods"] == 2 and "c" in _names(watch), "c, not a")
        assert lists.calls == 1  # the fill's one LIST

        pods: list[tuple[str | None, str]] = []
        nodes: list[tuple[str | None, str]] = []
        watch.attach(warm.Consumer(
            on_pod=lambda e, raw: pods.append((e, raw["metadata"]["name"])),
            on_node=lambda e, raw: nodes.append((e, raw["metadata"]["name"])),
            on_service=lambda e, raw: None))
        assert nodes == [(None, "n1")]  # the cached Nodes, as an initial listing
        listed = await watch.pods()
        assert sorted(p["metadata"]["name"] for p in listed) == ["b", "c"]
        assert lists.calls == 1  # from the cache
        await kube.create(PODS, _pod("d"))
        await _until(lambda: ("ADDED", "d") in pods, "d reached the bridge")
        watch.detach()
        await kube.create(PODS, _pod("e"))
        await _until(lambda: "e" in _names(watch), "e cached")
        assert ("ADDED", "e") not in pods
    finally:
        await _stopped(stop, task)
    assert watch.ended.is_set()  # what a leader attached to it waits on besides its stop


async def test_a_relisting_watch_makes_the_cache_stale_until_a_sweep(
    kube: kube_client.KubeClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(warm, "SWEEP_DELAY", 0.3)
    await kube.create(PODS, _pod("kept"))
    lists = _Lists(kube)
    watch = warm.WarmWatch(connection=kube.connection(), list_pods=lists)
    stop, task = await _running(watch)
    try:
        await _until(lambda: watch.synced, "filled")
        # What kopf delivers when its resourceVersion expired (410 Gone): every pod again as a
        # listing event (type None), and nothing about a pod deleted meanwhile, here "ghost".
        ghost = _pod("ghost")
        ghost["metadata"]["uid"] = "ghost-uid"
        kept = next(p for p in await kube.list_pods() if p["metadata"]["name"] == "kept")
        watch._on_pod(None, ghost)
        watch._on_pod(None, kept)
        assert not watch.synced
        calls = lists.calls
        assert sorted(p["metadata"]["name"] for p in await watch.pods()) == ["kept"]
        assert lists.calls == calls + 1  # stale: a LIST, not the cache
        await _until(lambda: watch.synced, "swept")
        assert _names(watch) == {"kept"}
    finally:
        await _stopped(stop, task)


def _names(watch: warm.WarmWatch) -> set[str]:
    return {p["metadata"]["name"] for p in watch._pods.values()}
