"""Ranking: how good is a feasible agent? Scores depend on the agent's state only.

Why agent-only scores: a score that does not depend on the pod gives one order of all agents
for the whole pass, updated for just the agent a placement changed (see ``select``), which is
what makes 10,000 pods against 500 offers cheap. Both strategies use the free share of cpu and
memory, normalised by the agent's capacity (its total when the view knows it, else what it
offered at the start of the pass), the quantity kube-scheduler's LeastAllocated and
MostAllocated use:

* ``spread`` (default): prefer the agent with the largest free share → pods fan out;
* ``binpack``: prefer the agent with the smallest free share → agents fill up one by one,
  leaving whole agents free for big pods and for other frameworks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeAlias

from k8sbridge.scheduler import feasible

__all__ = ["STRATEGIES", "Scorer", "Strategy", "binpack", "free_share", "spread"]

Strategy: TypeAlias = Literal["spread", "binpack"]
Scorer: TypeAlias = Callable[[feasible.AgentState], float]

_SCORED = ("cpus", "mem")


def free_share(agent: feasible.AgentState) -> float:
    """Mean over cpu and memory of free / capacity, in [0, 1]."""
    total = 0.0
    capacity = agent.capacity
    single = agent.pools[0].free if len(agent.pools) == 1 else None
    for name in _SCORED:
        cap = capacity.get(name, 0)
        if cap > 0:
            free = single.get(name, 0) if single is not None else agent.free(name)
            total += min(1.0, free / cap)
    return total / len(_SCORED)


def spread(agent: feasible.AgentState) -> float:
    return free_share(agent)


def binpack(agent: feasible.AgentState) -> float:
    return 1.0 - free_share(agent)


STRATEGIES: dict[str, Scorer] = {"spread": spread, "binpack": binpack}
