"""The ids of a pod's Mesos tasks and executors: one id per launch, never reused.

Why an incarnation in the id: a task id used to be ``<uid>.<attempt>.<container>`` with the
attempt counted from what the bridge remembered. After a bridge restart against a master that
had forgotten the pod's tasks (a master failover before its agents re-registered, a removed
framework), the count started at 0 again and a new launch carried the id of an earlier
incarnation; an agent that still held the old one's status updates (keyed by framework and
task id) could then apply a stale TASK_KILLED to the new task, and a kill meant for the old
one hit the new one.

The scheme: ``<uid>.<attempt>.<generation>.<container>``, where ``generation`` is the bridge's
start counter, incremented in the bridge's state ConfigMap with optimistic concurrency before
the offer loop may ACCEPT anything (``kube.state.bump_generation``; ``app.py`` does it before
the loop exists). Within one run the attempt only grows (the loop counts from every task it
knows and from the attempts the pod's written status names); across runs the generation
differs. So no two launches ever share a task id or an executor id, whatever the master
remembers.

Parsing: Kubernetes uids and container names (DNS labels) contain no dots, so a 4-part id is
told from an old 3-part one; old ids are still recognized, so a bridge upgraded in place keeps
the tasks it launched before. A pod's status names its containers ``mesos://<task id>``.
"""

from __future__ import annotations

import dataclasses

__all__ = ["SANDBOX", "TaskName", "app_executor_of", "executor_id", "is_sandbox", "parse",
           "sandbox_name", "sibling", "task_id"]

EXECUTOR_PREFIX = "k8sbridge"
# The container name of a pod's sandbox task (``scheduler.launch``): not a DNS label (no
# container of a pod can have it), no dot (ids stay parseable).
SANDBOX = "_sandbox"


@dataclasses.dataclass(frozen=True, slots=True)
class TaskName:
    """What one of our task ids says."""

    uid: str
    attempt: int
    generation: int | None  # None: an id of a bridge from before generations (3 parts)
    container: str


def task_id(*, uid: str, attempt: int, generation: int, container: str) -> str:
    return f"{uid}.{attempt}.{generation}.{container}"


def executor_id(*, uid: str, attempt: int, generation: int, init: str | None = None) -> str:
    """One executor per attempt; init containers run first, each in its own executor."""
    base = f"{EXECUTOR_PREFIX}.{uid}.{attempt}.{generation}"
    return f"{base}.init.{init}" if init else base


def parse(task_id_: str) -> TaskName | None:
    """The parts of one of our task ids (either form), else None."""
    parts = task_id_.split(".")
    if len(parts) == 4 and parts[1].isdigit() and parts[2].isdigit() and parts[0] and parts[3]:
        return TaskName(uid=parts[0], attempt=int(parts[1]), generation=int(parts[2]),
                        container=parts[3])
    if len(parts) == 3 and parts[1].isdigit() and parts[0] and parts[2]:
        return TaskName(uid=parts[0], attempt=int(parts[1]), generation=None,
                        container=parts[2])
    return None


def sibling(task_id_: str, container: str) -> str | None:
    """The id of ``container``'s task in the same launch as ``task_id_`` (either form)."""
    name = parse(task_id_)
    if name is None:
        return None
    if name.generation is None:
        return f"{name.uid}.{name.attempt}.{container}"
    return task_id(uid=name.uid, attempt=name.attempt, generation=name.generation,
                   container=container)


def app_executor_of(task_id_: str) -> str | None:
    """The executor id of the app group that ``task_id_`` was launched in (either form)."""
    name = parse(task_id_)
    if name is None:
        return None
    if name.generation is None:
        return f"{EXECUTOR_PREFIX}.{name.uid}.{name.attempt}"
    return executor_id(uid=name.uid, attempt=name.attempt, generation=name.generation)


def sandbox_name(init_phase: int | None) -> str:
    """The container part of a sandbox task made with the app group (``SANDBOX``) or with
    init phase k (``SANDBOX-k``): the phases of one attempt share its number, and a sandbox
    made anew in a later phase of it must not reuse an earlier one's id."""
    return SANDBOX if init_phase is None else f"{SANDBOX}-{init_phase}"


def is_sandbox(container: str) -> bool:
    """Whether a task id's container part names a pod's sandbox task, not a container."""
    return container == SANDBOX or container.startswith(SANDBOX + "-")
