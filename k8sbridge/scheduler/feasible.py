"""Feasibility: can this pod go to this agent at all? Checkers answer a constant reason or None.

Why constants: every rejection must reach the user ("why is my pod Pending?" is the first pain
point of every Mesos bridge before this one). Reasons are kube-scheduler's own ErrReason texts
(so ``kubectl describe`` reads as on any cluster), counted per pass and rendered by
``plan.Explanation``: "1 node(s) had untolerated taint {dedicated: gpu}", "2 Insufficient
cpu (requested 4, largest offer 2)".

Two kinds of checkers, as in Nomad's feasible/fit split:

* static ones depend only on the pod and the Node's labels, taints, cordon and name (kube's
  NodeName, NodeUnschedulable, TaintToleration, NodeAffinity); ``stack`` runs them once per
  group of identical pods and agent;
* dynamic ones (resources, host ports, pod anti-affinity) depend on what this pass already
  placed. They are monotonic: once an agent fails one for a pod group it stays failed for the
  rest of the pass (placements only take resources away), which lets ``select`` drop it.
  The constraints that are not monotonic (pod affinity, topology spread) are ``topology``'s.

``AgentState``/``Pool`` are the mutable working state of one pass (owned by ``stack.place``),
with scalars in integer thousandths so arithmetic is exact and fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from k8sbridge.model import cluster, ids, pods
from k8sbridge.model import resources as res

__all__ = [
    "REASON_ANTI_AFFINITY",
    "REASON_EXISTING_ANTI_AFFINITY",
    "REASON_HOST_PORT_NOT_OFFERED",
    "REASON_HOST_PORT_TAKEN",
    "REASON_INSUFFICIENT",
    "REASON_NODE_AFFINITY",
    "REASON_NODE_NAME",
    "REASON_NODE_SELECTOR",
    "REASON_NO_OFFER",
    "REASON_POD_AFFINITY",
    "REASON_SPREAD",
    "REASON_SPREAD_LABEL",
    "REASON_TAINT",
    "REASON_TOO_MANY_PODS",
    "REASON_UNSCHEDULABLE",
    "UNSCHEDULABLE_TAINT",
    "AgentState",
    "Domains",
    "Pool",
    "Rejection",
    "Shared",
]

# kube-scheduler's own words (its plugins' ErrReason constants), so ``kubectl describe``
# reads as on any cluster; the bridge's details (which taint, how much was offered) follow.
REASON_INSUFFICIENT = {
    "cpus": "Insufficient cpu",
    "mem": "Insufficient memory",
    "disk": "Insufficient ephemeral-storage",
    "gpus": "Insufficient nvidia.com/gpu",
}
REASON_TOO_MANY_PODS = "Too many pods"
REASON_NO_OFFER = "node(s) had no offer from the Mesos master"  # the bridge's own
REASON_HOST_PORT_NOT_OFFERED = "node(s) didn't have free ports for the requested pod ports"
REASON_HOST_PORT_TAKEN = REASON_HOST_PORT_NOT_OFFERED
REASON_NODE_NAME = "node(s) didn't match the requested node name"
REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_NODE_SELECTOR = REASON_NODE_AFFINITY
REASON_TAINT = "node(s) had untolerated taint"  # + " {key: value}"
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
REASON_POD_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_SPREAD = "node(s) didn't match pod topology spread constraints"
REASON_SPREAD_LABEL = REASON_SPREAD + " (missing required label)"

#: the taint whose toleration lets a pod onto a cordoned node (NodeUnschedulable)
UNSCHEDULABLE_TAINT = cluster.Taint(key="node.kubernetes.io/unschedulable", effect="NoSchedule")

SCALAR_ORDER = ("cpus", "mem", "disk", "gpus")
MILLI = 1000


def to_milli(value: float) -> int:
    return round(value * MILLI)


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str = ""


# --------------------------------------------------------------------------------------------
# Working state of one pass


class Shared:
    """What the pools of one pass share: carved pieces by template and size, and a number
    per distinct pool signature."""

    __slots__ = ("pieces", "signatures")

    def __init__(self) -> None:
        self.pieces: dict[tuple[object, ...], dict[int, res.Resource]] = {}
        self.signatures: dict[tuple[object, ...], int] = {}


class ScalarEntry:
    """Part of a pool's scalar: a template ``Resource`` (reservation, role) and what is left."""

    __slots__ = ("template", "left", "pieces", "offer", "key")

    def __init__(
        self,
        template: res.Resource,
        left: int,
        offer: ids.OfferId,
        shared: dict[tuple[object, ...], dict[int, res.Resource]] | None = None,
    ) -> None:
        self.template = template
        self.left = left
        self.offer = offer  # the offer this part comes from (an assignment's ``sources``)
        # what a piece is made of besides its size: entries of equal keys (any agent's) give
        # equal pieces
        self.key = (template.name, template.reservations, template.allocation_role,
                    template.extra)
        # carved pieces by size: identical pods take identical pieces, and Resource values
        # are immutable, so one object serves them all, on every agent of the pass (the hot
        # path of a large pass)
        self.pieces: dict[int, res.Resource] = (
            {} if shared is None else shared.setdefault(self.key, {}))

    def piece(self, milli: int) -> res.Resource:
        found = self.pieces.get(milli)
        if found is None:
            tmpl = self.template
            found = self.pieces[milli] = res.Resource(
                tmpl.name,
                "SCALAR",
                milli / MILLI,
                (),
                frozenset(),
                tmpl.reservations,
                tmpl.allocation_role,
                tmpl.extra,
            )
        return found


class PortsEntry:
    __slots__ = ("template", "ranges", "offer")

    def __init__(
        self, template: res.Resource, ranges: tuple[res.Range, ...], offer: ids.OfferId
    ) -> None:
        self.template = template
        self.ranges = ranges
        self.offer = offer


class Pool:
    """The resources of one agent's offers that share an allocation role (one ACCEPT unit).

    ``scalars`` keeps, per name, its entries with reserved ones first (a framework should
    spend its reservations before the shared pool); ``free`` is the per-name total for quick
    fit checks.
    """

    __slots__ = ("role", "offer_ids", "scalars", "free", "ports", "used", "simple", "touched",
                 "signature", "firsts")

    def __init__(
        self,
        *,
        role: str | None,
        offers: Sequence[cluster.OfferView],
        shared: Shared | None = None,
    ) -> None:
        self.role = role
        self.offer_ids = tuple(o.id for o in offers)
        self.scalars: dict[str, list[ScalarEntry]] = {}
        self.ports: list[PortsEntry] = []
        self.used = False
        #: offers the carves since the caller last cleared it took from
        self.touched: set[ids.OfferId] = set()
        items = [(r, o.id) for o in offers for r in o.resources]
        items.sort(key=lambda item: 0 if item[0].reservations else 1)
        for r, offer in items:
            if r.type == "SCALAR":
                self.scalars.setdefault(r.name, []).append(
                    ScalarEntry(r, to_milli(r.scalar), offer,
                                None if shared is None else shared.pieces)
                )
            elif r.type == "RANGES" and r.name == "ports":
                self.ports.append(PortsEntry(r, r.ranges, offer))
        self.free: dict[str, int] = {}
        #: each scalar's first entry (a simple pool's only one)
        self.firsts: dict[str, ScalarEntry] = {}
        # one entry per scalar: a carve of a given size always yields the same pieces (and
        # ``free`` is what each entry has left: their ``left`` is not kept from then on)
        self.simple = True
        for name, entries in self.scalars.items():  # (one loop: 500 pools per pass)
            first = self.firsts[name] = entries[0]
            if len(entries) == 1:
                self.free[name] = first.left
            else:
                self.simple = False
                self.free[name] = sum(e.left for e in entries)
        # simple pools of equal signatures yield equal pieces for equal carves (a small int,
        # one per distinct signature of the pass: cheap to look up per placement)
        signature = (role, len(self.offer_ids),
                     tuple(sorted([(name, e.key) for name, e in self.firsts.items()])))
        if shared is None:
            self.signature = id(self)
        else:
            numbers = shared.signatures
            self.signature = numbers.setdefault(signature, len(numbers))

    def has_port(self, port: int) -> bool:
        for entry in self.ports:
            for begin, end in entry.ranges:
                if begin <= port <= end:
                    return True
        return False

    def carve_scalar(self, name: str, milli: int) -> list[res.Resource]:
        """Take ``milli`` of ``name`` (the caller checked ``free``); one Resource per entry."""
        self.free[name] -= milli
        entries = self.scalars[name]
        first = entries[0]
        if self.simple:  # its one entry has it (``free`` is its amount: ``left`` is not kept)
            self.touched.add(first.offer)
            return [first.piece(milli)]
        if first.left >= milli:  # the common case: one entry has it all
            first.left -= milli
            self.touched.add(first.offer)
            return [first.piece(milli)]
        out: list[res.Resource] = []
        for entry in entries:
            if milli <= 0:
                break
            if entry.left <= 0:
                continue
            take = min(entry.left, milli)
            entry.left -= take
            self.touched.add(entry.offer)
            milli -= take
            out.append(entry.piece(take))
        return out

    def carve_port(self, port: int) -> res.Resource:
        for entry in self.ports:
            if any(b <= port <= e for b, e in entry.ranges):
                entry.ranges = res.subtract_ranges(entry.ranges, ((port, port),))
                self.touched.add(entry.offer)
                return dataclasses.replace(entry.template, ranges=((port, port),))
        raise LookupError(f"port {port} not in pool")  # the caller checked has_port


class AgentState:
    """One agent during a pass: static facts from the view plus what this pass placed."""

    __slots__ = (
        "view",
        "index",
        "pools",
        "taken_ports",
        "capacity",
        "placed",
        "score",
        "room",
        "single",
        "cpu_cap",
        "mem_cap",
        "replayable",
    )

    def __init__(
        self,
        *,
        view: cluster.AgentView,
        index: int,
        shared: Shared | None = None,
    ) -> None:
        self.view = view
        self.index = index
        by_role: dict[str | None, list[cluster.OfferView]] = {}
        for offer in view.offers:
            by_role.setdefault(offer.allocation_role, []).append(offer)
        self.pools = [Pool(role=role, offers=offers, shared=shared)
                      for role, offers in by_role.items()]
        self.taken_ports: set[tuple[int, str]] = {p for pod in view.pods for p in pod.host_ports}
        if view.total is not None:
            totals = view.total.scalars()
            self.capacity = {n: to_milli(v) for n, v in totals.items()}
        else:
            self.capacity = {}
            for pool in self.pools:
                for name, free in pool.free.items():
                    self.capacity[name] = self.capacity.get(name, 0) + free
        #: the free scalars of the agent's only pool (None: several pools, or none)
        self.single = self.pools[0].free if len(self.pools) == 1 else None
        #: the signature of its only pool when that one is ``simple`` (a group's carve from
        #: a pool of that signature replays here: ``carve.replay``), else None
        self.replayable = (self.pools[0].signature
                           if self.single is not None and self.pools[0].simple else None)
        self.cpu_cap = self.capacity.get("cpus", 0)  # for ``rank``, after every placement
        self.mem_cap = self.capacity.get("mem", 0)
        self.placed = 0
        self.score = 0.0  # rank's score for the current state, kept by stack
        #: how many pods the pass may place here (the Node's pod limit), None: no limit
        self.room = None if view.max_pods is None else view.max_pods - len(view.pods)

    def free(self, name: str) -> int:
        if len(self.pools) == 1:
            return self.pools[0].free.get(name, 0)
        return sum(p.free.get(name, 0) for p in self.pools)

    def largest_pool_free(self, name: str) -> int:
        return max((p.free.get(name, 0) for p in self.pools), default=0)


# --------------------------------------------------------------------------------------------
# Static checkers (pod, agent) -> Rejection | None


def check_node_name(pod: pods.PodRequest, agent: AgentState) -> Rejection | None:
    if pod.node_name and pod.node_name != agent.view.node_name:
        return Rejection(REASON_NODE_NAME)
    return None


def tolerated(
    taint: cluster.Taint, pod: pods.PodRequest, implicit: Sequence[pods.Toleration]
) -> bool:
    return any(
        t.tolerates(key=taint.key, value=taint.value, effect=taint.effect)
        for t in (*pod.tolerations, *implicit)
    )


def check_unschedulable(
    pod: pods.PodRequest, agent: AgentState, *, implicit: Sequence[pods.Toleration]
) -> Rejection | None:
    """NodeUnschedulable: a cordoned Node takes only pods that tolerate
    ``node.kubernetes.io/unschedulable:NoSchedule`` (and pods already bound to it)."""
    if not agent.view.unschedulable or pod.node_name:
        return None
    if tolerated(UNSCHEDULABLE_TAINT, pod, implicit):
        return None
    return Rejection(REASON_UNSCHEDULABLE)


def check_taints(
    pod: pods.PodRequest,
    agent: AgentState,
    *,
    implicit: Sequence[pods.Toleration],
) -> Rejection | None:
    """TaintToleration's filter: every NoSchedule and NoExecute taint must be tolerated
    (PreferNoSchedule only lowers the score, ``scores``)."""
    if pod.node_name:
        return None  # bound by another scheduler: taints were its call
    for taint in agent.view.taints:
        if taint.effect not in ("NoSchedule", "NoExecute"):
            continue
        if tolerated(taint, pod, implicit):
            continue
        return Rejection(REASON_TAINT, str(taint))
    return None


def check_node_affinity(pod: pods.PodRequest, agent: AgentState) -> Rejection | None:
    """NodeAffinity's filter: nodeSelector and the required terms (OR-ed) on the Node's
    labels (the agent's attributes and what users added) and ``metadata.name``."""
    labels = agent.view.labels
    for key, value in pod.node_selector:
        if labels.get(key) != value:
            return Rejection(REASON_NODE_AFFINITY)
    if not pod.required_node_affinity:
        return None
    node_name = agent.view.node_name
    if any(t.matches(labels, node_name=node_name) for t in pod.required_node_affinity):
        return None
    return Rejection(REASON_NODE_AFFINITY)


def check_node_selector(pod: pods.PodRequest, agent: AgentState) -> Rejection | None:
    return check_node_affinity(pod, agent)


def check_has_offer(pod: pods.PodRequest, agent: AgentState) -> Rejection | None:
    return None if agent.pools else Rejection(REASON_NO_OFFER)


# --------------------------------------------------------------------------------------------
# Dynamic checkers (the Node's pod limit, ``AgentState.room``, is checked inline by ``stack``)


def fit_pool(
    need: Sequence[tuple[str, int]],
    ports: Sequence[tuple[int, str]],
    agent: AgentState,
) -> Pool | Rejection:
    """The first pool with room for ``need`` (thousandths) and ``ports``, or why none has."""
    pools = agent.pools
    if len(pools) == 1 and not ports:  # the common case, shorter
        free = pools[0].free
        for name, amount in need:
            if free.get(name, 0) < amount:
                return Rejection(REASON_INSUFFICIENT.get(name) or f"Insufficient {name}")
        return pools[0]
    first: Rejection | None = None
    for pool in agent.pools:
        free = pool.free
        short = None
        for name, amount in need:
            if free.get(name, 0) < amount:
                short = name
                break
        if short is not None:
            first = first or Rejection(
                REASON_INSUFFICIENT.get(short) or f"Insufficient {short}"
            )
            continue
        if ports:
            missing = next((p for p, _ in ports if not pool.has_port(p)), None)
            if missing is not None:
                first = first or Rejection(REASON_HOST_PORT_NOT_OFFERED)
                continue
        return pool
    return first or Rejection(REASON_NO_OFFER)


def check_ports_taken(
    ports: Sequence[tuple[int, str]], agent: AgentState
) -> Rejection | None:
    for port, proto in ports:
        if (port, proto) in agent.taken_ports:
            return Rejection(REASON_HOST_PORT_TAKEN)
    return None


PodEntry = tuple[str, dict[str, str], tuple[pods.PodAffinityTerm, ...]]


class Domains:
    """Pods per topology domain ((topologyKey, label value) → pods), for pod anti-affinity.

    Only the topology keys some term uses are indexed. ``kubernetes.io/hostname`` is one agent
    per domain; ``topology.kubernetes.io/zone`` spans every agent of the zone.
    """

    __slots__ = ("keys", "pods", "namespace_labels")

    def __init__(
        self,
        *,
        keys: set[str],
        namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.keys = keys
        self.pods: dict[tuple[str, str], list[PodEntry]] = {}
        self.namespace_labels = namespace_labels

    def add(self, agent: AgentState, entry: PodEntry) -> None:
        labels = agent.view.labels
        for key in self.keys:
            value = labels.get(key)
            if value is not None:
                self.pods.setdefault((key, value), []).append(entry)


def check_anti_affinity(
    pod: pods.PodRequest, agent: AgentState, domains: Domains
) -> Rejection | None:
    """Required pod anti-affinity, both directions, as kube-scheduler: the pod's terms must
    select no pod in the agent's domain, and no pod there may have a term selecting it. An
    agent without the topology label is outside every domain of that key."""
    labels = agent.view.labels
    own: dict[str, str] | None = None
    for key in domains.keys:
        value = labels.get(key)
        if value is None:
            continue
        for namespace, other_labels, other_terms in domains.pods.get((key, value), ()):
            for term in pod.anti_affinity:
                if term.topology_key == key and term.selects(
                    namespace=namespace, labels=other_labels,
                    namespace_labels=domains.namespace_labels,
                ):
                    return Rejection(REASON_ANTI_AFFINITY)
            for term in other_terms:
                if term.topology_key != key:
                    continue
                if own is None:
                    own = pod.labels_dict
                if term.selects(namespace=pod.namespace, labels=own,
                                namespace_labels=domains.namespace_labels):
                    return Rejection(REASON_EXISTING_ANTI_AFFINITY)
    return None
