"""The keyed work queue: level-triggered de-duplication, delayed adds, bounded back-off."""

from __future__ import annotations

import asyncio

from k8sbridge.devkube.controllers import base, errors
from k8sbridge.devkube.controllers.raw import ObjectKey
from k8sbridge.devkube.controllers.workqueue import WorkQueue

A, B = ObjectKey("ns/a"), ObjectKey("ns/b")


async def test_keys_queued_twice_are_handled_once_in_order() -> None:
    q = WorkQueue(name="t")
    for key in (A, B, A, A):
        q.add(key)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == [A, B]
    q.add(A)  # re-added after it was taken: handled again
    assert await q.get() == A


async def test_add_after_keeps_the_earliest_timer() -> None:
    q = WorkQueue(name="t")
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after(A, 0.3)
    q.add_after(A, 0.05)
    q.add_after(A, 0.5)
    assert await asyncio.wait_for(q.get(), 2) == A
    assert loop.time() - start < 0.25
    q.close()


async def test_retries_back_off_and_are_bounded() -> None:
    q = WorkQueue(name="t", max_retries=3, base_delay=0.01)
    assert [q.retry(A) for _ in range(4)] == [True, True, True, False]
    assert q.failures(A) == 0  # given up: the count starts over on the next change
    q.close()


async def test_worker_retries_failures_then_forgets_successes() -> None:
    q = WorkQueue(name="t", max_retries=5, base_delay=0.01)
    calls: list[ObjectKey] = []
    done = asyncio.Event()

    async def sync(key: ObjectKey) -> float | None:
        calls.append(key)
        if key == A and calls.count(A) < 3:
            raise errors.Conflict(status=409, reason="Conflict", message="stale")
        if key == B and calls.count(B) == 1:
            raise RuntimeError("a bug")  # logged, retried, never kills the worker
        if calls.count(A) >= 3 and calls.count(B) >= 2:
            done.set()
        return None

    stop = asyncio.Event()
    worker = asyncio.create_task(base.work(queue=q, sync=sync, stop=stop, informers=[]))
    q.add(A)
    q.add(B)
    await asyncio.wait_for(done.wait(), 5)
    assert q.failures(A) == 0 and q.failures(B) == 0
    stop.set()
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    q.close()
