"""Small asyncio helpers shared by the bridge's composition root and the embedded kernel.

Why a module of its own: starting a component means waiting until it says it is ready *or*
until it fails (its task ends) *or* a time bound passes, and reporting which. The bridge
(``app.py``) and the kernel (``kernel/main.py``) both do exactly this; one definition keeps the
three outcomes and their messages the same.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_ready"]


async def wait_ready(
    ready: asyncio.Event,
    task: asyncio.Task[None],
    *,
    what: str,
    timeout: float,
    error: type[Exception] = RuntimeError,
) -> None:
    """Return once ``ready`` is set; raise ``error`` naming ``what`` if ``task`` ends first
    (chained from its exception) or ``timeout`` seconds pass."""
    waiter = asyncio.ensure_future(ready.wait())
    try:
        done, _ = await asyncio.wait(
            {waiter, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        waiter.cancel()
    if ready.is_set():
        return
    if task in done:
        exc = task.exception()
        raise error(f"{what} failed to start: {exc!r}") from exc
    raise error(f"{what} did not become ready within {timeout:g}s")
