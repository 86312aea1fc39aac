"""Mesos' on-disk layout: sandboxes under ``slaves/`` and checkpoints under ``meta/``.

Why copy Mesos exactly: operators and tools locate sandboxes by these paths
(``<work_dir>/slaves/<agentId>/frameworks/<fid>/executors/<eid>/runs/<containerId>``, with a
``runs/latest`` symlink), and the files API exposes the same tree under the virtual path
``/frameworks/<fid>/executors/<eid>/runs/latest``.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import mounting

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "clean_temp_files",
    "finish_interrupted_writes",
    "private_meta_dir",
    "write_private",
    "container_meta_dir",
    "executor_sandbox",
    "latest_agent_id",
    "link_latest",
    "make_sandbox",
    "read_json",
    "save_agent_id",
    "task_sandbox",
]


def executor_sandbox(*, work_dir: Path, agent_id: str, framework_id: str, executor_id: str,
                     container_id: str) -> Path:
    # One join and one parse (chained ``/`` parses every component again: ~0.3 ms per path).
    return Path(os.path.join(work_dir, "slaves", agent_id, "frameworks", framework_id,
                             "executors", executor_id, "runs", container_id))


def task_sandbox(*, executor_dir: Path, task_id: str) -> Path:
    """Default-executor tasks keep their own files under ``tasks/<taskId>/``."""
    return executor_dir / "tasks" / task_id


def container_meta_dir(*, work_dir: Path, agent_id: str, framework_id: str, executor_id: str,
                       container_id: str) -> Path:
    return Path(os.path.join(work_dir, "meta", "slaves", agent_id, "frameworks", framework_id,
                             "executors", executor_id, "runs", container_id))


SANDBOX_MODE = 0o750


def make_sandbox(path: Path) -> None:
    """A sandbox as Mesos' ``createSandboxDirectory`` makes it: private task data, so 0750
    (not accessible to others); the caller chowns it to its user."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, SANDBOX_MODE)


def link_latest(run_dir: Path) -> None:
    """Point ``runs/latest`` at ``run_dir`` (atomically replacing an older link)."""
    latest = run_dir.parent / "latest"
    try:  # the executor's first run: no link to replace (one file-system call, not two)
        latest.symlink_to(run_dir.name)
        return
    except FileExistsError:
        pass
    tmp = run_dir.parent / f".latest.{run_dir.name}"  # unique per run: nothing to clear first
    try:
        tmp.symlink_to(run_dir.name)
    except FileExistsError:
        tmp.unlink()
        tmp.symlink_to(run_dir.name)
    os.replace(tmp, latest)


def save_agent_id(*, work_dir: Path, agent_id: str) -> None:
    path = work_dir / "meta" / "slaves" / "latest"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".latest.tmp")
    write_private(tmp, agent_id.encode())
    os.replace(tmp, path)


def latest_agent_id(*, work_dir: Path) -> str | None:
    try:
        text = (work_dir / "meta" / "slaves" / "latest").read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return text or None


def atomic_write_json(path: Path, value: Any) -> None:
    """Write ``path`` whole or not at all, as far as a crash of this process goes (see
    ``atomic_write_bytes``)."""
    atomic_write_bytes(path, json.dumps(value, separators=(",", ":")).encode())


_CANNOT_EXCHANGE = (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all, as far as a crash of this process goes.

    The complete new version is written to the spare file ``.NAME.spare`` (the version before
    the current one: its inode is reused, overwritten and cut to length), then the two names are
    exchanged in one step (``renameat2(RENAME_EXCHANGE)``): ``path`` is never missing and never
    renamed *over* (ext4's ``auto_da_alloc`` starts writeback of a file renamed over another one
    and waits for it: 0.5-0.7 ms of the agents' shared event loop per checkpoint on a virtio
    disk), and no inode is freed and allocated per write. On an ext4 without a journal each
    allocation skips the inodes freed in the last seconds by reading their inode table blocks
    (``recently_deleted``): with an unlink and a new file per write, that scan grew with the
    burst and was the largest system time of the kernel process. Like Mesos'
    ``state::checkpoint`` by default nothing is fsynced: the reader is the next agent process
    on the same running host. The first write renames the spare into place (no old file to
    exchange with). Where exchanging is not supported the spare becomes the temporary file
    ``.NAME.tmp``, the old file is unlinked and the temporary one renamed into place; a crash
    between the two leaves no ``path`` but a complete temporary file, which
    ``finish_interrupted_writes`` renames into place before recovery. A spare is never taken
    for a checkpoint: its ``path`` exists whenever it holds a whole version.
    """
    spare = path.with_name(f".{path.name}.spare")
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(spare, flags, PRIVATE_FILE)
    except FileNotFoundError:  # first write: create the directory (rarely needed, so not always)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(spare, flags, PRIVATE_FILE)
    try:
        _write_all(fd, data)
        os.ftruncate(fd, len(data))  # never to zero first: that too starts writeback on close
    finally:
        os.close(fd)
    try:
        mounting.exchange(str(spare), str(path))
        return
    except FileNotFoundError:  # the first write: nothing to exchange with
        os.rename(spare, path)
        return
    except OSError as e:
        if e.errno not in _CANNOT_EXCHANGE:
            raise
    tmp = path.with_name(f".{path.name}.tmp")
    os.rename(spare, tmp)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.rename(tmp, path)


PRIVATE_FILE = 0o600  # checkpoints hold TaskInfos, whose environment may carry secret values
PRIVATE_DIR = 0o700


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` readable by this user only (also when it existed with another mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """Write ``data`` at the start of ``fd``, made readable by this user only (also when the
    file existed with another mode)."""
    os.fchmod(fd, PRIVATE_FILE)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def private_meta_dir(*, work_dir: Path) -> Path:
    """``work_dir/meta`` made (or re-made) accessible to this user only: checkpoints, event
    logs and the container daemon's log live below it."""
    meta = work_dir / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    os.chmod(meta, PRIVATE_DIR)
    return meta


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable (a torn checkpoint)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None


_STATE_TEMP = "meta/slaves/*/frameworks/*/executors/*/runs/*/.state.json.tmp"


def finish_interrupted_writes(*, work_dir: Path) -> list[Path]:
    """Complete the checkpoint writes a killed agent left between unlinking the old
    ``state.json`` and renaming the new one into place (see ``atomic_write_bytes``): a
    temporary file whose ``state.json`` is missing and that holds a whole JSON object (a
    write cut short never does: the object's closing brace comes last). Returns the
    checkpoints put back; run before ``clean_temp_files``, which removes what is left."""
    finished: list[Path] = []
    for tmp in work_dir.glob(_STATE_TEMP):
        final = tmp.with_name("state.json")
        if final.exists() or not isinstance(read_json(tmp), dict):
            continue
        os.rename(tmp, final)
        finished.append(final)
    return finished


# What an interrupted atomic write leaves (see ``atomic_write_json``, ``save_agent_id`` and
# ``link_latest``), relative to the work dir.
_TEMP_PATTERNS = (
    "meta/slaves/.latest.tmp",
    "meta/slaves/*/frameworks/*/executors/*/runs/*/.*.tmp",  # (after finish_interrupted_writes)
    "slaves/*/frameworks/*/executors/*/runs/.latest.*",
)


def clean_temp_files(*, work_dir: Path) -> list[Path]:
    """Remove the temporary files a killed agent left under ``work_dir`` (the agent keeps
    every temporary file there, none in ``/tmp``); returns what was removed."""
    removed: list[Path] = []
    for pattern in _TEMP_PATTERNS:
        for path in work_dir.glob(pattern):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except IsADirectoryError:
                continue  # not one of ours
            removed.append(path)
    return removed
