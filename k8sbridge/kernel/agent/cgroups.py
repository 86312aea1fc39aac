"""cgroup limits for containers (memory limit, cpu shares), v1 or v2, whichever is writable.

Why optional: the agent must still run tasks on machines without writable cgroups (containers,
laptops); it then logs one warning and runs unconfined. Where cgroups work, each task process
joins ``<controller>/k8sbridge/<containerId>`` before it execs (so nothing it starts escapes),
the kernel enforces the memory limit and counts OOM kills, which the executor turns into
REASON_CONTAINER_LIMITATION_MEMORY.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from pathlib import Path

__all__ = ["CgroupSet", "Cgroups", "detect", "join_dirs"]

log = logging.getLogger(__name__)

_ROOT = Path("/sys/fs/cgroup")
_PARENT = "k8sbridge"


@dataclasses.dataclass(frozen=True, slots=True)
class CgroupSet:
    """The cgroup directories of one container (JSON-friendly: passed to the executor)."""

    version: int  # 1 or 2
    memory: str | None  # directory (v1 memory controller, or the v2 unified dir)
    cpu: str | None

    def to_raw(self) -> dict[str, object]:
        return {"version": self.version, "memory": self.memory, "cpu": self.cpu}

    @classmethod
    def from_raw(cls, raw: dict[str, object] | None) -> CgroupSet | None:
        if not raw:
            return None
        mem, cpu = raw.get("memory"), raw.get("cpu")
        return cls(
            version=int(str(raw.get("version", 1))),
            memory=mem if isinstance(mem, str) else None,
            cpu=cpu if isinstance(cpu, str) else None,
        )

    def dirs(self) -> list[str]:
        return sorted({d for d in (self.memory, self.cpu) if d})

    def join_self(self) -> None:
        """Move the calling process into every cgroup of the set (a child, before it execs)."""
        for d in self.dirs():
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write("0")

    def add(self, pid: int) -> None:
        """Move ``pid`` into every cgroup of the set (its later children follow it)."""
        for d in self.dirs():
            with contextlib.suppress(OSError):  # it may already be gone
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(str(pid))

    def pids(self) -> set[int]:
        out: set[int] = set()
        for d in self.dirs():
            with contextlib.suppress(OSError):
                for line in Path(d, "cgroup.procs").read_text().split():
                    out.add(int(line))
        return out

    def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this container's memory cgroup."""
        if self.memory is None:
            return 0
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            text = Path(self.memory, name).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self) -> dict[str, OSError]:
        """Remove the directories; returns those that could not be (already gone is fine).

        A cgroup with a process still in it (a killed one still exiting) refuses with EBUSY:
        the caller retries once it is empty."""
        failed: dict[str, OSError] = {}
        for d in self.dirs():
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError as e:
                failed[d] = e
        return failed

    def homes_of_self(self) -> list[tuple[str, str]]:
        """``(container dir, the caller's own cgroup dir in that hierarchy)`` for every dir.

        Raises ``OSError`` when a hierarchy's mount or the caller's place in it is unknown.
        """
        return [(d, _home_in(d, version=self.version)) for d in self.dirs()]


REMOVE_SECONDS = 60.0  # a killed task's exit must complete before its cgroup can go


async def destroy(cgroup: CgroupSet, *, within: float = REMOVE_SECONDS) -> str | None:
    """Kill what is left in the container's cgroups and remove them once empty; None when
    done, else why not (after ``within`` seconds).

    Why a retrying loop with a generous bound: a killed process leaves its cgroup only when
    its exit completes, which on a loaded machine can take seconds; rmdir of a cgroup that
    still holds one fails with EBUSY. Giving up after one second and ignoring the rmdir error
    leaked the cgroup for good.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    delay = 0.01
    while True:
        left = cgroup.pids()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        failed = {} if left else cgroup.remove()
        if not left and not failed:
            return None
        if loop.time() >= deadline:
            return "; ".join(f"{d}: {e}" for d, e in failed.items()) or \
                f"processes {sorted(left)} are still in them"
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


def join_dirs(dirs: list[str]) -> None:
    """Move the calling process into each cgroup directory of ``dirs``."""
    for d in dirs:
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write("0")


_homes: dict[str, str] = {}  # hierarchy mount, or a container's parent dir -> own cgroup dir


def _home_in(cgroup_dir: str, *, version: int) -> str:
    """The calling process's own cgroup directory in the hierarchy that holds ``cgroup_dir``
    (read once per hierarchy from ``/proc/self/cgroup``)."""
    parent = os.path.dirname(cgroup_dir)
    known = _homes.get(parent)
    if known is not None:
        return known
    mount = cgroup_dir
    while not os.path.ismount(mount):
        up = os.path.dirname(mount)
        if up == mount:
            raise OSError(f"{cgroup_dir} is not on a mounted cgroup hierarchy")
        mount = up
    found = _homes.get(mount)
    if found is not None:
        _homes[parent] = found
        return found
    controllers = set(os.path.basename(os.path.realpath(mount)).split(","))
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        _, names, path = line.split(":", 2)
        if (version == 2 and names == "") or (version == 1 and controllers & set(
                names.split(","))):
            found = os.path.join(mount, path.lstrip("/"))
            break
    if found is None:
        raise OSError(f"this process has no cgroup in the hierarchy at {mount}")
    _homes[mount] = _homes[parent] = found
    return found


class Cgroups:
    """The writable hierarchy found on this machine (or none): creates per-container sets."""

    def __init__(self, *, version: int | None, memory_root: Path | None,
                 cpu_root: Path | None) -> None:
        self.version = version
        self.memory_root = memory_root
        self.cpu_root = cpu_root
        self._memsw: bool | None = None  # learnt on first use

    @property
    def available(self) -> bool:
        return self.version is not None and self.memory_root is not None

    def to_raw(self) -> dict[str, object]:
        """The hierarchy as JSON (the container daemon creates cgroups from it)."""
        return {"version": self.version,
                "memory_root": str(self.memory_root) if self.memory_root else None,
                "cpu_root": str(self.cpu_root) if self.cpu_root else None}

    @classmethod
    def from_raw(cls, raw: dict[str, object]) -> Cgroups:
        version, mem, cpu = raw.get("version"), raw.get("memory_root"), raw.get("cpu_root")
        return cls(version=version if version in (1, 2) else None,
                   memory_root=Path(mem) if isinstance(mem, str) else None,
                   cpu_root=Path(cpu) if isinstance(cpu, str) else None)

    def create(self, *, container_id: str, mem_mb: float | None,
               cpus: float | None) -> CgroupSet | None:
        """Make the container's cgroups with the limits; None when cgroups are unusable."""
        if not self.available or self.memory_root is None:
            return None
        try:
            mem_dir = self.memory_root / container_id
            mem_dir.mkdir(exist_ok=True)
            cpu_dir: Path | None = None
            if self.version == 1:
                if mem_mb:
                    limit = int(mem_mb * 1024 * 1024)
                    (mem_dir / "memory.limit_in_bytes").write_text(str(limit))
                    if self._memsw is not False:  # swap accounting is off on many hosts
                        try:
                            (mem_dir / "memory.memsw.limit_in_bytes").write_text(str(limit))
                            self._memsw = True
                        except OSError:
                            self._memsw = False
                if self.cpu_root is not None:
                    cpu_dir = self.cpu_root / container_id
                    cpu_dir.mkdir(exist_ok=True)
                    if cpus:
                        shares = max(2, int(cpus * 1024))
                        (cpu_dir / "cpu.shares").write_text(str(shares))
            else:
                if mem_mb:
                    (mem_dir / "memory.max").write_text(str(int(mem_mb * 1024 * 1024)))
                    with contextlib.suppress(OSError):
                        (mem_dir / "memory.swap.max").write_text("0")
                if cpus:
                    weight = max(1, min(10000, int(cpus * 100)))
                    with contextlib.suppress(OSError):
                        (mem_dir / "cpu.weight").write_text(str(weight))
            return CgroupSet(
                version=self.version or 1,
                memory=str(mem_dir),
                cpu=str(cpu_dir) if cpu_dir is not None else None,
            )
        except OSError as e:
            log.warning("cgroups for container %s could not be set up (%s); running unconfined",
                        container_id, e)
            return None


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(exist_ok=True)
        probe = path / f"probe-{os.getpid()}"
        probe.mkdir(exist_ok=True)
        probe.rmdir()
        return True
    except OSError:
        return False


_warned = False


def detect(*, root: Path = _ROOT) -> Cgroups:
    """Find a writable cgroup hierarchy (v1 memory+cpu, else v2); warn once when there is none."""
    global _warned
    v1_mem = root / "memory"
    if (v1_mem / "memory.limit_in_bytes").exists() or (v1_mem / "cgroup.procs").exists():
        mem_parent = v1_mem / _PARENT
        if _writable_dir(mem_parent):
            cpu_parent: Path | None = root / "cpu" / _PARENT
            if cpu_parent is not None and not (
                (root / "cpu" / "cpu.shares").exists() and _writable_dir(cpu_parent)
            ):
                cpu_parent = None
            return Cgroups(version=1, memory_root=mem_parent, cpu_root=cpu_parent)
    if (root / "cgroup.controllers").exists():
        parent = root / _PARENT
        if _writable_dir(parent):
            # v2: a controller reaches a child only if every ancestor delegates it.
            for directory in (root, parent):
                with contextlib.suppress(OSError):
                    (directory / "cgroup.subtree_control").write_text("+memory +cpu")
            with contextlib.suppress(OSError):
                if "memory" in (parent / "cgroup.subtree_control").read_text():
                    return Cgroups(version=2, memory_root=parent, cpu_root=None)
    if not _warned:
        _warned = True
        log.warning("no writable cgroup hierarchy under %s: tasks run without memory or cpu "
                    "limits", root)
    return Cgroups(version=None, memory_root=None, cpu_root=None)
