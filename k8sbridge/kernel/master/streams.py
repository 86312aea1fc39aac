"""RecordIO event streams to schedulers and operator subscribers.

Why a queue per stream: the master decides what to send synchronously, inside its own state
changes, and must never wait on a slow client. Each stream queues framed records; the HTTP
handler that opened the stream drains the queue into the response (whatever queued up in one
write) and adds a HEARTBEAT every interval, so a stalled client never blocks the master and a
gone one is noticed at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from aiohttp import web

from k8sbridge.kernel import recordio

log = logging.getLogger(__name__)

_HEARTBEAT = recordio.frame(b'{"type":"HEARTBEAT"}')
_CLOSE = b""


def compact(value: Any) -> Any:
    """v1 JSON as Mesos prints it: repeated fields with no members are left out.

    (stout's protobuf-to-JSON writes a repeated field only when it has members; clients of
    real Mesos must cope with ``"tasks"`` missing rather than ``[]``.) Works in place, so that
    rendering 10,000 tasks does not hold two copies: removing an empty list from a stored raw
    dict never changes its meaning here, since every reader treats missing as empty.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in [k for k, v in item.items() if isinstance(v, list) and not v]:
                del item[key]
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))
    return value


def frame(event: dict[str, Any]) -> bytes:
    return recordio.frame(json.dumps(compact(event), separators=(",", ":")).encode())


class EventStream:
    """One open event stream (a scheduler subscription or an operator SUBSCRIBE)."""

    def __init__(self, *, heartbeat_interval: float) -> None:
        self.stream_id = str(uuid.uuid4())
        self.heartbeat_interval = heartbeat_interval
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False
        self.gone = asyncio.Event()  # set once the client can no longer be written to

    def send(self, event: dict[str, Any]) -> None:
        if not self.closed:
            self._queue.put_nowait(frame(event))

    def heartbeat(self) -> None:
        if not self.closed:
            self._queue.put_nowait(_HEARTBEAT)

    def close(self) -> None:
        """Flush what is queued, then end the response (e.g. after ERROR)."""
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(_CLOSE)

    async def pump(self, response: web.StreamResponse) -> None:
        """Write queued records and heartbeats until closed or the client goes away."""
        next_beat = time.monotonic() + self.heartbeat_interval
        try:
            while True:
                now = time.monotonic()
                if now >= next_beat:
                    await response.write(_HEARTBEAT)
                    next_beat = now + self.heartbeat_interval
                if self._queue.empty():
                    try:
                        async with asyncio.timeout(max(0.0, next_beat - time.monotonic())):
                            first = await self._queue.get()
                    except TimeoutError:
                        continue
                else:
                    first = self._queue.get_nowait()
                # Everything queued goes out as one write (records stay in order).
                records = [first]
                while not self._queue.empty():
                    records.append(self._queue.get_nowait())
                closing = _CLOSE in records
                if closing:
                    records = records[:records.index(_CLOSE)]
                if records:
                    await response.write(b"".join(records))
                if closing:
                    return
        except (ConnectionError, RuntimeError) as e:
            log.info("event stream %s: client went away (%s)", self.stream_id, e)
        finally:
            self.closed = True
            self.gone.set()
