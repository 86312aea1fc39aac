"""Offers shaped by demand against the embedded kernel (its allocator honours offer_constraints
and min_allocatable_resources as Mesos does): a pod whose nodeSelector no agent matches stops
the offers altogether once the shape is sent, where without shaping they keep coming and are
declined; a pod that fits an agent still gets that agent's offers and runs."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from k8sbridge import app
from tests.integration.conftest import eventually, fast_settings
from tests.integration.test_exporting_metrics import _scrape, _value

WINDOW = 5.0  # seconds of watching offers arrive (refuse_seconds is 2 in these settings)


@pytest.fixture(params=[True, False], ids=["shaped", "unshaped"])
async def cluster(request: pytest.FixtureRequest,
                  tmp_path: Path) -> AsyncIterator[app.EmbeddedTargets]:
    base = fast_settings(tmp_path / "run")
    settings = dataclasses.replace(base, scheduler=dataclasses.replace(
        base.scheduler, shape_offers=request.param))
    async with app.running_embedded(settings) as targets:
        yield targets


async def _offers_in_window(targets: app.EmbeddedTargets) -> float:
    before = _value(await _scrape(targets), "k8sbridge_offers_total", outcome="received")
    await asyncio.sleep(WINDOW)
    return _value(await _scrape(targets), "k8sbridge_offers_total", outcome="received") - before


async def test_a_pod_no_agent_can_take_stops_the_offers_only_when_shaped(
    cluster: app.EmbeddedTargets,
) -> None:
    kube = cluster.bridge.kube
    shaped = cluster.bridge.settings.scheduler.shape_offers
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rack-r9"},
        "spec": {"nodeSelector": {"rack": "r9"}, "containers": [
            {"name": "c", "image": "busybox", "command": ["sleep", "300"]}]}})

    async def explained() -> bool:
        pod = await kube.get_pod("default", "rack-r9")
        return any(c.get("reason") == "Unschedulable"
                   for c in (pod.get("status") or {}).get("conditions") or [])

    await eventually(explained, what="the pod explained as unschedulable")
    scheduler = cluster.bridge.scheduler
    if shaped:
        await eventually(lambda: _async(scheduler.shape_updates >= 1), what="the shape sent")
        await asyncio.sleep(0.5)  # offers already on their way
        assert await _offers_in_window(cluster) == 0
    else:
        assert scheduler.shape_updates == 0
        assert await _offers_in_window(cluster) > 0  # offered, declined, offered again

    # a pod for rack r1 (the agents' own attribute) is offered r1 and runs either way
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rack-r1"},
        "spec": {"nodeSelector": {"rack": "r1"}, "containers": [
            {"name": "c", "image": "busybox", "command": ["sleep", "300"]}]}})

    async def running() -> bool:
        pod = await kube.get_pod("default", "rack-r1")
        return (pod.get("status") or {}).get("phase") == "Running"

    await eventually(running, what="the rack r1 pod Running", timeout=60)


async def _async(value: bool) -> bool:
    return value
