"""Kills follow the kill policy: SIGTERM to the whole process tree, SIGKILL after the grace."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from k8sbridge.kernel.agent import cgroups
from tests.kernel.agent import fakemaster as fm


def _sandbox(tmp_path: Path, executor_id: str) -> Path:
    return next((tmp_path / "slaves").glob(f"*/frameworks/*/executors/{executor_id}/runs/latest"))


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


async def test_trapping_process_gets_its_grace_then_exits(tmp_path: Path) -> None:
    script = 'trap "echo got-term; sleep 0.5; echo bye; exit 0" TERM; echo ready > ready; ' \
             'while true; do sleep 0.1; done'
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(
            fm.command_task("trap", script), capabilities=("TASK_KILLING_STATE",)))
        await run.master.wait_state("trap", "TASK_RUNNING")
        await _wait_file(_sandbox(tmp_path, "trap") / "ready")
        await run.master.send(fm.kill_task("trap", grace=5.0))
        killed = await run.master.wait_state("trap", "TASK_KILLED")
        assert run.master.states("trap")[-2:] == ["TASK_KILLING", "TASK_KILLED"]
        out = (_sandbox(tmp_path, "trap") / "stdout").read_text()
        assert "got-term" in out and "bye" in out  # it had time to clean up
        assert killed["message"] == "Command exited with status 0"


async def test_process_ignoring_sigterm_gets_sigkill_after_grace(tmp_path: Path) -> None:
    script = 'trap "" TERM; echo ready > ready; while true; do sleep 0.1; done'
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("stubborn", script)))
        await run.master.wait_state("stubborn", "TASK_RUNNING")
        await _wait_file(_sandbox(tmp_path, "stubborn") / "ready")
        started = time.monotonic()
        await run.master.send(fm.kill_task("stubborn", grace=1.0))
        killed = await run.master.wait_state("stubborn", "TASK_KILLED")
        elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < 8.0
        assert killed["message"] == "Command terminated with signal Killed"
        # No TASK_KILLING without the TASK_KILLING_STATE capability.
        assert "TASK_KILLING" not in run.master.states("stubborn")


async def test_kill_reaches_the_whole_process_tree(tmp_path: Path) -> None:
    script = '(sleep 300 & echo $! > child1; wait) & sleep 300 & echo $! > child2; wait'
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("tree", script)))
        await run.master.wait_state("tree", "TASK_RUNNING")
        sandbox = _sandbox(tmp_path, "tree")
        pids = [int(await _wait_file(sandbox / name)) for name in ("child1", "child2")]
        assert all(_alive(p) for p in pids)
        await run.master.send(fm.kill_task("tree", grace=1.0))
        await run.master.wait_state("tree", "TASK_KILLED")
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not any(_alive(p) for p in pids)


async def test_agent_stop_kills_its_tasks(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("bg", "echo $$ > pid; exec sleep 300")))
        await run.master.wait_state("bg", "TASK_RUNNING")
        pid = int(await _wait_file(_sandbox(tmp_path, "bg") / "pid"))
        assert _alive(pid)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not _alive(pid)
    assert os.getpid() != pid


async def test_shutdown_executor_and_framework_kill_everything(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path, executor_shutdown_grace_seconds=1.0) as run:
        for tid in ("s1", "s2", "s3"):
            await run.master.send(fm.run_task(fm.command_task(tid, "sleep 300")))
            await run.master.wait_state(tid, "TASK_RUNNING")
        await run.master.send({"type": "SHUTDOWN_EXECUTOR",
                               "framework_id": {"value": fm.FRAMEWORK_ID},
                               "executor_id": {"value": "s1"}})
        await run.master.wait_state("s1", "TASK_KILLED")
        await run.master.send({"type": "SHUTDOWN_FRAMEWORK",
                               "framework_id": {"value": fm.FRAMEWORK_ID}})
        await run.master.wait_for(lambda: not run.agent.live_containers())
        # The framework is gone: its last updates are not sent (nobody would acknowledge them).
        assert "TASK_KILLED" not in run.master.states("s2") + run.master.states("s3")
        assert len(run.agent._updates) == 0


async def test_a_dead_container_daemon_fails_and_destroys_its_tasks(tmp_path: Path) -> None:
    import signal

    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("orph", "echo $$ > pid; exec sleep 300")))
        running = await run.master.wait_state("orph", "TASK_RUNNING")
        pid = int(await _wait_file(_sandbox(tmp_path, "orph") / "pid"))
        daemon_pid = running["container_status"]["executor_pid"]
        os.kill(daemon_pid, signal.SIGKILL)
        failed = await run.master.wait_state("orph", "TASK_FAILED")
        assert failed["reason"] == "REASON_EXECUTOR_TERMINATED"
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not _alive(pid)
        # Its cgroups go too (the dead daemon cannot remove them: the agent does).
        found = cgroups.detect()
        if found.available and found.memory_root is not None:
            cid = running["container_status"]["container_id"]["value"]
            dirs = [root / cid for root in (found.memory_root, found.cpu_root) if root]
            deadline = time.monotonic() + 10
            while any(d.exists() for d in dirs) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert not [d for d in dirs if d.exists()]
        # A new task gets a new daemon.
        await run.master.send(fm.run_task(fm.command_task("after", "true")))
        await run.master.wait_state("after", "TASK_FINISHED")
