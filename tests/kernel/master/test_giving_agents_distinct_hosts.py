"""``k8sbridge kernel --agents N`` gives every in-process agent a host of its own.

A bridge maps each agent hostname to one Node, so three agents on 127.0.0.1 would collapse into
one. Run the real CLI process and read the master's /state: distinct addresses 127.0.0.{i+1},
each agent's API served there; ``--agent-hostname`` still overrides the advertised name.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kernel import cli
from tests.conftest import free_port


@contextlib.asynccontextmanager
async def _kernel(tmp_path: Path, *extra: str) -> AsyncIterator[tuple[str, list[str]]]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "k8sbridge", "--log-level", "WARNING", "kernel",
        "--port", str(port), "--agents", "3", "--work-dir", str(tmp_path),
        "--agent-resources", "cpus:1;mem:256;disk:256;ports:[3{i}000-3{i}099]", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines = []
        while len(lines) < 4:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line, "the kernel exited early"
            lines.append(line.decode())
        yield f"http://127.0.0.1:{port}", lines
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _state(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/state") as r:
        body: dict[str, Any] = await r.json()
        return body


async def test_agents_get_distinct_loopback_hosts(tmp_path: Path) -> None:
    async with _kernel(tmp_path) as (url, lines):
        for i in range(3):
            assert lines[1 + i].startswith(f"agent {i}: http://127.0.0.{i + 1}:")
        state = await _state(url)
        slaves = sorted(state["slaves"], key=lambda s: s["hostname"])
        assert [s["hostname"] for s in slaves] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        for s in slaves:
            address = s["pid"].split("@", 1)[1]
            assert address.startswith(s["hostname"] + ":")
            async with aiohttp.ClientSession() as http, http.get(
                    f"http://{address}/state") as r:
                assert (await r.json())["id"] == s["id"]


async def test_agent_hostname_override_is_kept(tmp_path: Path) -> None:
    async with _kernel(tmp_path, "--agent-hostname", "node-{n}.example") as (url, lines):
        state = await _state(url)
        names = sorted(s["hostname"] for s in state["slaves"])
        assert names == ["node-1.example", "node-2.example", "node-3.example"]
        for i in range(3):  # the addresses stay distinct; each agent answers on its own
            address = lines[1 + i].split("http://", 1)[1].split()[0]
            assert address.startswith(f"127.0.0.{i + 1}:")
            async with aiohttp.ClientSession() as http, http.get(
                    f"http://{address}/state") as r:
                assert (await r.json())["hostname"] == f"node-{i + 1}.example"


def test_agent_host_rules() -> None:
    assert cli.agent_host(index=0, host="127.0.0.1", spec=None) == "127.0.0.1"
    assert cli.agent_host(index=254, host="127.0.0.1", spec=None) == "127.0.0.255"
    assert cli.agent_host(index=255, host="127.0.0.1", spec=None) == "127.0.1.0"
    assert cli.agent_host(index=2, host="localhost", spec=None) == "127.0.0.3"
    assert cli.agent_host(index=2, host="10.1.2.3", spec=None) == "10.1.2.3"
    assert cli.agent_host(index=2, host="0.0.0.0", spec=None) == "0.0.0.0"
    assert cli.agent_host(index=2, host="127.0.0.1", spec="10.0.0.{n}") == "10.0.0.3"
    with pytest.raises(ValueError, match="no loopback address"):
        cli.agent_host(index=1 << 24, host="127.0.0.1", spec=None)
