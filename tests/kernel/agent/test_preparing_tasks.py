"""What happens before and around a task's process: flags, auto-detected resources, fetched
URIs, cgroup shares, the completion deadline, and registering with a master that comes late."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import pytest

from k8sbridge.kernel.agent import cgroups, detect
from k8sbridge.kernel.agent.agent import Agent, AgentError
from k8sbridge.kernel.agent.config import AgentConfig
from tests.conftest import free_port
from tests.kernel.agent import fakemaster as fm

GB = 1024**3


def test_auto_detection_follows_mesos_rules() -> None:
    big = detect.Machine(cpus=8, mem_bytes=16 * GB, disk_bytes=100 * GB)
    res = detect.default_resources(spec="", machine=big)
    assert res.scalar("cpus") == 8
    assert res.scalar("mem") == 15 * 1024
    assert res.scalar("disk") == 95 * 1024
    assert res.ranges("ports") == ((31000, 32000),)
    small = detect.Machine(cpus=1, mem_bytes=GB, disk_bytes=8 * GB)
    res = detect.default_resources(spec="", machine=small)
    assert res.scalar("mem") == 512 and res.scalar("disk") == 4 * 1024
    given = detect.default_resources(spec="cpus:2;mem(marathon):100;ports:[1-2]", machine=big)
    assert given.scalar("cpus") == 2 and given.scalar("mem") == 100
    assert given.ranges("ports") == ((1, 2),)
    assert given.scalar("disk") == 95 * 1024


def test_bad_flags_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="cpus"):
        Agent(config=AgentConfig(master="127.0.0.1:1", work_dir=tmp_path, resources="cpus:x"))
    # Mesos' Attributes::parse refuses a pair without a key or a value (it allows a name
    # twice, so that is not refused here either).
    with pytest.raises(AgentError, match="rack"):
        Agent(config=AgentConfig(master="127.0.0.1:1", work_dir=tmp_path,
                                 attributes="zone:a;rack"))


async def test_agent_registers_once_a_late_master_appears(tmp_path: Path) -> None:
    port = free_port()
    master = fm.FakeMaster()
    agent = Agent(config=AgentConfig(master=f"127.0.0.1:{port}", work_dir=tmp_path,
                                     resources="cpus:1;mem:256",
                                     registration_backoff_max_seconds=1.0))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(agent.run(stop=stop, ready=ready))
    try:
        await asyncio.sleep(1.5)
        assert not ready.is_set()
        await master.start(port=port)
        async with asyncio.timeout(15):
            await ready.wait()
        assert agent.agent_id is not None and agent.agent_id.startswith("fake-S")
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task
        await master.stop()


async def test_uris_are_fetched_and_extracted_into_the_sandbox(tmp_path: Path) -> None:
    tool = tmp_path / "src" / "tool.sh"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho tool-ran\n")
    archive = tmp_path / "src" / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        data = b"config-data\n"
        info = tarfile.TarInfo("conf/app.conf")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    task = fm.command_task("u", "./tool.sh && cat conf/app.conf")
    task["command"]["uris"] = [{"value": str(tool), "executable": True},
                               {"value": f"file://{archive}"}]
    missing = fm.command_task("m", "true")
    missing["command"]["uris"] = [{"value": "/no/such/file.bin"}]
    async with fm.running_agent(tmp_path / "work") as run:
        await run.master.send(fm.run_task(task))
        await run.master.wait_state("u", "TASK_FINISHED")
        slaves = tmp_path / "work" / "slaves"
        sandbox = next(slaves.glob("*/frameworks/*/executors/u/runs/latest"))
        assert (sandbox / "stdout").read_text() == "tool-ran\nconfig-data\n"
        await run.master.send(fm.run_task(missing))
        failed = await run.master.wait_state("m", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert "/no/such/file.bin" in failed["message"]


async def test_max_completion_time_fails_the_task(tmp_path: Path) -> None:
    task = fm.command_task("slow", "sleep 300",
                           max_completion_time={"nanoseconds": int(0.5e9)})
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task))
        failed = await run.master.wait_state("slow", "TASK_FAILED")
        assert failed["reason"] == "REASON_MAX_COMPLETION_TIME_REACHED"


@pytest.mark.skipif(not cgroups.detect().available, reason="needs writable cgroups")
async def test_container_gets_memory_limit_and_cpu_shares(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("cg", "sleep 300", mem=96, cpus=0.5)))
        running = await run.master.wait_state("cg", "TASK_RUNNING")
        cid = running["container_status"]["container_id"]["value"]
        found = cgroups.detect()
        assert found.memory_root is not None
        mem_dir = found.memory_root / cid
        if found.version == 1:
            limit = int((mem_dir / "memory.limit_in_bytes").read_text())
            assert limit == 96 * 1024 * 1024
            if found.cpu_root is not None:
                assert (found.cpu_root / cid / "cpu.shares").read_text().strip() == "512"
        else:
            assert int((mem_dir / "memory.max").read_text()) == 96 * 1024 * 1024
        await run.master.send(fm.kill_task("cg", grace=0.5))
        await run.master.wait_state("cg", "TASK_KILLED")
        await run.master.wait_for(lambda: not mem_dir.exists(), timeout=10)


async def test_relative_volumes_are_made_in_the_sandbox_and_absolute_ones_refused(
        tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello.txt").write_text("from the host\n")
    task = fm.command_task("vol", "cat data/hello.txt; echo x > scratch/f; cat scratch/f",
                           container={"type": "MESOS", "volumes": [
                               {"container_path": "data", "host_path": str(shared),
                                "mode": "RO"},
                               {"container_path": "scratch", "mode": "RW",
                                "source": {"type": "SANDBOX_PATH",
                                           "sandbox_path": {"type": "SELF", "path": "tmp"}}},
                           ]})
    absolute = fm.command_task("abs", "true", container={
        "type": "MESOS", "volumes": [{"container_path": "/data", "host_path": str(shared),
                                      "mode": "RW"}]})
    async with fm.running_agent(tmp_path / "work") as run:
        await run.master.send(fm.run_task(task))
        await run.master.wait_state("vol", "TASK_FINISHED")
        slaves = tmp_path / "work" / "slaves"
        sandbox = next(slaves.glob("*/frameworks/*/executors/vol/runs/latest"))
        assert (sandbox / "stdout").read_text() == "from the host\nx\n"
        assert (sandbox / "tmp" / "f").read_text() == "x\n"
        await run.master.send(fm.run_task(absolute))
        failed = await run.master.wait_state("abs", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert "/data" in failed["message"]
