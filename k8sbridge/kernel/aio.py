"""Asyncio helpers of the embedded kernel (its own, so the stand-in shares no code with the bridge).

Why: starting the master or an agent means waiting for its "ready" signal while watching that
its task has not died, within a time bound, and saying which of the three happened.
"""

from __future__ import annotations

import asyncio

__all__ = ["StartError", "started"]


class StartError(RuntimeError):
    """A kernel component did not come up."""


async def started(ready: asyncio.Event, task: asyncio.Task[None], *, name: str,
                  within: float, error: type[Exception] = StartError) -> None:
    """Return when ``ready`` is set; raise ``error`` if ``task`` ends first or time runs out."""
    signal = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({signal, task}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        signal.cancel()
    if ready.is_set():
        return
    if task.done():
        failure = None if task.cancelled() else task.exception()
        raise error(f"{name} failed to start: {failure!r}") from failure
    raise error(f"{name} not ready after {within:g}s")
