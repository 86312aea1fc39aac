"""Ranking: how good is a feasible agent? Scores in kube-scheduler's units (0-100 per plugin,
times the plugin's default weight), split into what depends on the agent alone and what
depends on the pod too.

Agent-only (``Scorer``, one order of all agents for the whole pass, see ``select``): the
resource plugins, NodeResourcesFit (weight 1) and NodeResourcesBalancedAllocation (weight 1)
over cpu and memory:

* ``spread`` (default, kube-scheduler's LeastAllocated): mean over cpu and memory of
  free / capacity × 100 → pods fan out;
* ``binpack`` (MostAllocated): mean of used / capacity × 100 → agents fill up one by one,
  leaving whole agents free for big pods and for other frameworks;
* BalancedAllocation, added to ``spread``: (1 − the standard deviation of the used
  fractions) × 100 (``binpack`` leaves it out: filling agents one by one is its point).

Capacity is the agent's total when the view knows it, else what it offered at the start of
the pass. One difference from kube-scheduler, for speed: the fractions are those before the
pod lands (kube-scheduler adds the pod's request first); a pass of 10,000 pods keeps one
order of agents instead of one per pod shape.

Pod-dependent scores (NodeAffinity, TaintToleration, InterPodAffinity, PodTopologySpread)
live in ``scores`` and ``topology``; their weights are the ``WEIGHT_*`` constants here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeAlias

from k8sbridge.scheduler import feasible

__all__ = [
    "STRATEGIES",
    "WEIGHT_INTER_POD_AFFINITY",
    "WEIGHT_NODE_AFFINITY",
    "WEIGHT_SPREAD",
    "WEIGHT_TAINT_TOLERATION",
    "Scorer",
    "Strategy",
    "binpack",
    "free_share",
    "spread",
]

Strategy: TypeAlias = Literal["spread", "binpack"]
Scorer: TypeAlias = Callable[[feasible.AgentState], float]

MAX_NODE_SCORE = 100
# kube-scheduler's default plugin weights (its default profile)
WEIGHT_TAINT_TOLERATION = 3
WEIGHT_NODE_AFFINITY = 2
WEIGHT_INTER_POD_AFFINITY = 2
WEIGHT_SPREAD = 2
WEIGHT_FIT = 1
WEIGHT_BALANCED = 1


def _free_fractions(agent: feasible.AgentState) -> tuple[float, float]:
    """Free / capacity of cpu and of memory (0 when the agent has none of it)."""
    cpu_cap = agent.cpu_cap
    mem_cap = agent.mem_cap
    free = agent.single
    if free is not None:
        cpu_free = free.get("cpus", 0)
        mem_free = free.get("mem", 0)
    else:
        cpu_free, mem_free = agent.free("cpus"), agent.free("mem")
    # min(1.0, share) without the call
    cpu = (cpu if (cpu := cpu_free / cpu_cap) < 1.0 else 1.0) if cpu_cap > 0 else 0.0
    mem = (mem if (mem := mem_free / mem_cap) < 1.0 else 1.0) if mem_cap > 0 else 0.0
    return cpu, mem


def free_share(agent: feasible.AgentState) -> float:
    """Mean over cpu and memory of free / capacity, in [0, 1]."""
    cpu, mem = _free_fractions(agent)
    return (cpu + mem) / 2


def spread(agent: feasible.AgentState) -> float:
    cpu, mem = _free_fractions(agent)
    least = (cpu + mem) / 2 * MAX_NODE_SCORE
    # BalancedAllocation: 1 − the standard deviation of the used fractions (two resources:
    # half their distance)
    balanced = (1.0 - abs(cpu - mem) / 2) * MAX_NODE_SCORE
    return WEIGHT_FIT * least + WEIGHT_BALANCED * balanced


def binpack(agent: feasible.AgentState) -> float:
    cpu, mem = _free_fractions(agent)
    return (1.0 - (cpu + mem) / 2) * MAX_NODE_SCORE * WEIGHT_FIT


STRATEGIES: dict[str, Scorer] = {"spread": spread, "binpack": binpack}
