"""Volumes as Mesos' ``volume/sandbox_path``, ``volume/secret`` and ``volume/host_path``
isolators give them to a task with a view of its own: mount points made inside the view and
never on the host, ``RO`` really read-only, a ``PARENT`` sandbox path shared by a group's
tasks, secrets as files; and tasks of a group that share a pid namespace see each other."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import filesystems, mounting
from tests.kernel.agent import fakemaster as fm
from tests.kernel.agent.test_confining_tasks import _group


def _task(task_id: str, script: str, volumes: list[dict[str, Any]],
          **linux: Any) -> dict[str, Any]:
    task = fm.command_task(task_id, script, mem=16, cpus=0.01)
    task["container"] = {"type": "MESOS", "volumes": volumes}
    if linux:
        task["container"]["linux_info"] = linux
    return task


def _sandbox(root: Path, executor: str) -> Path:
    [path] = list(root.glob(f"slaves/*/frameworks/*/executors/{executor}/runs/latest"))
    return path


async def test_volumes_are_mounted_inside_the_view_only(tmp_path: Path) -> None:
    host_dir = tmp_path / "host-data"
    host_dir.mkdir()
    (host_dir / "file").write_text("from host\n")
    shared = f"/k8sbridge-shared-{uuid.uuid4().hex}"
    secret = base64.b64encode(b"s3cret").decode()
    volumes = [
        {"container_path": shared, "mode": "RW",
         "source": {"type": "SANDBOX_PATH", "sandbox_path": {"type": "PARENT", "path": "vol"}}},
        {"container_path": "/etc/app/token", "mode": "RO",
         "source": {"type": "SECRET", "secret": {"type": "VALUE", "value": {"data": secret}}}},
        {"container_path": "/data", "mode": "RO",
         "source": {"type": "HOST_PATH", "host_path": {"path": str(host_dir)}}},
    ]
    writer = (f"echo hello > {shared}/x && cat /etc/app/token > token && "
              "stat -c %a /etc/app/token > mode && cat /data/file > data && "
              "(echo no > /data/file 2>/dev/null && echo writable || echo ro) > data-ro && "
              "(echo no > /etc/app/token 2>/dev/null && echo writable || echo ro) > token-ro")
    reader = f"while ! test -s {shared}/x; do sleep 0.05; done; cat {shared}/x > seen"
    async with fm.running_agent(tmp_path / "work", isolation=filesystems.FULL_ISOLATION) as run:
        await run.master.send(_group("pod", [_task("w", writer, volumes),
                                             _task("r", reader, volumes[:1])]))
        await run.master.wait_state("w", "TASK_FINISHED")
        await run.master.wait_state("r", "TASK_FINISHED")
        pod = _sandbox(tmp_path / "work", "pod")
        w, r = pod / "tasks" / "w", pod / "tasks" / "r"
        assert (r / "seen").read_text() == "hello\n"
        assert (pod / "vol" / "x").read_text() == "hello\n"  # the PARENT path
        assert (w / "token").read_text() == "s3cret"
        assert (w / "mode").read_text() == f"{0o644 & ~_umask():o}\n"  # as Mesos' os::write
        assert (w / "data").read_text() == "from host\n"
        assert (w / "data-ro").read_text() == "ro\n"
        assert (w / "token-ro").read_text() == "ro\n"
        assert (host_dir / "file").read_text() == "from host\n"
        assert not os.path.exists(shared) and not os.path.exists("/etc/app/token")
        await run.master.wait_for(
            lambda: not list((tmp_path / "work" / "provisioner").glob("*/*")))
        assert not [m for m in mounting.mountinfo("self") if str(tmp_path) in m.point]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


async def test_tasks_sharing_the_group_pid_namespace_see_each_other(tmp_path: Path) -> None:
    # a's pid goes through a PARENT sandbox path both mount: a sibling's sandbox seen through
    # the copy-on-write root (../a) is the overlay's lower layer, changed under it, and an
    # overlay may keep a lookup that found nothing (b looking before a wrote) for good.
    shared = [{"container_path": "/shared", "mode": "RW", "source": {
        "type": "SANDBOX_PATH", "sandbox_path": {"type": "PARENT", "path": "shared"}}}]
    a = "echo $$ > /shared/pid.tmp && mv /shared/pid.tmp /shared/pid; exec sleep 300"
    b = ("while ! test -s /shared/pid; do sleep 0.05; done; "
         "kill -0 $(cat /shared/pid) && echo seen > seen; ls /proc | grep -c '^[0-9]' > n")
    c = "ls /proc | grep -c '^[0-9]' > n"
    async with fm.running_agent(tmp_path, isolation=filesystems.FULL_ISOLATION) as run:
        await run.master.send(_group("pod", [
            _task("a", a, shared, share_pid_namespace=True),
            _task("b", b, shared, share_pid_namespace=True),
            _task("c", c, [])]))
        # (60 s: three tasks in copy-on-write views took over 15 s at load average 40)
        await run.master.wait_state("b", "TASK_FINISHED", timeout=60)
        await run.master.wait_state("c", "TASK_FINISHED", timeout=60)
        pod = _sandbox(tmp_path, "pod") / "tasks"
        assert (pod / "b" / "seen").read_text() == "seen\n"
        assert int((pod / "c" / "n").read_text()) <= 4  # its holder, sh, ls, grep
        await run.master.send(fm.kill_task("a", grace=0.5))
        await run.master.wait_state("a", "TASK_KILLED")



async def test_a_task_as_nobody_reads_its_secret_and_writes_its_parent_volume(
        tmp_path: Path) -> None:
    # As Mesos' volume/sandbox_path: a PARENT path it makes is owned by the parent sandbox's
    # owner (the executor's user: the framework's), so a task of that user writes it; a task
    # of another user does not (Mesos needs --volume_gid_range for that, which this agent has
    # not). The secret file is world-readable (os::write: 0644 less the umask).
    secret = base64.b64encode(b"s3cret").decode()
    volumes = [
        {"container_path": "/shared", "mode": "RW",
         "source": {"type": "SANDBOX_PATH", "sandbox_path": {"type": "PARENT", "path": "vol"}}},
        {"container_path": "/etc/app/token", "mode": "RO",
         "source": {"type": "SECRET", "secret": {"type": "VALUE", "value": {"data": secret}}}},
    ]
    script = ("cat /etc/app/token > token; id -u > uid; "
              "(echo hi > /shared/x) 2>/dev/null && echo wrote > wrote || echo denied > wrote")
    ours, theirs = _task("n", script, volumes), _task("m", script, volumes)
    ours["command"]["user"] = theirs["command"]["user"] = "nobody"
    as_nobody = _group("pod", [ours])
    as_nobody["framework"]["user"] = "nobody"
    async with fm.running_agent(tmp_path / "work", isolation=filesystems.FULL_ISOLATION) as run:
        await run.master.send(as_nobody)
        await run.master.send(_group("rootpod", [theirs]))
        await run.master.wait_state("n", "TASK_FINISHED")
        await run.master.wait_state("m", "TASK_FINISHED")
    pod = _sandbox(tmp_path / "work", "pod")
    assert (pod / "tasks" / "n" / "uid").read_text() == "65534\n"
    assert (pod / "tasks" / "n" / "token").read_text() == "s3cret"
    assert (pod / "tasks" / "n" / "wrote").read_text() == "wrote\n"
    assert (pod / "vol").stat().st_uid == 65534
    assert (pod / "vol" / "x").read_text() == "hi\n"
    other = _sandbox(tmp_path / "work", "rootpod")
    assert (other / "tasks" / "m" / "token").read_text() == "s3cret"
    assert (other / "tasks" / "m" / "wrote").read_text() == "denied\n"
    assert (other / "vol").stat().st_uid == 0


async def test_tasks_of_a_group_prepared_at_once_share_one_new_parent_directory(
    tmp_path: Path,
) -> None:
    """Every task of the group names the same new ``PARENT`` directory; the agent prepares
    their views concurrently, and whichever makes the directory, none fails on finding it
    made (an emptyDir shared by a pod's containers: this failed one launch in three)."""
    shared = {"container_path": "/k8sbridge-together", "mode": "RW",
              "source": {"type": "SANDBOX_PATH", "sandbox_path": {"type": "PARENT",
                                                                 "path": "together"}}}
    tasks = [_task(f"t{i}", f"echo {i} > /k8sbridge-together/{i}", [shared]) for i in range(6)]
    async with fm.running_agent(tmp_path / "work", isolation=filesystems.FULL_ISOLATION) as run:
        for round_ in range(3):
            names = [f"g{round_}-{t['task_id']['value']}" for t in tasks]
            group = [{**t, "task_id": {"value": n}} for t, n in zip(tasks, names, strict=True)]
            await run.master.send(_group(f"pod{round_}", group))
            for name in names:
                await run.master.wait_state(name, "TASK_FINISHED")
            together = _sandbox(tmp_path / "work", f"pod{round_}") / "together"
            assert sorted(p.name for p in together.iterdir()) == [str(i) for i in range(6)]
