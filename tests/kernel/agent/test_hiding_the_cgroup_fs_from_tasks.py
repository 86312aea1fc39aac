"""Tasks see the cgroup file system read-only (the audit saw a pod escape its memory limit by
writing its pid into it): a task, as root, cannot move itself into its parent cgroup or the
hierarchy's root, nor make a cgroup, and stays confined; the host's view stays writable."""

from __future__ import annotations

import os
from pathlib import Path

from k8sbridge.kernel.agent import cgroups, confinement
from tests.kernel.agent import fakemaster as fm


def test_cgroup_mounts_are_read_from_mountinfo() -> None:
    text = ("31 23 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec - tmpfs tmpfs rw,mode=755\n"
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
            "41 31 0:38 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n"
            "50 23 0:40 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n"
            "22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n")
    nosuid, nodev, noexec = confinement.MS_NOSUID, confinement.MS_NODEV, confinement.MS_NOEXEC
    assert confinement.cgroup_mounts(text) == [
        ("/sys/fs/cgroup", nosuid | nodev | noexec), ("/sys/fs/cgroup/memory", 0),
        ("/sys/fs/cgroup/unified", nosuid), ("/mnt/my cg", 0)]


def _mount_options(mountinfo: str, point: str) -> list[str]:
    for line in mountinfo.splitlines():
        fields = line.split()
        if fields[4] == point:
            return fields[5].split(",")
    raise AssertionError(f"{point} is not mounted")


async def test_a_task_cannot_write_its_pid_into_the_cgroup_fs(tmp_path: Path) -> None:
    found = cgroups.detect()
    assert found.available and found.memory_root is not None, "this test needs cgroups (root)"
    parent = found.memory_root
    hierarchy = Path("/sys/fs/cgroup/memory")
    script = (
        f"for f in {parent}/cgroup.procs {parent}/tasks {hierarchy}/cgroup.procs; do "
        "if echo $$ > $f; then echo WROTE $f; else echo REFUSED $f; fi; done; "
        "if mkdir /sys/fs/cgroup/memory/escape-$$; then echo MADE; else echo REFUSED mkdir; fi; "
        # As root it cannot undo the view either: no remount, no mount of its own, no way
        # round through pid 1's root.
        "if mount -o remount,bind,rw /sys/fs/cgroup/memory; then echo REMOUNTED; "
        "else echo REFUSED remount; fi; "
        "mkdir -p /tmp/k8sbridge-cg-$$ && if mount -t cgroup -o memory none /tmp/k8sbridge-cg-$$;"
        " then echo MOUNTED; umount /tmp/k8sbridge-cg-$$; else echo REFUSED mount; fi; "
        "rmdir /tmp/k8sbridge-cg-$$; "
        f"if echo $$ > /proc/1/root{hierarchy}/cgroup.procs; then echo WROTE via pid 1; "
        "else echo REFUSED proc1; fi; "
        "grep CapBnd /proc/self/status; "
        "echo DONE; exec sleep 300"
    )
    try:
        await _check_refused(tmp_path, parent=parent, hierarchy=hierarchy, script=script)
    finally:  # had the task escaped, its cgroup must not outlive the test
        for escaped in hierarchy.glob("escape-*"):
            escaped.rmdir()


async def _check_refused(tmp_path: Path, *, parent: Path, hierarchy: Path, script: str) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("t", script, mem=64)))
        status = await run.master.wait_state("t", "TASK_RUNNING")
        cid = status["container_status"]["container_id"]["value"]
        [sandbox] = [p for p in tmp_path.glob("slaves/*/frameworks/*/executors/t/runs/*")
                     if not p.is_symlink()]
        stdout = sandbox / "stdout"
        await run.master.wait_for(lambda: "DONE" in stdout.read_text())
        out = stdout.read_text()
        for escaped in ("WROTE", "MADE", "REMOUNTED", "MOUNTED"):
            assert escaped not in out, out
        assert out.count("REFUSED") == 7, out
        bounding = int(out.split("CapBnd:")[1].split()[0], 16)
        assert not bounding & (1 << confinement.CAP_SYS_ADMIN | 1 << confinement.CAP_SYS_PTRACE)
        assert bounding & (1 << 0)  # CAP_CHOWN: only those two are gone
        assert "Read-only file system" in (sandbox / "stderr").read_text()
        # Still confined: the shell (now sleep) is in the container's memory cgroup.
        [pid] = [int(p) for p in (parent / cid / "cgroup.procs").read_text().split()]
        memory_line = next(line for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                           if ":memory:" in line)
        assert memory_line.endswith("/" + cid), memory_line
        # Its own mount namespace, where the cgroup mounts are read-only; the host's are not.
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        task_view = Path(f"/proc/{pid}/mountinfo").read_text()
        host_view = Path("/proc/self/mountinfo").read_text()
        for point in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory"):
            assert "ro" in _mount_options(task_view, point)
            assert "rw" in _mount_options(host_view, point)
        assert "rw" in _mount_options(task_view, "/")  # only the cgroup fs is read-only
        assert not list(hierarchy.glob("escape-*"))
        await run.master.send(fm.kill_task("t", grace=0.5))
        await run.master.wait_state("t", "TASK_KILLED")
        # The daemon (outside the view) still removes the container's cgroup.
        await run.master.wait_for(lambda: not (parent / cid).exists(), timeout=20)
