"""Secrets are stored in the clear in devkube.db, so its data dir is 0700 and the database, its
WAL and shared-memory files are 0600, even under a permissive umask and when an earlier run left
them readable by others."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from k8sbridge.devkube import main
from tests.devkube.server.conftest import Api


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _store_a_secret(data: Path, name: str) -> None:
    config = main.DevkubeConfig(port=0, controllers=False, data_dir=data)
    async with main.running(config) as dk, aiohttp.ClientSession() as session:
        api = Api(devkube=dk, session=session)
        status, _ = await api.request("POST", "/api/v1/namespaces/default/secrets", body={
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"password": base64.b64encode(b"hunter2").decode()}})
        assert status == 201
        db = data / "devkube.db"
        assert (data / "devkube.db-wal").exists()  # checked while the WAL is live
        for path in (db, data / "devkube.db-wal", data / "devkube.db-shm"):
            assert _mode(path) == 0o600, path
        assert _mode(data) == 0o700
        assert _mode(data / "pki") == 0o700
        assert _mode(data / "pki" / "apiserver.key") == 0o600


@pytest.mark.usefixtures("permissive_umask")
async def test_the_database_and_its_wal_are_private(tmp_path: Path) -> None:
    await _store_a_secret(tmp_path / "data", "first")


@pytest.mark.usefixtures("permissive_umask")
async def test_loose_modes_left_by_an_earlier_run_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _store_a_secret(data, "first")
    data.chmod(0o755)
    for name in ("devkube.db", "devkube.db-wal", "devkube.db-shm"):
        if (data / name).exists():
            (data / name).chmod(0o644)
    (data / "pki").chmod(0o755)
    await _store_a_secret(data, "second")
