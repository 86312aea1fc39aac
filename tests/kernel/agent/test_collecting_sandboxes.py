"""Sandboxes and checkpoints of finished containers are garbage-collected as Mesos' agent does
(``--gc_delay``, sooner as the disk fills: ``--disk_watch_interval``, ``--gc_disk_headroom``);
live ones never. The audit found 2,350 run directories after 80 minutes of short pods."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from k8sbridge.kernel.agent import garbage
from k8sbridge.kernel.agent.config import AgentConfig
from k8sbridge.kernel.agent.errors import AgentError
from tests.kernel.agent import fakemaster as fm

WEEK = 7 * 24 * 3600.0


def _runs(root: Path, executor: str) -> list[Path]:
    return [p for p in root.glob(f"slaves/*/frameworks/*/executors/{executor}/runs/*")
            if not p.is_symlink()]


def test_max_allowed_age_is_mesos_rule() -> None:
    # Slave::age: gc_delay * max(0, 1 - headroom - usage).
    assert garbage.max_allowed_age(gc_delay=WEEK, headroom=0.1, usage=0.5) == pytest.approx(
        WEEK * 0.4)
    assert garbage.max_allowed_age(gc_delay=WEEK, headroom=0.1, usage=0.95) == 0.0
    assert garbage.max_allowed_age(gc_delay=100.0, headroom=0.0, usage=0.0) == 100.0
    st = os.statvfs("/")
    assert garbage.disk_usage(Path("/")) == pytest.approx(
        (st.f_blocks - st.f_bfree) / st.f_blocks, abs=0.01)


def test_headroom_is_validated_as_mesos_does(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="gc_disk_headroom"):
        AgentConfig(master="127.0.0.1:1", work_dir=tmp_path, gc_disk_headroom=1.5)


async def test_finished_sandboxes_go_after_gc_delay_live_ones_stay(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path, gc_delay_seconds=0.5,
                                disk_watch_interval_seconds=0.2) as run:
        await run.master.send(fm.run_task(fm.command_task("live", "exec sleep 300"),
                                          checkpoint=True))
        await run.master.send(fm.run_task(fm.command_task("done", "echo hi"), checkpoint=True))
        await run.master.wait_state("live", "TASK_RUNNING")
        await run.master.wait_state("done", "TASK_FINISHED")
        [done_run] = _runs(tmp_path, "done")
        [done_meta] = _runs(tmp_path / "meta", "done")
        assert (done_run / "stdout").read_text() == "hi\n"
        assert (done_meta / "state.json").exists()
        # Gone with its executor's directories, in the sandbox tree and in meta.
        await run.master.wait_for(lambda: not done_run.parent.parent.exists()
                                  and not done_meta.parent.parent.exists(), timeout=10)
        [live_run] = _runs(tmp_path, "live")
        [live_meta] = _runs(tmp_path / "meta", "live")
        framework_dir = live_run.parent.parent.parent.parent
        assert live_run.is_dir() and (live_meta / "state.json").exists()
        assert run.agent.gc.removed == [done_meta.name]
        await asyncio.sleep(0.7)  # well past gc_delay: a live container is never collected
        assert live_run.is_dir() and (live_meta / "state.json").exists()
        await run.master.send(fm.kill_task("live", grace=0.5))
        await run.master.wait_state("live", "TASK_KILLED")
        # The framework's last executor finished: its directories go too.
        await run.master.wait_for(lambda: not framework_dir.exists() and not list(
            (tmp_path / "meta").glob("slaves/*/frameworks/*")), timeout=10)
        assert (tmp_path / "meta" / "slaves" / "latest").exists()  # the agent's own id stays


async def test_a_full_disk_collects_at_once(tmp_path: Path) -> None:
    # With a week's delay nothing goes soon -- unless the disk leaves no room: headroom 1.0
    # makes the max allowed age 0 at any usage, so the next disk check removes the run.
    async with fm.running_agent(tmp_path, disk_watch_interval_seconds=0.2) as run:
        await run.master.send(fm.run_task(fm.command_task("kept", "true"), checkpoint=True))
        await run.master.wait_state("kept", "TASK_FINISHED")
        [kept] = _runs(tmp_path, "kept")
        await run.master.wait_for(lambda: run.agent.gc.scheduled() == 1)
        await asyncio.sleep(0.5)  # disk checks ran
        assert run.agent.gc.max_age > WEEK * 0.05
        assert kept.is_dir()  # a disk below 95 % keeps a week-old-at-most run
    async with fm.running_agent(tmp_path, disk_watch_interval_seconds=0.2,
                                gc_disk_headroom=1.0) as run:
        # After the restart it is found finished, scheduled and removed at the first check.
        await run.master.wait_for(lambda: not kept.exists(), timeout=10)
        assert run.agent.gc.max_age == 0.0


async def test_old_runs_are_collected_after_a_restart_by_their_age(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:  # gc_delay: a week
        await run.master.send(fm.run_task(fm.command_task("old", "true"), checkpoint=True))
        await run.master.send(fm.run_task(fm.command_task("plain", "true")))  # no checkpoint
        await run.master.wait_state("old", "TASK_FINISHED")
        await run.master.wait_state("plain", "TASK_FINISHED")
        agent_id = run.agent.agent_id
    [old] = _runs(tmp_path, "old")
    [plain] = _runs(tmp_path, "plain")
    assert not _runs(tmp_path / "meta", "plain")  # nothing of it was checkpointed
    stale = tmp_path / "slaves" / "S-from-a-previous-agent-id" / "frameworks"
    stale.mkdir(parents=True)
    hour_ago = time.time() - 3600
    for path in (old, plain, stale.parent):
        os.utime(path, (hour_ago, hour_ago))
    # An hour old, with a 2-hour delay: kept; with a 30-minute delay: gone at once.
    async with fm.running_agent(tmp_path, gc_delay_seconds=7200.0,
                                disk_watch_interval_seconds=0.2) as run:
        assert run.agent.agent_id == agent_id
        assert run.agent.gc.scheduled() == 3
        await asyncio.sleep(0.5)
        assert old.is_dir() and plain.is_dir() and stale.is_dir()
    async with fm.running_agent(tmp_path, gc_delay_seconds=1800.0,
                                disk_watch_interval_seconds=0.2) as run:
        await run.master.wait_for(lambda: not old.exists() and not plain.exists()
                                  and not stale.parent.exists(), timeout=10)
        assert not list((tmp_path / "meta").glob("slaves/*/frameworks/*"))
        assert not list(tmp_path.glob("slaves/*/frameworks/*"))


async def test_a_run_stays_until_its_terminal_update_is_acknowledged(tmp_path: Path) -> None:
    # Mesos removes an executor (and schedules its directories) once every update of it was
    # acknowledged: the checkpoint carries the unacknowledged ones across a restart.
    master = fm.FakeMaster(auto_ack=False)
    await master.start()
    try:
        async with fm.running_agent(tmp_path, master=master, gc_delay_seconds=0.2,
                                    disk_watch_interval_seconds=0.1,
                                    status_retry_seconds=0.2) as run:
            await run.master.send(fm.run_task(fm.command_task("t", "true"), checkpoint=True))
            acked: set[str] = set()
            finished = None
            async with asyncio.timeout(15):  # acknowledge everything but the terminal update
                while finished is None:
                    for status in list(run.master.updates):
                        if status["state"] == "TASK_FINISHED":
                            finished = status
                        elif status["uuid"] not in acked:
                            acked.add(status["uuid"])
                            await run.master.ack(fm.FRAMEWORK_ID, status)
                    await asyncio.sleep(0.05)
            [sandbox] = _runs(tmp_path, "t")
            [meta] = _runs(tmp_path / "meta", "t")
            await asyncio.sleep(1.0)  # five gc_delays, ten disk checks
            assert sandbox.is_dir() and (meta / "state.json").exists()
            assert run.agent.gc.removed == []
            await run.master.ack(fm.FRAMEWORK_ID, finished)
            await run.master.wait_for(lambda: not sandbox.exists() and not meta.exists(),
                                      timeout=10)
    finally:
        await master.stop()
