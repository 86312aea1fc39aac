"""Which init container runs next: init containers run one at a time, in order.

Why here: the phase is part of a pod's life. A regular init container's phase ends when it
has finished successfully; a sidecar's (``restartPolicy: Always``) ends once it runs — it keeps
running beside the init containers after it and the app containers. Derived from the tasks'
states alone, so it survives a bridge restart (reconciliation brings the states back).
"""

from __future__ import annotations

from collections.abc import Sequence, Set

__all__ = ["next_init"]


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
