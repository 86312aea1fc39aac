"""Which init container runs next: init containers run one at a time, in order.

Why here: the phase is part of a pod's life. A regular init container's phase ends when it
has finished successfully; a sidecar's (``restartPolicy: Always``) ends once it runs — it keeps
running beside the init containers after it and the app containers. Derived from the tasks'
states alone, so it survives a bridge restart (reconciliation brings the states back).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from typing import Literal

__all__ = ["PhaseStep", "after_update", "next_init"]

PhaseStep = Literal["none", "stay", "next", "failed"]


def next_init(
    *, inits: Sequence[tuple[str, bool]], finished: Set[str], running: Set[str]
) -> int | None:
    """Index of the first init container whose phase has not ended (None: the app group).

    ``inits`` are (name, is a sidecar) in order; ``finished`` names containers with a task
    that finished successfully, ``running`` those with a task running now."""
    for index, (name, sidecar) in enumerate(inits):
        if name not in (running if sidecar else finished):
            return index
    return None


def after_update(
    *, container: str, inits: Sequence[str], sidecars: Set[str], in_phase: bool, state: str,
    terminal: bool, deleting: bool, apps_live: Callable[[], bool],
) -> PhaseStep:
    """What an update of ``container``'s task means for the init phases.

    ``in_phase``: the task belongs to the attempt launched now. A phase ends when its init
    container's task ends, or when its sidecar runs. Then: ``"stay"`` when app containers
    run (a sidecar restarted beside them starts nothing more), ``"next"`` after a success or
    a sidecar's start (the next phase, or the app group, launches), ``"failed"`` after a
    failure (the lifecycle asks for the retry, with the crash back-off, unless
    restartPolicy is Never). ``"none"``: no phase ended (or the pod is being deleted).
    ``apps_live`` is asked only when a phase ended."""
    ended = in_phase and (
        (container in sidecars and state == "TASK_RUNNING")
        or (container in inits and terminal)
    )
    if not ended or deleting:
        return "none"
    if apps_live():
        return "stay"
    return "next" if state in ("TASK_FINISHED", "TASK_RUNNING") else "failed"
