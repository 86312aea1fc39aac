"""A task with ``container.mesos.image`` (DOCKER) runs in that image's root file system, from
the agent's local docker registry directory (``docker save`` archives), as Mesos' provisioner
and ``docker/runtime`` isolator run it; an image that is not there fails the task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import filesystems, mounting
from tests.kernel.agent import fakemaster as fm
from tests.kernel.agent.images_for_tests import busybox_archive
from tests.kernel.agent.test_confining_tasks import _group


def _in_image(task_id: str, command: str | None, image: str = "busybox",
              **container: Any) -> dict[str, Any]:
    task = fm.command_task(task_id, command or "")
    if command is None:
        task["command"] = {"shell": False}
    task["container"] = {"type": "MESOS", "mesos": {"image": {
        "type": "DOCKER", "docker": {"name": image}}}, **container}
    return task


def _agent(tmp_path: Path) -> dict[str, Any]:
    return {"isolation": filesystems.FULL_ISOLATION, "image_providers": "docker",
            "docker_registry": str(tmp_path / "registry"),
            "docker_store_dir": tmp_path / "store"}


async def test_a_task_runs_busybox_sh_from_a_local_image(tmp_path: Path) -> None:
    busybox_archive(tmp_path / "registry", env=("PATH=/bin", "FROM_IMAGE=yes"),
                    workdir="/work")
    script = ("cat /etc/os-release > $MESOS_SANDBOX/os && echo $FROM_IMAGE $PWD > "
              "$MESOS_SANDBOX/env && ls /usr > $MESOS_SANDBOX/usr 2>&1; "
              "touch /bin/new && echo $$ > $MESOS_SANDBOX/pid")
    async with fm.running_agent(tmp_path / "work", **_agent(tmp_path)) as run:
        await run.master.send(fm.run_task(_in_image("a", script)))
        running = await run.master.wait_state("a", "TASK_RUNNING")
        assert running["message"] == "Running in image 'busybox'"
        await run.master.wait_state("a", "TASK_FINISHED")
        # A second container of the same image reuses the unpacked layer, and does not
        # see what the first wrote into its root (its upper layer was private).
        await run.master.send(fm.run_task(_in_image("b", "test ! -e /bin/new")))
        await run.master.wait_state("b", "TASK_FINISHED")
        [sandbox] = list((tmp_path / "work").glob("slaves/*/frameworks/*/executors/a/runs/latest"))
        assert (sandbox / "os").read_text() == "NAME=busybox\n"
        assert (sandbox / "env").read_text() == "yes /work\n"
        assert "No such file" in (sandbox / "usr").read_text()  # not the host's /usr
        assert (sandbox / "pid").read_text() == "2\n"
        assert len(list((tmp_path / "store" / "layers").iterdir())) == 1
        await run.master.wait_for(
            lambda: not list((tmp_path / "work" / "provisioner").glob("*/*")))
        assert not [m for m in mounting.mountinfo("self") if str(tmp_path) in m.point]


async def test_the_image_cmd_runs_when_the_command_has_no_value(tmp_path: Path) -> None:
    busybox_archive(tmp_path / "registry", cmd=("sh", "-c", "echo from-cmd > stdout-copy"))
    async with fm.running_agent(tmp_path / "work", **_agent(tmp_path)) as run:
        await run.master.send(fm.run_task(_in_image("c", None)))
        await run.master.wait_state("c", "TASK_FINISHED")
        [sandbox] = list((tmp_path / "work").glob("slaves/*/frameworks/*/executors/c/runs/latest"))
        assert (sandbox / "stdout-copy").read_text() == "from-cmd\n"


async def test_an_image_not_in_the_registry_fails_the_task(tmp_path: Path) -> None:
    (tmp_path / "registry").mkdir()
    async with fm.running_agent(tmp_path / "work", **_agent(tmp_path)) as run:
        await run.master.send(fm.run_task(_in_image("n", "true", image="nosuch:1.0")))
        failed = await run.master.wait_state("n", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        registry = tmp_path / "registry"
        assert failed["message"] == (
            f"Failed to launch container: Failed to find archive for image 'nosuch:1.0' at "
            f"'{registry}/nosuch:1.0.tar'")


async def test_a_task_group_task_runs_in_a_local_image(tmp_path: Path) -> None:
    # Its sandbox (``tasks/<id>``, mounted at /mnt/mesos/sandbox) is made and its URIs are
    # fetched into it on the host, not at the path it has in the view.
    busybox_archive(tmp_path / "registry", name="localbox", tag="1.0")
    (tmp_path / "fetched").write_text("fetched\n")
    task = _in_image("g", "cat /etc/os-release > $MESOS_SANDBOX/os && echo $PWD > pwd && "
                     "cat $MESOS_SANDBOX/fetched > seen", image="localbox:1.0")
    task["command"]["uris"] = [{"value": str(tmp_path / "fetched")}]
    async with fm.running_agent(tmp_path / "work", **_agent(tmp_path)) as run:
        await run.master.send(_group("pod", [task]))
        await run.master.wait_state("g", "TASK_FINISHED")
        [pod] = list((tmp_path / "work").glob("slaves/*/frameworks/*/executors/pod/runs/latest"))
        assert (pod / "tasks" / "g" / "os").read_text() == "NAME=localbox\n"
        assert (pod / "tasks" / "g" / "pwd").read_text() == "/mnt/mesos/sandbox\n"
        assert (pod / "tasks" / "g" / "seen").read_text() == "fetched\n"
        assert not Path("/mnt/mesos/sandbox/fetched").exists()  # fetched into the sandbox


async def test_an_image_not_cached_is_pulled_again_from_the_registry(tmp_path: Path) -> None:
    """Mesos' ``Image.cached`` (default true): false makes the provisioner pull the image
    again although its store has it, so a new archive in the registry is what runs."""
    busybox_archive(tmp_path / "registry", os_release="NAME=first\n")
    copy = "cat /etc/os-release > $MESOS_SANDBOX/os"

    def uncached(task: dict[str, Any]) -> dict[str, Any]:
        task["container"]["mesos"]["image"]["cached"] = False
        return task

    async with fm.running_agent(tmp_path / "work", **_agent(tmp_path)) as run:
        await run.master.send(fm.run_task(_in_image("a", copy)))
        await run.master.wait_state("a", "TASK_FINISHED")
        busybox_archive(tmp_path / "registry", os_release="NAME=second\n")  # replaced
        await run.master.send(fm.run_task(_in_image("b", copy)))  # cached: the store's
        await run.master.wait_state("b", "TASK_FINISHED")
        await run.master.send(fm.run_task(uncached(_in_image("c", copy))))
        await run.master.wait_state("c", "TASK_FINISHED")
        await run.master.send(fm.run_task(_in_image("d", copy)))  # the store has the new one
        await run.master.wait_state("d", "TASK_FINISHED")
    work = tmp_path / "work"
    seen = {t: next(work.glob(f"slaves/*/frameworks/*/executors/{t}/runs/latest/os"))
            .read_text() for t in "abcd"}
    assert seen == {"a": "NAME=first\n", "b": "NAME=first\n", "c": "NAME=second\n",
                    "d": "NAME=second\n"}
