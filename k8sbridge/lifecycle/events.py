"""What can happen to a pod: the inputs of ``lifecycle.machine.apply``.

Why plain values: the offer loop, the status writer and timers each turn what they see (a watch
event, a Mesos update, a clock) into one of these and hand it to the machine; nothing else
about their I/O reaches the decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeAlias

from k8sbridge.model import tasks

__all__ = [
    "Event",
    "LaunchRefused",
    "PodChanged",
    "Scheduled",
    "TaskUpdated",
    "TerminationMessage",
    "Tick",
    "Unschedulable",
]


@dataclasses.dataclass(frozen=True, slots=True)
class PodChanged:
    """The pod was seen or changed (raw JSON as the API returns it)."""

    pod: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Scheduled:
    """Placement chose an agent and the pod was bound to its Node."""

    node_name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Unschedulable:
    """Placement found no agent; ``message`` explains why (PodScheduled=False)."""

    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class LaunchRefused:
    """The launch cannot be built as specified (a missing configMap key, an invalid spec)."""

    reason: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class TaskUpdated:
    """A Mesos update of the task running ``container`` in ``attempt``."""

    container: str
    attempt: int
    status: tasks.TaskStatusView
    needs_ack: bool = False
    host_ip: str = ""  # of the agent, when known
    node_name: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class TerminationMessage:
    """What was read for the termination message of ``container``'s task ``task_id``
    (``intents.ReadTerminationMessage``); empty: there was none."""

    container: str
    task_id: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    """A time the machine asked to be woken at (``intents.WakeAt``) has come."""


Event: TypeAlias = (
    PodChanged | Scheduled | Unschedulable | LaunchRefused | TaskUpdated | TerminationMessage
    | Tick
)
