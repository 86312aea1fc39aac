"""``k8sbridge kernel --agents N`` with per-agent flags: N distinct agents from one command.

``k8sbridge run`` starts the kernel as a child process with three agents of different resources,
attributes and zones, so ``--agent-resources``/``--agent-attributes``/``--agent-region``/
``--agent-zone`` may be given once per agent (the k-th for agent k) as well as once for all
(the historical form, {i} as the index). Run the real CLI and read the master's /state.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kernel import cli
from tests.conftest import free_port


async def _state(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/state") as r:
        body: dict[str, Any] = await r.json()
        return body


async def test_each_agent_gets_its_own_resources_attributes_and_zone(tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "k8sbridge", "--log-level", "WARNING", "kernel",
        "--port", str(port), "--agents", "3", "--work-dir", str(tmp_path),
        "--agent-resources", "cpus:4;mem:512;disk:100;ports:[31000-31009]",
        "--agent-resources", "cpus:2;mem:256;disk:100;ports:[31000-31009]",
        "--agent-resources", "cpus:8;mem:1024;disk:100;ports:[31000-31009]",
        "--agent-attributes", "rack:r1;disk:ssd",
        "--agent-attributes", "rack:r2;disk:hdd",
        "--agent-attributes", "rack:r3;disk:ssd",
        "--agent-region", "local",
        "--agent-zone", "z1", "--agent-zone", "z1", "--agent-zone", "z2",
        "--agent-status-retry-seconds", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        for _ in range(4):  # the master line, then one line per agent
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line, "the kernel exited early"
        state = await _state(f"http://127.0.0.1:{port}")
        slaves = {s["hostname"]: s for s in state["slaves"]}
        assert sorted(slaves) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        got = {
            host: (s["resources"]["cpus"], s["resources"]["mem"], s["attributes"]["rack"],
                   s["attributes"]["disk"], s["domain"]["fault_domain"]["zone"]["name"],
                   s["domain"]["fault_domain"]["region"]["name"])
            for host, s in slaves.items()
        }
        assert got == {
            "127.0.0.1": (4, 512, "r1", "ssd", "z1", "local"),
            "127.0.0.2": (2, 256, "r2", "hdd", "z1", "local"),
            "127.0.0.3": (8, 1024, "r3", "ssd", "z2", "local"),
        }
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_wrong_number_of_per_agent_values_is_a_clear_error(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "k8sbridge", "kernel", "--port", str(free_port()),
        "--agents", "3", "--work-dir", str(tmp_path),
        "--agent-zone", "z1", "--agent-zone", "z2", "--agent-region", "local",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode != 0
    text = err.decode()
    assert "--agent-zone is given 2 times for 3 agents" in text and "Traceback" not in text


def test_per_agent_values() -> None:
    assert cli.per_agent(None, flag="--x", agents=2) == [None, None]
    assert cli.per_agent(["rack:r{i}"], flag="--x", agents=3) == ["rack:r0", "rack:r1", "rack:r2"]
    assert cli.per_agent(["a", "b{n}"], flag="--x", agents=2) == ["a", "b2"]
    with pytest.raises(cli.AgentFlagError, match="given 2 times for 3 agents"):
        cli.per_agent(["a", "b"], flag="--x", agents=3)
