"""Selection: the best feasible agent for the next pod of a group, exactly, without re-scoring.

Why not Nomad's limit iterator: we can afford the exact best. Scores depend on the agent only
(see ``rank``), so one ``Ranking`` keeps every agent in score order for the whole pass, and a
placement moves just the agent it changed (one bisect, one insert). A group of identical pods
keeps only its ``members``: the agents that passed its static checks and have not failed a
dynamic one. Its best agent is the first member in ranking order, found by walking the ranking
(short, since most groups can use most agents) or, for groups with few members, by taking the
minimum over the members directly.

Agents that fail a dynamic check leave the group for the rest of the pass (the checks are
monotonic, see ``feasible``), and their rejection is kept for the explanation.
"""

from __future__ import annotations

import bisect

from k8sbridge.scheduler import feasible

__all__ = ["CandidateQueue", "Ranking"]

#: Below this many members a group looks at its members instead of walking the ranking.
SMALL_GROUP = 32

_Key = tuple[float, int, int]  # (-score, tiebreak, agent index): smallest is best


class Ranking:
    """Every agent of the pass, best first; ``update`` after an agent's score changed."""

    __slots__ = ("order", "keys", "_tiebreak")

    def __init__(self, *, agents: list[feasible.AgentState], tiebreak: list[int]) -> None:
        self._tiebreak = tiebreak
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


class CandidateQueue:
    """The candidates of one pod group, read through the shared ``Ranking``."""

    __slots__ = ("_ranking", "members", "rejections")

    def __init__(self, *, agents: list[feasible.AgentState], ranking: Ranking) -> None:
        self._ranking = ranking
        self.members = {a.index for a in agents}
        self.rejections: list[tuple[int, feasible.Rejection]] = []  # (agent index, why)

    def __len__(self) -> int:
        return len(self.members)

    def best(self, agents: list[feasible.AgentState]) -> feasible.AgentState | None:
        """The highest-ranked member (it stays a member until ``drop``)."""
        members = self.members
        if not members:
            return None
        if len(members) <= SMALL_GROUP:
            keys = self._ranking.keys
            return agents[min(keys[i] for i in members)[2]]
        for _, _, index in self._ranking.order:
            if index in members:
                return agents[index]
        return None  # pragma: no cover - members are always in the ranking

    def drop(self, agent: feasible.AgentState, rejection: feasible.Rejection) -> None:
        self.members.discard(agent.index)
        self.rejections.append((agent.index, rejection))
