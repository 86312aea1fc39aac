"""One watch stream: selector-boundary filtering, bounded buffering and wire encoding.

Why: the store fans every change out to every watcher synchronously (so no change can slip
between a LIST snapshot and a WATCH), but a client that stops reading must not make the server
buffer forever: each watcher owns a bounded queue and is dropped (its stream closed, as the real
apiserver does) once the queue overflows. The HTTP writer task drains the queue at its own pace.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
from collections.abc import Callable, Iterable
from typing import Any, Literal

from k8sbridge.devkube import selectors

EventType = Literal["ADDED", "MODIFIED", "DELETED"]

MAX_QUEUED_EVENTS = 10_000
MAX_QUEUED_BYTES = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One committed change of one stored object (``obj`` carries the change's RV)."""

    rv: int
    store_key: str
    type: EventType
    obj: dict[str, Any]
    data: bytes
    old: dict[str, Any] | None


# Maps a stored object (and its cached JSON) to the JSON bytes a watcher sends as "object".
Encoder = Callable[[dict[str, Any], bytes], bytes]


def identity(obj: dict[str, Any], data: bytes) -> bytes:
    return data


_ENCODER = json.JSONEncoder(separators=(",", ":"))


def encode_json(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode()


def line(event_type: str, data: bytes) -> bytes:
    return b'{"type":"' + event_type.encode() + b'","object":' + data + b"}\n"


class Watcher:
    """The server side of one watch request (registered with the store while open)."""

    def __init__(
        self,
        *,
        store_key: str,
        namespace: str | None,
        labels: selectors.LabelSelector,
        fields: selectors.FieldSelector,
        encoder: Encoder = identity,
        max_events: int = MAX_QUEUED_EVENTS,
        max_bytes: int = MAX_QUEUED_BYTES,
    ) -> None:
        self.store_key = store_key
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.encoder = encoder
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.initial: Iterable[bytes] = ()
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued_bytes = 0
        self.dropped = False
        self.wakeup = asyncio.Event()
        self.on_drop: Callable[[], None] | None = None  # e.g. abort the connection

    def matches(self, obj: dict[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if not self.labels.empty and not self.labels.matches(meta.get("labels")):
            return False
        return self.fields.empty or self.fields.matches(obj)

    def render(self, change: Change) -> bytes | None:
        """The wire line for ``change`` as this watcher sees it, or None if it is filtered out."""
        new_match = self.matches(change.obj)
        if change.type != "MODIFIED":
            return line(change.type, self.encoder(change.obj, change.data)) if new_match else None
        old_match = change.old is not None and self.matches(change.old)
        if new_match and old_match:
            return line("MODIFIED", self.encoder(change.obj, change.data))
        if new_match:
            return line("ADDED", self.encoder(change.obj, change.data))
        if old_match and change.old is not None:
            # Boundary rule: the object left the selection -> DELETED with the old body, new RV.
            old = dict(change.old)
            old["metadata"] = dict(old.get("metadata") or {}, resourceVersion=str(change.rv))
            return line("DELETED", self.encoder(old, encode_json(old)))
        return None

    def offer(self, change: Change) -> None:
        if self.dropped:
            return
        data = self.render(change)
        if data is None:
            return
        self.queue.append(data)
        self.queued_bytes += len(data)
        if len(self.queue) > self.max_events or self.queued_bytes > self.max_bytes:
            # The client does not keep up: forget it rather than buffer without bound.
            self.drop()
        self.wakeup.set()

    def drop(self) -> None:
        """Stop delivering: the stream is closed by its writer."""
        self.dropped = True
        self.queue.clear()
        self.queued_bytes = 0
        self.wakeup.set()
        if self.on_drop is not None:
            self.on_drop()

    def take(self) -> list[bytes]:
        items = list(self.queue)
        self.queue.clear()
        self.queued_bytes = 0
        self.wakeup.clear()
        return items
