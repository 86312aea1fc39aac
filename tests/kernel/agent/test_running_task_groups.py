"""Task groups on DEFAULT executor semantics, and memory limits through cgroups (OOM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kernel.agent import cgroups
from tests.kernel.agent import fakemaster as fm


def _group(executor_id: str, *tasks: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "RUN_TASK_GROUP",
        "framework": fm.framework(),
        "executor": {
            "type": "DEFAULT", "executor_id": {"value": executor_id},
            "framework_id": {"value": fm.FRAMEWORK_ID},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
        },
        "task_group": {"tasks": list(tasks)},
    }


async def test_group_tasks_start_together_with_their_own_sandboxes(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(_group(
            "ex1",
            fm.command_task("a", "echo from-a; echo err-a >&2"),
            fm.command_task("b", "echo from-b; sleep 0.3"),
        ))
        nested = set()
        for tid in ("a", "b"):
            done = await run.master.wait_state(tid, "TASK_FINISHED")
            assert done["executor_id"] == {"value": "ex1"}
            cid = done["container_status"]["container_id"]
            assert cid["parent"]["value"]  # a child container of the executor's
            nested.add(cid["value"])
        assert len(nested) == 2
        assert run.master.states("a") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        sandbox = next((tmp_path / "slaves").glob("*/frameworks/*/executors/ex1/runs/latest"))
        assert (sandbox / "tasks" / "a" / "stdout").read_text() == "from-a\n"
        assert (sandbox / "tasks" / "a" / "stderr").read_text() == "err-a\n"
        assert (sandbox / "tasks" / "b" / "stdout").read_text() == "from-b\n"
        vpath = f"/frameworks/{fm.FRAMEWORK_ID}/executors/ex1/runs/latest/tasks/a/stdout"
        async with aiohttp.ClientSession() as session, session.get(
            f"http://{run.agent.http_address}/files/read",
            params={"path": vpath, "offset": "0"},
        ) as response:
            assert await response.json() == {"data": "from-a\n", "offset": 0}


async def test_one_failing_task_kills_the_group(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(_group(
            "ex2",
            fm.command_task("bad", "sleep 0.3; exit 7"),
            fm.command_task("good", "sleep 300"),
        ))
        failed = await run.master.wait_state("bad", "TASK_FAILED")
        assert failed["message"] == "Command exited with status 7"
        killed = await run.master.wait_state("good", "TASK_KILLED")
        assert killed["executor_id"] == {"value": "ex2"}
        await run.master.wait_for(lambda: any(
            m["type"] == "EXECUTOR_EXITED" and m["executor_id"] == {"value": "ex2"}
            for m in run.master.messages))


async def test_killing_one_task_kills_the_group(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(_group(
            "ex3", fm.command_task("x", "sleep 300"), fm.command_task("y", "sleep 300")))
        await run.master.wait_state("x", "TASK_RUNNING")
        await run.master.wait_state("y", "TASK_RUNNING")
        await run.master.send(fm.kill_task("x", grace=1.0))
        await run.master.wait_state("x", "TASK_KILLED")
        await run.master.wait_state("y", "TASK_KILLED")


@pytest.mark.skipif(not cgroups.detect().available, reason="needs writable cgroups")
async def test_memory_hog_is_oom_killed_with_the_memory_reason(tmp_path: Path) -> None:
    hog = "python3 -c 'import time; b = bytearray(400 * 1024 * 1024); time.sleep(30)'"
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("hog", hog, mem=64)))
        failed = await run.master.wait_state("hog", "TASK_FAILED", timeout=30)
        assert failed["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
        assert failed["source"] == "SOURCE_AGENT"
        assert "Memory limit exceeded" in failed["message"]


@pytest.mark.skipif(not cgroups.detect().available, reason="needs writable cgroups")
async def test_task_within_its_memory_limit_finishes(tmp_path: Path) -> None:
    fits = "python3 -c 'b = bytearray(16 * 1024 * 1024)'"
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("fits", fits, mem=128)))
        await run.master.wait_state("fits", "TASK_FINISHED", timeout=30)
