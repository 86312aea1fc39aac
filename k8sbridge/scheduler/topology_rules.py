"""The rules ``topology`` applies, apart from its bookkeeping: kube-scheduler's default spread
constraints, which nodes a constraint counts, which pods a tracker counts, how raw spread and
inter-pod affinity scores are normalised, and which existing pods' terms score others.

Why a module of its own: these are pure functions of a pod, a node and some counts, read by
``topology``'s classes per placement and by ``stack``'s set-up; ``topology`` keeps the counts
and the classes of agents (it grew past the size of one module).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from k8sbridge.model import cluster, pods
from k8sbridge.scheduler import feasible, rank

__all__ = ["DEFAULT_CONSTRAINTS", "HOSTNAME", "Matcher", "constraints_of", "eligible",
           "normalise_inter", "normalise_spread", "scoring_terms", "selects", "term_matcher"]

HOSTNAME = cluster.LABEL_HOSTNAME
_EVERYTHING = pods.LabelSelector()
Matcher = Callable[[str, Mapping[str, str], str], bool]

#: kube-scheduler's system default constraints (for pods of a controller, counted by it)
DEFAULT_CONSTRAINTS = (
    pods.SpreadConstraint(max_skew=3, topology_key=HOSTNAME, hard=False,
                          selector=_EVERYTHING, same_owner=True),
    pods.SpreadConstraint(max_skew=5, topology_key=cluster.LABEL_ZONE, hard=False,
                          selector=_EVERYTHING, same_owner=True),
)


def constraints_of(
    pod: pods.PodRequest, *, defaults: Sequence[pods.SpreadConstraint]
) -> tuple[tuple[pods.SpreadConstraint, ...], bool]:
    """(the constraints that apply, whether they are the pod's own)."""
    if pod.spread:
        return pod.spread, True
    if pod.owner_uid and defaults:
        return tuple(defaults), False
    return (), True



def selects(
    selector: pods.LabelSelector, namespace: str, *, same_owner: str | None
) -> Matcher:
    if same_owner is not None:
        return lambda ns, labels, owner: owner == same_owner
    return lambda ns, labels, owner: ns == namespace and selector.matches(labels)


def term_matcher(
    terms: Sequence[pods.PodAffinityTerm],
    namespace_labels: Mapping[str, Mapping[str, str]] | None,
) -> Matcher:
    return lambda ns, labels, owner: all(
        t.selects(namespace=ns, labels=labels, namespace_labels=namespace_labels) for t in terms
    )



def eligible(
    agent: feasible.AgentState,
    pod: pods.PodRequest,
    c: pods.SpreadConstraint,
    keys: Sequence[str],
    implicit: Sequence[pods.Toleration],
) -> bool:
    labels = agent.view.labels
    if any(k not in labels for k in keys) or c.topology_key not in labels:
        return False
    if c.honour_node_affinity and feasible.check_node_affinity(pod, agent) is not None:
        return False
    return not (c.honour_node_taints
                and feasible.check_taints(pod, agent, implicit=implicit) is not None)


def normalise_spread(raw: list[tuple[int, bool]]) -> list[int]:
    scores = [s for s, ignored in raw if not ignored]
    if not scores:
        return [0] * len(raw)
    top, low = max(scores), min(scores)
    out = []
    for s, ignored in raw:
        if ignored:
            out.append(0)
        elif top == 0:
            out.append(rank.MAX_NODE_SCORE)
        else:
            out.append(rank.MAX_NODE_SCORE * (top + low - s) // top)
    return out


def normalise_inter(raw: list[int]) -> list[int]:
    top = max([0, *raw])
    low = min([0, *raw])
    diff = top - low
    if diff <= 0:
        return [0] * len(raw)
    return [int(rank.MAX_NODE_SCORE * (s - low) / diff) for s in raw]


def scoring_terms(
    agents: Sequence[feasible.AgentState], pending: Sequence[pods.PodRequest]
) -> list[tuple[feasible.AgentState | None, pods.PodAffinityTerm, int]]:
    """Existing pods' terms that score other pods (required affinity: weight 1, preferred:
    ±weight) with the agent they run on; pending pods' terms with None (they count once
    placed). A pod no term selects is scored without them."""
    out: list[tuple[feasible.AgentState | None, pods.PodAffinityTerm, int]] = []
    for agent in agents:
        for placed in agent.view.pods:
            out += [(agent, t, 1) for t in placed.pod_affinity]
            out += [(agent, t, t.weight) for t in placed.preferred_affinity]
            out += [(agent, t, -t.weight) for t in placed.preferred_anti_affinity]
    pending_terms = dict.fromkeys(  # replicas share their terms: each once
        t for pod in pending
        for t in (*pod.pod_affinity, *pod.preferred_pod_affinity, *pod.preferred_anti_affinity))
    out += [(None, t, 1) for t in pending_terms]
    return out
