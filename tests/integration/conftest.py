"""The embedded default (kernel with 3 agents + devkube + bridge) for integration tests."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from k8sbridge import app
from k8sbridge import settings as bridge_settings


def fast_settings(data_dir: Path) -> bridge_settings.BridgeSettings:
    base = bridge_settings.load(env={})
    return dataclasses.replace(
        base,
        mesos=dataclasses.replace(
            base.mesos, agent_poll_seconds=0.5, revive_min_interval_seconds=0.2,
            refuse_seconds=2.0,
        ),
        # pod_network "": these tests' agents have no CNI network (``k8sbridge run``'s cluster
        # network is tested in test_giving_pods_their_own_network)
        scheduler=dataclasses.replace(base.scheduler, cycle_seconds=0.05, seed=1,
                                      pod_network=""),
        kubelet=dataclasses.replace(base.kubelet, host="127.0.0.1", port=0),
        embedded=dataclasses.replace(
            base.embedded, data_dir=data_dir, kernel_port=0, api_port=0, agents=3
        ),
    )


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[app.EmbeddedTargets]:
    async with app.running_embedded(fast_settings(tmp_path / "run")) as targets:
        yield targets


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, what: str = "condition"
) -> Any:
    """Poll ``probe`` until it returns a truthy value (bounded in time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")
