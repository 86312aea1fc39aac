"""SQLite persistence for ``--data-dir``: every committed change is written through.

Why: a developer's objects should survive a devkube restart. Writes happen synchronously inside
the store's commit (SQLite in WAL mode with synchronous=NORMAL costs well under a millisecond),
which keeps ordering trivial: the database always reflects a prefix of the change history.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from k8sbridge.devkube import watch


class Database:
    def __init__(self, *, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
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

    def load(self) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'rv'").fetchone()
        rv = int(row[0]) if row else 0
        objects = [
            (str(key), json.loads(body))
            for key, body in self._conn.execute("SELECT store_key, body FROM objects")
        ]
        return rv, objects

    def write(self, change: watch.Change) -> None:
        meta = change.obj["metadata"]
        key = (change.store_key, meta.get("namespace", ""), meta["name"])
        with self._conn:
            self._conn.execute("BEGIN")
            if change.type == "DELETED":
                self._conn.execute(
                    "DELETE FROM objects WHERE store_key = ? AND namespace = ? AND name = ?", key
                )
            else:
                self._conn.execute(
                    "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", (*key, change.data)
                )
            self._conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (change.rv,)
            )

    def close(self) -> None:
        self._conn.close()
