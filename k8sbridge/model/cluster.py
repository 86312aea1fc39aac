"""A read-only view of the cluster as placement sees it: agents, their offers, their pods.

Why here: placement must be a pure function of (pending pods, cluster view) so that it can be
tested from static inputs and benchmarked without a master. The Mesos client, the offer book
and the node controller fill this view; nothing in it performs I/O.

Node labels are derived here (``node_labels``, ``node_name_for``) so that the Node objects the
kubelet publishes and the labels placement matches against never disagree: agent attributes
that are valid label names and values, ``kubernetes.io/hostname`` (the node name),
``type=virtual-kubelet``, ``kubernetes.io/os=linux``, ``kubernetes.io/role=agent`` and the
fault domain as ``topology.kubernetes.io/region`` / ``topology.kubernetes.io/zone``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from k8sbridge.model import ids, pods, preemption
from k8sbridge.model import resources as res

__all__ = [
    "PROVIDER_TAINT",
    "AgentView",
    "ClusterView",
    "OfferView",
    "PlacedPod",
    "Taint",
    "is_label_key",
    "is_label_value",
    "node_labels",
    "node_name_for",
]

LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_TYPE = "type"

_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def is_label_value(value: str) -> bool:
    return len(value) <= 63 and _NAME.match(value) is not None


def is_label_key(key: str) -> bool:
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return bool(name) and is_label_value(name)


@dataclasses.dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"

    def __str__(self) -> str:
        return f"{{{self.key}: {self.value}}}"


#: The taint every k8sbridge Node carries unless configured otherwise.
PROVIDER_TAINT = Taint(key="virtual-kubelet.io/provider", value="mesos", effect="NoSchedule")


def node_name_for(hostname: str) -> str:
    """The Node name of an agent: its hostname as a DNS-1123 subdomain (lowercased, invalid
    characters → ``-``)."""
    name = re.sub(r"[^a-z0-9.-]", "-", hostname.lower()).strip("-.")
    return name[:253] or "mesos-agent"


def node_labels(
    *,
    hostname: str,
    attributes: Iterable[res.Attribute] = (),
    region: str | None = None,
    zone: str | None = None,
) -> dict[str, str]:
    """The labels of the Node that represents a Mesos agent (as ``kubelet.nodes`` publishes).

    Attributes whose name or value is not a valid label name/value (RANGES and SET
    attributes, long texts, prefixed names) are left out rather than mangled.
    """
    labels: dict[str, str] = {}
    for attr in attributes:
        value = attr.value_str
        if attr.name and is_label_value(attr.name) and is_label_value(value):
            labels[attr.name] = value
    name = node_name_for(hostname)
    labels.update(
        {
            LABEL_TYPE: "virtual-kubelet",
            "kubernetes.io/role": "agent",
            LABEL_HOSTNAME: name if len(name) <= 63 else name[:63].rstrip("-."),
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/exclude-from-external-load-balancers": "true",
        }
    )
    if region and is_label_value(region):
        labels[LABEL_REGION] = region
    if zone and is_label_value(zone):
        labels[LABEL_ZONE] = zone
    return labels


@dataclasses.dataclass(frozen=True, slots=True)
class OfferView:
    """One outstanding offer: its id, its resources and the role it was allocated to."""

    id: ids.OfferId
    agent_id: ids.AgentId
    resources: res.Resources
    allocation_role: str | None = None

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> OfferView:
        """From Mesos v1 ``Offer`` JSON (only id, agent_id, resources, allocation_info)."""
        try:
            offer_id = raw["id"]["value"]
            agent_id = raw["agent_id"]["value"]
        except (KeyError, TypeError) as e:
            raise res.ResourceError(f"offer without id or agent_id: {e}") from e
        role = (raw.get("allocation_info") or {}).get("role")
        return cls(
            id=ids.OfferId(str(offer_id)),
            agent_id=ids.AgentId(str(agent_id)),
            resources=res.Resources.parse(raw.get("resources") or []),
            allocation_role=role,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PlacedPod:
    """A pod already running (or launching) on an agent, as far as placement cares."""

    key: ids.PodKey
    namespace: str
    labels: tuple[tuple[str, str], ...] = ()
    host_ports: tuple[tuple[int, str], ...] = ()  # (port, protocol)
    # the pod's own required anti-affinity terms, for the symmetric check
    anti_affinity: tuple[pods.PodAffinityTerm, ...] = ()
    # its required affinity terms and preferred terms (weights set), for the symmetric scores
    pod_affinity: tuple[pods.PodAffinityTerm, ...] = ()
    preferred_affinity: tuple[pods.PodAffinityTerm, ...] = ()
    preferred_anti_affinity: tuple[pods.PodAffinityTerm, ...] = ()
    owner_uid: str = ""  # its controller's uid (the default spread constraints count by it)
    # for preemption: who it is, its priority, what it holds (its requests; the executor's
    # share is placement's to add), when it started (ordering only), whether it is going
    uid: ids.PodUid = ids.PodUid("")
    priority: int = 0
    scalars: tuple[tuple[str, float], ...] = ()
    started: float = 0.0
    terminating: bool = False

    @classmethod
    def of(cls, pod: pods.PodRequest, *, started: float = 0.0,
           terminating: bool = False) -> PlacedPod:
        return cls(
            key=pod.key, namespace=pod.namespace, labels=pod.labels,
            host_ports=tuple((p.host_port, p.protocol) for p in pod.host_ports),
            anti_affinity=pod.anti_affinity, pod_affinity=pod.pod_affinity,
            preferred_affinity=pod.preferred_pod_affinity,
            preferred_anti_affinity=pod.preferred_anti_affinity, owner_uid=pod.owner_uid,
            uid=pod.uid, priority=pod.priority, scalars=pod.scalars, started=started,
            terminating=terminating,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class AgentView:
    """One agent: identity, derived node labels, taints, current offers, placed pods."""

    agent_id: ids.AgentId
    hostname: str
    node_name: str
    labels: Mapping[str, str]
    taints: tuple[Taint, ...] = ()
    offers: tuple[OfferView, ...] = ()
    pods: tuple[PlacedPod, ...] = ()
    #: The agent's total resources when known (spread scores normalise by it), else None.
    total: res.Resources | None = None
    #: The Node's ``capacity.pods`` when enforced (counting ``pods``), else None.
    max_pods: int | None = None
    #: The Node's ``spec.unschedulable`` (``kubectl cordon``).
    unschedulable: bool = False

    @classmethod
    def build(
        cls,
        *,
        agent_id: str,
        hostname: str,
        node_name: str | None = None,
        attributes: Iterable[res.Attribute] = (),
        region: str | None = None,
        zone: str | None = None,
        taints: Sequence[Taint] = (PROVIDER_TAINT,),
        offers: Sequence[OfferView] = (),
        pods: Sequence[PlacedPod] = (),
        total: res.Resources | None = None,
        max_pods: int | None = None,
        labels: Mapping[str, str] | None = None,
        unschedulable: bool = False,
    ) -> AgentView:
        """``labels``: the Node's labels when it is known (users add theirs there), else
        the labels derived from the agent (what the bridge publishes on the Node)."""
        return cls(
            agent_id=ids.AgentId(agent_id),
            hostname=hostname,
            node_name=node_name or node_name_for(hostname),
            labels=(
                dict(labels) if labels is not None
                else node_labels(hostname=hostname, attributes=attributes, region=region,
                                 zone=zone)
            ),
            taints=tuple(taints),
            offers=tuple(offers),
            pods=tuple(pods),
            total=total,
            max_pods=max_pods,
            unschedulable=unschedulable,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterView:
    agents: tuple[AgentView, ...]
    #: namespace name → its labels, for pod affinity terms with a namespaceSelector (None:
    #: unknown, such terms then select only the namespaces they name)
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None
    #: the PodDisruptionBudgets preemption respects where it can (read only when some
    #: pending pod could preempt)
    budgets: tuple[preemption.DisruptionBudget, ...] = ()
    #: keys of nominated pods whose victims ended so recently that Mesos may not have
    #: offered their resources again yet: they do not preempt again meanwhile
    settling: frozenset[str] = frozenset()

    @classmethod
    def from_raw_offers(
        cls,
        raw_offers: Iterable[Mapping[str, Any]],
        *,
        taints: Sequence[Taint] = (PROVIDER_TAINT,),
        pods: Mapping[str, Sequence[PlacedPod]] | None = None,
        node_names: Mapping[str, str] | None = None,
    ) -> ClusterView:
        """Group Mesos v1 ``Offer`` JSON by agent (hostname, attributes, domain from the offer)."""
        by_agent: dict[str, list[Mapping[str, Any]]] = {}
        for raw in raw_offers:
            agent = (raw.get("agent_id") or {}).get("value")
            if not agent:
                raise res.ResourceError("offer without agent_id")
            by_agent.setdefault(str(agent), []).append(raw)
        agents: list[AgentView] = []
        for agent_id, offers in by_agent.items():
            first = offers[0]
            domain = ((first.get("domain") or {}).get("fault_domain")) or {}
            agents.append(
                AgentView.build(
                    agent_id=agent_id,
                    hostname=str(first.get("hostname") or agent_id),
                    node_name=(node_names or {}).get(agent_id),
                    attributes=[res.Attribute.parse(a) for a in first.get("attributes") or []],
                    region=(domain.get("region") or {}).get("name"),
                    zone=(domain.get("zone") or {}).get("name"),
                    taints=taints,
                    offers=[OfferView.from_raw(o) for o in offers],
                    pods=(pods or {}).get(agent_id, ()),
                )
            )
        return cls(agents=tuple(agents))
