"""Agent process restart: checkpointed tasks survive and are re-adopted; others are killed."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import containers
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


async def test_the_checkpoint_is_written_before_the_daemon_spawns_the_task(
        tmp_path: Path) -> None:
    # An agent dying right after the spawn must leave a record of the container: when the
    # spawn request goes to the (real) container daemon, the checkpoint is already on disk.
    async with fm.running_agent(tmp_path) as run:
        daemon = run.agent._daemon
        real_spawn = daemon.spawn
        at_spawn: list[bool] = []

        async def observed_spawn(spec: dict[str, Any] | None) -> containers.Spawned | None:
            if spec is not None:
                at_spawn.append(bool(list((tmp_path / "meta" / "slaves").glob(
                    f"*/frameworks/*/executors/*/runs/{spec['container_id']}/state.json"))))
            return await real_spawn(spec)

        daemon.spawn = observed_spawn  # type: ignore[method-assign]
        await run.master.send(fm.run_task(fm.command_task("early", "true"), checkpoint=True))
        await run.master.wait_state("early", "TASK_FINISHED")
        assert at_spawn == [True]


def _checkpoint_of(tmp_path: Path, executor_id: str) -> Path:
    [state] = list((tmp_path / "meta" / "slaves").glob(
        f"*/frameworks/*/executors/{executor_id}/runs/*/state.json"))
    return state


async def test_a_container_spawned_before_its_launch_was_recorded_is_adopted(
        tmp_path: Path) -> None:
    master = fm.FakeMaster()
    await master.start()
    try:
        async with fm.running_agent(tmp_path, master=master, keep_tasks=True):
            await master.send(fm.run_task(
                fm.command_task("half", "echo $$ > pid; exec sleep 300"), checkpoint=True))
            await master.wait_state("half", "TASK_RUNNING")
        sandbox = next((tmp_path / "slaves").glob("*/frameworks/*/executors/half/runs/latest"))
        pid = int(await _wait_file(sandbox / "pid"))
        # What the checkpoint says when the agent dies between the spawn and recording it.
        state = _checkpoint_of(tmp_path, "half")
        data = json.loads(state.read_text())
        data["launched"] = False
        data["tasks"]["half"]["state"] = "TASK_STAGING"
        state.write_text(json.dumps(data))
        master.updates.clear()
        async with fm.running_agent(tmp_path, master=master):
            await master.wait_for(lambda: len(master.registrations) >= 2)
            await asyncio.sleep(0.5)
            assert "TASK_FAILED" not in master.states("half")
            assert _alive(pid)
            # Under control: a kill reaches it.
            await master.send(fm.kill_task("half", grace=0.5))
            await master.wait_state("half", "TASK_KILLED")
            assert await _dead_soon(pid)
    finally:
        await master.stop()


async def test_a_running_container_without_a_checkpoint_is_killed_on_recovery(
        tmp_path: Path) -> None:
    master = fm.FakeMaster()
    await master.start()
    try:
        async with fm.running_agent(tmp_path, master=master, keep_tasks=True):
            await master.send(fm.run_task(
                fm.command_task("ghost", "echo $$ > pid; exec sleep 300"), checkpoint=True))
            running = await master.wait_state("ghost", "TASK_RUNNING")
        sandbox = next((tmp_path / "slaves").glob("*/frameworks/*/executors/ghost/runs/latest"))
        pid = int(await _wait_file(sandbox / "pid"))
        cid = running["container_status"]["container_id"]["value"]
        _checkpoint_of(tmp_path, "ghost").unlink()  # the agent died before recording it
        assert _alive(pid)
        async with fm.running_agent(tmp_path, master=master) as second:
            assert await _dead_soon(pid, timeout=15)
            assert second.agent.destroyed_unknown == [cid]
            rereg = master.registrations[-1]
            assert rereg["tasks"] == []
    finally:
        await master.stop()
