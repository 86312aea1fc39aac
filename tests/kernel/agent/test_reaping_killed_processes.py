"""A killed child is waited for to the end even when its waiter is cancelled twice (agent
shutdown stops probes and then cancels every background task): its exit has been processed
when the waiter ends, so no subprocess transport outlives the event loop."""

from __future__ import annotations

import asyncio

import pytest

from k8sbridge.kernel.agent import reaping


async def test_a_twice_cancelled_wait_still_sees_the_exit() -> None:
    proc = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
    proc.kill()
    waiting = asyncio.ensure_future(reaping.wait_killed(proc))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert proc.returncode == -9


async def test_an_uncancelled_wait_returns_the_exit_code() -> None:
    proc = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
    proc.kill()
    assert await reaping.wait_killed(proc) == -9
