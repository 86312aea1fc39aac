"""--data-dir commits the changes of one event-loop pass together, and nothing is shown first.

The promise of docs/devkube.md: a write acknowledged to a client (or shown in a watch) survives
a restart. These tests read the database through a second SQLite connection, which sees only
committed transactions, and make commits fail to check the server then refuses to answer.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.devkube import kinds, main, persistence, registry, store
from tests.devkube.server.conftest import Api, pod

PODS = "/api/v1/namespaces/default/pods"
POD_KIND = kinds.BY_KEY[kinds.ResourceKey("/pods")]


def _committed(path: Path) -> tuple[int, set[str]]:
    """(resourceVersion counter, pod names) as a fresh reader sees the database."""
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'rv'").fetchone()
        names = {name for (name,) in conn.execute(
            "SELECT name FROM objects WHERE store_key = '/pods'")}
    return (int(row[0]) if row else 0), names


class _CountingDatabase(persistence.Database):
    commits = 0

    def commit(self) -> None:
        if self.staged:
            _CountingDatabase.commits += 1
        super().commit()


async def test_one_commit_per_loop_pass_and_durable_waits_for_it(tmp_path: Path) -> None:
    path = tmp_path / "devkube.db"
    database = _CountingDatabase(path=path)
    group = persistence.GroupCommit(database=database)
    reg = registry.Registry(store=store.Store(persist=group.stage))
    try:
        reg.bootstrap()
        await group.durable()
        before = _CountingDatabase.commits
        for i in range(5):  # five writes in one pass of the loop
            reg.create(kind=POD_KIND, namespace="default", body=pod(f"p{i}"))
        assert group.pending
        assert _committed(path)[1] == set()  # staged, not yet visible to anyone
        await group.durable()
        assert not group.pending
        assert _CountingDatabase.commits == before + 1
        assert _committed(path) == (reg.store.rv, {f"p{i}" for i in range(5)})
    finally:
        group.close()


async def test_acknowledged_writes_and_watched_changes_are_on_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # commits come late (as on a slow disk), so a reply or event sent early would show
    monkeypatch.setattr(persistence.GroupCommit, "_schedule",
                        lambda self, loop: loop.call_later(0.02, self._flush))
    config = main.DevkubeConfig(port=0, controllers=False, data_dir=tmp_path / "data")
    path = tmp_path / "data" / "devkube.db"
    async with main.running(config) as dk, aiohttp.ClientSession() as session:
        api = Api(devkube=dk, session=session)
        _, listed = await api.request("GET", PODS)
        seen: list[tuple[set[str], str]] = []

        async def watch() -> None:
            async with session.get(
                    dk.url + PODS, params={"watch": "true",
                                           "resourceVersion": listed["metadata"][
                                               "resourceVersion"]},
                    headers=api.headers, ssl=api.ssl) as resp:
                async for raw in resp.content:
                    if raw.strip():
                        name = json.loads(raw)["object"]["metadata"]["name"]
                        seen.append((_committed(path)[1], name))  # checked on arrival
                        if len(seen) == 40:
                            return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)

        async def create(i: int) -> None:
            status, body = await api.request("POST", PODS, body=pod(f"c{i}"))
            assert status == 201
            rv, names = _committed(path)  # checked as soon as the reply arrives
            assert f"c{i}" in names and rv >= int(body["metadata"]["resourceVersion"])

        await asyncio.gather(*(create(i) for i in range(40)))
        await asyncio.wait_for(watcher, 30)
        assert all(name in names for names, name in seen)


async def test_a_failed_commit_stops_the_server_answering(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = main.DevkubeConfig(port=0, controllers=False, data_dir=tmp_path / "data")
    async with main.running(config) as dk, aiohttp.ClientSession() as session:
        api = Api(devkube=dk, session=session)
        assert (await api.request("POST", PODS, body=pod("kept")))[0] == 201

        def fail(self: persistence.Database) -> None:
            raise persistence.StorageFailed("disk full (test)")

        monkeypatch.setattr(persistence.Database, "commit", fail)
        status, body = await api.request("POST", PODS, body=pod("lost"))
        assert status == 503 and "cannot persist" in body["message"]
        status, _ = await api.request("GET", PODS)
        assert status == 503  # memory is ahead of the disk: show nothing more
        monkeypatch.undo()
    async with main.running(config) as dk, aiohttp.ClientSession() as session:
        _, listed = await Api(devkube=dk, session=session).request("GET", PODS)
        assert [p["metadata"]["name"] for p in listed["items"]] == ["kept"]


def test_without_a_running_loop_each_change_commits_at_once(tmp_path: Path) -> None:
    path = tmp_path / "devkube.db"
    group = persistence.GroupCommit(database=persistence.Database(path=path))
    reg = registry.Registry(store=store.Store(persist=group.stage))
    try:
        reg.create(kind=kinds.BY_KEY[kinds.ResourceKey("/namespaces")], namespace="",
                   body={"metadata": {"name": "default"}})
        reg.create(kind=POD_KIND, namespace="default", body=pod("now"))
        assert not group.pending and _committed(path) == (reg.store.rv, {"now"})
    finally:
        group.close()


def test_a_failed_write_leaves_nothing_changed(tmp_path: Path) -> None:
    database = persistence.Database(path=tmp_path / "devkube.db")
    st = store.Store(persist=database.write)
    objects: Any = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "p", "namespace": "default"}}
    st.create("/pods", dict(objects, metadata=dict(objects["metadata"])))
    database.close()  # every further write fails
    with pytest.raises(sqlite3.ProgrammingError):
        st.create("/pods", dict(objects, metadata={"name": "q", "namespace": "default"}))
    assert st.peek("/pods", "default", "q") is None and st.rv == 1
