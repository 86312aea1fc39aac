"""The master's registry: what must survive a master restart, in SQLite under ``work_dir``.

Why these and only these: Mesos' replicated registry keeps agents (admitted, unreachable, gone:
an agent marked gone by the operator is refused for good, even by a restarted master),
weights, quota and (via agents' checkpointed resources) dynamic reservations; frameworks are kept
so that a re-subscription with an old id is recognised and a torn-down id is refused. Tasks are
not stored: after a restart agents re-register with the tasks they still run, as with Mesos.
Writes are small and synchronous (one transaction per change) so that the single master task
never has a half-written registry behind it. The registry holds FrameworkInfos (principals,
labels, webui URLs), so its directory is 0700 and its files 0600 whatever the umask: SQLite
gives its ``-wal`` and ``-shm`` files the database file's mode, which is set before it opens.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from k8sbridge.kernel.master.errors import RegistryError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frameworks (
    id TEXT PRIMARY KEY, info TEXT NOT NULL, completed INTEGER NOT NULL DEFAULT 0,
    removed_time REAL
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY, info TEXT NOT NULL, unreachable_time REAL
);
CREATE TABLE IF NOT EXISTS reservations (
    agent_id TEXT PRIMARY KEY, resources TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS weights (role TEXT PRIMARY KEY, weight REAL NOT NULL);
CREATE TABLE IF NOT EXISTS quotas (role TEXT PRIMARY KEY, limits TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gone_agents (id TEXT PRIMARY KEY, gone_time REAL NOT NULL);
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the registry held at start-up."""

    frameworks: tuple[tuple[str, dict[str, Any], bool], ...] = ()  # (id, info, completed)
    agents: tuple[tuple[str, dict[str, Any], float | None], ...] = ()  # (id, info, unreachable)
    reservations: tuple[tuple[str, list[dict[str, Any]]], ...] = ()  # (agent id, raw resources)
    weights: tuple[tuple[str, float], ...] = ()
    quotas: tuple[tuple[str, dict[str, float]], ...] = ()
    gone: tuple[tuple[str, float], ...] = ()  # (agent id, when it was marked gone)


class Registry:
    """SQLite when ``work_dir`` is given; otherwise every call is a no-op (memory only)."""

    def __init__(self, *, work_dir: Path | None) -> None:
        self._db: sqlite3.Connection | None = None
        if work_dir is None:
            return
        try:
            work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(work_dir, 0o700)
            path = work_dir / "registry.sqlite3"
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
                if (work_dir / name).exists():
                    os.chmod(work_dir / name, 0o600)  # files of an older, laxer master
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise RegistryError(f"cannot open the registry in {work_dir}: {e}") from e

    @property
    def persistent(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        if self._db is None:
            return
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as e:
            raise RegistryError(f"registry write failed: {e}") from e

    def load(self) -> Snapshot:
        if self._db is None:
            return Snapshot()
        try:
            db = self._db
            frameworks = tuple(
                (row[0], json.loads(row[1]), bool(row[2]))
                for row in db.execute("SELECT id, info, completed FROM frameworks")
            )
            agents = tuple(
                (row[0], json.loads(row[1]), row[2])
                for row in db.execute("SELECT id, info, unreachable_time FROM agents")
            )
            reservations = tuple(
                (row[0], json.loads(row[1]))
                for row in db.execute("SELECT agent_id, resources FROM reservations")
            )
            weights = tuple(
                (row[0], float(row[1])) for row in db.execute("SELECT role, weight FROM weights")
            )
            quotas = tuple(
                (row[0], json.loads(row[1]))
                for row in db.execute("SELECT role, limits FROM quotas")
            )
            gone = tuple(
                (row[0], float(row[1]))
                for row in db.execute("SELECT id, gone_time FROM gone_agents")
            )
        except (sqlite3.Error, json.JSONDecodeError) as e:
            raise RegistryError(f"registry is unreadable: {e}") from e
        return Snapshot(
            frameworks=frameworks, agents=agents, reservations=reservations, weights=weights,
            quotas=quotas, gone=gone,
        )

    # -- frameworks ---------------------------------------------------------------------------

    def put_framework(self, framework_id: str, info: dict[str, Any]) -> None:
        self._exec(
            "INSERT INTO frameworks (id, info, completed) VALUES (?, ?, 0) "
            "ON CONFLICT(id) DO UPDATE SET info = excluded.info",
            (framework_id, json.dumps(info)),
        )

    def complete_framework(self, framework_id: str, *, now: float) -> None:
        self._exec(
            "UPDATE frameworks SET completed = 1, removed_time = ? WHERE id = ?",
            (now, framework_id),
        )

    # -- agents -------------------------------------------------------------------------------

    def put_agent(self, agent_id: str, info: dict[str, Any]) -> None:
        self._exec(
            "INSERT INTO agents (id, info, unreachable_time) VALUES (?, ?, NULL) "
            "ON CONFLICT(id) DO UPDATE SET info = excluded.info, unreachable_time = NULL",
            (agent_id, json.dumps(info)),
        )

    def mark_unreachable(self, agent_id: str, *, when: float) -> None:
        self._exec("UPDATE agents SET unreachable_time = ? WHERE id = ?", (when, agent_id))

    def mark_gone(self, agent_id: str, *, when: float) -> None:
        """``MarkSlaveGone``: out of the admitted/unreachable list (with the resources it had
        checkpointed), into the gone list, in one transaction."""
        if self._db is None:
            return
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
                self._db.execute("DELETE FROM reservations WHERE agent_id = ?", (agent_id,))
                self._db.execute(
                    "INSERT INTO gone_agents (id, gone_time) VALUES (?, ?) "
                    "ON CONFLICT(id) DO NOTHING", (agent_id, when))
        except sqlite3.Error as e:
            raise RegistryError(f"registry write failed: {e}") from e

    def put_reservations(self, agent_id: str, resources: list[dict[str, Any]]) -> None:
        if resources:
            self._exec(
                "INSERT INTO reservations (agent_id, resources) VALUES (?, ?) "
                "ON CONFLICT(agent_id) DO UPDATE SET resources = excluded.resources",
                (agent_id, json.dumps(resources)),
            )
        else:
            self._exec("DELETE FROM reservations WHERE agent_id = ?", (agent_id,))

    # -- weights and quota --------------------------------------------------------------------

    def put_weight(self, role: str, weight: float) -> None:
        self._exec(
            "INSERT INTO weights (role, weight) VALUES (?, ?) "
            "ON CONFLICT(role) DO UPDATE SET weight = excluded.weight",
            (role, weight),
        )

    def put_quota(self, role: str, limits: dict[str, float] | None) -> None:
        if limits is None:
            self._exec("DELETE FROM quotas WHERE role = ?", (role,))
        else:
            self._exec(
                "INSERT INTO quotas (role, limits) VALUES (?, ?) "
                "ON CONFLICT(role) DO UPDATE SET limits = excluded.limits",
                (role, json.dumps(limits)),
            )
