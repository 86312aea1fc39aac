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
  or a better balance) is pushed to every heap holding the agent (``Rankings.update``).
* groups whose pod-dependent static scores (preferred node affinity, PreferNoSchedule
  taints: ``scores``) differ between agents (a ``bonus`` per agent) read a sub-ranking of
  their candidates by score plus bonus (``Rankings``), shared by every group with the same
  candidates and bonus and updated like the main one: its first entries hold their best.
  A group whose candidates a ranking already kept holds, each with the group's bonus (e.g.
  a zone's agents in the ranking of every agent with the same taints), reads that one: one
  ranking fewer to keep in order per placement. A sub-ranking that only one group (a plain
  one, not ``topology``'s) reads is not kept in order at all: that group reads it through
  its heap, until a second group comes to read it too (``Rankings.for_group``).

``topology`` keeps one queue per class of agents of a group and moves agents between them
(``add``/``remove``).

Agents that fail a dynamic check leave the group for the rest of the pass (the checks are
monotonic, see ``feasible``), and their rejection is kept for the explanation.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import operator
import struct
from collections.abc import Callable

from k8sbridge.scheduler import feasible

__all__ = ["CandidateQueue", "Ranking", "Rankings"]

#: How many ranking entries a group walks before it uses a heap of its own members.
WALK = 16
#: Whether a sub-ranking with one reader is left out of order (``Rankings.for_group``).
LAZY = True

_Key = tuple[float, int, int]  # (-score, tiebreak, agent index): smallest is best

_INDEX = operator.attrgetter("index")
_bisect_left = bisect.bisect_left  # module lookups, once: called per placement and ranking
_insort = bisect.insort
_pack = struct.Struct("<d").pack
_unpack = struct.Struct("<q").unpack
_SIGN = 1 << 63


def _ordered(value: float) -> int:
    """A non-negative int that orders as ``value`` among floats (not NaN; -0.0 is 0.0)."""
    bits: int
    (bits,) = _unpack(_pack(value + 0.0))
    return bits + _SIGN if bits >= 0 else -1 - bits  # negative: the larger |value|, the smaller


class Ranking:
    """Agents of the pass, best first; ``Rankings.update`` after an agent's score changed.

    The pass's main ranking holds every agent by its ``rank`` score; a sub-ranking holds the
    candidates of groups that share them and a static ``bonus`` (``scores``), by score plus
    bonus, so those groups too find their best among the first entries.

    An agent's place is its ``_Key`` (``key_of``), packed in one int that orders as the key
    does: the float's bits made monotone, then the tiebreak, then the index (``mask`` takes it
    back). Keeping 500 agents in order costs ~18 comparisons per placement and ranking; two
    ints compare several times faster than two tuples of a float and two ints."""

    __slots__ = ("order", "keys", "mask", "_tiebreak", "_ties", "_shift", "_heaps",
                 "bonus", "lazy", "current", "_agents", "_everyone", "_high")

    def __init__(
        self,
        *,
        agents: list[feasible.AgentState],
        tiebreak: list[int],
        size: int | None = None,
        bonus: list[float] | None = None,
        lazy: bool = False,
        everyone: list[feasible.AgentState] | None = None,
    ) -> None:
        self._tiebreak = tiebreak
        self._everyone = agents if everyone is None else everyone  # by index
        #: kept out of order (``order`` empty): its one reader finds its best in a heap
        self.lazy = lazy
        self.bonus = bonus
        count = len(agents) if size is None else size
        bits = max(count, len(tiebreak), 1).bit_length()  # tiebreak: a permutation
        self.mask = (1 << bits) - 1
        self._shift = 2 * bits
        #: a key's high bits (``_ordered(value) << _shift``) per value seen: a pass's scores
        #: take few distinct values (434 in 9,990 placements in the benchmark)
        self._high: dict[float, int] = {}
        # per agent, the heaps that hold it (an improved key is pushed to them)
        self._heaps: list[list[CandidateQueue]] = [[] for _ in range(count)]
        self.keys: list[int] = [-1] * count  # -1: not a member
        self._ties = [(tiebreak[i] << bits) | i for i in range(count)] if count else []
        self._agents = agents
        self._fill()
        self.order: list[int] = [] if lazy else sorted(self.keys[a.index] for a in agents)
        #: a member's key now: a lazy ranking's ``keys`` are not kept up
        #: (``Rankings.update`` skips it), so its key is worked out from the score when read
        self.current: Callable[[int], int] = self._fresh if lazy else self.keys.__getitem__

    def _fill(self) -> None:
        for a in self._agents:
            self.keys[a.index] = self._fresh(a.index)

    def _fresh(self, index: int) -> int:
        """The member's key for its agent's score now."""
        score = self._everyone[index].score
        bonus = self.bonus
        value = -score if bonus is None else -(score + bonus[index])
        high = self._high.get(value)
        if high is None:
            high = self._high[value] = _ordered(value) << self._shift
        return high | self._ties[index]

    def keep_in_order(self) -> None:
        """A lazy ranking gets a second reader: from now on it is kept in order."""
        if self.lazy:
            self.lazy = False
            self._fill()
            self.order = sorted(k for k in self.keys if k >= 0)
            self.current = self.keys.__getitem__

    def key_of(self, index: int) -> _Key:
        """A member's key as a tuple: its -score (+ bonus), then the tiebreak (a ranking kept in
        order follows its agent's score: ``Rankings.update`` moves it after every change)."""
        score = self._everyone[index].score
        value = -score if self.bonus is None else -(score + self.bonus[index])
        return (value, self._tiebreak[index], index)

    def first_value(self) -> float:
        """The best member's -score (+ bonus); the ranking is not empty."""
        return self.key_of(self.order[0] & self.mask)[0]

    def register(self, queue: CandidateQueue, indexes: set[int] | list[int]) -> None:
        for index in indexes:
            self._heaps[index].append(queue)


class Rankings:
    """The main ranking and the sub-rankings of the pass, one per (candidates, bonus).

    Each is built on first use (from the agents' scores then) and kept up from there: a
    pass whose groups all read sub-rankings (every group has a bonus when some agents carry
    PreferNoSchedule taints) never pays for keeping the main one in order."""

    __slots__ = ("_main", "_agents", "_tiebreak", "by_agent", "_lazy", "_scores", "_subs")

    def __init__(self, *, agents: list[feasible.AgentState], tiebreak: list[int]) -> None:
        self._agents = agents
        self._tiebreak = tiebreak
        self._main: Ranking | None = None
        #: per agent index, the rankings kept in order that hold it (``update`` moves it)
        self.by_agent: list[list[Ranking]] = [[] for _ in agents]
        #: per agent index, the lazy rankings that hold it (an improved score is pushed to
        #: their heaps), and its score as ``update`` last saw it
        self._lazy: list[list[Ranking]] = [[] for _ in agents]
        self._scores = [a.score for a in agents]
        self._subs: dict[tuple[object, ...], Ranking] = {}

    @property
    def main(self) -> Ranking:
        if self._main is None:
            self._main = Ranking(agents=self._agents, tiebreak=self._tiebreak)
            for rankings in self.by_agent:
                rankings.append(self._main)
        return self._main

    def for_group(
        self, candidates: list[feasible.AgentState], bonus: list[float] | None,
        *, heap: bool = False,
    ) -> Ranking:
        """The main ranking for a group that can use every agent and has no bonus; else a
        ranking that orders its candidates by score plus bonus: one already kept that holds
        them all with the same bonus on each (their keys are those a ranking of the group's
        own would keep: the group reads exactly its order), or a new
        sub-ranking of the candidates, shared by every group with the same ones. (On the
        main ranking, the first entries of a group with a bonus may well be the agents its
        bonus puts last, e.g. those with a PreferNoSchedule taint, emptiest as nobody else
        wants them either.)

        ``heap``: the group reads it only through ``CandidateQueue.best`` (no ``first_value``):
        a new sub-ranking is then lazy, not kept in order until a second group reads it (a
        group with a ranking of its own, e.g. one whose preferred node affinity no other
        group shares, re-keys the few agents that surface in its heap instead of moving
        every agent placed on in a sorted list: half the pass's ranking updates)."""
        if bonus is None and len(candidates) == len(self._agents):
            return self.main
        # (a group of a few candidates keeps a small ranking of its own: cheaper to keep in
        # order than the main one, which then nobody may need)
        indexes = tuple(map(_INDEX, candidates))
        key = (indexes, None if bonus is None else tuple(map(bonus.__getitem__, indexes)))
        sub = self._subs.get(key) or self._covering(candidates, bonus)
        if sub is None:
            sub = Ranking(agents=candidates, tiebreak=self._tiebreak, size=len(self._agents),
                          bonus=bonus, lazy=heap and LAZY, everyone=self._agents)
            for a in candidates:
                (self._lazy if sub.lazy else self.by_agent)[a.index].append(sub)
        elif sub.lazy:  # a second reader
            sub.keep_in_order()
            for a in candidates:
                self._lazy[a.index].remove(sub)
                self.by_agent[a.index].append(sub)
        self._subs[key] = sub
        return sub

    def _covering(
        self, candidates: list[feasible.AgentState], bonus: list[float] | None
    ) -> Ranking | None:
        """A ranking kept already that holds every candidate with the group's bonus (no
        bonus counts as 0: s + 0.0 is s)."""
        kept = [] if self._main is None else [self._main]
        for ranking in dict.fromkeys([*kept, *self._subs.values()]):
            keys = ranking.keys
            theirs = ranking.bonus
            if all(keys[a.index] >= 0
                   and (0.0 if theirs is None else theirs[a.index])
                   == (0.0 if bonus is None else bonus[a.index])
                   for a in candidates):
                return ranking
        return None

    def update(self, agent: feasible.AgentState) -> None:
        """``agent``'s score changed: each ranking kept in order that holds it moves it
        (written out in one method: this runs after every placement); a lazy one is left as
        it is (its key is worked out when read), unless the score rose: then the agent is
        pushed to its reader's heap, which may hold it with a worse key."""
        index = agent.index
        score = agent.score
        if score > self._scores[index]:  # (its key in a lazy ranking improved, or stayed)
            for ranking in self._lazy[index]:
                for queue in ranking._heaps[index]:
                    queue.push(index)
        self._scores[index] = score
        for ranking in self.by_agent[index]:
            bonus = ranking.bonus
            value = -score if bonus is None else -(score + bonus[index])
            high = ranking._high.get(value)  # (``_fresh``, written out)
            if high is None:
                high = ranking._high[value] = _ordered(value) << ranking._shift
            new = high | ranking._ties[index]
            keys = ranking.keys
            old = keys[index]
            if new == old:
                continue
            order = ranking.order
            # (a placement moves an agent tens of places, nearly always: no check whether it
            # stays between its neighbours; the entries before its old place are all better
            # than its new key when it got worse, those after it all worse when it improved)
            at = _bisect_left(order, old)
            del order[at]
            keys[index] = new
            if new > old:
                _insort(order, new, at)
            else:
                _insort(order, new, 0, at)
                for queue in ranking._heaps[index]:
                    queue.push(index)


class CandidateQueue:
    """The candidates of one pod group (or class of agents), read through a ``Ranking``."""

    __slots__ = ("_ranking", "_heap", "members", "rejections", "_lazy")

    def __init__(self, *, agents: list[feasible.AgentState], ranking: Ranking) -> None:
        self._ranking = ranking
        self._heap: list[int] | None = None
        self._lazy = False  # the heap was built because the ranking was lazy
        self.members = set(map(_INDEX, agents))
        self.rejections: list[tuple[int, feasible.Rejection]] = []  # (agent index, why)

    def __len__(self) -> int:
        return len(self.members)

    def best(self, agents: list[feasible.AgentState]) -> feasible.AgentState | None:
        """The highest-ranked member (it stays a member until ``drop``)."""
        members = self.members
        order = self._ranking.order  # (empty while the ranking is lazy)
        mask = self._ranking.mask
        if order and (index := order[0] & mask) in members:
            return agents[index]  # the best of all agents is a member: most often
        if not members:
            return None
        if self._lazy and not self._ranking.lazy:
            self._lazy = False  # its ranking is kept in order now (a second reader): walk it
            self._heap = None
        if self._heap is None and len(members) * WALK >= len(order):
            # the best agents are rarely full: the first entries of the ranking usually hold
            # a member (when members are not too rare); once they did not, a heap of the
            # members (kept lazily) answers
            for key in itertools.islice(order, 1, WALK):
                if (index := key & mask) in members:
                    return agents[index]
        current = self._ranking.current
        if self._heap is None:
            self._lazy = self._ranking.lazy
            self._heap = list(map(current, members))
            heapq.heapify(self._heap)
            self._ranking.register(self, list(members))
        heap = self._heap
        while heap:
            key = heap[0]
            index = key & mask
            if index not in members:
                heapq.heappop(heap)
                continue
            now = current(index)
            if key != now:
                heapq.heapreplace(heap, now)
            else:
                return agents[index]
        return None  # pragma: no cover - every member has an entry

    def push(self, index: int) -> None:
        if self._heap is not None and index in self.members:
            heapq.heappush(self._heap, self._ranking.current(index))

    def add(self, index: int) -> None:
        """A member joins (an agent moving into this class of a group)."""
        if index in self.members:
            return
        self.members.add(index)
        if self._heap is not None:
            heapq.heappush(self._heap, self._ranking.current(index))
            self._ranking.register(self, [index])

    def remove(self, index: int) -> None:
        self.members.discard(index)

    def drop(self, agent: feasible.AgentState, rejection: feasible.Rejection) -> None:
        self.members.discard(agent.index)
        self.rejections.append((agent.index, rejection))

