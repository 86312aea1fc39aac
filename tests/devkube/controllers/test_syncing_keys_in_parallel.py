"""Several workers over one queue (``--concurrent-*-syncs``): different keys sync at the same
time, one key never in two workers at once, and a key changed while it syncs syncs again."""

from __future__ import annotations

import asyncio

from k8sbridge.devkube.controllers import base
from k8sbridge.devkube.controllers.raw import ObjectKey
from k8sbridge.devkube.controllers.workqueue import WorkQueue

A, B, C = ObjectKey("ns/a"), ObjectKey("ns/b"), ObjectKey("ns/c")


async def test_keys_sync_in_parallel_but_one_key_only_once_at_a_time() -> None:
    q = WorkQueue(name="t")
    running: set[ObjectKey] = set()
    overlap: list[ObjectKey] = []
    most = 0
    calls: list[ObjectKey] = []
    release = asyncio.Event()

    async def sync(key: ObjectKey) -> float | None:
        nonlocal most
        if key in running:
            overlap.append(key)
        running.add(key)
        most = max(most, len(running))
        calls.append(key)
        await release.wait()
        running.discard(key)
        return None

    stop = asyncio.Event()
    worker = asyncio.create_task(base.work(queue=q, sync=sync, stop=stop, workers=4))
    for key in (A, B, C):
        q.add(key)
    while len(calls) < 3:
        await asyncio.sleep(0.01)
    assert most == 3  # three keys at once
    q.add(A)  # A changed while it syncs: a free worker takes it, but must not sync it now
    await asyncio.sleep(0.05)
    assert calls.count(A) == 1
    release.set()
    while calls.count(A) < 2:
        await asyncio.sleep(0.01)
    assert not overlap
    stop.set()
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    q.close()
