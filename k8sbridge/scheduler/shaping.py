"""Offers shaped by demand: what the pending pods need, said to the master before it offers.

Why: a framework that declines what it cannot use still makes the master offer it again, to it
first, and holds it away from Marathon meanwhile. Mesos ≥ 1.11 lets a framework say up front
which agents and which amounts can be of use: ``offer_constraints`` (attribute predicates per
role; groups OR-ed, the constraints of a group AND-ed) and ``min_allocatable_resources`` (an
agent's allocatable share must hold at least one of the given quantity sets). This module
computes both from the pending pods, purely; the loop sends them with UPDATE_FRAMEWORK.

Safety first: a shape may only ever be looser than what the pods need, never tighter (a pod
that fits an agent must still get that agent's offers). So a nodeSelector becomes a
constraint only for keys that are the agents' own (an attribute, or the zone/region labels)
and that no user changed on any Node; a pod with no such key (or with no selector) lifts the
constraints altogether; node affinity is not expressed (looser); amounts are each pod's
request plus the executor's overhead, and past ``MAX_ALTERNATIVES`` shapes only their
componentwise minimum; a bound pod (a relaunch) lifts the whole shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from k8sbridge.model import cluster
from k8sbridge.model import pods as model_pods

__all__ = ["MAX_ALTERNATIVES", "AgentLabels", "Constraint", "Shape", "shape"]

MAX_ALTERNATIVES = 8
# label key -> the Mesos pseudo-attribute it is (the Node's fault-domain labels)
PSEUDO = {cluster.LABEL_ZONE: "ZONE", cluster.LABEL_REGION: "REGION"}
_SCALARS = ("cpus", "mem", "disk", "gpus")

# ("attribute" | "pseudo", name, value): the agent's attribute (or ZONE/REGION) equals value
Constraint = tuple[str, str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class AgentLabels:
    """One known agent: the labels its Node has now (users may have edited them) and the
    labels the agent itself gives it (attributes, zone, region, hostname...)."""

    node_labels: Mapping[str, str]
    own_labels: Mapping[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class Shape:
    #: OR-ed groups of AND-ed constraints; () = no constraint (every agent may be of use)
    groups: tuple[tuple[Constraint, ...], ...] = ()
    #: alternatives of minimum quantities (name, amount); () = no filter
    minimums: tuple[tuple[tuple[str, float], ...], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.groups and not self.minimums


NO_SHAPE = Shape()


def shape(pending: Sequence[model_pods.PodRequest], *, agents: Iterable[AgentLabels],
          overhead: Mapping[str, float]) -> Shape:
    """The loosest offer shape that still leaves out only what no pending pod can use."""
    if not pending or any(pod.node_name for pod in pending):
        # a bound pod is a relaunch (perhaps of one container, of a pod whose others still
        # use its agent) or was bound by a user: its agent's offers, whatever their size
        return NO_SHAPE
    usable = _agent_keys(agents)
    return Shape(groups=_groups(pending, usable), minimums=_minimums(pending, overhead))


def _agent_keys(agents: Iterable[AgentLabels]) -> set[str]:
    """Label keys that mean the same on every Node as on its agent: own keys (attributes,
    zone, region) that no user set, removed or changed on any Node."""
    listed = list(agents)
    own = {k for a in listed for k in a.own_labels}
    candidates = {k for k in own if k in PSEUDO or _is_attribute_key(k)}
    return {k for k in candidates
            if all(a.node_labels.get(k) == a.own_labels.get(k) for a in listed)}


def _is_attribute_key(key: str) -> bool:
    # the bridge's own fixed labels are prefixed (kubernetes.io/..., node.kubernetes.io/...);
    # agent attributes become unprefixed labels (``model.cluster.node_labels``)
    return "/" not in key


def _groups(pending: Sequence[model_pods.PodRequest],
            usable: set[str]) -> tuple[tuple[Constraint, ...], ...]:
    groups: dict[tuple[Constraint, ...], None] = {}
    for pod in pending:
        group = tuple(sorted(
            ("pseudo", PSEUDO[k], v) if k in PSEUDO else ("attribute", k, v)
            for k, v in pod.node_selector if k in usable))
        if not group:
            return ()  # this pod may run on any agent: no agent may be left out
        groups[group] = None
    return tuple(groups)


def _minimums(pending: Sequence[model_pods.PodRequest],
              overhead: Mapping[str, float]) -> tuple[tuple[tuple[str, float], ...], ...]:
    shapes: dict[tuple[tuple[str, float], ...], None] = {}
    for pod in pending:
        need = tuple((n, round(pod.scalar(n) + overhead.get(n, 0.0), 3)) for n in _SCALARS
                     if pod.scalar(n) + overhead.get(n, 0.0) > 0)
        if not need:
            return ()
        shapes[need] = None
    if len(shapes) <= MAX_ALTERNATIVES:
        return tuple(shapes)
    names = set.intersection(*(set(dict(s)) for s in shapes))
    least = tuple((n, min(dict(s)[n] for s in shapes)) for n in _SCALARS if n in names)
    return (least,) if least else ()
