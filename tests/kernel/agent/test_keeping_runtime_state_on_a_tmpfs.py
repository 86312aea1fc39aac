"""The agents' runtime base (``/run/k8sbridge``: CNI namespaces and IPAM leases) is a tmpfs: the
agent that makes it mounts one there when the file system under it is not a tmpfs (``/run``
on this project's test machines is the root ext4), never over one that holds anything, and
not again on top of its own. The parent here is a ramfs (a file system that is not a tmpfs on
any machine) or a tmpfs, mounted for the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from k8sbridge.kernel.agent import cni, mounting


def _mounts_at(path: Path) -> list[mounting.Mount]:
    return [m for m in mounting.mountinfo("self") if m.point == str(path)]


@pytest.fixture(params=["ramfs", "tmpfs"])
def parent(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory on a ramfs or on a tmpfs, and which."""
    fstype = str(request.param)
    point = tmp_path / fstype
    point.mkdir()
    mounting.mount(fstype, str(point), fstype, 0)
    try:
        yield point, fstype
    finally:  # the newest first: the base's tmpfs (if any), then the parent's
        for m in reversed(mounting.mountinfo("self")):
            if m.point == str(point) or m.point.startswith(f"{point}/"):
                mounting.umount(m.point, detach=True)


def test_a_missing_base_is_made_as_a_tmpfs_of_its_own(parent: tuple[Path, str]) -> None:
    directory, fstype = parent
    base = directory / "k8sbridge"
    mounted = cni.make_run_base(base)
    assert base.is_dir()
    if fstype == "tmpfs":  # /run as distributions mount it: nothing to do
        assert not mounted and _mounts_at(base) == []
        return
    assert mounted
    [mount] = _mounts_at(base)
    assert mount.fstype == "tmpfs"
    assert {"nosuid", "nodev", "noexec"} <= set(mount.options)
    (base / "agent").mkdir()  # what agents keep there
    assert not cni.make_run_base(base)  # once: not a second tmpfs on top
    assert len(_mounts_at(base)) == 1 and (base / "agent").is_dir()


def test_a_base_that_holds_anything_is_left_as_it_is(parent: tuple[Path, str]) -> None:
    directory, _ = parent
    base = directory / "k8sbridge"
    (base / "older-agent" / "isolators").mkdir(parents=True)
    assert not cni.make_run_base(base)
    assert _mounts_at(base) == [] and (base / "older-agent" / "isolators").is_dir()
