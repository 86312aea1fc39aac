"""The offer loop's seams: what it calls (Mesos, the status writer, the node controller) and
the records it keeps per task and per launched attempt.

Why apart: tests and the kubelet implement these Protocols, and the loop's modules share the
records; none of them needs the loop itself to name them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from k8sbridge.lifecycle.launches import PodLaunch
from k8sbridge.mesos import raw as mesos_wire
from k8sbridge.mesos import types as mesos_types
from k8sbridge.model import ids
from k8sbridge.model import tasks as model_tasks

__all__ = ["AgentDirectory", "AgentRef", "Driver", "PodLaunch", "PodSink", "TaskRecord"]

RawPod = dict[str, Any]


class Driver(Protocol):
    """The Mesos calls the loop makes (``k8sbridge.mesos.framework.Framework`` has them)."""

    @property
    def framework_id(self) -> ids.FrameworkId | None: ...

    async def accept(
        self,
        offer_ids: Sequence[ids.OfferId],
        operations: Sequence[Any],
        *,
        refuse_seconds: float | None = None,
    ) -> None: ...

    async def decline(
        self, offer_ids: Sequence[ids.OfferId], *, refuse_seconds: float | None = None
    ) -> None: ...

    async def revive(self, roles: Sequence[str] | None = None) -> None: ...

    async def suppress(self, roles: Sequence[str] | None = None) -> None: ...

    async def kill(
        self,
        task_id: ids.TaskId,
        *,
        agent_id: ids.AgentId | None = None,
        grace_period_seconds: float | None = None,
    ) -> None: ...

    async def acknowledge(self, status: mesos_types.TaskStatus) -> None: ...

    async def shape_offers(
        self, *, offer_constraints: mesos_wire.RawOfferConstraints,
        min_allocatable: Mapping[str, Sequence[Mapping[str, float]]] | None,
    ) -> None: ...

    async def reconcile(
        self, tasks: Mapping[ids.TaskId, ids.AgentId | None] | None = None
    ) -> None: ...


class PodSink(Protocol):
    """Where pod-facing outcomes go (the kubelet's status writer implements it)."""

    def task_status(
        self, *, pod: RawPod, status: mesos_types.TaskStatus | model_tasks.TaskStatusView,
        container: str, attempt: int,
        agent: AgentRef | None, ack: Callable[[], Awaitable[None]] | None,
    ) -> None: ...

    def unschedulable(self, *, pod: RawPod, message: str) -> None: ...

    def scheduled(self, *, pod: RawPod, node_name: str) -> None: ...

    def launch_failed(self, *, pod: RawPod, reason: str, message: str) -> None: ...

    def forget(self, uid: str) -> None: ...

    def observe(self, pod: RawPod) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class AgentRef:
    agent_id: ids.AgentId
    hostname: str
    node_name: str
    host_ip: str


class AgentDirectory(Protocol):
    """What the node controller knows about agents (read-only)."""

    @property
    def agents(self) -> Mapping[ids.AgentId, Any]: ...

    def node_for_agent(self, agent_id: ids.AgentId) -> str | None: ...


@dataclasses.dataclass(slots=True)
class TaskRecord:
    task_id: ids.TaskId
    pod_uid: str
    attempt: int
    container: str
    agent_id: ids.AgentId | None
    state: str = "TASK_STAGING"
    killing: bool = False
    executor_id: str = ""

    @property
    def terminal(self) -> bool:
        return self.state in mesos_types.TERMINAL_STATES
