"""What every controller shares: the worker loop over its queue and conflict-safe updates.

A sync handler gets a key, re-reads the cache and converges; it may ask to be called again
after some seconds (time-based conditions such as minReadySeconds). Failures are retried with
back-off up to the queue's bound, then logged and dropped until the next change of that key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import errors, raw
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)

SyncFn = Callable[[ObjectKey], Awaitable[float | None]]
MAX_CONFLICT_ATTEMPTS = 5


async def caches_synced(*, informers: Sequence[Informer], stop: asyncio.Event) -> bool:
    """Wait until every informer has listed once (client-go's WaitForCacheSync); False if
    ``stop`` came first. A controller that acted on a partial cache would see a ReplicaSet
    without its pods and create them again."""
    async def all_synced() -> None:
        for inf in informers:
            await inf.synced.wait()

    async def stopped() -> None:
        await stop.wait()

    synced = asyncio.create_task(all_synced())
    stopper = asyncio.create_task(stopped())
    try:
        done, _ = await asyncio.wait({synced, stopper}, return_when=asyncio.FIRST_COMPLETED)
        return synced in done and not stop.is_set()
    finally:
        for task in (synced, stopper):
            task.cancel()
        await asyncio.gather(synced, stopper, return_exceptions=True)


async def work(*, queue: WorkQueue, sync: SyncFn, stop: asyncio.Event,
               informers: Sequence[Informer] = (), workers: int = 1) -> None:
    """Once ``informers`` have synced, drain ``queue`` with ``sync`` until ``stop``; one key
    at a time per worker, and never one key in two workers at once (single owner): a key
    taken while another worker syncs it is synced again after that one (client-go's
    workqueue "dirty while processing"). Keys queued meanwhile wait for the sync. Every
    controller passes the informers its sync reads (a worker over no cache, as in benchmarks,
    passes none); ``workers`` is kube-controller-manager's ``--concurrent-*-syncs``."""
    if not await caches_synced(informers=informers, stop=stop):
        return
    busy: set[ObjectKey] = set()
    again: set[ObjectKey] = set()
    if workers <= 1:
        await _worker(queue=queue, sync=sync, stop=stop, busy=busy, again=again)
        return
    tasks = [asyncio.create_task(_worker(queue=queue, sync=sync, stop=stop, busy=busy,
                                         again=again)) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _worker(*, queue: WorkQueue, sync: SyncFn, stop: asyncio.Event,
                  busy: set[ObjectKey], again: set[ObjectKey]) -> None:
    while not stop.is_set():
        key = await queue.get()
        if key in busy:
            again.add(key)  # its worker queues it once more when done
            continue
        busy.add(key)
        try:
            await _sync_one(queue=queue, sync=sync, key=key)
        finally:
            busy.discard(key)
            if key in again:
                again.discard(key)
                queue.add(key)


async def _sync_one(*, queue: WorkQueue, sync: SyncFn, key: ObjectKey) -> None:
    try:
        requeue = await sync(key)
    except errors.ControllerError as e:
        if not queue.retry(key):
            log.warning("%s: giving up on %s after repeated failures: %s", queue.name, key, e)
        else:
            log.debug("%s: %s failed (%s); retrying", queue.name, key, e)
    except Exception:  # a bug in one sync must not stop the controller
        log.exception("%s: sync of %s crashed", queue.name, key)
        if not queue.retry(key):
            log.warning("%s: giving up on %s", queue.name, key)
    else:
        queue.forget(key)
        if requeue is not None:
            queue.add_after(key, requeue)


async def update(
        *, client: api.ApiClient, resource: api.Resource, informer: Informer | None,
        current: RawObject, mutate: Callable[[RawObject], bool],
        subresource: str | None = None) -> RawObject | None:
    """PUT ``mutate(copy of current)``; on 409 re-read and retry (bounded).

    ``mutate`` edits the object in place and returns False when nothing needs to change.
    Returns the server's reply (also written into ``informer``), or ``None`` if no write was
    needed. ``errors.NotFound`` propagates: the object is gone.
    """
    obj = raw.copy_json(current)
    for attempt in range(MAX_CONFLICT_ATTEMPTS):
        if not mutate(obj):
            return None
        try:
            reply = await client.replace(resource, obj, subresource=subresource)
        except errors.Conflict:
            if attempt + 1 >= MAX_CONFLICT_ATTEMPTS:
                raise
            m = current.get("metadata") or {}
            obj = await client.get(resource, namespace=m.get("namespace"), name=str(m["name"]))
            obj.setdefault("kind", resource.kind)
            obj.setdefault("apiVersion", resource.group_version)
            if informer is not None:
                informer.upsert(raw.copy_json(obj))
            continue
        if informer is not None:
            informer.upsert(raw.copy_json(reply))
        return reply
    return None


def owner_reference(owner: RawObject, *, api_version: str, kind: str) -> dict[str, object]:
    m = owner.get("metadata") or {}
    return {"apiVersion": api_version, "kind": kind, "name": m.get("name"), "uid": m.get("uid"),
            "controller": True, "blockOwnerDeletion": True}


def adoption_patch(dependent: RawObject, owner: RawObject, *, adopt: bool,
                   kind: str, api_version: str = "apps/v1") -> dict[str, object]:
    """The merge patch that adopts ``dependent`` for ``owner`` (or releases it), guarded by the
    dependent's uid and resourceVersion, as kube-controller-manager's ControllerRefManager."""
    refs: list[object] = [dict(r) for r in raw.owner_refs(dependent)
                          if r.get("uid") != raw.uid_of(owner)]
    if adopt:
        refs.append(owner_reference(owner, api_version=api_version, kind=kind))
    m = dependent.get("metadata") or {}
    return {"metadata": {"ownerReferences": refs, "uid": m.get("uid"),
                         "resourceVersion": m.get("resourceVersion")}}
