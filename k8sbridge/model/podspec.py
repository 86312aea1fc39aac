"""The frozen values a pod spec is parsed into (``PodRequest`` and its parts).

Why apart from the parser (``pods.py``): placement, the launcher and the status map read these
values on every pass and never parse; the parser is the only producer. Each value says what it
means in Mesos terms (scalars in Mesos units, host ports, constraints as placement reads them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from k8sbridge.model import ids

__all__ = [
    "DEFAULT_CONTAINER_DEFAULTS",
    "ContainerDefaults",
    "ContainerRequest",
    "HostPort",
    "LabelSelector",
    "LabelSelectorRequirement",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "PodAffinityTerm",
    "PodRequest",
    "QosClass",
    "RawPod",
    "RestartPolicy",
    "SelectorOperator",
    "SpreadConstraint",
    "Toleration",
    "WeightedNodeTerm",
]

RawPod: TypeAlias = Mapping[str, Any]
RestartPolicy: TypeAlias = Literal["Always", "OnFailure", "Never"]
QosClass: TypeAlias = Literal["Guaranteed", "Burstable", "BestEffort"]

# --------------------------------------------------------------------------------------------
# Parsed values


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerDefaults:
    """Requests given to a container that states none (and has no limit to copy).

    Documented defaults: 0.1 cpu and 64 MiB, the floor earlier Mesos bridges used; disk and gpus
    default to nothing. Set them from the bridge's settings.
    """

    cpus: float = 0.1
    mem: float = 64.0


DEFAULT_CONTAINER_DEFAULTS = ContainerDefaults()


@dataclasses.dataclass(frozen=True, slots=True)
class HostPort:
    container_port: int
    host_port: int
    protocol: str = "TCP"
    name: str = ""
    host_ip: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerRequest:
    """One container: Mesos scalars it requests, the limits it carries, its host ports."""

    name: str
    image: str
    requests: tuple[tuple[str, float], ...]  # (mesos name, value), cpus and mem always present
    limits: tuple[tuple[str, float], ...]  # only those the spec states
    host_ports: tuple[HostPort, ...] = ()
    init: bool = False
    sidecar: bool = False  # an init container with restartPolicy Always
    explicit_requests: bool = False  # False when defaults were used (qosClass BestEffort)

    def request(self, name: str) -> float:
        for key, value in self.requests:
            if key == name:
                return value
        return 0.0

    @property
    def requests_dict(self) -> dict[str, float]:
        return dict(self.requests)

    @property
    def limits_dict(self) -> dict[str, float]:
        return dict(self.limits)


SelectorOperator: TypeAlias = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]


@dataclasses.dataclass(frozen=True, slots=True)
class NodeSelectorRequirement:
    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()
    field: bool = False  # a matchFields entry (only metadata.name exists)

    def matches(self, labels: Mapping[str, str], *, node_name: str) -> bool:
        if self.field:
            present, value = True, node_name
        else:
            present = self.key in labels
            value = labels.get(self.key, "")
        op = self.operator
        if op == "In":
            return present and value in self.values
        if op == "NotIn":
            return not present or value not in self.values
        if op == "Exists":
            return present
        if op == "DoesNotExist":
            return not present
        if not present:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if op == "Gt" else number < bound

    def __str__(self) -> str:
        if self.operator in ("Exists", "DoesNotExist"):
            return f"{self.key} {self.operator}"
        return f"{self.key} {self.operator} [{','.join(self.values)}]"


@dataclasses.dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """Expressions AND-ed; the terms of a node selector are OR-ed."""

    requirements: tuple[NodeSelectorRequirement, ...]

    def matches(self, labels: Mapping[str, str], *, node_name: str) -> bool:
        # An empty term matches no node (Kubernetes' rule for nodeSelectorTerms).
        return bool(self.requirements) and all(
            r.matches(labels, node_name=node_name) for r in self.requirements
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = ""
    effect: str = ""  # "" = every effect
    toleration_seconds: int | None = None

    def tolerates(self, *, key: str, value: str, effect: str) -> bool:
        if self.effect and self.effect != effect:
            return False
        if self.operator == "Exists":
            return not self.key or self.key == key
        return self.key == key and self.value == value


@dataclasses.dataclass(frozen=True, slots=True)
class LabelSelectorRequirement:
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class LabelSelector:
    """A metav1.LabelSelector: empty selects everything; ``nothing`` (a null selector where
    the API says null selects no object, as in a PodAffinityTerm) selects nothing."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.nothing:
            return False
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In" and not (present and labels[req.key] in req.values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    """A required (or, with a weight, preferred) pod (anti-)affinity term, as kube-scheduler
    reads it: the pods it selects are those in ``namespaces`` or in a namespace whose labels
    ``namespace_selector`` matches, whose labels ``selector`` matches (``matchLabelKeys`` /
    ``mismatchLabelKeys`` already merged in from the pod's own labels)."""

    selector: LabelSelector
    topology_key: str
    namespaces: tuple[str, ...]  # resolved: the pod's own namespace when the spec names none
    all_namespaces: bool = False  # an empty namespaceSelector ({}) selects every namespace
    namespace_selector: LabelSelector | None = None  # a non-empty namespaceSelector
    weight: int = 0  # preferred terms: 1-100; 0 for required ones

    def selects(
        self,
        *,
        namespace: str,
        labels: Mapping[str, str],
        namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> bool:
        if not self.all_namespaces and namespace not in self.namespaces:
            sel = self.namespace_selector
            if sel is None or namespace_labels is None:
                return False
            if not sel.matches(namespace_labels.get(namespace, {})):
                return False
        return self.selector.matches(labels)


@dataclasses.dataclass(frozen=True, slots=True)
class WeightedNodeTerm:
    """One preferredDuringSchedulingIgnoredDuringExecution node affinity term."""

    weight: int
    term: NodeSelectorTerm


@dataclasses.dataclass(frozen=True, slots=True)
class SpreadConstraint:
    """One topologySpreadConstraint as PodTopologySpread reads it (defaults applied:
    minDomains 1, nodeAffinityPolicy Honor, nodeTaintsPolicy Ignore); ``selector`` has the
    ``matchLabelKeys`` merged in. ``same_owner``: one of the cluster's default constraints,
    counting the pods of the pod's controller (kube-scheduler's default selector)."""

    max_skew: int
    topology_key: str
    hard: bool  # whenUnsatisfiable DoNotSchedule (a filter); else ScheduleAnyway (a score)
    selector: LabelSelector
    min_domains: int = 1
    honour_node_affinity: bool = True
    honour_node_taints: bool = False
    same_owner: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class PodRequest:
    """Everything placement and launch need to know about one pod, parsed and validated."""

    key: ids.PodKey
    uid: ids.PodUid
    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...]
    containers: tuple[ContainerRequest, ...]
    init_containers: tuple[ContainerRequest, ...]
    scheduler_name: str
    node_name: str  # "" while unbound
    restart_policy: RestartPolicy
    termination_grace_period_seconds: int
    node_selector: tuple[tuple[str, str], ...]
    required_node_affinity: tuple[NodeSelectorTerm, ...]  # () = no constraint
    tolerations: tuple[Toleration, ...]
    anti_affinity: tuple[PodAffinityTerm, ...]  # required, during scheduling
    pod_affinity: tuple[PodAffinityTerm, ...]  # required, during scheduling
    priority: int
    qos_class: QosClass
    #: The pod's effective request per Mesos scalar (Kubernetes' rule: max(sum of app
    #: containers (+ sidecars), any init container)); executor overhead not included.
    scalars: tuple[tuple[str, float], ...]
    host_ports: tuple[HostPort, ...]
    preferred_node_affinity: tuple[WeightedNodeTerm, ...] = ()
    preferred_pod_affinity: tuple[PodAffinityTerm, ...] = ()  # weight set
    preferred_anti_affinity: tuple[PodAffinityTerm, ...] = ()  # weight set
    spread: tuple[SpreadConstraint, ...] = ()  # the pod's own topologySpreadConstraints
    #: the uid of the pod's controller (a ReplicaSet's, StatefulSet's ...), "" for none
    owner_uid: str = ""
    #: ``preemptionPolicy: Never``: the pod waits, it never preempts
    preempt_never: bool = False
    #: ``status.nominatedNodeName``: the node a preemption freed for it
    nominated_node: str = ""

    @property
    def labels_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def scalar(self, name: str) -> float:
        for key, value in self.scalars:
            if key == name:
                return value
        return 0.0

    #: Pods with equal static signatures pass the same agents' static checks (node name,
    #: selectors, affinity, taints); computed once, placement caches those checks by it.
    static_signature: tuple[Any, ...] = dataclasses.field(
        default=(), init=False, repr=False, compare=False
    )
    #: Pods with equal placement signatures are interchangeable for placement altogether:
    #: static signature, requests, host ports and containers (a Deployment's replicas share
    #: one). Labels and namespace count only when the pod has anti-affinity terms of its own;
    #: the other direction (existing pods' terms selecting this pod) is placement's business.
    placement_signature: tuple[Any, ...] = dataclasses.field(
        default=(), init=False, repr=False, compare=False
    )
    #: The placement signature plus who the pod is (namespace, labels, owner): what tells
    #: pods apart when placement counts pods per topology domain. Both signatures are
    #: interned: equal signatures are usually the same object, so placement can find a
    #: pod's group by identity instead of hashing the nested tuple for every pod of a pass.
    counted_signature: tuple[Any, ...] = dataclasses.field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        static = (
            self.node_name,
            self.node_selector,
            self.required_node_affinity,
            self.tolerations,
            self.anti_affinity,
            self.pod_affinity,
            self.preferred_node_affinity,
            self.preferred_pod_affinity,
            self.preferred_anti_affinity,
            self.spread,
        )
        # pods whose own terms or spread constraints count pods like them are told apart by
        # who they are (namespace, labels, owner)
        ident: tuple[Any, ...] = (
            (self.namespace, self.labels, self.owner_uid)
            if self.anti_affinity or self.pod_affinity or self.preferred_pod_affinity
            or self.preferred_anti_affinity or self.spread or self.owner_uid else ()
        )
        signature = (
            static,
            self.scalars,
            tuple((p.host_port, p.protocol) for p in self.host_ports),
            ident,
            tuple((c.name, c.requests, c.limits) for c in self.containers),
            tuple((c.name, c.requests, c.limits, c.sidecar) for c in self.init_containers),
        )
        object.__setattr__(self, "static_signature", static)
        object.__setattr__(self, "placement_signature", _intern(signature))
        object.__setattr__(self, "counted_signature", _intern(
            (*signature, self.namespace, self.labels, self.owner_uid)))


_INTERNED: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_INTERN_LIMIT = 4096  # distinct signatures kept (then forgotten: interning only saves time)


def _intern(signature: tuple[Any, ...]) -> tuple[Any, ...]:
    found = _INTERNED.get(signature)
    if found is None:
        if len(_INTERNED) >= _INTERN_LIMIT:
            _INTERNED.clear()
        found = _INTERNED[signature] = signature
    return found
