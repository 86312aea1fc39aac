"""A task is born inside its container's cgroups, with its own program (no wrapper), while the
container daemon that spawned it stays in its own cgroups."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8sbridge.kernel.agent import cgroups
from tests.kernel.agent import fakemaster as fm


def _cgroup_lines(pid: int) -> set[str]:
    return set(Path(f"/proc/{pid}/cgroup").read_text().splitlines())


@pytest.mark.skipif(not cgroups.detect().available, reason="needs writable cgroups")
async def test_task_runs_inside_its_cgroups_and_the_daemon_does_not(tmp_path: Path) -> None:
    found = cgroups.detect()
    assert found.memory_root is not None
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task(
            "a", "exec sleep 300", mem=64, cpus=0.25)))
        await run.master.send(fm.run_task(fm.command_task(
            "b", "exec sleep 301", mem=64, cpus=0.25)))
        first = await run.master.wait_state("a", "TASK_RUNNING")
        await run.master.wait_state("b", "TASK_RUNNING")
        daemon_pid = first["container_status"]["executor_pid"]
        cid = first["container_status"]["container_id"]["value"]
        dirs = [found.memory_root / cid]
        if found.cpu_root is not None:
            dirs.append(found.cpu_root / cid)
        for d in dirs:
            pids = {int(p) for p in (d / "cgroup.procs").read_text().split()}
            assert daemon_pid not in pids
            commands = {Path(f"/proc/{p}/cmdline").read_bytes() for p in pids}
            # Exactly the task's own program: no join wrapper is left in the container.
            assert commands == {b"sleep\x00300\x00"}
        daemon_cgroups = _cgroup_lines(daemon_pid)
        assert not any(cid in line for line in daemon_cgroups)
        assert not any("/k8sbridge/" in line for line in daemon_cgroups)
        await run.master.send(fm.kill_task("a", grace=0.5))
        await run.master.send(fm.kill_task("b", grace=0.5))
        await run.master.wait_state("a", "TASK_KILLED")
        await run.master.wait_state("b", "TASK_KILLED")
        await run.master.wait_for(lambda: not dirs[0].exists(), timeout=10)


async def test_missing_program_fails_the_launch_with_the_reason(tmp_path: Path) -> None:
    task = fm.command_task("nope", "ignored", mem=32, cpus=0.1)
    task["command"] = {"shell": False, "value": "/no/such/program", "arguments": ["prog"]}
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task))
        failed = await run.master.wait_state("nope", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert "/no/such/program" in failed["message"]
