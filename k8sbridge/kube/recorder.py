"""The bridge's event recorder: which API an event goes to, and the writes.

Why two APIs: the bridge is a scheduler and a kubelet, and on a real cluster those record
events differently. A kubelet uses client-go's legacy recorder (``tools/record``): core/v1
Events, a repeat a PATCH of ``count`` and ``lastTimestamp`` (``kube.events``). kube-scheduler
uses the new one (``tools/events`` through ``NewEventBroadcasterAdapter``): if discovery shows
events.k8s.io/v1, its events go there, with an ``action``, a reporting controller and
instance (``<controller>-<hostname>``) and repeats as a ``series`` (``kube.eventseries``); if
not, to core/v1 as a kubelet's. The bridge does the same: an event posted with an ``action``
(the scheduler's: ``Scheduling``, ``Binding``) goes to events.k8s.io/v1 when the server serves
it, every other one (and every one on a server without it) to core/v1. Both APIs show one
stored object: ``kubectl get events`` / ``describe`` read a series' count from ``series``.

The writes to one event go out in order, one at a time (a per-key lock); the series' final and
refreshed counts are written by a task started with the first series event and ended by
``close``. Failures are logged only: an event is never worth failing the caller for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from k8sbridge.kube import errors, events, eventseries

__all__ = ["EVENTS_V1", "Recorder"]

log = logging.getLogger(__name__)

RawObject = dict[str, Any]
Request = Callable[..., Awaitable[Any]]  # KubeClient.request

EVENTS_V1 = "/apis/events.k8s.io/v1"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
BACKGROUND = 2  # client.BACKGROUND: events are best-effort


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def events_v1_body(core: RawObject, *, action: str, when: float,
                   instance: str) -> RawObject:
    """The events.k8s.io/v1 Event client-go's new recorder makes (``makeEvent``) for the
    core/v1 event the bridge would otherwise post."""
    involved = {k: v for k, v in (core.get("involvedObject") or {}).items() if v is not None}
    return {
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": dict(core["metadata"]),
        "eventTime": eventseries.micro_time(when),
        "reportingController": core.get("reportingComponent"),
        "reportingInstance": instance,
        "action": action, "reason": core.get("reason"), "regarding": involved,
        "note": str(core.get("message") or "").encode()[:eventseries.NOTE_BYTES].decode(
            errors="ignore"), "type": core.get("type"),
    }


class Recorder:
    """One per API client: the correlation caches, the per-event write order and the choice
    of API (discovery, asked once)."""

    def __init__(self, *, request: Request, hostname: str | None = None) -> None:
        self._request = request
        self._hostname = hostname or socket.gethostname()
        self.correlator = events.EventCorrelator()
        self.series = eventseries.SeriesCache()
        self._writes: dict[str, tuple[asyncio.Lock, int]] = {}
        self._events_v1: bool | None = None  # served? None: not known yet
        self._sweeper: asyncio.Task[None] | None = None

    async def record(self, core: RawObject, *, action: str | None, when: float,
                     priority: int) -> None:
        """Record ``core`` (a new core/v1 Event, count 1) that happened at ``when``."""
        namespace = str(core["metadata"]["namespace"])
        if action and await self._serves_events_v1():
            body = events_v1_body(core, action=action, when=when, instance=(
                f"{core.get('reportingComponent')}-{self._hostname}"))
            series_write = self.series.record(body, now=when)
            self._start_sweeper()
            if series_write is not None:
                await self._in_order(series_write.key, self._write_v1(
                    namespace, series_write, priority=priority))
            return
        write = self.correlator.correlate(core, now=when)
        if write is None:
            log.debug("event %s for %s dropped by the spam filter", core.get("reason"),
                      core["involvedObject"].get("name"))
            return
        await self._in_order(write.key, self._write_core(namespace, write, priority=priority))

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _serves_events_v1(self) -> bool:
        """``NewEventBroadcasterAdapter``: events.k8s.io/v1 if discovery lists it."""
        if self._events_v1 is None:
            try:
                await self._request("GET", EVENTS_V1, priority=BACKGROUND)
                self._events_v1 = True
            except errors.NotFound:
                self._events_v1 = False
                log.info("the API server does not serve events.k8s.io/v1: core/v1 events only")
            except errors.KubeError as e:
                log.warning("could not discover events.k8s.io/v1 (core/v1 for now): %s", e)
                return False
        return self._events_v1

    async def _in_order(self, key: str, write: Awaitable[None]) -> None:
        lock, users = self._writes.get(key) or (asyncio.Lock(), 0)
        self._writes[key] = (lock, users + 1)
        try:
            async with lock:
                await write
        except errors.KubeError as e:
            log.warning("could not write an event: %s", e)
        finally:
            lock, users = self._writes[key]
            if users <= 1:
                del self._writes[key]
            else:
                self._writes[key] = (lock, users - 1)

    async def _write_core(self, namespace: str, write: events.Correlated, *,
                          priority: int) -> None:
        await self._write(f"/api/v1/namespaces/{_q(namespace)}/events", write.event,
                          write.patch, priority=priority)

    async def _write_v1(self, namespace: str, write: eventseries.SeriesWrite, *,
                        priority: int) -> None:
        """``recordEvent``: a series is a PATCH of its series, an isolated event a create."""
        await self._write(f"{EVENTS_V1}/namespaces/{_q(namespace)}/events", write.event,
                          write.patch, priority=priority)

    async def _write(self, path: str, event: dict[str, Any], patch: dict[str, Any] | None, *,
                     priority: int) -> None:
        """A PATCH of ``event`` when there is one, else (or should the event be gone: deleted
        meanwhile, or its create failed) a create, as client-go does."""
        if patch is not None:
            name = str(event["metadata"]["name"])
            try:
                await self._request("PATCH", f"{path}/{_q(name)}", body=patch,
                                    content_type=STRATEGIC_PATCH, priority=priority,
                                    decode=False)
                return
            except errors.NotFound:
                pass
        await self._request("POST", path, body=event, priority=priority, decode=False)

    def _start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="event-series")

    async def _sweep(self) -> None:
        """``finishSeries`` every ``FINISH_SECONDS``, ``refreshExistingEventSeries`` every
        ``REFRESH_SECONDS``."""
        refreshed = time.monotonic()
        while True:
            await asyncio.sleep(eventseries.FINISH_SECONDS)
            writes = self.series.finish(now=time.time())
            if time.monotonic() - refreshed >= eventseries.REFRESH_SECONDS:
                refreshed = time.monotonic()
                writes += self.series.refresh()
            await self.flush(writes)

    async def flush(self, writes: list[eventseries.SeriesWrite], *,
                    priority: int = BACKGROUND) -> None:
        """Write the series' counts the cache hands out (``finish``, ``refresh``)."""
        for write in writes:
            namespace = str(write.event["metadata"]["namespace"])
            await self._in_order(write.key, self._write_v1(namespace, write, priority=priority))
