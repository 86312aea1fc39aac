"""Pod-dependent scores that stay fixed for a pass: NodeAffinity and TaintToleration.

Why apart from ``rank``: these depend on the pod and on the Node's labels and taints only,
never on what the pass places, so a group of identical pods computes them once per agent
(its ``bonus``, see ``select``). Semantics and normalisation are kube-scheduler's:

* NodeAffinity (weight 2): the sum of the weights of the preferred terms the Node matches,
  normalised to 0-100 by the highest sum (``DefaultNormalizeScore``);
* TaintToleration (weight 3): the number of PreferNoSchedule taints the pod does not
  tolerate, normalised reversed (fewest → 100).

kube-scheduler normalises over the nodes that passed every filter for this pod; here over the
agents that passed the static filters (the dynamic ones, resources above all, change during
the pass).
"""

from __future__ import annotations

from collections.abc import Sequence

from k8sbridge.model import pods
from k8sbridge.scheduler import feasible, rank

__all__ = ["static_bonus"]


def _node_affinity(pod: pods.PodRequest, agent: feasible.AgentState) -> int:
    labels = agent.view.labels
    name = agent.view.node_name
    return sum(p.weight for p in pod.preferred_node_affinity
               if p.term.matches(labels, node_name=name))


def _intolerable(
    pod: pods.PodRequest, agent: feasible.AgentState, implicit: Sequence[pods.Toleration]
) -> int:
    count = 0
    for taint in agent.view.taints:
        if taint.effect != "PreferNoSchedule":
            continue
        if not any(
            (not t.effect or t.effect == "PreferNoSchedule")
            and t.tolerates(key=taint.key, value=taint.value, effect=taint.effect)
            for t in (*pod.tolerations, *implicit)
        ):
            count += 1
    return count


def _normalise(raw: dict[int, int], *, reverse: bool) -> dict[int, int]:
    """kube-scheduler's DefaultNormalizeScore (integer arithmetic, as in Go)."""
    top = max(raw.values(), default=0)
    if top == 0:
        return {i: rank.MAX_NODE_SCORE if reverse else 0 for i in raw}
    out = {}
    for i, value in raw.items():
        score = rank.MAX_NODE_SCORE * value // top
        out[i] = rank.MAX_NODE_SCORE - score if reverse else score
    return out


def static_bonus(
    pod: pods.PodRequest,
    candidates: Sequence[feasible.AgentState],
    *,
    size: int,
    implicit: Sequence[pods.Toleration],
) -> list[float] | None:
    """Per agent index (``size`` agents), the weighted NodeAffinity + TaintToleration score,
    or None when it is the same for every candidate (then it cannot change the order)."""
    if not candidates:
        return None
    total = dict.fromkeys((a.index for a in candidates), 0.0)
    if pod.preferred_node_affinity:
        raw = {a.index: _node_affinity(pod, a) for a in candidates}
        for i, score in _normalise(raw, reverse=False).items():
            total[i] += rank.WEIGHT_NODE_AFFINITY * score
    # agents without a PreferNoSchedule taint have none the pod does not tolerate
    tainted = dict.fromkeys(
        a for a in candidates for t in a.view.taints if t.effect == "PreferNoSchedule")
    if tainted:
        raw = dict.fromkeys(total, 0)
        for a in tainted:
            raw[a.index] = _intolerable(pod, a, implicit)
        for i, score in _normalise(raw, reverse=True).items():
            total[i] += rank.WEIGHT_TAINT_TOLERATION * score
    if len(set(total.values())) <= 1:
        return None
    bonus = [0.0] * size
    for i, value in total.items():
        bonus[i] = value
    return bonus
