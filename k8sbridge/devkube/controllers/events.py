"""Kubernetes Events from the controllers (what ``kubectl describe`` shows under Events).

Recording never blocks or fails a sync: events go into a bounded queue drained by the
recorder's own task, and a failed POST is logged and dropped, like client-go's broadcaster.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import errors
from k8sbridge.devkube.controllers.raw import RawObject

log = logging.getLogger(__name__)

EVENTS = api.Resource(group_version="v1", plural="events", kind="Event")
MAX_PENDING = 1000


class EventRecorder:
    def __init__(self, *, client: api.ApiClient, component: str) -> None:
        self.client = client
        self.component = component
        self._queue: asyncio.Queue[RawObject] = asyncio.Queue(maxsize=MAX_PENDING)
        self.dropped = 0

    def record(self, obj: RawObject, *, reason: str, message: str,
               type_: str = "Normal") -> None:
        m = obj.get("metadata") or {}
        now = datetime.datetime.now(datetime.UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = m.get("namespace") or "default"
        event: RawObject = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{m.get('name')}.{secrets.token_hex(8)}",
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
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self, *, stop: asyncio.Event) -> None:
        while not stop.is_set():
            event = await self._queue.get()
            try:
                await self.client.create(EVENTS, event,
                                         namespace=event["metadata"]["namespace"])
            except errors.ControllerError as e:
                log.info("could not record event %s: %s", event["reason"], e)
