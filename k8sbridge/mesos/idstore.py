"""Where the framework id lives between runs: the persistence callback of the driver.

Why it matters: a framework that re-registers without its id gets a new one, and the master
kills the old one's tasks when its failover timeout passes: every pod would run twice, then
die. The driver loads the id at start and saves it on every SUBSCRIBED; stores must replace it
atomically. (The bridge keeps it in a ConfigMap: ``kube/state.py``.)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from k8sbridge.model.ids import FrameworkId

__all__ = ["FileFrameworkIdStore", "FrameworkIdStore", "MemoryFrameworkIdStore"]


class FrameworkIdStore(Protocol):
    """Durable home of the framework id (the persistence callback)."""

    def load(self) -> FrameworkId | None: ...

    def save(self, framework_id: FrameworkId) -> None: ...


class MemoryFrameworkIdStore:
    """Keeps the id in memory only (tests, throw-away frameworks)."""

    def __init__(self, framework_id: FrameworkId | None = None) -> None:
        self.framework_id = framework_id

    def load(self) -> FrameworkId | None:
        return self.framework_id

    def save(self, framework_id: FrameworkId) -> None:
        self.framework_id = framework_id


class FileFrameworkIdStore:
    """Keeps the id in a small file, replaced atomically (write to a temp file, rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> FrameworkId | None:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return FrameworkId(text) if text else None

    def save(self, framework_id: FrameworkId) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".framework-id.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(framework_id + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
