"""The output of one placement pass: assignments to commit and explanations for the rest.

Why a value: placement is pure and optimistic (Nomad's plan/commit split). The loop commits a
``Plan`` (ACCEPT with LAUNCH_GROUP per agent, bind, decline the unused offers) and turns every
``Unplaced`` into ``PodScheduled=False`` / ``Unschedulable`` plus a ``FailedScheduling`` event
whose message is ``Explanation.message``, in kube-scheduler's words and order (reasons
sorted as text, as its FitError does):

    0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector,
    2 Insufficient cpu (requested 4, largest offer 2).

Requested figures are the pod's own requests, as the user wrote them; the default executor's
overhead (accounted in placement) is named separately only when it is what does not fit
("requested 1 + 0.1 for the executor, largest offer 1").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from k8sbridge.model import ids
from k8sbridge.model import resources as res

__all__ = [
    "Assignment",
    "ContainerAllocation",
    "Explanation",
    "HostPortChoice",
    "Plan",
    "Preemption",
    "ReasonCount",
    "Unplaced",
    "new_assignment",
]


@dataclasses.dataclass(frozen=True, slots=True)
class HostPortChoice:
    container: str
    container_port: int
    host_port: int
    protocol: str


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerAllocation:
    """One container's task resources (carved from the offers, reservations kept)."""

    name: str
    resources: res.Resources
    limits: tuple[tuple[str, float], ...] = ()  # for TaskInfo.limits (cpus, mem)
    init: bool = False
    sidecar: bool = False  # an init container that keeps running (holds its own resources)


@dataclasses.dataclass(frozen=True, slots=True)
class Assignment:
    """Pod → agent, and everything its launch needs: the commit renders the LAUNCH_GROUP from
    this value alone (``launch.render_launch_group``), nothing is carved twice. ``offer_ids``
    are every offer of the agent's pool that the plan uses; accept them together in one ACCEPT
    (one LAUNCH_GROUP per assigned pod). ``executor`` is the DEFAULT executor's share; each
    ``ContainerAllocation`` holds the task's scalars and its host ports (``ports`` ranges).

    ``containers`` are the app containers; ``init_containers`` the init containers in spec
    order (sidecars hold their own resources; the others are carved from the app containers'
    resources plus ``reserve``, since they run before them).
    """

    pod_key: ids.PodKey
    pod_uid: ids.PodUid
    agent_id: ids.AgentId
    hostname: str
    node_name: str
    offer_ids: tuple[ids.OfferId, ...]
    allocation_role: str | None
    executor: res.Resources
    containers: tuple[ContainerAllocation, ...]
    init_containers: tuple[ContainerAllocation, ...]
    host_ports: tuple[HostPortChoice, ...]
    #: what the pod holds beyond executor + containers so its largest init container fits
    #: (init containers run before the app containers, inside these same resources)
    reserve: res.Resources = res.Resources()
    #: the offers (of ``offer_ids``) its pieces come from: if one of them is gone at commit,
    #: the launch cannot be sent
    sources: tuple[ids.OfferId, ...] = ()

    @property
    def total(self) -> res.Resources:
        """Everything held for the pod: executor + max(app containers, any init container)."""
        held = [*self.containers, *(c for c in self.init_containers if c.sidecar)]
        return res.Resources.of(
            [*self.executor, *(r for c in held for r in c.resources), *self.reserve]
        )


class _Unfrozen:
    """An ``Assignment`` being built: the same slots (so the same layout), without the frozen
    ``__setattr__``, so its fields are set by plain attribute stores; ``new_assignment`` then
    makes it an ``Assignment`` by setting its ``__class__`` (Python allows it between classes
    of equal layout)."""

    __slots__ = tuple(f.name for f in dataclasses.fields(Assignment))


_new = object.__new__


def new_assignment(
    pod_key: ids.PodKey,
    pod_uid: ids.PodUid,
    agent_id: ids.AgentId,
    hostname: str,
    node_name: str,
    offer_ids: tuple[ids.OfferId, ...],
    allocation_role: str | None,
    executor: res.Resources,
    containers: tuple[ContainerAllocation, ...],
    init_containers: tuple[ContainerAllocation, ...],
    host_ports: tuple[HostPortChoice, ...],
    reserve: res.Resources,
    sources: tuple[ids.OfferId, ...],
) -> Assignment:
    """``Assignment(...)`` with every field given, about four times as fast (a placement pass
    builds one per placed pod: 10,000 in the benchmark; the frozen dataclass's ``__init__``
    pays ``object.__setattr__`` by name per field); the same value in every way."""
    a: Any = _new(_Unfrozen)
    a.pod_key = pod_key
    a.pod_uid = pod_uid
    a.agent_id = agent_id
    a.hostname = hostname
    a.node_name = node_name
    a.offer_ids = offer_ids
    a.allocation_role = allocation_role
    a.executor = executor
    a.containers = containers
    a.init_containers = init_containers
    a.host_ports = host_ports
    a.reserve = reserve
    a.sources = sources
    a.__class__ = Assignment
    return a  # type: ignore[no-any-return]


@dataclasses.dataclass(frozen=True, slots=True)
class ReasonCount:
    reason: str  # one of feasible.REASON_* (a constant)
    detail: str  # e.g. "rack=r9" or "(requested 4, largest offer 2)"; "" when none
    count: int

    def __str__(self) -> str:
        return f"{self.count} {self.reason}" + (f" {self.detail}" if self.detail else "")


@dataclasses.dataclass(frozen=True, slots=True)
class Explanation:
    agents: int
    fit: int
    reasons: tuple[ReasonCount, ...]
    #: what preemption said when it was tried and made no room ("preemption: ...")
    preemption: str = ""

    @property
    def message(self) -> str:
        if not self.agents:
            return "no nodes available to schedule pods"
        head = f"{self.fit}/{self.agents} nodes are available"
        tail = f" {self.preemption}" if self.preemption else ""
        if not self.reasons:
            return head + "." + tail
        return head + ": " + ", ".join(sorted(str(r) for r in self.reasons)) + "." + tail

    def count(self, reason: str) -> int:
        return sum(r.count for r in self.reasons if r.reason == reason)


@dataclasses.dataclass(frozen=True, slots=True)
class Unplaced:
    pod_key: ids.PodKey
    pod_uid: ids.PodUid
    explanation: Explanation


@dataclasses.dataclass(frozen=True, slots=True)
class Preemption:
    """A pod that fits nowhere, the agent it is nominated to and the pods evicted there for
    it (``model.preemption``): the loop marks and deletes the victims, then writes the
    preemptor's ``status.nominatedNodeName``; it is placed when the room is offered again."""

    pod_key: ids.PodKey
    pod_uid: ids.PodUid
    agent_id: ids.AgentId
    node_name: str
    victims: tuple[tuple[ids.PodKey, ids.PodUid], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    assignments: tuple[Assignment, ...]
    unplaced: tuple[Unplaced, ...]
    #: offers no assignment uses: decline them (with a refuse filter)
    unused_offer_ids: tuple[ids.OfferId, ...]
    preemptions: tuple[Preemption, ...] = ()
    #: nominated pods preemption found no room for any more: clear ``nominatedNodeName``
    cleared: tuple[tuple[ids.PodKey, ids.PodUid], ...] = ()

    def by_agent(self) -> Iterator[tuple[ids.AgentId, tuple[ids.OfferId, ...], list[Assignment]]]:
        """Assignments grouped per (agent, offers): one ACCEPT call each."""
        groups: dict[tuple[ids.AgentId, tuple[ids.OfferId, ...]], list[Assignment]] = {}
        for a in self.assignments:
            groups.setdefault((a.agent_id, a.offer_ids), []).append(a)
        for (agent, offers), items in groups.items():
            yield agent, offers, items

    def assignment(self, pod_key: str) -> Assignment | None:
        for a in self.assignments:
            if a.pod_key == pod_key:
                return a
        return None

    def explanation(self, pod_key: str) -> Explanation | None:
        for u in self.unplaced:
            if u.pod_key == pod_key:
                return u.explanation
        return None
