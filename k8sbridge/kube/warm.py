"""The watch a standby replica keeps warm: Pods, Nodes and Services cached before it leads.

Why: a standby that starts its watch only once it wins the Lease begins its takeover with a
cold start (kopf's watchers, every object listed again, the pod list of the scheduler), so
takeover is the Lease *plus* that. ``WarmWatch`` runs the bridge's one read-only watch
(``kube.operator``) from the moment the process starts and keeps what it saw; it writes
nothing, so a standby may run it beside the leader. When the replica leads, the bridge
``attach``es its scheduler: the Nodes and Services are handed over from the cache as the
initial listing, the pods' first list is the cache (``pods``), and from then on every event
goes to the scheduler as well. When the replica stops leading the bridge ``detach``es and the
cache goes on.

``synced``: the cache holds every pod and no other. The watch gives no "initial listing
done" signal, so once kopf is ready one LIST of the pods is made and the cache is filled when
the watch has delivered (or deleted) every pod of that LIST; pods created after it arrive by
the watch like any other change. A watch that has to list again (its resourceVersion expired:
410 Gone, or an API server restarted without its history) lists every pod anew but reports no
deletion of the pods that vanished meanwhile, so an old cache could hold pods that are gone.
A listing event after the fill therefore marks the cache stale, and once the listing has been
quiet for ``SWEEP_DELAY`` seconds a LIST sweeps out every cached pod it lacks that no event
touched since it was sent. While not filled or stale a leader lists the pods itself, as
without a warm watch. (Nodes and Services are not swept: the scheduler keeps only their
labels, taints and variables, and its own watch has the same limit.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import operator as kube_operator

__all__ = ["Consumer", "WarmWatch"]

log = logging.getLogger(__name__)

LIST_RETRY_SECONDS = 2.0
SWEEP_DELAY = 5.0  # seconds without a listing event before a relisted cache is swept

RawObject = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Consumer:
    """Where the events go while the bridge leads (each callback as ``operator.WatchCallback``)."""

    on_pod: kube_operator.WatchCallback
    on_node: kube_operator.WatchCallback
    on_service: kube_operator.WatchCallback


def _key(raw: RawObject) -> str:
    meta = raw.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace') or ''}/{meta.get('name') or ''}")


class WarmWatch:
    """A read-only watch of Pods, Nodes and Services with a cache of each (a component:
    ``run(stop=, ready=)``; ready once kopf's watchers run)."""

    def __init__(self, *, connection: kube_client.Connection,
                 list_pods: Callable[[], Awaitable[list[RawObject]]],
                 keep_pod: Callable[[RawObject], RawObject] = lambda raw: raw) -> None:
        """``keep_pod``: what of a pod the cache keeps (the scheduler's compact form)."""
        self._connection = connection
        self._list_pods = list_pods
        self._keep_pod = keep_pod
        self._pods: dict[str, RawObject] = {}
        self._nodes: dict[str, RawObject] = {}
        self._services: dict[str, RawObject] = {}
        self._consumer: Consumer | None = None
        self._awaited: set[str] | None = None  # the LIST's pods the watch has not delivered yet
        self._gone: set[str] = set()  # pods deleted before the LIST was in (until filled)
        self._filled = asyncio.Event()
        self._seq = 0  # pod events seen
        self._touched: dict[str, int] = {}  # cached pod -> the number of its last event
        self._relisted_at: int | None = None  # the last listing event after the fill: stale
        self._relisted_when = 0.0  # its loop time
        self._sweep_wanted = asyncio.Event()
        self.ended = asyncio.Event()  # set when ``run`` returned or raised

    # -- what a standby shows (metrics, logs) ------------------------------------------------

    @property
    def synced(self) -> bool:
        """The cache holds every pod the API server lists, and no other."""
        return self._filled.is_set() and self._relisted_at is None

    def counts(self) -> Mapping[str, int]:
        return {"pods": len(self._pods), "nodes": len(self._nodes),
                "services": len(self._services)}

    # -- the bridge while it leads -----------------------------------------------------------

    def attach(self, consumer: Consumer) -> None:
        """Send every later event to ``consumer``; the cached Nodes and Services go first, as
        an initial listing (event type None). The pods are not replayed: the scheduler's
        first list is ``pods()``."""
        self._consumer = consumer
        for raw in list(self._nodes.values()):
            consumer.on_node(None, raw)
        for raw in list(self._services.values()):
            consumer.on_service(None, raw)

    def detach(self) -> None:
        self._consumer = None

    async def pods(self) -> list[RawObject]:
        """The pods, as a LIST would give them: the cache once synced, else a LIST."""
        if self.synced:
            log.info("the pod list comes from the warm watch (%d pods)", len(self._pods))
            return list(self._pods.values())
        log.info("the watch cache is %s: listing the pods",
                 "stale (the watch listed again)" if self._filled.is_set() else "not filled")
        return await self._list_pods()

    # -- the watch ---------------------------------------------------------------------------

    def _on_pod(self, etype: str | None, raw: RawObject) -> None:
        key = _key(raw)
        self._seq += 1
        if etype == "DELETED":
            self._pods.pop(key, None)
            self._touched.pop(key, None)
            if not self._filled.is_set():
                self._gone.add(key)
        else:
            self._pods[key] = self._keep_pod(raw)
            self._touched[key] = self._seq
        if etype is None and self._filled.is_set():
            self._relisted_at = self._seq
            self._relisted_when = asyncio.get_running_loop().time()
            self._sweep_wanted.set()
        if self._awaited is not None:
            self._awaited.discard(key)
            self._check_synced()
        if self._consumer is not None:
            self._consumer.on_pod(etype, raw)

    def _on_node(self, etype: str | None, raw: RawObject) -> None:
        self._keep(self._nodes, etype, raw)
        if self._consumer is not None:
            self._consumer.on_node(etype, raw)

    def _on_service(self, etype: str | None, raw: RawObject) -> None:
        self._keep(self._services, etype, raw)
        if self._consumer is not None:
            self._consumer.on_service(etype, raw)

    @staticmethod
    def _keep(cache: dict[str, RawObject], etype: str | None, raw: RawObject) -> None:
        if etype == "DELETED":
            cache.pop(_key(raw), None)
        else:
            cache[_key(raw)] = raw

    def _check_synced(self) -> None:
        if self._awaited is not None and not self._awaited and not self._filled.is_set():
            self._filled.set()
            self._gone.clear()
            counts = self.counts()
            log.info("watch cache filled: %d pods, %d nodes, %d services", counts["pods"],
                     counts["nodes"], counts["services"])

    async def _sync(self, watching: asyncio.Event, ready: asyncio.Event) -> None:
        await watching.wait()
        ready.set()
        while True:
            try:
                listed = await self._list_pods()
                break
            except Exception as e:  # the API server may be away: the watch retries too
                log.warning("listing pods for the watch cache failed (retrying): %s", e)
                await asyncio.sleep(LIST_RETRY_SECONDS)
        self._awaited = {_key(raw) for raw in listed} - self._pods.keys() - self._gone
        self._check_synced()

    async def _sweeper(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._sweep_wanted.wait()
            while (quiet := loop.time() - self._relisted_when) < SWEEP_DELAY:
                await asyncio.sleep(SWEEP_DELAY - quiet)
            self._sweep_wanted.clear()
            try:
                await self._sweep()
            except Exception as e:  # the API server may be away: try again later
                log.warning("sweeping the watch cache failed (retrying): %s", e)
                self._sweep_wanted.set()
                await asyncio.sleep(LIST_RETRY_SECONDS)

    async def _sweep(self) -> None:
        """Drop the cached pods a fresh LIST lacks and no event touched since it was sent."""
        sent = self._seq
        listed = {_key(raw) for raw in await self._list_pods()}
        gone = [key for key in self._pods
                if key not in listed and self._touched.get(key, 0) <= sent]
        for key in gone:
            del self._pods[key]
            self._touched.pop(key, None)
        if self._relisted_at is not None and self._relisted_at <= sent:
            self._relisted_at = None
        log.info("watch cache swept after the watch listed again: %d pods were gone, %s",
                 len(gone), "synced" if self.synced else "still stale")

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        watching = asyncio.Event()
        helpers = [asyncio.create_task(self._sync(watching, ready), name="watch-cache-sync"),
                   asyncio.create_task(self._sweeper(), name="watch-cache-sweep")]
        try:
            await kube_operator.run(
                connection=self._connection, on_pod=self._on_pod, on_node=self._on_node,
                on_service=self._on_service, stop=stop, ready=watching)
        finally:
            self.ended.set()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
