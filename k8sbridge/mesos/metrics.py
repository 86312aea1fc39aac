"""Counters of the Mesos client: events by type, calls by type and outcome, (re)subscriptions
by cause, reconnects.

Why plain counters in memory: the bridge exposes them on its own metrics endpoint (any format it
likes) and tests assert on them; no metrics library is needed for monotonically growing ints.
Owned by the framework's event loop, so no locking.
"""

from __future__ import annotations

import collections

__all__ = ["Metrics"]


class Metrics:
    """Monotonic counters with flat slash-separated names (``events/OFFERS``)."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: collections.Counter[str] = collections.Counter()

    def inc(self, name: str, by: int = 1) -> None:
        self._counts[name] += by

    def event(self, event_type: str) -> None:
        self._counts[f"events/{event_type}"] += 1

    def call(self, call_type: str, outcome: str) -> None:
        """``outcome``: ``ok`` or the error class name (``BadRequest``, ``ConnectionLost``...)."""
        self._counts[f"calls/{call_type}/{outcome}"] += 1

    def subscribe_failed(self, cause: str) -> None:
        """A SUBSCRIBE attempt failed or a live stream broke; ``cause``: the error class name."""
        self._counts[f"subscribe_failures/{cause}"] += 1

    def subscribed(self, cause: str) -> None:
        """A SUBSCRIBED arrived; ``cause``: why it was needed (``initial`` or the last failure)."""
        self._counts["subscriptions"] += 1
        self._counts[f"resubscriptions/{cause}"] += 1

    def get(self, name: str) -> int:
        return self._counts.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))
