"""With ``filesystem/linux`` and ``namespaces/pid`` a task without an image runs on a
copy-on-write view of the host's root in mount and pid namespaces of its own: what it writes
stays in the container, it sees only its own processes, and nothing of its view (mounts,
upper layer, holder) is left once it ends."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from k8sbridge.kernel.agent import filesystems, mounting
from tests.kernel.agent import fakemaster as fm

FULL = filesystems.FULL_ISOLATION


def _mount_points_under(path: Path) -> list[str]:
    return [m.point for m in mounting.mountinfo("self") if m.point.startswith(str(path))]


async def test_a_task_writes_to_its_own_copy_of_the_root_and_sees_its_own_pids(
        tmp_path: Path) -> None:
    marker = f"/etc/k8sbridge-test-{uuid.uuid4().hex}"
    script = (f"echo inside > {marker} && cat {marker} > out && echo $$ > pid && "
              "ls /proc | grep -c '^[0-9]' > procs && "
              "(touch /sys/fs/cgroup/memory/x 2>/dev/null && echo writable || echo ro) > cg && "
              "echo $MESOS_SANDBOX > sandbox")
    async with fm.running_agent(tmp_path, isolation=FULL) as run:
        await run.master.send(fm.run_task(fm.command_task("t", script)))
        running = await run.master.wait_state("t", "TASK_RUNNING")
        assert running["message"] == filesystems.HOST_VIEW_MESSAGE
        done = await run.master.wait_state("t", "TASK_FINISHED")
        assert done["state"] == "TASK_FINISHED"
        [sandbox] = list(tmp_path.glob("slaves/*/frameworks/*/executors/t/runs/latest"))
        assert (sandbox / "out").read_text() == "inside\n"
        assert not os.path.exists(marker)  # the host never saw it
        assert (sandbox / "pid").read_text() == "2\n"  # its holder is 1
        # Its holder and itself, and the ls and grep of the pipe: nothing of the host.
        assert int((sandbox / "procs").read_text()) <= 5
        assert (sandbox / "cg").read_text() == "ro\n"
        assert (sandbox / "sandbox").read_text().strip() == str(sandbox.resolve())
        await run.master.wait_for(lambda: not list((tmp_path / "provisioner").glob("*/*")))
        assert _mount_points_under(tmp_path) == []


async def test_a_restarted_agent_removes_the_views_of_dead_containers(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path, isolation=FULL) as run:
        await run.master.send(fm.run_task(fm.command_task("t", "true")))
        await run.master.wait_state("t", "TASK_FINISHED")
    # What a container daemon killed with its containers leaves: an upper layer on disk.
    leftover = tmp_path / "provisioner" / "containers" / "dead-container" / "t" / "scratch"
    (leftover / "upper" / "etc").mkdir(parents=True)
    (leftover / "upper" / "etc" / "written").write_text("x")
    async with fm.running_agent(tmp_path, isolation=FULL):
        assert not (tmp_path / "provisioner" / "containers" / "dead-container").exists()
