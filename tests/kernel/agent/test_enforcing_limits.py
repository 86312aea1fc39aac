"""Task limits are enforced as Mesos (>= 1.11) enforces them: a task of a group with
``share_cgroups: false`` gets cgroups of its own nested in its executor's, its cpu limit becomes
a CFS quota and its memory limit the hard limit, its requests the shares and the soft limit; a
task that allocates past its memory limit is OOM-killed and reported as Mesos' DEFAULT executor
reports it (TASK_FAILED, REASON_CONTAINER_LIMITATION_MEMORY, the isolator's message)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import cgroups
from k8sbridge.kernel.agent.agent import nested_container_id
from tests.kernel.agent import fakemaster as fm

_UNLIMITED = 9223372036854771712  # memory.limit_in_bytes after writing -1 (v1, 4 KiB pages)
_MB = 1024 * 1024


def _limited(task_id: str, command: str, *, cpus: float, mem: float,
             limits: dict[str, Any], share: bool = False) -> dict[str, Any]:
    task = fm.command_task(task_id, command, mem=mem, cpus=cpus)
    task["limits"] = limits
    task["container"] = {"type": "MESOS", "linux_info": {"share_cgroups": share}}
    return task


def _group(executor_id: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "RUN_TASK_GROUP",
        "framework": fm.framework(),
        "executor": {
            "type": "DEFAULT", "executor_id": {"value": executor_id},
            "framework_id": {"value": fm.FRAMEWORK_ID},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
        },
        "task_group": {"tasks": tasks},
    }


def _read(d: Path, name: str) -> int:
    return int((d / name).read_text().strip())


def _roots() -> tuple[Path, Path]:
    found = cgroups.detect()
    assert found.version == 1, "this machine has cgroups v1 (the tests assert v1 files)"
    assert found.memory_root is not None and found.cpu_root is not None
    return found.memory_root, found.cpu_root


async def test_a_task_with_limits_gets_nested_cgroups_with_quota_and_hard_limit(
        tmp_path: Path) -> None:
    mem_root, cpu_root = _roots()
    tasks = [
        _limited("lim", "exec sleep 300", cpus=0.25, mem=48,
                 limits={"cpus": {"value": 0.5}, "mem": {"value": 96}}),
        _limited("inf", "exec sleep 300", cpus=0.25, mem=40,
                 limits={"cpus": {"value": "Infinity"}, "mem": {"value": "Infinity"}}),
        fm.command_task("shared", "exec sleep 300", mem=16, cpus=0.1),
    ]
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(_group("limits", tasks))
        running = {t: await run.master.wait_state(t, "TASK_RUNNING")
                   for t in ("lim", "inf", "shared")}
        cid = running["lim"]["container_status"]["container_id"]["parent"]["value"]
        lim_id, inf_id = (nested_container_id(cid, t) for t in ("lim", "inf"))
        lim_mem, lim_cpu = mem_root / cid / lim_id, cpu_root / cid / lim_id
        assert _read(lim_mem, "memory.limit_in_bytes") == 96 * _MB
        assert _read(lim_mem, "memory.soft_limit_in_bytes") == 48 * _MB
        assert _read(lim_cpu, "cpu.cfs_period_us") == 100_000
        assert _read(lim_cpu, "cpu.cfs_quota_us") == 50_000
        assert _read(lim_cpu, "cpu.shares") == 256
        inf_mem, inf_cpu = mem_root / cid / inf_id, cpu_root / cid / inf_id
        assert _read(inf_mem, "memory.limit_in_bytes") == _UNLIMITED
        assert _read(inf_mem, "memory.soft_limit_in_bytes") == 40 * _MB
        assert _read(inf_cpu, "cpu.cfs_quota_us") == -1
        # The executor's container: requests summed; its limit is infinite (one task's is).
        assert _read(cpu_root / cid, "cpu.shares") == int((0.1 + 0.25 + 0.25 + 0.1) * 1024)
        assert _read(mem_root / cid, "memory.soft_limit_in_bytes") == (32 + 48 + 40 + 16) * _MB
        assert _read(mem_root / cid, "memory.limit_in_bytes") == _UNLIMITED
        assert _read(cpu_root / cid, "cpu.cfs_quota_us") == -1
        # Each task runs where it belongs.
        lim_pid = running["lim"]["container_status"]["executor_pid"]
        procs = {t: {int(p) for p in (d / "cgroup.procs").read_text().split()}
                 for t, d in (("lim", lim_mem), ("inf", inf_mem), ("shared", mem_root / cid))}
        assert len(procs["lim"]) == 1 and len(procs["inf"]) == 1 and len(procs["shared"]) == 1
        assert lim_pid not in procs["lim"]
        for pid in procs["lim"]:
            assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00300\x00"
        await run.master.send(fm.kill_task("lim", grace=0.5))
        for t in ("lim", "inf", "shared"):
            await run.master.wait_state(t, "TASK_KILLED")
        await run.master.wait_for(lambda: not (mem_root / cid).exists()
                                  and not (cpu_root / cid).exists(), timeout=20)


async def test_finite_limits_add_up_in_the_executor_container(tmp_path: Path) -> None:
    mem_root, cpu_root = _roots()
    tasks = [
        _limited("a", "exec sleep 300", cpus=0.2, mem=32,
                 limits={"cpus": {"value": 1.5}, "mem": {"value": 64}}),
        fm.command_task("b", "exec sleep 300", mem=16, cpus=0.3),
    ]
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(_group("sums", tasks))
        running = await run.master.wait_state("a", "TASK_RUNNING")
        await run.master.wait_state("b", "TASK_RUNNING")
        cid = running["container_status"]["container_id"]["parent"]["value"]
        # limit = the limits set + the requests of tasks without one + the executor's.
        assert _read(mem_root / cid, "memory.limit_in_bytes") == (64 + 16 + 32) * _MB
        assert _read(cpu_root / cid, "cpu.cfs_quota_us") == int((1.5 + 0.3 + 0.1) * 100_000)
        await run.master.send(fm.kill_task("a", grace=0.5))
        await run.master.wait_state("b", "TASK_KILLED")


async def test_a_command_task_with_limits_has_them_on_its_container(tmp_path: Path) -> None:
    mem_root, cpu_root = _roots()
    task = fm.command_task("cmd", "exec sleep 300", mem=32, cpus=0.5)
    task["limits"] = {"cpus": {"value": 2}, "mem": {"value": 128}}
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task))
        running = await run.master.wait_state("cmd", "TASK_RUNNING")
        cid = running["container_status"]["container_id"]["value"]
        assert _read(mem_root / cid, "memory.limit_in_bytes") == 128 * _MB
        assert _read(mem_root / cid, "memory.soft_limit_in_bytes") == 32 * _MB
        assert _read(cpu_root / cid, "cpu.cfs_quota_us") == 200_000
        assert _read(cpu_root / cid, "cpu.shares") == 512
        await run.master.send(fm.kill_task("cmd", grace=0.5))
        await run.master.wait_state("cmd", "TASK_KILLED")


async def test_a_task_over_its_memory_limit_fails_with_the_limitation(tmp_path: Path) -> None:
    mem_root, _ = _roots()
    hog = _limited("hog", "ignored", cpus=0.1, mem=24, limits={"mem": {"value": 40}})
    # Touch 200 MB (bytes multiplication writes every page), then linger.
    hog["command"] = {"shell": False, "value": sys.executable,
                      "arguments": [sys.executable, "-c",
                                    "import time; x = b'x' * (200 << 20); time.sleep(30)"]}
    buddy = fm.command_task("buddy", "exec sleep 300", mem=16, cpus=0.1)
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(_group("oom", [hog, buddy]))
        failed = await run.master.wait_state("hog", "TASK_FAILED", timeout=30)
        assert failed["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
        assert failed["source"] == "SOURCE_EXECUTOR"
        assert failed["message"].startswith(
            "Command terminated with signal Killed: Memory limit exceeded: Requested: 40MB "
            "Maximum Used: ")
        assert "MEMORY STATISTICS" in failed["message"]
        [used] = failed["limitation"]["resources"]
        assert used["name"] == "mem" and 39 <= used["scalar"]["value"] <= 40
        # The DEFAULT executor kills the rest of the group; the buddy was not over any limit.
        killed = await run.master.wait_state("buddy", "TASK_KILLED", timeout=30)
        assert "reason" not in killed or killed["reason"] != "REASON_CONTAINER_LIMITATION_MEMORY"
        cid = failed["container_status"]["container_id"]["parent"]["value"]
        await run.master.wait_for(lambda: not (mem_root / cid).exists(), timeout=20)


async def test_limits_hold_when_the_agent_prepares_the_sandbox_itself(tmp_path: Path) -> None:
    # A task with a volume is prepared by the agent (not the container daemon): the same
    # nested cgroups and limits.
    mem_root, cpu_root = _roots()
    task = _limited("vol", "exec sleep 300", cpus=0.2, mem=32,
                    limits={"cpus": {"value": 0.3}, "mem": {"value": 72}})
    task["container"]["volumes"] = [{"container_path": "scratch", "mode": "RW"}]
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(_group("prepared", [task]))
        running = await run.master.wait_state("vol", "TASK_RUNNING")
        cid = running["container_status"]["container_id"]["parent"]["value"]
        child = nested_container_id(cid, "vol")
        assert _read(mem_root / cid / child, "memory.limit_in_bytes") == 72 * _MB
        assert _read(cpu_root / cid / child, "cpu.cfs_quota_us") == 30_000
        await run.master.send(fm.kill_task("vol", grace=0.5))
        await run.master.wait_state("vol", "TASK_KILLED")
        await run.master.wait_for(lambda: not (mem_root / cid).exists(), timeout=20)


async def test_a_command_task_over_its_memory_limit_is_failed_by_the_agent(
        tmp_path: Path) -> None:
    # No nested cgroups: the container (the command executor's) is over its limit and the
    # agent reports it, as Mesos does when the containerizer destroys it for a limitation.
    task = fm.command_task("big", "ignored", mem=24, cpus=0.1)
    task["limits"] = {"mem": {"value": 40}}
    task["command"] = {"shell": False, "value": sys.executable,
                       "arguments": [sys.executable, "-c",
                                     "import time; x = b'x' * (200 << 20); time.sleep(30)"]}
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task))
        failed = await run.master.wait_state("big", "TASK_FAILED", timeout=30)
        assert failed["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
        assert failed["source"] == "SOURCE_AGENT"
        assert failed["message"].startswith("Memory limit exceeded: Requested: 40MB Maximum Used: ")
        assert failed["limitation"]["resources"][0]["name"] == "mem"
