"""Waiting for a killed child process to the end, even when the waiter is cancelled again.

Why: the agent kills a probe or the container daemon's launcher when its task is cancelled
(agent shutdown), then awaits the exit. Shutdown can cancel the same task twice (its probes
are stopped, then every background task is cancelled); a second cancellation used to interrupt
that wait, the task ended, the event loop closed before the exit was processed, and the
subprocess transport was collected later with "subprocess ... is still running" -- an
unraisable warning in whatever test ran next.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_killed"]


async def wait_killed(proc: asyncio.subprocess.Process) -> int:
    """Await ``proc``'s exit (it has been sent SIGKILL, so it comes promptly); a cancellation
    meanwhile is held back and raised once the exit has been processed."""
    waiter = asyncio.ensure_future(proc.wait())
    cancelled = False
    while True:
        try:
            code = await asyncio.shield(waiter)
            break
        except asyncio.CancelledError:
            if waiter.done():
                code = waiter.result()
                break
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return code
