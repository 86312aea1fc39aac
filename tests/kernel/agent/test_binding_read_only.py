"""A read-only bind (``mounting.bind(..., readonly=True)``, the views' RO volumes and secrets)
is read-only and keeps its source's nosuid/noexec/nodev: the remount takes them from
``statvfs``, and dropping one would weaken the mount (or be refused where it is locked)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from k8sbridge.kernel.agent import mounting


def _in_own_mount_namespace(tmp_path: Path) -> list[list[str]]:
    """Mount a nosuid,noexec tmpfs at ``a``, bind it read-only at ``b`` in a forked child's
    namespace of its own; the options of both as the child's mountinfo shows them."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover -- the child reports through the pipe
        code = 1
        try:
            os.close(read)
            mounting.unshare(mounting.CLONE_NEWNS)
            mounting.mount("none", "/", None, mounting.MS_REC | mounting.MS_PRIVATE)
            mounting.mount("tmpfs", str(tmp_path / "a"), "tmpfs",
                           mounting.MS_NOSUID | mounting.MS_NOEXEC)
            mounting.bind(str(tmp_path / "a"), str(tmp_path / "b"), readonly=True)
            found = {m.point: list(m.options) for m in mounting.mountinfo("self")}
            os.write(write, json.dumps([found[str(tmp_path / "a")],
                                        found[str(tmp_path / "b")]]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result: list[list[str]] = json.loads(data)
    return result


def test_a_read_only_bind_keeps_its_sources_flags(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    source, bound = _in_own_mount_namespace(tmp_path)
    assert "rw" in source and "ro" in bound
    assert {"nosuid", "noexec"} <= set(bound)
    assert "nodev" not in bound  # nothing added either
    assert not [m for m in mounting.mountinfo("self") if str(tmp_path) in m.point]
