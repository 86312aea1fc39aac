"""``k8sbridge kernel`` as a user runs it: a real process, real signals, real tasks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from tests.conftest import free_port
from tests.kernel.master import wire


def _sleepers(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and b"sleep" in cmdline:
            found.append(int(pid))
    return found


async def test_kernel_command_runs_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "k8sbridge", "--log-level", "WARNING", "kernel",
        "--port", str(port), "--agents", "2", "--work-dir", str(tmp_path),
        "--agent-resources", "cpus:1;mem:512;disk:512;ports:[3{i}000-3{i}099]",
        "--agent-attributes", "rack:r{i}", "--agent-switch-user", "false",  # user "tester"
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    marker = "417.25"
    try:
        assert proc.stdout is not None
        lines = []
        while len(lines) < 3:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line, "the kernel exited early"
            lines.append(line.decode())
        assert lines[0].startswith(f"master: http://127.0.0.1:{port}")
        assert lines[1].startswith("agent 0: http://127.0.0.1:")
        assert lines[2].startswith("agent 1: http://127.0.0.2:")  # a host of its own
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/state") as resp:
                state = await resp.json()
            racks = sorted(s["attributes"]["rack"] for s in state["slaves"])
            assert racks == ["r0", "r1"]
            ports = sorted(s["resources"]["ports"] for s in state["slaves"])
            assert ports == ["[30000-30099]", "[31000-31099]"]
            st = wire.Stream(session, url)
            await st.subscribe(wire.framework_info(failover_timeout=600))
            offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
            await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]],
                           "operations": [{"type": "LAUNCH", "launch": {"task_infos": [
                               wire.command_task("cli-task", offer["agent_id"]["value"],
                                                 f"sleep {marker}")]}}]}})
            await wire.until_state(st, "cli-task", "TASK_RUNNING")
            for _ in range(100):  # RUNNING may come before the command has exec'd sleep
                if _sleepers(marker):
                    break
                await asyncio.sleep(0.1)
            assert _sleepers(marker)
            await st.close()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=30)
        assert code == 0
        for _ in range(50):
            if not _sleepers(marker):
                break
            await asyncio.sleep(0.1)
        assert _sleepers(marker) == [], "SIGTERM left the task running"
        registry = tmp_path / "master" / "registry.sqlite3"
        assert registry.exists()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    assert line, "the process exited early"
    return line.decode()


@contextlib.asynccontextmanager
async def _master_and_agent(tmp_path: Path, *agent_args: str
                            ) -> AsyncIterator[tuple[int, Process, Process]]:
    """``k8sbridge kernel master`` and one ``kernel agent`` as processes of their own; yields
    the master's port, the master and the agent (whose first line is still unread); kills
    what is left after."""
    port = free_port()
    master = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "k8sbridge", "--log-level", "WARNING", "kernel", "master",
        "--port", str(port), "--work-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    agent = None
    try:
        assert (await _line(master)).startswith(f"master: http://127.0.0.1:{port}")
        agent = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "k8sbridge", "--log-level", "WARNING", "kernel", "agent",
            "--master", f"127.0.0.1:{port}", "--work-dir", str(tmp_path / "agent"),
            "--resources", "cpus:1;mem:256;disk:256", "--switch-user", "false", *agent_args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        yield port, master, agent
    finally:
        for proc in (agent, master):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_master_and_agent_as_separate_processes(tmp_path: Path) -> None:
    async with _master_and_agent(tmp_path, "--attributes", "zone:z9") as (port, master, agent):
        line = await _line(agent)
        assert line.startswith("agent: http://127.0.0.1:") and f"127.0.0.1:{port}" in line
        async with aiohttp.ClientSession() as session:
            agents = await wire.operator(session, f"http://127.0.0.1:{port}",
                                         {"type": "GET_AGENTS"})
        [info] = [a["agent_info"] for a in agents["get_agents"]["agents"]]
        assert info["attributes"] == [{"name": "zone", "type": "TEXT", "text": {"value": "z9"}}]
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(agent.wait(), timeout=30) == 0
        master.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(master.wait(), timeout=30) == 0


def test_mesos_durations_parse_as_mesos_writes_them() -> None:
    from k8sbridge.kernel import cli

    assert cli.mesos_duration("15secs") == 15.0
    assert cli.mesos_duration("250ms") == 0.25
    assert cli.mesos_duration("2mins") == 120.0
    assert cli.mesos_duration("3") == 3.0
    for bad in ("", "fast", "0secs", "-1secs"):
        try:
            cli.mesos_duration(bad)
        except Exception as e:  # argparse.ArgumentTypeError
            assert "Invalid duration" in str(e)
        else:
            raise AssertionError(f"{bad!r} was accepted")


async def test_agent_ping_flags_reach_the_master(tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "k8sbridge", "--log-level", "WARNING", "kernel",
        "--port", str(port), "--agents", "1",
        "--agent_ping_timeout=300ms", "--max_agent_ping_timeouts", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert line.decode().startswith(f"master: http://127.0.0.1:{port}"), line
        async with aiohttp.ClientSession() as session:
            flags = await wire.operator(session, f"http://127.0.0.1:{port}",
                                        {"type": "GET_FLAGS"})
        values = {f["name"]: f["value"] for f in flags["get_flags"]["flags"]}
        assert values["agent_ping_timeout"] == "0.3secs"
        assert values["max_agent_ping_timeouts"] == "2"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=30)


async def test_agent_gc_and_authentication_flags_reach_the_agent(tmp_path: Path) -> None:
    """``k8sbridge kernel agent --gc_delay ... --authenticate_http_readonly --http_credentials``:
    the agent's /flags shows them, and its read-only endpoints want the credential."""
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"credentials": [{"principal": "ops", "secret": "s"}]}))
    credentials.chmod(0o600)
    async with _master_and_agent(
        tmp_path, "--gc_delay=2mins", "--disk-watch-interval", "30secs",
        "--gc_disk_headroom", "0.2", "--authenticate_http_readonly",
        "--http_credentials", str(credentials),
    ) as (_, _, agent):
        url = (await _line(agent)).split()[1]
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/flags") as anonymous:
                assert anonymous.status == 401
            basic = {"Authorization": "Basic " + base64.b64encode(b"ops:s").decode()}
            async with session.get(url + "/flags", headers=basic) as r:
                assert r.status == 200
                flags = (await r.json())["flags"]
        assert flags["gc_delay"] == "2mins"
        assert flags["disk_watch_interval"] == "30secs"
        assert float(flags["gc_disk_headroom"]) == 0.2
        assert flags["authenticate_http_readonly"] == "true"
