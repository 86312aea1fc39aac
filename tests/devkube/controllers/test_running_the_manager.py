"""The manager's contract: ready once caches sync, prompt stop, survives an absent server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from k8sbridge.devkube import main
from k8sbridge.devkube.controllers import manager
from tests.conftest import free_port


async def test_ready_after_sync_and_prompt_stop(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, controllers=False, kubeconfig=tmp_path / "kubeconfig")
    async with main.running(config) as kube:
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(manager.run(url=kube.url, token=kube.token,
                                               ca_file=kube.ca_file, node_grace_seconds=50,
                                               stop=stop, ready=ready))
        await asyncio.wait_for(ready.wait(), 10)
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_unreachable_server_never_ready_but_stops(caplog: pytest.LogCaptureFixture,
                                                        ) -> None:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(manager.run(url=f"http://127.0.0.1:{free_port()}", token=None,
                                           ca_file=None, node_grace_seconds=50, stop=stop,
                                           ready=ready))
    await asyncio.sleep(0.5)
    assert not ready.is_set() and not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert any("list/watch failed" in r.getMessage() for r in caplog.records)


async def test_bad_grace_is_rejected() -> None:
    with pytest.raises(ValueError, match="node_grace_seconds"):
        await manager.run(url="http://127.0.0.1:1", token=None, ca_file=None,
                          node_grace_seconds=0, stop=asyncio.Event(), ready=asyncio.Event())


async def test_wrong_token_keeps_retrying_without_crashing(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, controllers=False, kubeconfig=tmp_path / "kubeconfig")
    async with main.running(config) as kube:
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(manager.run(url=kube.url, token="wrong",
                                               ca_file=kube.ca_file, node_grace_seconds=50,
                                               stop=stop, ready=ready))
        await asyncio.sleep(0.5)
        assert not ready.is_set() and not task.done()
        stop.set()
        await asyncio.wait_for(task, 5)
