"""Event series as client-go's new events API records them (``tools/events``, what
kube-scheduler uses through ``NewEventBroadcasterAdapter``).

Why: on a server that serves events.k8s.io/v1 the scheduler's events are written there, and a
repeat is not a new object nor a count of the legacy API but a ``series``: the first occurrence
is an isolated Event (no series); the second, with the same type, action, reason, reporting
controller and instance, regarding and related object (the note is not part of the key), makes
it a series of count 2, written at once as a strategic merge patch of ``series``; later
repeats only count in this cache. Every ``FINISH_SECONDS`` the series not observed for that
long are written one last time (their final count) and forgotten, and isolated events that old
are forgotten; every ``REFRESH_SECONDS`` the live series are written again (their count so far).
So a series shows ``series.count >= 2`` from its second occurrence on, with the final count
at most twelve minutes after the last one, for one PATCH per series instead of one per repeat.

One deviation: the regarding object is keyed without its resourceVersion. client-go keys on
the whole reference; the bridge writes a pod's status (a new resourceVersion) each time it
explains again why the pod does not fit, which would make every repeat an isolated event.

Pure decision code: the caller passes the time and does the writing (``kube.recorder``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

__all__ = ["FINISH_SECONDS", "REFRESH_SECONDS", "SeriesCache", "SeriesWrite"]

RawObject = dict[str, Any]

FINISH_SECONDS = 6 * 60.0  # client-go's finishTime
REFRESH_SECONDS = 30 * 60.0  # client-go's refreshTime
NOTE_BYTES = 1024  # the API server's limit on a note


@dataclasses.dataclass(frozen=True)
class SeriesWrite:
    """``event`` (events.k8s.io/v1) to create when ``patch`` is None; else ``patch`` (a
    strategic merge patch of its series) for the stored event of that name, and ``event``
    (with its series) to create should the patch find nothing, as client-go does."""

    event: RawObject
    patch: RawObject | None
    key: str


@dataclasses.dataclass
class _Entry:
    event: RawObject  # as last recorded; its series (if any) is counted here
    observed: float  # when it last happened (epoch seconds)


def micro_time(when: float) -> str:
    """``metav1.MicroTime`` as JSON."""
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def series_key(event: RawObject) -> str:
    """``getKey``: type, action, reason, reporting controller and instance, regarding (without
    its resourceVersion, see the module docstring) and related."""
    regarding = {k: v for k, v in (event.get("regarding") or {}).items()
                 if k != "resourceVersion"}
    return json.dumps([event.get("type"), event.get("action"), event.get("reason"),
                       event.get("reportingController"), event.get("reportingInstance"),
                       regarding, event.get("related") or {}], sort_keys=True)


def _write(entry: _Entry, key: str) -> SeriesWrite:
    event = json.loads(json.dumps(entry.event))  # the cache's copy stays the cache's
    series = event.get("series")
    patch = None if series is None else {"series": dict(series)}
    return SeriesWrite(event=event, patch=patch, key=key)


class SeriesCache:
    """One per recorder (per process): the isomorphic events seen lately."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, event: RawObject, *, now: float) -> SeriesWrite | None:
        """The write for ``event`` (a new events.k8s.io/v1 Event without series) that happened
        at ``now``, or None when it only counts in an ongoing series."""
        key = series_key(event)
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(event=json.loads(json.dumps(event)), observed=now)
            self._entries[key] = entry
            return _write(entry, key)
        entry.observed = now
        series = entry.event.get("series")
        if series is not None:
            series["count"] = int(series["count"]) + 1
            series["lastObservedTime"] = micro_time(now)
            return None
        entry.event["series"] = {"count": 2, "lastObservedTime": micro_time(now)}
        return _write(entry, key)

    def finish(self, *, now: float) -> list[SeriesWrite]:
        """``finishSeries``: the final writes of the series that ended (not observed for
        ``FINISH_SECONDS``); those and the isolated events that old are forgotten."""
        writes: list[SeriesWrite] = []
        for key, entry in list(self._entries.items()):
            if now - entry.observed <= FINISH_SECONDS:
                continue
            if entry.event.get("series") is not None:
                writes.append(_write(entry, key))
            del self._entries[key]
        return writes

    def refresh(self) -> list[SeriesWrite]:
        """``refreshExistingEventSeries``: every live series written as it stands."""
        return [_write(entry, key) for key, entry in self._entries.items()
                if entry.event.get("series") is not None]
