"""A level-triggered keyed work queue with bounded, backed-off retries.

Items are object keys (``"ns/name"``). A key queued twice before it is handled is handled once;
a key re-added while it is being handled is handled again afterwards. Handlers re-read the
current state for the key, so only "something changed for this key" has to be remembered.
"""

from __future__ import annotations

import asyncio

from k8sbridge.devkube.controllers.raw import ObjectKey


class WorkQueue:
    """Single-consumer queue of keys; owned by one controller task."""

    def __init__(self, *, name: str, max_retries: int = 12, base_delay: float = 0.02,
                 max_delay: float = 5.0) -> None:
        self.name = name
        self._queue: asyncio.Queue[ObjectKey] = asyncio.Queue()
        self._queued: set[ObjectKey] = set()
        self._timers: dict[ObjectKey, asyncio.TimerHandle] = {}
        self._failures: dict[ObjectKey, int] = {}
        self._max_retries = max_retries
        self._base_delay = base_delay
        self._max_delay = max_delay

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: ObjectKey) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: ObjectKey, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds (an earlier pending timer wins)."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: ObjectKey) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> ObjectKey:
        key = await self._queue.get()
        self._queued.discard(key)
        return key

    def retry(self, key: ObjectKey) -> bool:
        """Requeue ``key`` after an exponential back-off; ``False`` once retries are used up."""
        failures = self._failures.get(key, 0) + 1
        if failures > self._max_retries:
            self._failures.pop(key, None)
            return False
        self._failures[key] = failures
        self.add_after(key, min(self._max_delay, self._base_delay * 2 ** (failures - 1)))
        return True

    def forget(self, key: ObjectKey) -> None:
        """The key was handled successfully: reset its back-off."""
        self._failures.pop(key, None)

    def failures(self, key: ObjectKey) -> int:
        return self._failures.get(key, 0)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
