"""The master's HTTP server drops slow and idle clients, and keeps its registry private.

A probe found idle connections never timed out and state files readable by every local user.
These tests speak raw TCP (a slowloris client sends its headers a line at a time) and read the
modes of the files the master writes.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from k8sbridge.kernel import main
from k8sbridge.kernel.master.registry import Registry
from tests.kernel.master.conftest import master_config

IDLE = 1.0
BODY = 1.0


@pytest.fixture
async def bounded(tmp_path: Path) -> AsyncIterator[main.Kernel]:
    previous = os.umask(0o022)  # a lax umask: the modes below must not depend on it
    config = master_config(work_dir=tmp_path / "master", http_idle_timeout=IDLE,
                           http_body_timeout=BODY)
    try:
        async with main.running_kernel(master=config, agents=[]) as k:
            yield k
    finally:
        os.umask(previous)


async def _connect(kernel: main.Kernel) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = urlsplit(kernel.master_url)
    assert url.hostname is not None and url.port is not None
    return await asyncio.open_connection(url.hostname, url.port)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sent until it closed the connection (fails if it never does)."""
    data = b""
    async with asyncio.timeout(seconds):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk


async def test_a_slowloris_client_is_dropped(bounded: main.Kernel) -> None:
    reader, writer = await _connect(bounded)
    writer.write(b"GET /health HTTP/1.1\r\nHost: master\r\n")
    start = time.monotonic()
    dropped = False
    for i in range(int(6 * IDLE / 0.2)):  # a header line every 200 ms, never the blank line
        await asyncio.sleep(0.2)
        try:
            writer.write(f"X-Slow-{i}: still coming\r\n".encode())
            await writer.drain()
        except ConnectionError:
            dropped = True
            break
        if reader.at_eof():
            dropped = True
            break
    if not dropped:
        assert await _closed_within(reader, IDLE) == b""
    assert time.monotonic() - start < 4 * IDLE
    writer.close()


async def test_an_idle_connection_is_closed_and_a_prompt_one_served(
        bounded: main.Kernel) -> None:
    reader, writer = await _connect(bounded)
    start = time.monotonic()
    assert await _closed_within(reader, 4 * IDLE) == b""  # never sent a byte
    assert time.monotonic() - start >= IDLE * 0.9
    writer.close()
    reader, writer = await _connect(bounded)
    writer.write(b"GET /health HTTP/1.1\r\nHost: master\r\n\r\n")
    await writer.drain()
    answer = await _closed_within(reader, 4 * IDLE)  # answered, then idle, then closed
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    writer.close()


async def test_a_trickled_body_is_answered_408(bounded: main.Kernel) -> None:
    reader, writer = await _connect(bounded)
    writer.write(b"POST /api/v1 HTTP/1.1\r\nHost: master\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"type\":")
    await writer.drain()
    answer = await _closed_within(reader, BODY + 2.0 + 3.0)  # + the 2 s drain, + slack
    assert answer.startswith(b"HTTP/1.1 408 ")
    writer.close()


async def test_the_registry_is_private(bounded: main.Kernel, tmp_path: Path) -> None:
    work = tmp_path / "master"
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    files = sorted(p.name for p in work.iterdir())
    assert "registry.sqlite3" in files
    for name in files:
        assert stat.S_IMODE((work / name).stat().st_mode) == 0o600, name


def test_an_older_laxer_registry_is_tightened(tmp_path: Path) -> None:
    work = tmp_path / "old"
    work.mkdir(mode=0o755)
    (work / "registry.sqlite3").touch(mode=0o644)
    os.chmod(work / "registry.sqlite3", 0o644)
    Registry(work_dir=work).close()
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert stat.S_IMODE((work / "registry.sqlite3").stat().st_mode) == 0o600
