"""A checkpoint is never renamed over its old version (ext4 flushes such a rename: ~0.6 ms of
the agents' event loop per write, see ``paths.atomic_write_bytes``) nor rewritten in place: the
new version goes to the spare file (the version before, its inode reused), whose name is then
exchanged with the checkpoint's. Where exchanging is not possible the new version becomes a
temporary file and the old one is unlinked first; an agent killed between that unlink and the
rename leaves the complete new version in the temporary file only; the next agent puts it into
place and recovers the container. A temporary file cut short (no whole JSON object) is never
taken for a checkpoint, nor is a spare (it holds an older version)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from k8sbridge.kernel.agent import mounting, paths
from tests.kernel.agent import fakemaster as fm


def test_a_rewrite_exchanges_the_new_version_with_the_old_both_private(
        tmp_path: Path) -> None:
    path = tmp_path / "runs" / "c1" / "state.json"
    spare = path.with_name(".state.json.spare")
    paths.atomic_write_json(path, {"v": 1, "pad": "x" * 100})
    assert os.listdir(path.parent) == ["state.json"]
    first = path.stat().st_ino
    paths.atomic_write_json(path, {"v": 2})
    assert paths.read_json(path) == {"v": 2}
    assert path.stat().st_ino != first  # the new version is never written over the old one
    assert paths.read_json(spare) == {"v": 1, "pad": "x" * 100}
    spare.chmod(0o644)  # a spare is made private again before it takes a new version
    paths.atomic_write_json(path, {"v": 3})  # shorter than the spare it goes into
    assert paths.read_json(path) == {"v": 3}
    assert path.stat().st_ino == first  # two inodes take turns: none freed, none allocated
    assert paths.read_json(spare) == {"v": 2}
    assert sorted(os.listdir(path.parent)) == [".state.json.spare", "state.json"]
    for p in (path, spare):
        assert stat.S_IMODE(p.stat().st_mode) == paths.PRIVATE_FILE


async def test_a_kill_between_unlink_and_rename_loses_no_container(tmp_path: Path) -> None:
    master = fm.FakeMaster()
    await master.start()
    try:
        async with fm.running_agent(tmp_path, master=master, keep_tasks=True):
            await master.send(fm.run_task(fm.command_task("t", "exec sleep 300"),
                                          checkpoint=True))
            await master.wait_state("t", "TASK_RUNNING")
        [state] = list(tmp_path.glob("meta/slaves/*/frameworks/*/executors/t/runs/*/state.json"))
        tmp = state.with_name(".state.json.tmp")
        os.rename(state, tmp)  # what the kill leaves: the new version under its temporary name

        async with fm.running_agent(tmp_path, master=master) as second:
            rereg = master.registrations[-1]
            assert [(t["task_id"]["value"], t["state"]) for t in rereg["tasks"]] == [
                ("t", "TASK_RUNNING")]
            assert state.exists() and not tmp.exists()
            assert [c.container_id for c in second.agent.live_containers()] == [
                state.parent.name]
            await master.send(fm.kill_task("t", grace=1.0))
            await master.wait_state("t", "TASK_KILLED")
    finally:
        await master.stop()


def test_a_temporary_file_cut_short_is_not_a_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "meta" / "slaves" / "S0" / "frameworks" / "F" / "executors" / "e" / \
        "runs" / "c1"
    run.mkdir(parents=True)
    (run / ".state.json.tmp").write_text('{"container_id":"c1","tasks":{"t":{"info"')
    (run / ".state.json.spare").write_text('{"container_id":"c1","tasks":{}}')  # older
    assert paths.finish_interrupted_writes(work_dir=tmp_path) == []
    assert not (run / "state.json").exists()
    assert paths.clean_temp_files(work_dir=tmp_path) == [run / ".state.json.tmp"]


def test_a_write_killed_before_the_unlink_keeps_the_old_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "meta" / "slaves" / "S0" / "frameworks" / "F" / "executors" / "e" / \
        "runs" / "c1"
    run.mkdir(parents=True)
    (run / "state.json").write_text('{"v":1}')
    (run / ".state.json.tmp").write_text('{"v":2}')  # the write did not happen: all or nothing
    assert paths.finish_interrupted_writes(work_dir=tmp_path) == []
    assert paths.read_json(run / "state.json") == {"v": 1}


def test_where_names_cannot_be_exchanged_the_old_version_is_unlinked_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def cannot(a: str, b: str) -> None:
        raise OSError(errno.EINVAL, "renameat2: not supported by this file system")

    monkeypatch.setattr(mounting, "exchange", cannot)
    path = tmp_path / "runs" / "c1" / "state.json"
    for version in range(1, 4):
        paths.atomic_write_json(path, {"v": version})
        assert paths.read_json(path) == {"v": version}
        assert os.listdir(path.parent) == ["state.json"]
        assert stat.S_IMODE(path.stat().st_mode) == paths.PRIVATE_FILE
