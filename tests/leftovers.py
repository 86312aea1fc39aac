"""Container daemons a test left running, stopped after it (an autouse fixture in conftest).

Why: the kernel's container daemon outlives its agent by design (an agent restart re-adopts its
containers, as a Mesos agent's do), and tests restart agents with ``_keep_tasks=True``. A test
whose kernel stops while a pod still runs (``tests/integration/two_agents.py``'s cluster, an
agent marked gone and refused) leaves that daemon, its view maker, its holders and the task on
the host for the rest of the session. This finds the daemons whose log lies in the test's own
``tmp_path`` (never another test's or another run's) and kills each with everything below it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

__all__ = ["kill_daemons_under"]

_DAEMON = b"k8sbridge.kernel.agent.executor"


def _processes() -> dict[int, tuple[int, list[bytes]]]:
    """pid -> (parent pid, argv) of every process readable now."""
    found: dict[int, tuple[int, list[bytes]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry)] = (ppid, argv)
    return found


def kill_daemons_under(directory: Path) -> list[int]:
    """SIGKILL every container daemon whose log path is under ``directory`` and all its
    descendants; the daemons' pids."""
    prefix = str(directory.resolve()).encode() + b"/"
    procs = _processes()
    daemons = [pid for pid, (_, argv) in procs.items()
               if _DAEMON in argv and argv[-2:] and any(a.startswith(prefix) for a in argv)]
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    doomed: list[int] = []
    stack = list(daemons)
    while stack:
        pid = stack.pop()
        doomed.append(pid)
        stack.extend(children.get(pid, []))
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return daemons
