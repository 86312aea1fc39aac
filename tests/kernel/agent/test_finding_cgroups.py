"""Which cgroup hierarchy the agent uses (v1, v2, none) and what it writes, on fake roots."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from k8sbridge.kernel.agent import cgroups


def test_v1_memory_and_cpu(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("max")
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.shares").write_text("1024")
    found = cgroups.detect(root=tmp_path)
    assert found.version == 1 and found.available
    cg = found.create(container_id="c1", mem_mb=64, cpus=0.25)
    assert cg is not None
    assert (tmp_path / "memory/k8sbridge/c1/memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (tmp_path / "cpu/k8sbridge/c1/cpu.shares").read_text() == "256"
    (tmp_path / "memory/k8sbridge/c1/memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cg.oom_kills() == 2
    assert cgroups.CgroupSet.from_raw(cg.to_raw()) == cg


def test_v2_unified(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids")
    found = cgroups.detect(root=tmp_path)
    assert found.version == 2
    cg = found.create(container_id="c2", mem_mb=32, cpus=2)
    assert cg is not None and cg.cpu is None
    assert (tmp_path / "k8sbridge/c2/memory.max").read_text() == str(32 << 20)
    assert (tmp_path / "k8sbridge/c2/cpu.weight").read_text() == "200"
    events = tmp_path / "k8sbridge/c2/memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cg.oom_kills() == 1


def test_no_writable_hierarchy_warns_once(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    cgroups._warned = False
    with caplog.at_level(logging.WARNING, logger="k8sbridge.kernel.agent.cgroups"):
        first = cgroups.detect(root=tmp_path)
        second = cgroups.detect(root=tmp_path)
    assert not first.available and not second.available
    assert first.create(container_id="x", mem_mb=10, cpus=1) is None
    assert len([r for r in caplog.records if "no writable cgroup" in r.message]) == 1


@pytest.mark.skipif(not cgroups.detect().available, reason="needs writable cgroups")
def test_removing_a_busy_cgroup_reports_it_and_succeeds_once_empty() -> None:
    # The container daemon retries on what remove() reports (a killed task still exiting keeps
    # its cgroup busy); before, rmdir errors were ignored and such a cgroup leaked.
    cg = cgroups.detect().create(container_id=f"test-remove-{uuid.uuid4().hex[:8]}",
                                 mem_mb=32, cpus=0.1)
    assert cg is not None
    proc = subprocess.Popen(["sleep", "30"])
    try:
        cg.add(proc.pid)
        failed = cg.remove()
        assert set(failed) == set(cg.dirs())
        assert all(e.errno == errno.EBUSY for e in failed.values())
    finally:
        proc.kill()
        proc.wait()
    assert cg.remove() == {}
    assert not any(os.path.exists(d) for d in cg.dirs())
    assert cg.remove() == {}  # already gone is not a failure


def test_v1_limits_and_nested_sets(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("max")
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.shares").write_text("1024")
    found = cgroups.detect(root=tmp_path)
    cg = found.create(
        container_id="c3",
        limits=cgroups.Limits(cpus=0.5, mem_mb=64, cpus_limit=float("inf"),
                              mem_limit_mb=float("inf")),
        nested={"t": ("child", cgroups.Limits(cpus=0.001, mem_mb=16, cpus_limit=0.004,
                                              mem_limit_mb=20))})
    assert cg is not None
    mem, cpu = tmp_path / "memory/k8sbridge/c3", tmp_path / "cpu/k8sbridge/c3"
    assert (mem / "memory.limit_in_bytes").read_text() == "-1"
    assert (mem / "memory.soft_limit_in_bytes").read_text() == str(64 << 20)
    assert (cpu / "cpu.cfs_quota_us").read_text() == "-1"
    # Mesos' floors: 2 shares, a 1 ms quota.
    assert (cpu / "child/cpu.shares").read_text() == "2"
    assert (cpu / "child/cpu.cfs_quota_us").read_text() == "1000"
    assert (cpu / "child/cpu.cfs_period_us").read_text() == "100000"
    assert (mem / "child/memory.limit_in_bytes").read_text() == str(20 << 20)
    assert cg.of_task("t").memory == str(mem / "child")
    assert cg.of_task("other") is cg
    assert cg.all_dirs()[:2] == sorted([str(mem / "child"), str(cpu / "child")])
    assert cgroups.CgroupSet.from_raw(cg.to_raw()) == cg
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    (mem / "child/memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert cg.own_oom_kills() == 2
    assert cgroups.Limits.from_raw(cgroups.Limits(cpus_limit=float("inf")).to_raw()) == \
        cgroups.Limits(cpus_limit=float("inf"))
