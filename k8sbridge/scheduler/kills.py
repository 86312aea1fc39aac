"""Kills that must land: a task the bridge decided to stop is killed again, with back-off,
until Mesos reports a terminal state for it.

Why a book of its own: Mesos answers a KILL of a task it does not count among the framework's
tasks — an unknown one, or one on an unreachable agent (the master keeps those apart) — with
an explicit reconciliation instead (``Master::kill`` in master.cpp): TASK_UNREACHABLE while the
agent is away, TASK_GONE / TASK_GONE_BY_OPERATOR / TASK_UNKNOWN (TASK_LOST without
PARTITION_AWARE) otherwise. A framework that kills again on each such answer loops (the bridge
did, at ~1,800 log lines a second). And a kill sent while the agent was away is lost: when the
agent re-registers, the master re-adds its tasks silently (the framework learns of them by
reconciling), and they run on.

So every kill the loop sends is recorded here, and:

* it is repeated on a timer, never on an answer: first after the kill's grace plus 1 s, then
  doubling up to 5 minutes;
* a task seen reachable again (any live state) after it was reported unreachable is killed at
  once: its agent is back and the kill can land now;
* ``agent_back`` makes the kills of tasks on an agent that became active again due at once
  (the loop notices that in the agent directory);
* only a terminal state ends it (TASK_UNKNOWN is not terminal).

Pure: values and a dictionary, no I/O; the offer loop sends the kills and logs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Literal

from k8sbridge.model import ids, tasks

__all__ = ["FIRST_RETRY_SECONDS", "MAX_RETRY_SECONDS", "KillBook", "Killing", "Observed"]

FIRST_RETRY_SECONDS = 1.0  # the first kill is repeated this long after its grace ...
MAX_RETRY_SECONDS = 300.0  # ... then ever later, doubling, up to this

UNREACHABLE_STATES = frozenset({"TASK_UNREACHABLE", "TASK_UNKNOWN"})

Observed = Literal["done", "kill", "wait"]


@dataclasses.dataclass(frozen=True, slots=True)
class Killing:
    """One task being killed."""

    agent_id: ids.AgentId | None
    grace: float | None  # as sent (None: the task's own kill policy)
    why: str
    kills: int  # kills sent so far
    due: float  # when the next one is sent
    unreachable: bool = False  # the last state seen was TASK_UNREACHABLE / TASK_UNKNOWN


class KillBook:
    """task id -> ``Killing`` for every task the loop is killing."""

    def __init__(self, *, first: float = FIRST_RETRY_SECONDS,
                 most: float = MAX_RETRY_SECONDS) -> None:
        self._first = first
        self._most = most
        self._book: dict[ids.TaskId, Killing] = {}

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._book

    def __len__(self) -> int:
        return len(self._book)

    def get(self, task_id: ids.TaskId) -> Killing | None:
        return self._book.get(task_id)

    def killed(
        self, task_id: ids.TaskId, *, agent_id: ids.AgentId | None, grace: float | None,
        why: str, now: float,
    ) -> Killing:
        """A kill was sent now: the next one is due after the grace and the back-off."""
        known = self._book.get(task_id)
        kills = 1 if known is None else known.kills + 1
        delay = min(self._most, max(0.0, grace or 0.0) + self._first * 2 ** (kills - 1))
        entry = Killing(
            agent_id=agent_id or (known.agent_id if known else None), grace=grace,
            why=known.why if known is not None else why, kills=kills, due=now + delay,
            unreachable=known.unreachable if known is not None else False,
        )
        self._book[task_id] = entry
        return entry

    def observe(self, task_id: ids.TaskId, *, state: str) -> Observed:
        """A status of a task being killed arrived: ``done`` (terminal: forgotten), ``kill``
        (reachable again after it was unreachable: kill it now) or ``wait`` (the timer
        repeats the kill)."""
        entry = self._book.get(task_id)
        if entry is None:
            return "done"
        if state in tasks.TERMINAL_STATES:
            del self._book[task_id]
            return "done"
        unreachable = state in UNREACHABLE_STATES
        if unreachable != entry.unreachable:
            self._book[task_id] = dataclasses.replace(entry, unreachable=unreachable)
        return "kill" if entry.unreachable and not unreachable else "wait"

    def agent_back(self, agent_id: ids.AgentId, *, now: float) -> int:
        """``agent_id`` is active again: the kills of its tasks are due now (how many)."""
        back = 0
        for task_id, entry in self._book.items():
            if entry.agent_id == agent_id and entry.due > now:
                self._book[task_id] = dataclasses.replace(entry, due=now)
                back += 1
        return back

    def due(self, now: float) -> Iterator[tuple[ids.TaskId, Killing]]:
        return iter([(t, e) for t, e in self._book.items() if e.due <= now])

    def next_due(self) -> float | None:
        return min((e.due for e in self._book.values()), default=None)

    def forget(self, task_id: ids.TaskId) -> None:
        self._book.pop(task_id, None)

    def clear(self) -> None:
        self._book.clear()
