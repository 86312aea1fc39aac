"""Event correlation for the controllers' events, as client-go's EventCorrelator does it
(``tools/record/events_cache.go``), so a Job's or a ReplicaSet's repeated event is one Event
with a growing count (``kubectl describe``: ``(x5 over 2m)``), not one object per repeat.

Why a copy of the bridge's ``kube/events.py``: stand-ins share no code with the product. The
three steps, with client-go's defaults: the aggregator (the 10th distinct message for one
source, object and reason within 10 minutes → "(combined from similar events): ..."), the
logger (a repeat → a strategic merge patch of count, lastTimestamp and message of the first
Event) and the spam filter (a token bucket per source and object, 25 then one per 5 minutes).
Pure decision code: the recorder passes the time and writes.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
from typing import Any, Generic, TypeVar

__all__ = ["COMBINED_PREFIX", "Correlated", "EventCorrelator"]

RawObject = dict[str, Any]
K = TypeVar("K")
V = TypeVar("V")

COMBINED_PREFIX = "(combined from similar events): "
CACHE_ENTRIES = 4096  # client-go's maxLruCacheEntries
AGGREGATE_MAX_EVENTS = 10  # distinct messages per reason and object before combining
AGGREGATE_INTERVAL = 600.0  # seconds
SPAM_BURST = 25
SPAM_QPS = 1.0 / 300.0


@dataclasses.dataclass(frozen=True)
class Correlated:
    """``event`` to create (``patch`` is None), or ``patch`` (strategic merge) for the stored
    event of that name; should the patch find nothing, create ``event`` (as client-go does)."""

    event: RawObject
    patch: RawObject | None
    key: str  # events with the same key are writes to one object: write them in order


class _Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: collections.OrderedDict[K, V] = collections.OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self._size:
            self._items.popitem(last=False)


@dataclasses.dataclass
class _Aggregate:
    messages: set[str]
    last: float


@dataclasses.dataclass(frozen=True)
class _Seen:
    count: int
    first_timestamp: Any
    name: str


@dataclasses.dataclass
class _Bucket:
    tokens: float
    at: float


def _object_key(event: RawObject) -> list[str]:
    source = event.get("source") or {}
    involved = event.get("involvedObject") or {}
    return [str(source.get("component") or ""), str(source.get("host") or ""),
            str(involved.get("kind") or ""), str(involved.get("namespace") or ""),
            str(involved.get("name") or "")]


def _uid_version(event: RawObject) -> list[str]:
    involved = event.get("involvedObject") or {}
    return [str(involved.get("uid") or ""), str(involved.get("apiVersion") or "")]


def event_key(event: RawObject) -> str:
    """``getEventKey``: source, object (with fieldPath), type, reason and message."""
    involved = event.get("involvedObject") or {}
    return "\x00".join([*_object_key(event), str(involved.get("fieldPath") or ""),
                        *_uid_version(event), str(event.get("type") or ""),
                        str(event.get("reason") or ""), str(event.get("message") or "")])


def aggregate_key(event: RawObject) -> str:
    """``EventAggregatorByReasonFunc``: as the event key without the message, with the
    reporting controller and instance."""
    return "\x00".join([*_object_key(event), *_uid_version(event), str(event.get("type") or ""),
                        str(event.get("reason") or ""),
                        str(event.get("reportingComponent") or ""),
                        str(event.get("reportingInstance") or "")])


def spam_key(event: RawObject) -> str:
    """``getSpamKey``: the source and the object only."""
    return "\x00".join([*_object_key(event), *_uid_version(event)])


def rfc3339(when: float) -> str:
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class EventCorrelator:
    """One per recorder (per process): the caches of the three steps."""

    def __init__(self, *, max_events: int = AGGREGATE_MAX_EVENTS,
                 interval: float = AGGREGATE_INTERVAL, burst: int = SPAM_BURST,
                 qps: float = SPAM_QPS, cache_entries: int = CACHE_ENTRIES) -> None:
        self._max_events = max_events
        self._interval = interval
        self._burst = burst
        self._qps = qps
        self._aggregates: _Lru[str, _Aggregate] = _Lru(cache_entries)
        self._seen: _Lru[str, _Seen] = _Lru(cache_entries)
        self._buckets: _Lru[str, _Bucket] = _Lru(cache_entries)
        self.skipped = 0  # events the spam filter kept from the API server

    def correlate(self, event: RawObject, *, now: float) -> Correlated | None:
        """The write for ``event`` (a new core/v1 Event, count 1) at ``now`` (epoch seconds),
        or None when the spam filter drops it."""
        aggregated, key = self._aggregate(event, now)
        observed, patch = self._observe(aggregated, key)
        if not self._accept(observed, now):
            self.skipped += 1
            return None
        return Correlated(event=observed, patch=patch, key=key)

    def _aggregate(self, event: RawObject, now: float) -> tuple[RawObject, str]:
        akey = aggregate_key(event)
        record = self._aggregates.get(akey)
        if record is None or now - record.last > self._interval:
            record = _Aggregate(messages=set(), last=now)
        record.messages.add(str(event.get("message") or ""))
        record.last = now
        self._aggregates.put(akey, record)
        if len(record.messages) < self._max_events:
            return event, event_key(event)
        record.messages.pop()  # the set never grows past the limit
        meta = event.get("metadata") or {}
        involved = event.get("involvedObject") or {}
        stamp = rfc3339(now)
        combined: RawObject = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{involved.get('name')}.{int(now * 1e9):x}",
                         "namespace": meta.get("namespace")},
            "involvedObject": dict(involved),
            "reason": event.get("reason"),
            "message": COMBINED_PREFIX + str(event.get("message") or ""),
            "type": event.get("type"),
            "source": dict(event.get("source") or {}),
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        for field in ("reportingComponent", "reportingInstance"):
            if field in event:
                combined[field] = event[field]
        return combined, akey

    def _observe(self, event: RawObject, key: str) -> tuple[RawObject, RawObject | None]:
        seen = self._seen.get(key)
        patch: RawObject | None = None
        if seen is not None:
            event = dict(event)
            event["metadata"] = {**(event.get("metadata") or {}), "name": seen.name}
            event["count"] = seen.count + 1
            event["firstTimestamp"] = seen.first_timestamp
            patch = {"count": event["count"], "lastTimestamp": event.get("lastTimestamp"),
                     "message": event.get("message")}
        self._seen.put(key, _Seen(count=int(event.get("count") or 1),
                                  first_timestamp=event.get("firstTimestamp"),
                                  name=str((event.get("metadata") or {}).get("name"))))
        return event, patch

    def _accept(self, event: RawObject, now: float) -> bool:
        """A passive token bucket per source and object (``TryAccept``)."""
        skey = spam_key(event)
        bucket = self._buckets.get(skey)
        if bucket is None:
            bucket = _Bucket(tokens=float(self._burst), at=now)
        bucket.tokens = min(float(self._burst),
                            bucket.tokens + max(0.0, now - bucket.at) * self._qps)
        bucket.at = max(bucket.at, now)
        accepted = bucket.tokens >= 1.0
        if accepted:
            bucket.tokens -= 1.0
        self._buckets.put(skey, bucket)
        return accepted
