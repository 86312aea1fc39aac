"""Resource auto-detection for the names left out of ``--resources``, as the Mesos agent does.

Why pure rules apart from probes: the rules (mem = total - 1 GB, or half below 2 GB; ...) are
Mesos' documented behaviour and deserve tests with fixed inputs; probing the machine is the thin
impure part.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from k8sbridge.kernel import resources as mres

__all__ = ["Machine", "default_resources", "probe_machine"]

_MB = 1024 * 1024
_GB = 1024 * _MB


class Machine:
    """What the host has: cores, memory bytes, disk bytes (of the work dir's file system)."""

    __slots__ = ("cpus", "disk_bytes", "mem_bytes")

    def __init__(self, *, cpus: int, mem_bytes: int, disk_bytes: int) -> None:
        self.cpus = cpus
        self.mem_bytes = mem_bytes
        self.disk_bytes = disk_bytes


def probe_machine(*, work_dir: Path) -> Machine:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    probe_dir = work_dir
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    disk_bytes = shutil.disk_usage(probe_dir).total
    return Machine(cpus=cpus or 1, mem_bytes=mem_bytes, disk_bytes=disk_bytes)


def _mem_mb(total: int) -> float:
    if total >= 2 * _GB:
        return float((total - _GB) // _MB)
    return float(total // 2 // _MB)


def _disk_mb(total: int) -> float:
    if total >= 10 * _GB:
        return float((total - 5 * _GB) // _MB)
    return float(total // 2 // _MB)


def default_resources(*, spec: str, machine: Machine) -> mres.Resources:
    """``spec`` parsed, plus cpus/mem/disk/ports auto-detected for the names it leaves out."""
    given = mres.parse_resources_flag(spec)
    names = {r.name for r in given}
    extra: list[mres.Resource] = []
    if "cpus" not in names:
        extra.append(mres.Resource.scalar_of("cpus", float(machine.cpus)))
    if "mem" not in names:
        extra.append(mres.Resource.scalar_of("mem", _mem_mb(machine.mem_bytes)))
    if "disk" not in names:
        extra.append(mres.Resource.scalar_of("disk", _disk_mb(machine.disk_bytes)))
    if "ports" not in names:
        extra.append(mres.Resource.ranges_of("ports", [(31000, 32000)]))
    return given + mres.Resources.of(extra)
