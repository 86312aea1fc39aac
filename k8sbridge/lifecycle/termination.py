"""Termination messages: where a container's message can be read, and how it is cut (pure).

Why: ``state.terminated.message`` is how a container tells why it ended (Jobs, Argo and
Tekton read it), and the kubelet fills it from ``terminationMessagePath`` (the file's last
4096 bytes) or, with ``terminationMessagePolicy: FallbackToLogsOnError``, when the container
failed and the file is missing or empty, from the tail of its log (the last 80 lines, at most
2048 bytes: ``getTerminationMessage`` and ``readLastStringFromContainerLogs`` in
pkg/kubelet/kuberuntime). The kubelet binds a host file into the container at that path;
Mesos cannot: a ``SANDBOX_PATH`` volume's source is made a *directory* when it does not exist
(``volume/sandbox_path.cpp``: ``os::mkdir(source)``), and no file exists before the
container starts. So the bridge reads what it can reach through the agent's files API:

* a path under the ``mountPath`` of an ``emptyDir`` the container mounts is a file in the
  executor's sandbox, ``volumes/<volume>/<rest>`` (``scheduler/volumes.py``: ``SANDBOX_PATH``
  ``PARENT``), read when the container has terminated;
* the default ``/dev/termination-log`` (the API server sets it on every container) is not in
  any sandbox: it gives no message (the file policy), which the docs say;
* any other path would be silently unread, so the pod is refused at launch (``refusal``);
* the log is the task sandbox's ``stdout`` then ``stderr``, as ``kubectl logs`` shows it
  here. Reading the last 2048 bytes of each is enough: the message is the last 2048 bytes of
  the last 80 lines of their concatenation (``log_message``), and those bytes are all there.

The status writer (``kubelet/termination.py``) does the reading, bounded and apart from the
status path; the machine asks for it (``intents.ReadTerminationMessage``) and takes the answer
(``events.TerminationMessage``).
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from k8sbridge.lifecycle import taskids

__all__ = [
    "DEFAULT_PATH",
    "MAX_FILE_BYTES",
    "MAX_LOG_BYTES",
    "MAX_LOG_LINES",
    "REFUSED",
    "Source",
    "executor_of",
    "file_message",
    "log_message",
    "refusal",
    "sandbox_file",
    "source_of",
]

DEFAULT_PATH = "/dev/termination-log"
MAX_FILE_BYTES = 4096  # kubecontainer.MaxContainerTerminationMessageLength
MAX_LOG_LINES = 80  # kubecontainer.MaxContainerTerminationMessageLogLines
MAX_LOG_BYTES = 2048  # kubecontainer.MaxContainerTerminationMessageLogLength
FALLBACK = "FallbackToLogsOnError"
REFUSED = (
    "cannot be read: Mesos cannot bind a single file into a container, so k8sbridge reads a "
    "termination message only from a directory the container mounts from an emptyDir volume; "
    "put the path under such a mountPath, or leave the default /dev/termination-log and use "
    "terminationMessagePolicy: FallbackToLogsOnError"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """Where one container's termination message comes from."""

    container: str
    file: str | None = None  # relative to the executor's sandbox (volumes/<name>/<rest>)
    fallback_to_logs: bool = False


def _mapping(raw: Any) -> Mapping[str, Any]:
    return raw if isinstance(raw, Mapping) else {}


def sandbox_file(container: Mapping[str, Any], volumes: Sequence[Any]) -> str | None:
    """``volumes/<name>/<rest>`` when the container's terminationMessagePath lies under the
    mountPath of an emptyDir it mounts (the deepest mount covering the path decides)."""
    raw = container.get("terminationMessagePath") or DEFAULT_PATH
    if not isinstance(raw, str) or not raw.startswith("/") or ".." in raw.split("/"):
        return None
    path = posixpath.normpath(raw)
    kinds = {str(_mapping(v).get("name")): _mapping(v) for v in volumes}
    best: tuple[str, str] | None = None  # (mountPath, volume)
    mounts = container.get("volumeMounts")
    for mount in mounts if isinstance(mounts, list) else []:
        mount = _mapping(mount)
        at = mount.get("mountPath")
        if not isinstance(at, str) or not at.startswith("/"):
            continue
        at = posixpath.normpath(at)
        covers = path == at or path.startswith(at.rstrip("/") + "/")
        if covers and (best is None or len(at) > len(best[0])):
            best = (at, str(mount.get("name")))
    if best is None or best[0] == path:
        return None
    if kinds.get(best[1], {}).get("emptyDir") is None:
        return None
    rest = path[len(best[0].rstrip("/")) + 1:]
    return f"volumes/{best[1]}/{rest}"


def refusal(container: Mapping[str, Any], volumes: Sequence[Any]) -> str | None:
    """Why the container's terminationMessagePath cannot be honoured (None: it can, or it
    is the default, which gives no message)."""
    raw = container.get("terminationMessagePath")
    if raw in (None, "", DEFAULT_PATH) or sandbox_file(container, volumes) is not None:
        return None
    return REFUSED


def source_of(container: Mapping[str, Any], volumes: Sequence[Any]) -> Source | None:
    """Where a raw container's message is read (None: nowhere)."""
    file = sandbox_file(container, volumes)
    fallback = container.get("terminationMessagePolicy") == FALLBACK
    if file is None and not fallback:
        return None
    return Source(container=str(container.get("name")), file=file, fallback_to_logs=fallback)


def executor_of(task_id: str, *, init: bool, container: str) -> str | None:
    """The executor a task of ours runs under (when its status does not say)."""
    name = taskids.parse(task_id)
    if name is None:
        return None
    if not init:
        return taskids.app_executor_of(task_id)
    if name.generation is None:
        return None
    return taskids.executor_id(uid=name.uid, attempt=name.attempt, generation=name.generation,
                               init=container)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def file_message(data: bytes) -> str:
    """The message from the termination file: its last ``MAX_FILE_BYTES`` bytes."""
    return _text(data[-MAX_FILE_BYTES:])


def _last_lines(data: bytes, count: int) -> bytes:
    cut = len(data) - 1 if data.endswith(b"\n") else len(data)
    for _ in range(count):
        cut = data.rfind(b"\n", 0, cut)
        if cut < 0:
            return data
    return data[cut + 1:]


def log_message(stdout: bytes, stderr: bytes) -> str:
    """The message from the log: the last ``MAX_LOG_LINES`` lines of stdout then stderr, cut
    to their last ``MAX_LOG_BYTES`` bytes."""
    return _text(_last_lines(stdout + stderr, MAX_LOG_LINES)[-MAX_LOG_BYTES:])
