"""A task is born inside its container's cgroups, with its own program (no wrapper), while the
container daemon that spawned it stays in its own cgroups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from k8sbridge.kernel.agent import cgroups
from tests.kernel.agent import fakemaster as fm


def _cgroup_lines(pid: int) -> set[str]:
    return set(Path(f"/proc/{pid}/cgroup").read_text().splitlines())


@pytest.mark.skipif(not cgroups.detect().available, reason="needs writable cgroups")
async def test_task_runs_inside_its_cgroups_and_the_daemon_does_not(tmp_path: Path) -> None:
    found = cgroups.detect()
    assert found.memory_root is not None
    # The task runs its program without a shell: a shell command (`exec sleep 300`) reports
    # TASK_RUNNING once the shell runs, and on a loaded machine the shell may not have exec'd
    # `sleep` yet when the container's processes are read.
    task = fm.command_task("a", "ignored", mem=64, cpus=0.25)
    task["command"] = {"shell": False, "value": "sleep", "arguments": ["sleep", "300"]}
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task))
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


def _group(executor_id: str, tasks: list[dict[str, Any]], *, checkpoint: bool = False
           ) -> dict[str, Any]:
    return {
        "type": "RUN_TASK_GROUP",
        "framework": fm.framework(checkpoint=checkpoint),
        "executor": {
            "type": "DEFAULT", "executor_id": {"value": executor_id},
            "framework_id": {"value": fm.FRAMEWORK_ID},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
        },
        "task_group": {"tasks": tasks},
    }


async def test_a_large_group_and_many_launches_at_once_all_run(tmp_path: Path) -> None:
    # One group whose spec is far above asyncio's 64 KiB line limit, and 30 command tasks sent
    # back to back (their spawn requests reach the container daemon pipelined).
    padding = {"variables": [{"name": "PAD", "value": "x" * 4096}]}
    group = [fm.command_task(f"g{i}", 'test ${#PAD} -eq 4096 && exec sleep 300',
                             mem=8, cpus=0.01)
             | {"command": {"value": 'test ${#PAD} -eq 4096 && exec sleep 300',
                            "environment": padding}}
             for i in range(40)]
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(_group("big", group))
        for i in range(30):
            await run.master.send(fm.run_task(fm.command_task(f"c{i}", "exec sleep 300",
                                                              mem=8, cpus=0.01)))
        for i in range(40):
            await run.master.wait_state(f"g{i}", "TASK_RUNNING", timeout=60)
        for i in range(30):
            await run.master.wait_state(f"c{i}", "TASK_RUNNING", timeout=60)
        await run.master.send(fm.kill_task("g0", grace=0.5))
        for i in range(40):
            await run.master.wait_state(f"g{i}", "TASK_KILLED", timeout=30)


async def test_only_checkpointed_containers_keep_meta_files(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(_group("plain", [fm.command_task("p", "exec sleep 300")]))
        await run.master.send(_group("kept", [fm.command_task("k", "exec sleep 300")],
                                     checkpoint=True))
        plain = await run.master.wait_state("p", "TASK_RUNNING")
        kept = await run.master.wait_state("k", "TASK_RUNNING")
        # Both report the container daemon as their executor process.
        assert plain["container_status"]["executor_pid"] > 0
        assert kept["container_status"]["executor_pid"] == \
            plain["container_status"]["executor_pid"]
        meta = tmp_path / "meta" / "slaves"
        assert not list(meta.glob("*/frameworks/*/executors/plain"))
        [kept_meta] = list(meta.glob("*/frameworks/*/executors/kept/runs/*"))
        assert (kept_meta / "events.jsonl").exists()
        assert (kept_meta / "executor.pid").read_text() == \
            str(kept["container_status"]["executor_pid"])
        sandboxes = tmp_path / "slaves"
        for eid in ("plain", "kept"):
            [latest] = list(sandboxes.glob(f"*/frameworks/*/executors/{eid}/runs/latest"))
            assert latest.is_symlink() and latest.resolve().is_dir()
        await run.master.send(fm.kill_task("p", grace=0.5))
        await run.master.send(fm.kill_task("k", grace=0.5))
        await run.master.wait_state("p", "TASK_KILLED")
        await run.master.wait_state("k", "TASK_KILLED")


async def test_a_sandbox_that_cannot_be_made_fails_the_launch_and_leaves_no_cgroup(
        tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        assert run.agent.agent_id is not None
        executors = (tmp_path / "slaves" / run.agent.agent_id / "frameworks" / fm.FRAMEWORK_ID
                     / "executors")
        executors.mkdir(parents=True)
        (executors / "blocked").write_text("a file where the executor's directory goes\n")
        await run.master.send(fm.run_task(fm.command_task("blocked", "exec sleep 300")))
        failed = await run.master.wait_state("blocked", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert "cannot create the sandbox" in failed["message"]
        cid = failed["container_status"]["container_id"]["value"]
        found = cgroups.detect()
        if found.memory_root is not None:
            assert not (found.memory_root / cid).exists()
        # The agent goes on launching other tasks.
        await run.master.send(fm.run_task(fm.command_task("fine", "exec sleep 300")))
        await run.master.wait_state("fine", "TASK_RUNNING")
        await run.master.send(fm.kill_task("fine", grace=0.5))
        await run.master.wait_state("fine", "TASK_KILLED")


async def test_the_task_process_starts_like_popen_would_start_it(tmp_path: Path) -> None:
    # In its sandbox, stdin from /dev/null, SIGPIPE not ignored (Python ignores it; the child
    # must not inherit that), a bare program name found on the task's PATH.
    probe = ("pwd; readlink /proc/self/fd/0; grep SigIgn /proc/self/status; "
             "echo to-stderr >&2")
    bare = fm.command_task("bare", "ignored")
    bare["command"] = {"shell": False, "value": "printenv",
                       "arguments": ["printenv", "MESOS_TASK_ID"]}
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("probe", probe)))
        await run.master.send(fm.run_task(bare))
        await run.master.wait_state("probe", "TASK_FINISHED")
        await run.master.wait_state("bare", "TASK_FINISHED")
        assert run.agent.agent_id is not None
        executors = (tmp_path / "slaves" / run.agent.agent_id / "frameworks" / fm.FRAMEWORK_ID
                     / "executors")
        sandbox = (executors / "probe" / "runs" / "latest").resolve()
        cwd, stdin, sig_ign = (sandbox / "stdout").read_text().splitlines()
        assert cwd == str(sandbox)
        assert stdin == "/dev/null"
        assert int(sig_ign.split()[1], 16) & (1 << 12) == 0  # bit of SIGPIPE (13)
        assert (sandbox / "stderr").read_text().endswith("to-stderr\n")
        assert (executors / "bare" / "runs" / "latest" / "stdout").read_text() == "bare\n"
