"""A command check (and health check) of a task with a view of its own runs inside that view,
as its user: it sees what the task wrote into its private root, which the host never sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import filesystems
from tests.kernel.agent import fakemaster as fm
from tests.kernel.agent.images_for_tests import busybox_archive


async def test_checks_see_the_tasks_own_root_and_run_as_its_user(tmp_path: Path) -> None:
    busybox_archive(tmp_path / "registry")
    # /mnt/mesos/sandbox is where the image's view has the sandbox; the host has no such path.
    probe = "test -f /mnt/mesos/sandbox/made-by-task && test $(id -u) = 65534 && test -f stdout"
    check = {"type": "COMMAND", "command": {"command": {"value": probe}},
             "delay_seconds": 0, "interval_seconds": 0.2, "timeout_seconds": 5}
    health = {"type": "COMMAND", "command": {"value": probe}, "delay_seconds": 0,
              "interval_seconds": 0.2, "timeout_seconds": 5, "grace_period_seconds": 30}
    task = fm.command_task("t", "touch made-by-task && sleep 30", check=check,
                           health_check=health)
    task["command"]["user"] = "nobody"
    task["container"] = {"type": "MESOS", "mesos": {"image": {
        "type": "DOCKER", "docker": {"name": "busybox"}}}}
    async with fm.running_agent(tmp_path / "work", isolation=filesystems.FULL_ISOLATION,
                                image_providers="docker",
                                docker_registry=str(tmp_path / "registry"),
                                docker_store_dir=tmp_path / "store") as run:
        await run.master.send(fm.run_task(task))
        await run.master.wait_state("t", "TASK_RUNNING")
        passed = await run.master.wait_for(lambda: [
            u for u in run.master.updates
            if (u.get("check_status") or {}).get("command", {}).get("exit_code") == 0])
        assert passed[0]["reason"] == "REASON_TASK_CHECK_STATUS_UPDATED"
        await run.master.wait_for(lambda: [
            u for u in run.master.updates if u.get("healthy") is True])
        assert not Path("/mnt/mesos/sandbox").exists()


async def test_a_recovered_tasks_checks_still_run_in_its_view_as_its_user(
        tmp_path: Path) -> None:
    busybox_archive(tmp_path / "registry")
    probe = "test -f /mnt/mesos/sandbox/made-by-task && test $(id -u) = 65534"
    check = {"type": "COMMAND", "command": {"command": {"value": probe}},
             "delay_seconds": 0, "interval_seconds": 0.2, "timeout_seconds": 5}
    task = fm.command_task("t", "touch made-by-task && sleep 60", check=check)
    task["command"]["user"] = "nobody"
    task["container"] = {"type": "MESOS", "mesos": {"image": {
        "type": "DOCKER", "docker": {"name": "busybox"}}}}
    flags: dict[str, Any] = {"isolation": filesystems.FULL_ISOLATION, "image_providers": "docker",
             "docker_registry": str(tmp_path / "registry"), "docker_store_dir": tmp_path / "store"}
    master = fm.FakeMaster()
    await master.start()
    try:
        async with fm.running_agent(tmp_path / "work", master=master, keep_tasks=True,
                                    **flags):
            await master.send(fm.run_task(task, checkpoint=True))
            await master.wait_for(lambda: _check_codes(master) == [0])
        before = len(master.updates)
        async with fm.running_agent(tmp_path / "work", master=master, **flags):
            # The new agent's first check result is a change (it starts with none): exit 0.
            await master.wait_for(lambda: _check_codes(master, since=before))
            assert _check_codes(master, since=before) == [0]
            await master.send(fm.kill_task("t", grace=1.0))
            await master.wait_state("t", "TASK_KILLED")
    finally:
        await master.stop()


def _check_codes(master: fm.FakeMaster, *, since: int = 0) -> list[int]:
    return [u["check_status"]["command"]["exit_code"] for u in master.updates[since:]
            if "exit_code" in (u.get("check_status") or {}).get("command", {})]
