"""When the driver tries SUBSCRIBE again: capped exponential backoff, cut short when a master
that was down accepts connections again.

Why both: a master that stays down must not be hammered, so attempts back off (``initial``
doubling to ``cap``, equal jitter). But a backoff alone makes a master *restart* cost up to a
whole cap after the master is back: the attempts that failed while it was down have already
grown the wait. Mesos' scheduler driver (``sched.cpp``) backs off registration from
``registration_backoff_factor`` (2 s) doubling to one minute, and starts again at once when its
detector (ZooKeeper) reports a new leading master. Our masters are plain URLs, with no detector,
so the equivalent is a cheap probe between attempts: a TCP connect to each master every
``probe_seconds``. When a probe that once found every master refusing later finds one
accepting, the wait ends and the backoff starts over (as the driver's does on a new leader).

Only that *transition* cuts a wait short. A load balancer in front of the masters that always
accepts connections, or a master that accepts and answers 503 while it recovers, never looks
"down" to the probe: there the backoff alone paces the attempts, and its cap bounds how late
the first attempt after the master became able can come (the cap's default, 8 s, keeps that
under the 10 s issue 18 asks for). The decision (``cut_short``) is pure; ``Pacer`` does the
waiting and the probing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence

import yarl

__all__ = ["Pacer", "backoff_delay", "cut_short"]

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 1.0  # seconds a probe's TCP connect may take (a slower master counts as down)


def backoff_delay(
        attempt: int, *, initial: float, cap: float, rng: random.Random | None = None
) -> float:
    """Capped exponential backoff with "equal jitter": in [d/2, d], d = min(cap, initial·2^n)."""
    ceiling = min(cap, initial * 2.0 ** min(attempt, 30))
    r = (rng or random.Random()).random()
    return ceiling / 2 + r * ceiling / 2


def cut_short(*, seen_down: bool, reachable: bool) -> bool:
    """Whether a probe ends the wait: a master accepts again after every one was seen down."""
    return seen_down and reachable


async def _accepts(master: yarl.URL, *, timeout: float) -> bool:
    port = master.port or (443 if master.scheme == "https" else 80)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(master.host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class Pacer:
    """Waits between SUBSCRIBE attempts, probing the masters while it waits."""

    def __init__(self, *, masters: Sequence[yarl.URL], probe_seconds: float,
                 probe_timeout: float = PROBE_TIMEOUT) -> None:
        self._masters = tuple(masters)
        self._probe_seconds = probe_seconds
        self._probe_timeout = min(probe_timeout, probe_seconds) if probe_seconds > 0 else 0.0
        self._seen_down = False  # a probe since the last subscription found no master accepting

    def subscribed(self) -> None:
        """A subscription succeeded: a later outage has to be seen anew."""
        self._seen_down = False

    async def reachable(self) -> bool:
        """One probe: does any master accept a TCP connection?"""
        results = await asyncio.gather(
            *(_accepts(m, timeout=self._probe_timeout) for m in self._masters))
        return any(results)

    async def wait(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; True when cut short because a master that was down accepts
        connections again (the caller then starts its backoff over)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + delay
        if self._probe_seconds <= 0 or not self._masters:
            await asyncio.sleep(delay)
            return False
        while True:
            up = await self.reachable()
            if cut_short(seen_down=self._seen_down, reachable=up):
                self._seen_down = False
                log.info("a Mesos master accepts connections again: re-subscribing now")
                return True
            if not up:
                self._seen_down = True
            left = end - loop.time()
            if left <= 0:
                return False
            await asyncio.sleep(min(self._probe_seconds, left))
            if loop.time() >= end:
                return False
