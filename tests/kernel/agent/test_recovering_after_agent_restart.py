"""Agent process restart: checkpointed tasks survive and are re-adopted; others are killed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.kernel.agent import fakemaster as fm


async def _wait_file(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{path} never written")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


async def _dead_soon(pid: int, timeout: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return not _alive(pid)


async def test_checkpointed_task_survives_restart_and_is_readopted(tmp_path: Path) -> None:
    master = fm.FakeMaster()
    await master.start()
    try:
        async with fm.running_agent(tmp_path, master=master, keep_tasks=True) as first:
            await master.send(fm.run_task(
                fm.command_task("cp", "echo $$ > pid; exec sleep 300"), checkpoint=True))
            await master.wait_state("cp", "TASK_RUNNING")
            agent_id = first.agent.agent_id
        sandbox = next((tmp_path / "slaves").glob("*/frameworks/*/executors/cp/runs/latest"))
        pid = int(await _wait_file(sandbox / "pid"))
        await asyncio.sleep(0.3)
        assert _alive(pid), "a checkpointed task must survive the agent process"

        async with fm.running_agent(tmp_path, master=master) as second:
            assert second.agent.agent_id == agent_id
            rereg = master.registrations[-1]
            assert rereg["agent_info"]["id"] == {"value": agent_id}
            tasks = {t["task_id"]["value"]: t for t in rereg["tasks"]}
            assert tasks["cp"]["state"] == "TASK_RUNNING"
            assert rereg["frameworks"][0]["id"] == {"value": fm.FRAMEWORK_ID}
            # The re-adopted task is still under control: a kill reaches it.
            await master.send(fm.kill_task("cp", grace=1.0))
            await master.wait_state("cp", "TASK_KILLED")
            assert await _dead_soon(pid)
    finally:
        await master.stop()


async def test_task_finishing_while_agent_is_down_is_reported_after_restart(
        tmp_path: Path) -> None:
    master = fm.FakeMaster()
    await master.start()
    try:
        async with fm.running_agent(tmp_path, master=master, keep_tasks=True):
            await master.send(fm.run_task(
                fm.command_task("quick", "sleep 1; exit 4"), checkpoint=True))
            await master.wait_state("quick", "TASK_RUNNING")
        await asyncio.sleep(2.0)  # it exits while no agent runs
        async with fm.running_agent(tmp_path, master=master):
            failed = await master.wait_state("quick", "TASK_FAILED")
            assert failed["message"] == "Command exited with status 4"
            await asyncio.sleep(0.3)  # the ACK reaches the agent and is checkpointed
        count = len(master.updates)
        async with fm.running_agent(tmp_path, master=master):
            await asyncio.sleep(0.5)
            assert len(master.updates) == count  # acknowledged updates are never resent
            assert master.registrations[-1]["tasks"] == []
    finally:
        await master.stop()


async def test_non_checkpointed_task_dies_with_its_agent_process(tmp_path: Path) -> None:
    master = fm.FakeMaster()
    await master.start()
    try:
        async with fm.running_agent(tmp_path, master=master, keep_tasks=True):
            await master.send(fm.run_task(
                fm.command_task("nocp", "echo $$ > pid; exec sleep 300"), checkpoint=False))
            await master.wait_state("nocp", "TASK_RUNNING")
            sandbox = next((tmp_path / "slaves").glob("*/frameworks/*/executors/nocp/runs/latest"))
            pid = int(await _wait_file(sandbox / "pid"))
            assert _alive(pid)
        # The agent left without killing anything; the executor notices and, since the
        # framework does not checkpoint, takes its task down (as Mesos' executors do).
        assert await _dead_soon(pid)
        async with fm.running_agent(tmp_path, master=master):
            assert master.registrations[-1]["tasks"] == []
    finally:
        await master.stop()


async def test_checkpointed_task_stops_when_no_agent_returns_in_time(tmp_path: Path) -> None:
    master = fm.FakeMaster()
    await master.start()
    try:
        async with fm.running_agent(tmp_path, master=master, keep_tasks=True,
                                    recovery_timeout_seconds=1.0):
            await master.send(fm.run_task(
                fm.command_task("lonely", "echo $$ > pid; exec sleep 300"), checkpoint=True))
            await master.wait_state("lonely", "TASK_RUNNING")
            sandbox = next(
                (tmp_path / "slaves").glob("*/frameworks/*/executors/lonely/runs/latest"))
            pid = int(await _wait_file(sandbox / "pid"))
        assert _alive(pid)  # the agent is gone, the task waits for it...
        assert await _dead_soon(pid, timeout=10)  # ...for recovery_timeout only
    finally:
        await master.stop()
