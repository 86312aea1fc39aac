"""Selection: the best feasible agent for the next pod of a group, exactly and cheaply.

Why not Nomad's limit iterator: we can afford the exact best. Scores depend on the agent only
(see ``rank``), so one ``Ranking`` keeps every agent in score order for the whole pass, and a
placement moves just the agent it changed (one bisect, one insert). A group of identical pods
keeps only its ``members``: the agents that passed its static checks and have not failed a
dynamic one. Its best agent is the first member in ranking order:

* usually found by walking the first few entries of the ranking (most groups can use most
  agents, and the best agents are rarely full);
* otherwise (a constrained group whose members rank low, e.g. a nodeSelector on agents that
  other pods filled first) from a heap of its own members, built on first need and kept up
  lazily: an entry whose key no longer matches the ranking is re-keyed when it surfaces. With
  ``spread`` a placement only worsens an agent's key, so lazy re-keying is exact; with
  ``binpack`` it improves it, so the ``Ranking`` pushes the new key to every heap holding the
  agent (``Ranking.update``).

Agents that fail a dynamic check leave the group for the rest of the pass (the checks are
monotonic, see ``feasible``), and their rejection is kept for the explanation.
"""

from __future__ import annotations

import bisect
import heapq
import itertools

from k8sbridge.scheduler import feasible

__all__ = ["CandidateQueue", "Ranking"]

#: How many ranking entries a group walks before it uses a heap of its own members.
WALK = 16

_Key = tuple[float, int, int]  # (-score, tiebreak, agent index): smallest is best


class Ranking:
    """Every agent of the pass, best first; ``update`` after an agent's score changed."""

    __slots__ = ("order", "keys", "_tiebreak", "_improving", "_heaps")

    def __init__(
        self,
        *,
        agents: list[feasible.AgentState],
        tiebreak: list[int],
        improving: bool = False,
    ) -> None:
        self._tiebreak = tiebreak
        self._improving = improving  # placements raise scores (binpack): push, don't wait
        self._heaps: list[CandidateQueue] = []
        self.keys: list[_Key] = [(-a.score, tiebreak[a.index], a.index) for a in agents]
        self.order: list[_Key] = sorted(self.keys)

    def update(self, agent: feasible.AgentState) -> None:
        old = self.keys[agent.index]
        new = (-agent.score, self._tiebreak[agent.index], agent.index)
        if new == old:
            return
        del self.order[bisect.bisect_left(self.order, old)]
        bisect.insort(self.order, new)
        self.keys[agent.index] = new
        if self._improving and new < old:
            for queue in self._heaps:
                queue.push(agent.index, new)

    def register(self, queue: CandidateQueue) -> None:
        self._heaps.append(queue)


class CandidateQueue:
    """The candidates of one pod group, read through the shared ``Ranking``."""

    __slots__ = ("_ranking", "_heap", "members", "rejections")

    def __init__(self, *, agents: list[feasible.AgentState], ranking: Ranking) -> None:
        self._ranking = ranking
        self._heap: list[_Key] | None = None
        self.members = {a.index for a in agents}
        self.rejections: list[tuple[int, feasible.Rejection]] = []  # (agent index, why)

    def __len__(self) -> int:
        return len(self.members)

    def best(self, agents: list[feasible.AgentState]) -> feasible.AgentState | None:
        """The highest-ranked member (it stays a member until ``drop``)."""
        members = self.members
        if not members:
            return None
        if self._heap is None:
            for _, _, index in itertools.islice(self._ranking.order, WALK):
                if index in members:
                    return agents[index]
            keys = self._ranking.keys
            self._heap = [keys[i] for i in members]
            heapq.heapify(self._heap)
            self._ranking.register(self)
        heap = self._heap
        keys = self._ranking.keys
        while heap:
            key = heap[0]
            index = key[2]
            if index not in members:
                heapq.heappop(heap)
            elif key != keys[index]:
                heapq.heapreplace(heap, keys[index])
            else:
                return agents[index]
        return None  # pragma: no cover - every member has an entry

    def push(self, index: int, key: _Key) -> None:
        if self._heap is not None and index in self.members:
            heapq.heappush(self._heap, key)

    def drop(self, agent: feasible.AgentState, rejection: feasible.Rejection) -> None:
        self.members.discard(agent.index)
        self.rejections.append((agent.index, rejection))
