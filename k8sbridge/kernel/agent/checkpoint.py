"""A container's checkpoint (``state.json``) as JSON text, encoded piece by piece with the
pieces that did not change since the last write reused.

Why: the agents share one Python process with the master, and a pod's checkpoint is ~14 KB,
most of it the TaskInfo, the environment, the view and the executor, which never change once the
task is launched; it is written several times per task (before the spawn, on status updates and
acknowledgements). Encoded whole every time, ``json.dumps`` alone was a sixth of the kernel
process's CPU in a 1,000-pod burst. A piece is reused while it is the very same object (``is``;
the memo holds a reference, so an id is never reused under it): the agent replaces those dicts
and never changes them in place, and a status is complete when it is appended (``core``).

The text is the same, byte for byte, as ``json.dumps`` with compact separators of the whole
checkpoint (``document``; a test checks this), so recovery (``recovery._restore``) reads what it
always read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Memo", "document", "encode", "settled"]

_encode = json.JSONEncoder(separators=(",", ":")).encode

# A task's keys, in order; those after "statuses" never change in place (see the docstring).
_TASK_KEPT = ("cwd", "env", "user", "view", "network")
_CONTAINER_KEPT = ("framework", "executor")


class _CgroupSet(Protocol):
    def to_raw(self) -> dict[str, Any]: ...


class Task(Protocol):
    """What of ``state.Task`` a checkpoint holds (``state`` imports this module)."""

    info: dict[str, Any]
    state: str
    statuses: list[dict[str, Any]]
    pid: int | None
    cwd: str
    env: dict[str, str]
    user: dict[str, Any] | None
    view: dict[str, Any] | None
    network: dict[str, Any] | None


class Container(Protocol):
    """What of ``state.Container`` a checkpoint holds."""

    container_id: str
    framework_id: str
    executor_id: str
    kind: str
    joins: str | None
    framework: dict[str, Any]
    executor: dict[str, Any]
    directory: Path
    launched: bool
    terminated: bool
    started: float
    mem_limit_mb: float | None
    cpus_limit: float | None

    @property
    def cgroup(self) -> _CgroupSet | None: ...

    @property
    def tasks(self) -> Mapping[str, Task]: ...


class Memo:
    """JSON text of objects the agent never mutates once made, by identity (one per container)."""

    __slots__ = ("_pieces", "_statuses")

    def __init__(self) -> None:
        self._pieces: dict[tuple[str, str], tuple[Any, str]] = {}
        self._statuses: dict[int, tuple[dict[str, Any], str]] = {}

    def __len__(self) -> int:
        return len(self._pieces) + len(self._statuses)

    def clear(self) -> None:
        self._pieces.clear()
        self._statuses.clear()

    def piece(self, key: tuple[str, str], value: Any) -> str:
        hit = self._pieces.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        text = _encode(value)
        self._pieces[key] = (value, text)
        return text

    def statuses(self, lists: list[list[dict[str, Any]]]) -> list[str]:
        """Each of ``lists`` (of status dicts) as a JSON array; the memo keeps these only."""
        old: dict[int, tuple[dict[str, Any], str]] = self._statuses
        new: dict[int, tuple[dict[str, Any], str]] = {}
        out = []
        for statuses in lists:
            texts = []
            for status in statuses:
                hit = old.get(id(status))
                if hit is None or hit[0] is not status:
                    hit = (status, _encode(status))
                new[id(status)] = hit
                texts.append(hit[1])
            out.append("[" + ",".join(texts) + "]")
        self._statuses = new
        return out


def _fields(container: Container) -> dict[str, Any]:
    """The container's small top-level values (encoded on every write)."""
    return {
        "container_id": container.container_id,
        "framework_id": container.framework_id,
        "executor_id": container.executor_id,
        "kind": container.kind,
        "joins": container.joins,
    }


def _more_fields(container: Container) -> dict[str, Any]:
    return {
        "directory": str(container.directory),
        "launched": container.launched,
        "terminated": container.terminated,
        "started": container.started,
        "mem_limit_mb": container.mem_limit_mb,
        "cpus_limit": container.cpus_limit,
        "cgroups": container.cgroup.to_raw() if container.cgroup else None,
    }


def _task(task: Task) -> dict[str, Any]:
    return {"info": task.info, "state": task.state, "statuses": task.statuses, "pid": task.pid,
            **{k: getattr(task, k) for k in _TASK_KEPT}}


def document(container: Container, pending: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The checkpoint as a JSON value (what ``encode`` writes as text)."""
    return {
        **_fields(container),
        **{k: getattr(container, k) for k in _CONTAINER_KEPT},
        **_more_fields(container),
        "tasks": {tid: _task(t) for tid, t in container.tasks.items()},
        "updates": pending,
    }


def settled(container: Container, pending: dict[str, list[dict[str, Any]]]) -> bool:
    """Whether the container is unlikely to be written again soon: every task has a status and
    none is waiting for an acknowledgement (a running pod, after its RUNNING was acknowledged).
    Its memo can go then (~12 KB of text per pod, for 10,000 running pods 120 MB); the next
    write, a kill or a health change, encodes it whole once more."""
    return all(t.statuses for t in container.tasks.values()) and not any(pending.values())


def _members(value: dict[str, Any]) -> str:
    """The members of a JSON object, without its braces (one encoder call for all of them)."""
    return _encode(value)[1:-1]


def encode(memo: Memo, container: Container, pending: dict[str, list[dict[str, Any]]]) -> str:
    """``json.dumps(document(container, pending), separators=(",", ":"))``, reusing ``memo``."""
    tasks = container.tasks
    arrays = memo.statuses([t.statuses for t in tasks.values()] + list(pending.values()))
    out = ["{", _members(_fields(container))]
    for k in _CONTAINER_KEPT:
        out += [',"', k, '":', memo.piece(("", k), getattr(container, k))]
    out += [",", _members(_more_fields(container)), ',"tasks":{']
    for i, (tid, task) in enumerate(tasks.items()):
        out += ["," if i else "", _encode(tid), ':{"info":', memo.piece((tid, "info"), task.info),
                ',"state":', _encode(task.state), ',"statuses":', arrays[i],
                ',"pid":', _encode(task.pid)]
        for k in _TASK_KEPT:
            out += [',"', k, '":', memo.piece((tid, k), getattr(task, k))]
        out.append("}")
    out.append('},"updates":{')
    for i, (tid, array) in enumerate(zip(pending, arrays[len(tasks):], strict=True)):
        out += ["," if i else "", _encode(tid), ":", array]
    out.append("}}")
    return "".join(out)
