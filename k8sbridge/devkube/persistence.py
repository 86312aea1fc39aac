"""SQLite persistence for ``--data-dir``: every change is on disk before anyone can see it.

Why: a developer's objects should survive a devkube restart, and a write acknowledged to a
client must survive it too. SQLite in WAL mode with synchronous=NORMAL keeps committed
transactions across a process crash; what costs CPU is the commit itself, once per change.
So changes are staged into an open transaction as the store commits them (in order: the
database always holds a prefix of the change history) and committed together once per pass
of the event loop (``GroupCommit``); every HTTP reply and every watch write waits for that
commit first (``durable()``), so nothing not yet on disk is ever acknowledged or shown.
If a commit fails, the server stops answering (503) rather than serve state it could not
keep; a restart resumes from the last commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from k8sbridge.devkube import watch

log = logging.getLogger(__name__)


class StorageFailed(Exception):
    """A commit to the database failed: state in memory is ahead of what survives a restart."""


PRIVATE_FILE = 0o600  # Secrets are stored in the clear: only devkube's user may read them
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if needed and make it readable by its owner only."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR)


def _private_file(path: Path) -> None:
    """Create ``path`` as 0600 before anything writes to it (SQLite gives its -wal and -shm
    files the mode of the database file), and tighten one left by an older version."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
    path.chmod(PRIVATE_FILE)


class Database:
    def __init__(self, *, path: Path) -> None:
        private_dir(path.parent)
        _private_file(path)
        for suffix in ("-wal", "-shm"):
            sidecar = path.with_name(path.name + suffix)
            if sidecar.exists():
                sidecar.chmod(PRIVATE_FILE)
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS objects (store_key TEXT NOT NULL, namespace TEXT NOT "
            "NULL, name TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (store_key, namespace, "
            "name))"
        )
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )
        self._staged_rv: int | None = None

    def load(self) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'rv'").fetchone()
        rv = int(row[0]) if row else 0
        objects = [
            (str(key), json.loads(body))
            for key, body in self._conn.execute("SELECT store_key, body FROM objects")
        ]
        return rv, objects

    @property
    def staged(self) -> bool:
        """Changes are written into the open transaction but not committed yet."""
        return self._staged_rv is not None

    def stage(self, change: watch.Change) -> None:
        """Write ``change`` into the open transaction (opened by the first staged change)."""
        meta = change.obj["metadata"]
        key = (change.store_key, meta.get("namespace", ""), meta["name"])
        if not self._conn.in_transaction:
            if self._staged_rv is not None:
                raise StorageFailed("the transaction holding staged changes was rolled back")
            self._conn.execute("BEGIN")
        try:
            if change.type == "DELETED":
                self._conn.execute(
                    "DELETE FROM objects WHERE store_key = ? AND namespace = ? AND name = ?", key
                )
            else:
                self._conn.execute(
                    "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", (*key, change.data)
                )
        except sqlite3.Error:
            if self._staged_rv is None and self._conn.in_transaction:
                self._conn.execute("ROLLBACK")  # nothing else was staged: as if never begun
            elif not self._conn.in_transaction:
                raise StorageFailed("a failed write rolled back staged changes") from None
            raise
        self._staged_rv = change.rv

    def commit(self) -> None:
        """Commit every staged change (with the resourceVersion counter) in one transaction."""
        if self._staged_rv is None:
            return
        rv, self._staged_rv = self._staged_rv, None
        if not self._conn.in_transaction:
            raise StorageFailed("the transaction holding staged changes was rolled back")
        try:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (rv,))
            self._conn.execute("COMMIT")
        except sqlite3.Error as e:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise StorageFailed(f"committing changes up to resourceVersion {rv}: {e}") from e

    def write(self, change: watch.Change) -> None:
        """Stage and commit one change at once."""
        self.stage(change)
        self.commit()

    def close(self) -> None:
        self._conn.close()


class GroupCommit:
    """The store's persistence hook when an event loop runs: one commit per loop pass.

    ``stage`` (called inside the store's commit, before memory changes) schedules the commit
    with ``call_soon`` when it opens a batch, so the commit runs before any task woken by the
    changes of that batch; ``durable()`` returns once everything staged so far is committed.
    Without a running loop (start-up, plain function calls) each change commits at once.
    """

    def __init__(self, *, database: Database) -> None:
        self._db = database
        self._scheduled = False
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self.failure: StorageFailed | None = None

    def stage(self, change: watch.Change) -> None:
        if self.failure is not None:
            raise self.failure
        if self._closed:
            raise StorageFailed("the database is closed")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._db.write(change)
            return
        self._db.stage(change)
        if not self._scheduled:
            self._scheduled = True
            self._schedule(loop)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_soon(self._flush)

    @property
    def pending(self) -> bool:
        return self._scheduled

    async def durable(self) -> None:
        """Wait until every change staged so far is committed; StorageFailed if it cannot be."""
        if self.failure is not None:
            raise self.failure
        if not self._scheduled:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _flush(self) -> None:
        self._scheduled = False
        waiters, self._waiters = self._waiters, []
        if self._closed:
            return
        try:
            self._db.commit()
        except StorageFailed as e:
            log.critical("devkube cannot persist its state (%s); refusing all requests until "
                         "it is restarted from the last committed state", e)
            self.failure = e
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(e)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        """Commit what is staged, then close the database."""
        if self._closed:
            return
        self._closed = True
        waiters, self._waiters = self._waiters, []
        try:
            if self.failure is None:
                self._db.commit()
        finally:
            self._db.close()
            for waiter in waiters:
                if not waiter.done():
                    waiter.cancel()
