"""What the lifecycle asks for: the outputs of ``lifecycle.machine.apply``.

Why intents and not calls: the machine is pure, so it says *what* must happen and the status
writer and the offer loop *do* it (a PATCH, a Mesos KILL, a relaunch). Tests record intents
instead of faking clients. Order matters within one answer: ``Acknowledge`` follows the
``WriteStatus`` it depends on (Mesos must not forget an update Kubernetes has not seen).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, TypeAlias

from k8sbridge.model import ids

__all__ = [
    "Acknowledge", "DeletePod", "Forget", "Intent", "Kill", "ReadTerminationMessage",
    "RecordEvent", "Relaunch", "WakeAt", "WriteStatus",
]


@dataclasses.dataclass(frozen=True, slots=True)
class WriteStatus:
    """Render the record and write it as the pod's status (once, however often asked)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Acknowledge:
    """Acknowledge the update to Mesos once the status that shows it is written."""


@dataclasses.dataclass(frozen=True, slots=True)
class RecordEvent:
    """A Kubernetes Event about the pod, as the kubelet (or the scheduler) records it."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Relaunch:
    """Launch the next attempt of ``containers`` no earlier than ``at`` (epoch seconds): the
    whole app group after it ended, or one init container after it failed."""

    at: float
    containers: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Kill:
    """Stop a task (sidecars once the app containers are done, in reverse order; every task
    of a pod being deleted), with ``grace`` seconds before SIGKILL (None: the task's own)."""

    task_id: ids.TaskId
    grace: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class WakeAt:
    """Hand the machine a ``Tick`` at ``at`` (epoch seconds): a deadline falls due then."""

    at: float


@dataclasses.dataclass(frozen=True, slots=True)
class ReadTerminationMessage:
    """Read the termination message of ``container``'s ended task (``lifecycle.termination``):
    ``file`` (relative to the executor's sandbox) if given, then, when ``logs`` and the file
    gave nothing, the tail of the task's stdout and stderr; answer with an
    ``events.TerminationMessage``. Never on the status path: the read is bounded and apart."""

    container: str
    task_id: ids.TaskId
    agent_id: str
    executor_id: str
    file: str | None
    logs: bool


@dataclasses.dataclass(frozen=True, slots=True)
class DeletePod:
    """Every task of a pod being deleted has ended: remove the object (grace 0, with uid)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Forget:
    """The pod's life here is over: drop what is kept about it."""


Intent: TypeAlias = (
    WriteStatus | Acknowledge | RecordEvent | Relaunch | Kill | WakeAt | ReadTerminationMessage
    | DeletePod | Forget
)
