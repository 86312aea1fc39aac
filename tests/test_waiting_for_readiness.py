"""aio.wait_ready: a component is ready, failed to start (its task ended), or timed out."""

from __future__ import annotations

import asyncio

import pytest

from k8sbridge import aio


class Failed(Exception):
    pass


async def test_ready_returns_and_the_component_keeps_running() -> None:
    ready = asyncio.Event()

    async def run() -> None:
        ready.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(run())
    await aio.wait_ready(ready, task, what="part", timeout=5)
    assert not task.done()
    task.cancel()


async def test_a_component_that_ends_first_is_named_with_its_error() -> None:
    async def run() -> None:
        raise OSError("port taken")

    task = asyncio.create_task(run())
    with pytest.raises(Failed, match=r"part failed to start: OSError\('port taken'\)") as info:
        await aio.wait_ready(asyncio.Event(), task, what="part", timeout=5, error=Failed)
    assert isinstance(info.value.__cause__, OSError)


async def test_a_component_that_never_says_ready_times_out() -> None:
    task = asyncio.create_task(asyncio.sleep(10))
    with pytest.raises(RuntimeError, match="part did not become ready within 0.1s"):
        await aio.wait_ready(asyncio.Event(), task, what="part", timeout=0.1)
    task.cancel()
