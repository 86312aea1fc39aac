"""Kubernetes Events from the controllers (what ``kubectl describe`` shows under Events).

Recording never blocks or fails a sync: events go into a bounded queue drained by the
recorder's own task, and a failed write is logged and dropped, like client-go's broadcaster.
That task correlates them as client-go does (``eventcorrelation``): a repeat is a PATCH of the
first Event (count + 1), similar ones are combined, a flood about one object is cut off.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import errors, eventcorrelation
from k8sbridge.devkube.controllers.raw import RawObject

log = logging.getLogger(__name__)

EVENTS = api.Resource(group_version="v1", plural="events", kind="Event")
MAX_PENDING = 1000


class EventRecorder:
    def __init__(self, *, client: api.ApiClient, component: str) -> None:
        self.client = client
        self.component = component
        self._queue: asyncio.Queue[tuple[RawObject, float]] = asyncio.Queue(
            maxsize=MAX_PENDING)
        self.dropped = 0
        self.correlator = eventcorrelation.EventCorrelator()
        self._last_ns = 0  # event names (<object>.<hex ns>) never repeat, even within a tick

    def record(self, obj: RawObject, *, reason: str, message: str,
               type_: str = "Normal") -> None:
        m = obj.get("metadata") or {}
        ns = max(time.time_ns(), self._last_ns + 1)
        self._last_ns = ns
        when = ns / 1e9
        stamp = datetime.datetime.fromtimestamp(when, datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        namespace = m.get("namespace") or "default"
        event: RawObject = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{m.get('name')}.{ns:x}",
                         "namespace": namespace},
            "involvedObject": {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"),
                               "namespace": m.get("namespace"), "name": m.get("name"),
                               "uid": m.get("uid"),
                               "resourceVersion": m.get("resourceVersion")},
            "reason": reason, "message": message[:1024], "type": type_,
            "source": {"component": self.component}, "reportingComponent": self.component,
            "reportingInstance": self.component,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        try:
            self._queue.put_nowait((event, when))
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self, *, stop: asyncio.Event) -> None:
        while not stop.is_set():
            event, when = await self._queue.get()
            write = self.correlator.correlate(event, now=when)
            if write is None:
                continue  # the spam filter's: as client-go, not even logged
            try:
                await self._write(write)
            except errors.ControllerError as e:
                log.info("could not record event %s: %s", event["reason"], e)

    async def _write(self, write: eventcorrelation.Correlated) -> None:
        namespace = write.event["metadata"]["namespace"]
        if write.patch is not None:
            try:
                await self.client.patch(EVENTS, namespace=namespace,
                                        name=write.event["metadata"]["name"],
                                        body=write.patch, content_type=api.STRATEGIC_PATCH)
                return
            except errors.NotFound:
                pass  # deleted meanwhile: create it again, as client-go does
        await self.client.create(EVENTS, write.event, namespace=namespace)
