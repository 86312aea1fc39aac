"""Selection: the best feasible agent for the next pod of a group, found in O(log n).

Why a lazy priority queue instead of Nomad's limit iterator: we can afford the exact best. One
``CandidateQueue`` per group of identical pods holds (score, tiebreak, version, agent) entries.
An agent's ``version`` changes whenever the pass places something on it; a popped entry whose
version is stale is re-scored and pushed back, so only agents that are actually popped are ever
re-scored. With ``spread`` a placement only lowers an agent's score, which makes the lazy queue
exact. With ``binpack`` a placement raises it, so the placing queue pushes the fresh entry and
``stack`` also notifies the other live queues (``offer``).

Agents that fail a dynamic check are dropped from the group's queue for the rest of the pass
(the checks are monotonic, see ``feasible``), and their rejection is kept for the explanation.
"""

from __future__ import annotations

import heapq

from k8sbridge.scheduler import feasible

__all__ = ["CandidateQueue"]


class CandidateQueue:
    """Candidates of one pod group; scores are read from ``AgentState.score``, which ``stack``
    refreshes (with a ``rank`` scorer) whenever it bumps the agent's ``version``."""

    __slots__ = ("_heap", "_tiebreak", "members", "rejections")

    def __init__(self, *, agents: list[feasible.AgentState], tiebreak: list[int]) -> None:
        self._tiebreak = tiebreak
        self.members = {a.index for a in agents}
        self.rejections: list[tuple[int, feasible.Rejection]] = []  # (agent index, why)
        self._heap = [(-a.score, tiebreak[a.index], a.version, a.index) for a in agents]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self.members)

    def best(self, agents: list[feasible.AgentState]) -> feasible.AgentState | None:
        """The highest-scoring live member (it stays in the queue until ``drop``/``replace``)."""
        heap = self._heap
        while heap:
            _, tb, version, index = heap[0]
            if index not in self.members:
                heapq.heappop(heap)
                continue
            agent = agents[index]
            if version != agent.version:
                heapq.heapreplace(heap, (-agent.score, tb, agent.version, index))
                continue
            return agent
        return None

    def drop(self, agent: feasible.AgentState, rejection: feasible.Rejection) -> None:
        self.members.discard(agent.index)
        self.rejections.append((agent.index, rejection))

    def offer(self, agent: feasible.AgentState) -> None:
        """Push a fresh entry for a member whose state changed (used after a placement)."""
        if agent.index in self.members:
            heapq.heappush(
                self._heap,
                (-agent.score, self._tiebreak[agent.index], agent.version, agent.index),
            )
