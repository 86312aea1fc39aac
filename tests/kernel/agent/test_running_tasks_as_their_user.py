"""A task runs as its ``CommandInfo.user`` (resolved on the agent's host, as Mesos), with the
capabilities of its ``LinuxInfo`` (the ``linux/capabilities`` isolator); real processes report
their own uid and capability sets from ``/proc/self/status``."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import filesystems
from tests.kernel.agent import fakemaster as fm
from tests.kernel.agent.images_for_tests import busybox_archive
from tests.kernel.agent.test_confining_tasks import _group

# Relative paths: the sandbox is the task's working directory (pytest's tmp dirs are 0700).
REPORT = ("id -u > uid; id -g > gid; if test -w /etc/passwd; then echo yes; else echo no; fi "
          "> writes; grep -E '^Cap(Eff|Bnd)' /proc/self/status > caps")


def _task(task_id: str, *, user: str | None = None, image: bool = False,
          linux: dict[str, Any] | None = None, command: str = REPORT) -> dict[str, Any]:
    task = fm.command_task(task_id, command)
    if user is not None:
        task["command"]["user"] = user
    container: dict[str, Any] = {"type": "MESOS"}
    if image:
        container["mesos"] = {"image": {"type": "DOCKER", "docker": {"name": "busybox"}}}
    if linux is not None:
        container["linux_info"] = linux
    task["container"] = container
    return task


def _agent(tmp_path: Path) -> dict[str, Any]:
    busybox_archive(tmp_path / "registry")
    return {"isolation": filesystems.FULL_ISOLATION, "image_providers": "docker",
            "docker_registry": str(tmp_path / "registry"), "docker_store_dir": tmp_path / "store"}


def _sandbox(tmp_path: Path, task_id: str) -> Path:
    [sandbox] = (tmp_path / "work").glob(f"slaves/*/frameworks/*/executors/{task_id}/runs/latest")
    return sandbox


def _caps(sandbox: Path) -> dict[str, int]:
    lines = (sandbox / "caps").read_text().split("\n")
    return {k.strip(): int(v, 16) for k, v in (line.split(":") for line in lines if line)}


async def test_a_task_runs_as_nobody_and_cannot_write_root_files(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path / "work", **_agent(tmp_path)) as run:
        await run.master.send(fm.run_task(_task("host", user="nobody")))
        await run.master.wait_state("host", "TASK_FINISHED")
        await run.master.send(fm.run_task(_task("img", user="nobody", image=True)))
        await run.master.wait_state("img", "TASK_FINISHED")
    for task_id in ("host", "img"):
        sandbox = _sandbox(tmp_path, task_id)
        assert (sandbox / "uid").read_text() == "65534\n"
        assert (sandbox / "gid").read_text() == "65534\n"
        assert (sandbox / "writes").read_text() == "no\n"
        assert _caps(sandbox)["CapEff"] == 0  # setuid away from root drops them all
        assert sandbox.resolve().stat().st_uid == 65534  # Mesos chowns the sandbox


async def test_a_user_only_in_the_image_is_unknown_as_in_mesos(tmp_path: Path) -> None:
    # The test image's /etc/passwd has "user"; Mesos resolves names on the agent's host.
    async with fm.running_agent(tmp_path / "work", **_agent(tmp_path)) as run:
        await run.master.send(fm.run_task(_task("u", user="user", image=True)))
        failed = await run.master.wait_state("u", "TASK_FAILED")
    assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert failed["message"].startswith("Failed to create executor directory '")
    assert failed["message"].endswith(
        "': Failed to chown directory to 'user': No such user 'user'")


async def test_effective_capabilities_are_the_tasks_own(tmp_path: Path) -> None:
    raw = {"effective_capabilities": {"capabilities": ["NET_RAW", "CHOWN"]}}
    as_nobody = {"effective_capabilities": {"capabilities": ["NET_BIND_SERVICE"]},
                 "bounding_capabilities": {"capabilities": ["NET_BIND_SERVICE", "KILL"]}}
    async with fm.running_agent(tmp_path / "work", **_agent(tmp_path)) as run:
        await run.master.send(fm.run_task(_task("root", linux=raw)))
        await run.master.wait_state("root", "TASK_FINISHED")
        await run.master.send(fm.run_task(_task("nobody", user="nobody", linux=as_nobody)))
        await run.master.wait_state("nobody", "TASK_FINISHED")
        await run.master.send(fm.run_task(_task("admin", linux={
            "effective_capabilities": {"capabilities": ["SYS_ADMIN"]}})))
        refused = await run.master.wait_state("admin", "TASK_FAILED")
        await run.master.send(fm.run_task(_task("outside", linux={
            "effective_capabilities": {"capabilities": ["NET_RAW"]},
            "bounding_capabilities": {"capabilities": ["CHOWN"]}})))
        outside = await run.master.wait_state("outside", "TASK_FAILED")
    assert _caps(_sandbox(tmp_path, "root")) == {"CapEff": 1 << 13 | 1 << 0,
                                                 "CapBnd": 1 << 13 | 1 << 0}
    assert _caps(_sandbox(tmp_path, "nobody")) == {"CapEff": 1 << 10, "CapBnd": 1 << 10 | 1 << 5}
    assert (_sandbox(tmp_path, "nobody") / "uid").read_text() == "65534\n"
    assert refused["message"] == ("Failed to launch container: Requested capabilities "
                                  "'{ SYS_ADMIN }', but this agent never grants '{ SYS_ADMIN }'")
    assert outside["message"] == ("Failed to launch container: Requested capabilities "
                                  "'{ NET_RAW }', but only '{ CHOWN }' are allowed")


async def test_sandboxes_are_0750_and_owned_by_their_users(tmp_path: Path) -> None:
    # As Mesos' createSandboxDirectory: private task data, not accessible to others. Both ways
    # the sandboxes are made: by the container daemon, and by the agent (a task with URIs).
    (tmp_path / "file").write_text("x\n")
    fetching = _task("f", user="nobody", command="id -u > uid")
    fetching["command"]["uris"] = [{"value": str(tmp_path / "file")}]
    group = _group("pod", [_task("g", user="nobody", command="id -u > uid")])
    async with fm.running_agent(tmp_path / "work") as run:
        await run.master.send(fm.run_task(_task("c", user="nobody", command="id -u > uid")))
        await run.master.send(fm.run_task(fetching))
        await run.master.send(group)
        for task_id in ("c", "f", "g"):
            await run.master.wait_state(task_id, "TASK_FINISHED")
    pod = _sandbox(tmp_path, "pod")
    for sandbox, uid in ((_sandbox(tmp_path, "c"), 65534), (_sandbox(tmp_path, "f"), 65534),
                         (pod, 0), (pod / "tasks" / "g", 65534)):
        info = sandbox.stat()
        assert (oct(stat.S_IMODE(info.st_mode)), info.st_uid) == (oct(0o750), uid), sandbox
        if sandbox != pod:
            assert (sandbox / "uid").read_text() == "65534\n"
