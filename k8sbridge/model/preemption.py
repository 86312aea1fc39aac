"""Preemption as kube-scheduler's DefaultPreemption plugin decides it, on plain values.

Why pure and apart: which running pods a pending pod may evict is a rule users read about in
Kubernetes' documentation ("Pod Priority and Preemption") and expect to hold here too, so it is
written once as kube-scheduler has it and tested from tables:

* a pod with ``preemptionPolicy: Never`` never preempts;
* on each node that passed the pod's static checks, every pod of lower priority is removed;
  if the pending pod still does not fit (resources, pod count, host ports, and the filters
  that count pods: inter-pod affinity and anti-affinity, DoNotSchedule topology spread, which
  the caller gives as ``refusal``), the node is no candidate. Otherwise the removed pods
  are put back one by one, the most important first (higher priority, then the one that
  started earlier), those whose eviction would violate a PodDisruptionBudget before the
  others, and every pod that still fits stays: the rest are the node's victims;
* among candidate nodes the one chosen has the fewest PDB violations, then the lowest
  highest victim priority, the smallest sum of victim priorities, the fewest victims, the
  latest start among its most important victims, and then the first in the given order.

Only pods the caller lists (the bridge's own, ``PlacedPod``) can be victims: another
framework's tasks are never among them. Resources are in thousandths, as placement counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from k8sbridge.model import affinity, ids
from k8sbridge.model.podspec import LabelSelector
from k8sbridge.model.quantity import PodSpecError

__all__ = [
    "CONDITION_MESSAGE",
    "DISRUPTION_TARGET",
    "EVENT_REASON",
    "PREEMPTION_REASON",
    "Candidate",
    "DisruptionBudget",
    "NodeState",
    "Refusal",
    "Victim",
    "event_message",
    "parse_budget",
    "pick",
    "select_victims",
]

DISRUPTION_TARGET = "DisruptionTarget"
PREEMPTION_REASON = "PreemptionByScheduler"
#: The victim's condition message: ``<schedulerName>`` + this.
CONDITION_MESSAGE = ": preempting to accommodate a higher priority pod"
EVENT_REASON = "Preempted"
_PRIORITY_OFFSET = 2**31  # kube-scheduler adds MaxInt32 + 1 so negative priorities sum right


def event_message(*, preemptor_uid: str, node_name: str) -> str:
    """The ``Preempted`` event on each victim, in kube-scheduler's words."""
    return f"Preempted by pod {preemptor_uid} on node {node_name}"


@dataclasses.dataclass(frozen=True, slots=True)
class DisruptionBudget:
    """What preemption reads of a policy/v1 PodDisruptionBudget."""

    namespace: str
    selector: LabelSelector
    allowed: int  # status.disruptionsAllowed
    disrupted: frozenset[str] = frozenset()  # status.disruptedPods (names)

    def covers(self, *, namespace: str, labels: Mapping[str, str]) -> bool:
        """An empty selector covers nothing here (kube-scheduler skips it)."""
        sel = self.selector
        if namespace != self.namespace or not (sel.match_labels or sel.match_expressions):
            return False
        return sel.matches(labels)


def parse_budget(raw: Mapping[str, Any]) -> DisruptionBudget | None:
    """A budget from its JSON; None when it has no selector or one that does not parse."""
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    if not isinstance(spec, Mapping) or spec.get("selector") is None:
        return None
    try:
        selector = affinity.parse_label_selector(spec["selector"], what="spec.selector",
                                                 null_selects_nothing=True)
    except PodSpecError:
        return None
    allowed = status.get("disruptionsAllowed") if isinstance(status, Mapping) else 0
    disrupted = status.get("disruptedPods") if isinstance(status, Mapping) else None
    return DisruptionBudget(
        namespace=str(meta.get("namespace") or "default") if isinstance(meta, Mapping)
        else "default",
        selector=selector,
        allowed=allowed if isinstance(allowed, int) else 0,
        disrupted=frozenset(str(k) for k in disrupted) if isinstance(disrupted, Mapping)
        else frozenset(),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Victim:
    """A running pod that could be preempted: who it is and what it holds."""

    key: ids.PodKey
    uid: ids.PodUid
    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...]
    priority: int
    started: float  # ordering only: earlier started is more important
    held: tuple[tuple[str, int], ...]  # thousandths, executor included
    host_ports: tuple[tuple[int, str], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class NodeState:
    """One candidate node: what is free there now and the pods that run there."""

    index: int  # the caller's own index of the node (returned in ``Candidate``)
    free: Mapping[str, int]
    pods: Sequence[Victim]
    max_pods: int | None = None
    pod_count: int = 0  # pods there now (running and placed this pass)
    #: host ports the node can give: offered now (held by a victim is added here)
    offered_ports: frozenset[int] = frozenset()


class Refusal(Protocol):
    """The node's other filters: why the pod does not fit with ``removed`` gone, or None.
    ``concerns``: could this pod's presence change the answer (if not, it is not asked)?"""

    def concerns(self, victim: Victim) -> bool: ...

    def __call__(self, removed: Sequence[Victim]) -> str | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    index: int
    victims: tuple[Victim, ...]  # most important first
    violations: int


def _fits(need: Mapping[str, int], ports: Sequence[tuple[int, str]], node: NodeState,
          kept: Sequence[Victim], removed: Sequence[Victim]) -> bool:
    """Does the pod fit on ``node`` once ``removed`` are gone (``kept`` stay)?"""
    freed: dict[str, int] = {}
    for v in removed:
        for name, amount in v.held:
            freed[name] = freed.get(name, 0) + amount
    for name, amount in need.items():
        if node.free.get(name, 0) + freed.get(name, 0) < amount:
            return False
    if node.max_pods is not None and node.pod_count - len(removed) + 1 > node.max_pods:
        return False
    if ports:
        taken = {p for v in kept for p in v.host_ports}
        given = {port for v in removed for port, _ in v.host_ports} | node.offered_ports
        for port, proto in ports:
            if (port, proto) in taken or port not in given:
                return False
    return True


def _importance(v: Victim) -> tuple[int, float]:
    return (-v.priority, v.started)  # sorted ascending: the most important first


def _split_by_budgets(
    victims: Sequence[Victim], budgets: Sequence[DisruptionBudget]
) -> tuple[list[Victim], list[Victim]]:
    """(violating, not violating), each in the given order (``filterPodsWithPDBViolation``)."""
    allowed = [b.allowed for b in budgets]
    violating: list[Victim] = []
    others: list[Victim] = []
    for v in victims:
        labels = dict(v.labels)
        broken = False
        for i, budget in enumerate(budgets):
            if not budget.covers(namespace=v.namespace, labels=labels):
                continue
            if v.name in budget.disrupted:
                continue  # already counted by the disruption controller
            allowed[i] -= 1
            if allowed[i] < 0:
                broken = True
        (violating if broken else others).append(v)
    return violating, others


def _room(need: Mapping[str, int], free: Mapping[str, int], freed: Mapping[str, int],
          less: Mapping[str, int]) -> bool:
    return all(free.get(n, 0) + freed.get(n, 0) - less.get(n, 0) >= amount
               for n, amount in need.items())


def select_victims(
    *,
    priority: int,
    need: Mapping[str, int],
    ports: Sequence[tuple[int, str]] = (),
    node: NodeState,
    budgets: Sequence[DisruptionBudget] = (),
    refusal: Refusal | None = None,
) -> Candidate | None:
    """The fewest, least important pods of ``node`` whose eviction lets a pod of
    ``priority`` needing ``need`` fit there (``selectVictimsOnNode``), or None.

    ``refusal`` is asked only once resources and ports fit: first with every pod of lower
    priority gone, then once per pod it concerns that might be reprieved, with the pods still
    removed (reprieving a pod it does not concern leaves its answer as it was: fits)."""
    lower = [v for v in node.pods if v.priority < priority]
    if not lower:
        return None
    freed: dict[str, int] = {}
    for v in lower:
        for name, amount in v.held:
            freed[name] = freed.get(name, 0) + amount
    if not _room(need, node.free, freed, {}):
        return None  # (checked first: most nodes are no candidate, and cheaply so)
    lower.sort(key=_importance)
    higher = [v for v in node.pods if v.priority >= priority]
    if ports and not _fits(need, ports, node, higher, lower):
        return None
    limit = node.max_pods
    gone = len(lower)
    if limit is not None and node.pod_count - gone + 1 > limit:
        return None
    if refusal is not None and refusal(lower) is not None:
        return None
    violating, others = _split_by_budgets(lower, budgets)
    kept = list(higher)
    removed = list(lower)
    victims: list[Victim] = []
    violations = 0
    for group, breaks in ((violating, True), (others, False)):
        for v in group:
            held = dict(v.held)
            fits = _room(need, node.free, freed, held) and (
                limit is None or node.pod_count - (gone - 1) + 1 <= limit)
            if fits and ports:
                removed.remove(v)
                fits = _fits(need, ports, node, [*kept, v], removed)
                removed.append(v)
            if fits and refusal is not None and refusal.concerns(v):
                fits = refusal([r for r in removed if r is not v]) is None
            if fits:  # reprieved
                kept.append(v)
                removed.remove(v)
                gone -= 1
                for name, amount in held.items():
                    freed[name] -= amount
                continue
            victims.append(v)
            violations += breaks
    victims.sort(key=_importance)
    return Candidate(index=node.index, victims=tuple(victims), violations=violations)


def pick(candidates: Sequence[Candidate]) -> Candidate | None:
    """``pickOneNodeForPreemption``: the candidate whose victims hurt least."""
    def key(c: Candidate) -> tuple[int, int, int, int, float]:
        top = c.victims[0].priority if c.victims else -_PRIORITY_OFFSET
        total = sum(v.priority + _PRIORITY_OFFSET for v in c.victims)
        # the earliest start among the most important victims: the later, the better
        earliest = min((v.started for v in c.victims if v.priority == top), default=0.0)
        return (c.violations, top, total, len(c.victims), -earliest)

    best: Candidate | None = None
    best_key: tuple[int, int, int, int, float] | None = None
    for c in candidates:
        k = key(c)
        if best_key is None or k < best_key:
            best, best_key = c, k
    return best
