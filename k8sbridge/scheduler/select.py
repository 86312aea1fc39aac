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
  lazily: an entry whose key no longer matches the ranking is re-keyed when it surfaces. A
  placement that worsens an agent's key needs nothing more; one that improves it (binpack,
  or a better balance) is pushed to every heap holding the agent (``Ranking.update``).
* groups whose candidates are a small part of the agents, or whose pod-dependent static
  scores (preferred node affinity, PreferNoSchedule taints: ``scores``) differ between
  agents (a ``bonus`` per agent), read a sub-ranking of their candidates by score plus bonus
  (``Rankings``), shared by every group with the same candidates and bonus and updated like
  the main one: the first entries then hold their best again.

``topology`` keeps one queue per class of agents of a group and moves agents between them
(``add``/``remove``).

Agents that fail a dynamic check leave the group for the rest of the pass (the checks are
monotonic, see ``feasible``), and their rejection is kept for the explanation.
"""

from __future__ import annotations

import bisect
import heapq
import itertools

from k8sbridge.scheduler import feasible

__all__ = ["CandidateQueue", "Ranking", "Rankings", "TieredQueue", "queue_for"]

#: How many ranking entries a group walks before it uses a heap of its own members.
WALK = 16

_Key = tuple[float, int, int]  # (-score, tiebreak, agent index): smallest is best


class Ranking:
    """Agents of the pass, best first; ``update`` after an agent's score changed.

    The pass's main ranking holds every agent by its ``rank`` score; a sub-ranking holds the
    candidates of groups that share them and a static ``bonus`` (``scores``), by score plus
    bonus, so those groups too find their best among the first entries."""

    __slots__ = ("order", "keys", "_tiebreak", "_heaps", "_bonus")

    def __init__(
        self,
        *,
        agents: list[feasible.AgentState],
        tiebreak: list[int],
        size: int | None = None,
        bonus: list[float] | None = None,
    ) -> None:
        self._tiebreak = tiebreak
        self._bonus = bonus
        count = len(agents) if size is None else size
        # per agent, the heaps that hold it (an improved key is pushed to them)
        self._heaps: list[list[CandidateQueue]] = [[] for _ in range(count)]
        self.keys: list[_Key] = [(0.0, 0, -1)] * count  # index -1: not a member
        for a in agents:
            self.keys[a.index] = self._key_for(a)
        self.order: list[_Key] = sorted(self.keys[a.index] for a in agents)

    @property
    def has_bonus(self) -> bool:
        return self._bonus is not None

    def _key_for(self, agent: feasible.AgentState) -> _Key:
        score = agent.score if self._bonus is None else agent.score + self._bonus[agent.index]
        return (-score, self._tiebreak[agent.index], agent.index)

    def update(self, agent: feasible.AgentState) -> None:
        old = self.keys[agent.index]
        if old[2] < 0:
            return
        new = self._key_for(agent)
        if new == old:
            return
        del self.order[bisect.bisect_left(self.order, old)]
        bisect.insort(self.order, new)
        self.keys[agent.index] = new
        if new < old:
            for queue in self._heaps[agent.index]:
                queue.push(agent.index)

    def register(self, queue: CandidateQueue, indexes: set[int] | list[int]) -> None:
        for index in indexes:
            self._heaps[index].append(queue)


class Rankings:
    """The main ranking and the sub-rankings of the pass, one per (candidates, bonus)."""

    __slots__ = ("main", "_agents", "_tiebreak", "_by_agent", "_subs")

    def __init__(self, *, agents: list[feasible.AgentState], tiebreak: list[int]) -> None:
        self._agents = agents
        self._tiebreak = tiebreak
        self.main = Ranking(agents=agents, tiebreak=tiebreak)
        self._by_agent: list[list[Ranking]] = [[self.main] for _ in agents]
        self._subs: dict[tuple[object, ...], Ranking] = {}

    def for_group(
        self, candidates: list[feasible.AgentState], bonus: list[float] | None
    ) -> Ranking:
        """The main ranking, unless the bonus takes many values: then a sub-ranking of the
        candidates by score plus bonus (shared by every group with the same ones)."""
        if bonus is None or len({bonus[a.index] for a in candidates}) <= MAX_TIERS:
            return self.main
        key = (tuple(a.index for a in candidates),
               None if bonus is None else tuple(bonus[a.index] for a in candidates))
        sub = self._subs.get(key)
        if sub is None:
            sub = self._subs[key] = Ranking(agents=candidates, tiebreak=self._tiebreak,
                                            size=len(self._agents), bonus=bonus)
            for a in candidates:
                self._by_agent[a.index].append(sub)
        return sub

    def update(self, agent: feasible.AgentState) -> None:
        for ranking in self._by_agent[agent.index]:
            ranking.update(agent)


#: the most distinct bonus values a group is split into tiers for (else: a sub-ranking)
MAX_TIERS = 8


class CandidateQueue:
    """The candidates of one pod group (or class of agents), read through a ``Ranking``."""

    __slots__ = ("_ranking", "_heap", "members", "rejections", "walk_first")

    def __init__(self, *, agents: list[feasible.AgentState], ranking: Ranking) -> None:
        self._ranking = ranking
        self.walk_first = False
        self._heap: list[_Key] | None = None
        self.members = {a.index for a in agents}
        self.rejections: list[tuple[int, feasible.Rejection]] = []  # (agent index, why)

    def __len__(self) -> int:
        return len(self.members)

    def key_of(self, index: int) -> _Key:
        return self._ranking.keys[index]

    def best(self, agents: list[feasible.AgentState]) -> feasible.AgentState | None:
        """The highest-ranked member (it stays a member until ``drop``)."""
        members = self.members
        if not members:
            return None
        if (self._heap is None or self.walk_first) and \
                len(members) * WALK >= len(self._ranking.order):
            # the best agents are rarely full: the first entries of the ranking usually hold
            # a member (when members are not too rare); once they did not, a heap of the
            # members (kept lazily) answers, but a tier of a group walks first every time
            # (its heap goes stale the fastest)
            for _, _, index in itertools.islice(self._ranking.order, WALK):
                if index in members:
                    return agents[index]
        keys = self._ranking.keys
        if self._heap is None:
            self._heap = [keys[i] for i in members]
            heapq.heapify(self._heap)
            self._ranking.register(self, list(members))
        heap = self._heap
        while heap:
            key = heap[0]
            index = key[2]
            if index not in members:
                heapq.heappop(heap)
                continue
            current = keys[index]
            if key != current:
                heapq.heapreplace(heap, current)
            else:
                return agents[index]
        return None  # pragma: no cover - every member has an entry

    def push(self, index: int) -> None:
        if self._heap is not None and index in self.members:
            heapq.heappush(self._heap, self._ranking.keys[index])

    def add(self, index: int) -> None:
        """A member joins (an agent moving into this class of a group)."""
        if index in self.members:
            return
        self.members.add(index)
        if self._heap is not None:
            heapq.heappush(self._heap, self._ranking.keys[index])
            self._ranking.register(self, [index])

    def remove(self, index: int) -> None:
        self.members.discard(index)

    def drop(self, agent: feasible.AgentState, rejection: feasible.Rejection) -> None:
        self.members.discard(agent.index)
        self.rejections.append((agent.index, rejection))


class TieredQueue:
    """A group's candidates when its static ``bonus`` (``scores``) takes few values: one
    ``CandidateQueue`` per value, on the main ranking; the best of their bests wins (its
    score plus its tier's bonus). Cheaper than a sub-ranking: nothing more to update per
    placement, and each tier usually finds its best among the ranking's first entries."""

    __slots__ = ("_ranking", "tiers")

    def __init__(
        self, *, agents: list[feasible.AgentState], ranking: Ranking, bonus: list[float]
    ) -> None:
        self._ranking = ranking
        by_value: dict[float, list[feasible.AgentState]] = {}
        for agent in agents:
            by_value.setdefault(bonus[agent.index], []).append(agent)
        self.tiers = [(value, CandidateQueue(agents=members, ranking=ranking))
                      for value, members in sorted(by_value.items(), reverse=True)]
        for _, queue in self.tiers:
            queue.walk_first = True

    @property
    def rejections(self) -> list[tuple[int, feasible.Rejection]]:
        return [r for _, q in self.tiers for r in q.rejections]

    def best_in(
        self, agents: list[feasible.AgentState]
    ) -> tuple[CandidateQueue, feasible.AgentState] | None:
        found: tuple[CandidateQueue, feasible.AgentState] | None = None
        found_key: _Key | None = None
        keys = self._ranking.keys
        for value, queue in self.tiers:
            agent = queue.best(agents)
            if agent is None:
                continue
            key = keys[agent.index]
            key = (key[0] - value, key[1], key[2])
            if found_key is None or key < found_key:
                found, found_key = (queue, agent), key
        return found


def queue_for(
    *, agents: list[feasible.AgentState], rankings: Rankings, bonus: list[float] | None
) -> CandidateQueue | TieredQueue:
    ranking = rankings.for_group(agents, bonus)
    if bonus is not None and ranking is rankings.main:
        return TieredQueue(agents=agents, ranking=ranking, bonus=bonus)
    return CandidateQueue(agents=agents, ranking=ranking)
