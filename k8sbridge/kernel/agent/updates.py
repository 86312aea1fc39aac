"""Reliable status updates: one FIFO per task incarnation, only the head in flight, retried
until ACKed.

A stream is keyed by framework, task id *and* the incarnation (the container that ran the
task): the same task id can be launched again (a master that lost its state, a framework that
reuses ids) while the old incarnation's terminal update is still unacknowledged. Keyed by task
id alone, the new task's updates queued behind that stale TASK_KILLED and the master, receiving
it, marked the new, running task finished. A new incarnation drops the old one's pending updates
(they describe a task the master can no longer hold) and an acknowledgement is matched by uuid.

Why a separate pure-ish component: this is the rule frameworks depend on most ("no ACK for
TASK_RUNNING means you never see TASK_FINISHED"), and it is easiest to get right with time passed
in. The agent feeds it statuses and acknowledgements and sends whatever it returns.
"""

from __future__ import annotations

import base64
import dataclasses
import time
import uuid
from collections import deque
from typing import Any

__all__ = ["StatusUpdates", "new_uuid", "update_message"]

MAX_RETRY_SECONDS = 600.0  # Mesos backs off to 10 minutes


def new_uuid() -> str:
    """A version-4 UUID's 16 bytes, base64 (the wire form of ``TaskStatus.uuid``): Mesos'
    master rejects acknowledgements whose bytes carry no known UUID version."""
    return base64.b64encode(uuid.uuid4().bytes).decode("ascii")


def update_message(*, framework_id: str, status: dict[str, Any]) -> dict[str, Any]:
    return {"type": "STATUS_UPDATE", "framework_id": {"value": framework_id}, "status": status}


@dataclasses.dataclass(slots=True)
class _Stream:
    queue: deque[dict[str, Any]]
    next_retry: float = 0.0
    interval: float = 0.0
    sent: bool = False


_Key = tuple[str, str, str]  # framework id, task id, incarnation (container id)


class StatusUpdates:
    """Per-incarnation FIFOs keyed by (framework id, task id, incarnation)."""

    def __init__(self, *, retry_seconds: float) -> None:
        self._retry = max(0.05, retry_seconds)
        self._streams: dict[_Key, _Stream] = {}
        # The incarnations with a stream, per (framework id, task id), in the order of
        # ``_streams``: a launch and an acknowledgement look at their task's only, not at
        # every stream of the agent (hundreds in a burst).
        self._incarnations: dict[tuple[str, str], dict[str, None]] = {}

    def begin(self, *, framework_id: str, task_id: str, incarnation: str) -> int:
        """A new incarnation of the task starts: drop the pending updates of older ones;
        returns how many were dropped."""
        stale = [(framework_id, task_id, i)
                 for i in self._incarnations.get((framework_id, task_id), ())
                 if i != incarnation]
        return sum(len(self._drop(k).queue) for k in stale)

    def add(self, *, framework_id: str, status: dict[str, Any], incarnation: str,
            now: float | None = None, connected: bool = True) -> list[dict[str, Any]]:
        """Queue ``status``; returns the messages to send now (the head, if it just became one)."""
        now = time.monotonic() if now is None else now
        key = (framework_id, status["task_id"]["value"], incarnation)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._put(key, _Stream(queue=deque()))
        stream.queue.append(status)
        if len(stream.queue) == 1 and connected:
            return [self._send_head(key, stream, now)]
        return []

    def acknowledge(self, *, framework_id: str, task_id: str, uuid: str,
                    now: float | None = None, connected: bool = True
                    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """Pop the head when ``uuid`` matches: (the acked status or None, messages to send)."""
        now = time.monotonic() if now is None else now
        found = [(k, st) for k, st in (
            ((framework_id, task_id, i), self._streams[(framework_id, task_id, i)])
            for i in self._incarnations.get((framework_id, task_id), ()))
            if st.queue and st.queue[0].get("uuid") == uuid]
        if not found:
            return None, []
        key, stream = found[0]
        acked = stream.queue.popleft()
        if not stream.queue:
            self._drop(key)
            return acked, []
        stream.sent = False
        return acked, [self._send_head(key, stream, now)] if connected else []

    def due(self, *, now: float | None = None) -> list[dict[str, Any]]:
        """Heads whose retry time has come (call periodically while connected)."""
        now = time.monotonic() if now is None else now
        out = []
        for key, stream in self._streams.items():
            if not stream.sent or now >= stream.next_retry:
                if stream.sent:
                    stream.interval = min(stream.interval * 2, MAX_RETRY_SECONDS)
                    stream.next_retry = now + stream.interval
                    out.append(update_message(framework_id=key[0], status=stream.queue[0]))
                else:
                    out.append(self._send_head(key, stream, now))
        return out

    def resend_all(self, *, now: float | None = None) -> list[dict[str, Any]]:
        """Every head, with its retry timer reset (after a (re-)registration)."""
        now = time.monotonic() if now is None else now
        return [self._send_head(key, stream, now) for key, stream in self._streams.items()]

    def pending(self, *, framework_id: str, task_id: str, incarnation: str
                ) -> list[dict[str, Any]]:
        stream = self._streams.get((framework_id, task_id, incarnation))
        return list(stream.queue) if stream else []

    def awaiting(self, *, framework_id: str, incarnation: str) -> bool:
        """Whether any task of this incarnation (container) has an unacknowledged update."""
        return any(key[0] == framework_id and key[2] == incarnation and stream.queue
                   for key, stream in self._streams.items())

    def restore(self, *, framework_id: str, task_id: str, incarnation: str,
                statuses: list[dict[str, Any]]) -> None:
        """Re-create an incarnation's FIFO from a checkpoint (sent again on registration)."""
        if statuses:
            self._put((framework_id, task_id, incarnation), _Stream(queue=deque(statuses)))

    def drop_framework(self, framework_id: str) -> None:
        for key in [k for k in self._streams if k[0] == framework_id]:
            self._drop(key)

    def __len__(self) -> int:
        return sum(len(s.queue) for s in self._streams.values())

    def _put(self, key: _Key, stream: _Stream) -> _Stream:
        self._streams[key] = stream
        self._incarnations.setdefault(key[:2], {})[key[2]] = None
        return stream

    def _drop(self, key: _Key) -> _Stream:
        """Remove ``key``'s stream (an empty one when there is none)."""
        incarnations = self._incarnations.get(key[:2])
        if incarnations is not None:
            incarnations.pop(key[2], None)
            if not incarnations:
                del self._incarnations[key[:2]]
        return self._streams.pop(key, None) or _Stream(queue=deque())

    def _send_head(self, key: _Key, stream: _Stream, now: float) -> dict[str, Any]:
        stream.sent = True
        stream.interval = self._retry
        stream.next_retry = now + self._retry
        return update_message(framework_id=key[0], status=stream.queue[0])
