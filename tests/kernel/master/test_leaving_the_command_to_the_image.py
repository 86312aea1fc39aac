"""A task's ``CommandInfo`` with ``shell: false`` and no ``value`` passes the master, as in Mesos
(its ``validateCommandInfo`` checks only the environment): a task with an image runs the image's
Entrypoint/Cmd (``docker/runtime``); without one the agent fails it as Mesos' launcher does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k8sbridge.kernel import resources as res
from k8sbridge.kernel.agent import filesystems
from k8sbridge.kernel.master import launching
from tests.kernel.agent import fakemaster as fm
from tests.kernel.agent.images_for_tests import busybox_archive

OFFERED = res.parse_resources_flag("cpus:1;mem:256;disk:100").allocated_to("*")


def _task(command: dict[str, Any]) -> dict[str, Any]:
    return {"name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
            "command": command,
            "container": {"type": "MESOS", "mesos": {"image": {
                "type": "DOCKER", "docker": {"name": "busybox"}}}}}


def test_the_master_takes_a_command_without_a_value() -> None:
    tid, _, _, _ = launching.validate_launch_task(
        _task({"shell": False}), framework_id="f", agent_id="a1", role="*",
        known_task_ids=set(), known_executors={}, offered=OFFERED)
    assert tid == "t1"


async def test_the_image_entrypoint_runs_and_without_an_image_the_agent_says_why(
        tmp_path: Path) -> None:
    busybox_archive(tmp_path / "registry", cmd=("sh", "-c", "echo from-cmd"))
    in_image = fm.command_task("img", "")
    in_image["command"] = {"shell": False}
    in_image["container"] = _task({})["container"]
    on_host = fm.command_task("host", "")
    on_host["command"] = {"shell": False}
    async with fm.running_agent(tmp_path / "work", isolation=filesystems.FULL_ISOLATION,
                                image_providers="docker",
                                docker_registry=str(tmp_path / "registry"),
                                docker_store_dir=tmp_path / "store") as run:
        await run.master.send(fm.run_task(in_image))
        await run.master.wait_state("img", "TASK_FINISHED")
        await run.master.send(fm.run_task(on_host))
        failed = await run.master.wait_state("host", "TASK_FAILED")
        assert failed["message"] == "Executable path is not specified"
