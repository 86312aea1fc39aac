"""cgroup limits for containers (memory limit, cpu shares), v1 or v2, whichever is writable.

Requests and limits as Mesos' cgroups isolator sets them (Mesos >= 1.11): the cpu request
becomes ``cpu.shares`` (1024 per cpu, at least 2), a cpu limit a CFS quota (``cpu.cfs_quota_us``
= limit x ``cpu.cfs_period_us`` of 100 ms, at least 1 ms; an infinite limit -1, no quota), the
memory request ``memory.soft_limit_in_bytes`` and the memory limit ``memory.limit_in_bytes``
(the request when there is no limit, -1 when it is infinite). A task of a group that does not
share its executor's cgroups (``share_cgroups: false``) gets cgroups of its own, nested in the
executor's, as the Mesos agent makes them for such nested containers.

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
import math
import os
import signal
from pathlib import Path

__all__ = ["CgroupSet", "Cgroups", "Limits", "detect", "join_dirs"]

log = logging.getLogger(__name__)

_ROOT = Path("/sys/fs/cgroup")
_PARENT = "k8sbridge"

CPU_SHARES_PER_CPU = 1024  # Mesos' constants (slave/containerizer/mesos/constants.hpp)
MIN_CPU_SHARES = 2
CPU_CFS_PERIOD_US = 100_000
MIN_CPU_CFS_QUOTA_US = 1_000
_MB = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """What one cgroup is given: requests (shares, soft limit) and limits (quota, hard limit).

    A limit of ``math.inf`` means unlimited; ``None`` means none was asked for (the memory
    hard limit is then the request, and there is no cpu quota).
    """

    cpus: float | None = None
    mem_mb: float | None = None
    cpus_limit: float | None = None
    mem_limit_mb: float | None = None

    def to_raw(self) -> dict[str, object]:
        return {"cpus": self.cpus, "mem_mb": self.mem_mb, "cpus_limit": _finite(self.cpus_limit),
                "mem_limit_mb": _finite(self.mem_limit_mb)}

    @classmethod
    def from_raw(cls, raw: object) -> Limits:
        if not isinstance(raw, dict):
            return cls()
        return cls(cpus=_number(raw.get("cpus")), mem_mb=_number(raw.get("mem_mb")),
                   cpus_limit=_number(raw.get("cpus_limit")),
                   mem_limit_mb=_number(raw.get("mem_limit_mb")))

    def hard_memory_bytes(self) -> int | None:
        """``memory.limit_in_bytes``: the limit, else the request; -1 when unlimited."""
        if self.mem_limit_mb is not None:
            return -1 if math.isinf(self.mem_limit_mb) else int(self.mem_limit_mb * _MB)
        return int(self.mem_mb * _MB) if self.mem_mb else None

    def cfs_quota_us(self) -> int | None:
        """``cpu.cfs_quota_us`` for the cpu limit (-1 when unlimited); None: no limit asked."""
        if self.cpus_limit is None:
            return None
        if math.isinf(self.cpus_limit):
            return -1
        return max(int(self.cpus_limit * CPU_CFS_PERIOD_US), MIN_CPU_CFS_QUOTA_US)


def _write(path: str | Path, text: str) -> None:
    """Write ``text`` to a cgroup control file in one ``write`` call.

    Why not ``Path.write_text``/``open``: a buffered text file adds an ``fstat``, an
    ``ioctl`` and a wrapper object per call (6.5 us against 2.3 us per write of a cgroup
    file, measured); a container's launch writes ~10 of them (limits, and the daemon
    stepping in and out)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)  # as "w"
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _finite(value: float | None) -> float | str | None:
    """JSON has no infinity: it travels as Mesos' JSON spells it, ``"Infinity"``."""
    return "Infinity" if value is not None and math.isinf(value) else value


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if value == "Infinity":
        return math.inf
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class CgroupSet:
    """The cgroup directories of one container (JSON-friendly: passed to the executor)."""

    version: int  # 1 or 2
    memory: str | None  # directory (v1 memory controller, or the v2 unified dir)
    cpu: str | None
    # Cgroups of the container's tasks that do not share it (by task id), nested in it.
    children: dict[str, CgroupSet] = dataclasses.field(default_factory=dict)

    def to_raw(self) -> dict[str, object]:
        raw: dict[str, object] = {"version": self.version, "memory": self.memory,
                                  "cpu": self.cpu}
        if self.children:
            raw["children"] = {k: v.to_raw() for k, v in self.children.items()}
        return raw

    @classmethod
    def from_raw(cls, raw: dict[str, object] | None) -> CgroupSet | None:
        if not raw:
            return None
        mem, cpu, children = raw.get("memory"), raw.get("cpu"), raw.get("children")
        nested: dict[str, CgroupSet] = {}
        if isinstance(children, dict):
            for task_id, child_raw in children.items():
                child = cls.from_raw(child_raw) if isinstance(child_raw, dict) else None
                if child is not None:
                    nested[str(task_id)] = child
        return cls(
            version=int(str(raw.get("version", 1))),
            memory=mem if isinstance(mem, str) else None,
            cpu=cpu if isinstance(cpu, str) else None,
            children=nested,
        )

    def dirs(self) -> list[str]:
        """This set's own directories (not its children's)."""
        return sorted({d for d in (self.memory, self.cpu) if d})

    def all_dirs(self) -> list[str]:
        """Every directory, nested ones first (the order they can be removed in)."""
        out = [d for child in self.children.values() for d in child.all_dirs()]
        return out + self.dirs()

    def of_task(self, task_id: str) -> CgroupSet:
        """The cgroups ``task_id`` runs in: its own nested ones, else the container's."""
        return self.children.get(task_id, self)

    def own_oom_kills(self) -> int:
        """OOM kills in this set that its nested cgroups do not account for (v1 counts a
        child's OOM kill in every ancestor too)."""
        return self.oom_kills() - sum(c.oom_kills() for c in self.children.values())

    def oom_report(self) -> dict[str, object]:
        """What Mesos' memory isolator says of an OOM: the limit, the peak usage and
        ``memory.stat`` (read before the cgroup goes)."""
        report: dict[str, object] = {}
        if self.memory is None:
            return report
        names = (("limit", "memory.limit_in_bytes"), ("max_usage", "memory.max_usage_in_bytes"))
        if self.version == 2:
            names = (("limit", "memory.max"), ("max_usage", "memory.peak"))
        for key, name in names:
            with contextlib.suppress(OSError, ValueError):
                report[key] = int(Path(self.memory, name).read_text().strip())
        with contextlib.suppress(OSError):
            report["stat"] = Path(self.memory, "memory.stat").read_text()
        return report

    def join_self(self) -> None:
        """Move the calling process into every cgroup of the set (a child, before it execs)."""
        for d in self.dirs():
            _write(os.path.join(d, "cgroup.procs"), "0")

    def add(self, pid: int) -> None:
        """Move ``pid`` into every cgroup of the set (its later children follow it)."""
        for d in self.dirs():
            with contextlib.suppress(OSError):  # it may already be gone
                _write(os.path.join(d, "cgroup.procs"), str(pid))

    def pids(self) -> set[int]:
        out: set[int] = set()
        for d in self.all_dirs():
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
        for d in self.all_dirs():
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


def join_dirs(dirs: list[str], *, thread_only: bool = False) -> None:
    """Move the calling process into each cgroup directory of ``dirs``; with ``thread_only``
    (cgroup v1 only) just the calling thread, through the ``tasks`` file.

    Why the thread alone where it is enough: moving a whole process takes the kernel's
    process-wide migration lock (``cgroup_threadgroup_rwsem``, an RCU-synchronised write lock:
    milliseconds on a busy machine), moving the calling thread does not (Linux >= 5.17), and a
    child is born in the cgroups of the thread that forks it."""
    name = "tasks" if thread_only else "cgroup.procs"
    for d in dirs:
        _write(os.path.join(d, name), "0")


_homes: dict[str, str] = {}  # hierarchy mount, or a container's parent dir -> own cgroup dir


def _home_in(cgroup_dir: str, *, version: int) -> str:
    """The calling process's own cgroup directory in the hierarchy that holds ``cgroup_dir``
    (read once per hierarchy from ``/proc/self/cgroup``)."""
    parent = os.path.dirname(cgroup_dir)
    up = parent
    while up != "/":  # a nested container's cgroup is found through its container's parent
        known = _homes.get(up)
        if known is not None:
            return known
        up = os.path.dirname(up)
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

    def create(self, *, container_id: str, limits: Limits | None = None,
               nested: dict[str, tuple[str, Limits]] | None = None,
               mem_mb: float | None = None, cpus: float | None = None) -> CgroupSet | None:
        """Make the container's cgroups with ``limits`` (or just the requests ``mem_mb`` and
        ``cpus``), and in them one nested set per entry of ``nested`` (task id -> (child
        container id, its limits)); None when cgroups are unusable. Nested sets need v1 (v2
        forbids processes in a cgroup whose controllers are delegated to children): on v2
        those tasks share the container's cgroups.
        """
        if not self.available or self.memory_root is None:
            return None
        if limits is None:
            limits = Limits(cpus=cpus, mem_mb=mem_mb)
        made: CgroupSet | None = None
        try:
            made = self._make(self.memory_root, self.cpu_root, name=container_id, limits=limits)
            if nested and self.version == 1:
                for task_id, (child_id, child_limits) in nested.items():
                    child = self._make(Path(str(made.memory)),
                                       Path(made.cpu) if made.cpu else None,
                                       name=child_id, limits=child_limits)
                    made.children[task_id] = child
            elif nested:
                log.warning("cgroups v2: the tasks of container %s that do not share its "
                            "cgroups run in them (no nested cgroups on v2)", container_id)
            return made
        except OSError as e:
            log.warning("cgroups for container %s could not be set up (%s); running unconfined",
                        container_id, e)
            if made is not None:
                made.remove()
            return None

    def _make(self, memory_root: Path, cpu_root: Path | None, *, name: str,
              limits: Limits) -> CgroupSet:
        mem_dir = memory_root / name
        mem_dir.mkdir(exist_ok=True)
        made = CgroupSet(version=self.version or 1, memory=str(mem_dir), cpu=None)
        if self.version == 1 and cpu_root is not None:
            (cpu_root / name).mkdir(exist_ok=True)
            made = dataclasses.replace(made, cpu=str(cpu_root / name))
        try:
            self._limit(made, limits)
        except OSError:
            made.remove()
            raise
        return made

    def _limit(self, made: CgroupSet, limits: Limits) -> None:
        mem_dir = Path(str(made.memory))
        cpu_dir = Path(made.cpu) if made.cpu else None
        hard = limits.hard_memory_bytes()
        if self.version == 1:
            if limits.mem_mb:
                _write(mem_dir / "memory.soft_limit_in_bytes", str(int(limits.mem_mb * _MB)))
            if hard is not None:
                _write(mem_dir / "memory.limit_in_bytes", str(hard))
                if self._memsw is not False:  # swap accounting is off on many hosts
                    try:
                        _write(mem_dir / "memory.memsw.limit_in_bytes", str(hard))
                        self._memsw = True
                    except OSError:
                        self._memsw = False
            if cpu_dir is not None:
                if limits.cpus:
                    shares = max(MIN_CPU_SHARES, int(limits.cpus * CPU_SHARES_PER_CPU))
                    _write(cpu_dir / "cpu.shares", str(shares))
                quota = limits.cfs_quota_us()
                if quota is not None:
                    _write(cpu_dir / "cpu.cfs_period_us", str(CPU_CFS_PERIOD_US))
                    _write(cpu_dir / "cpu.cfs_quota_us", str(quota))
        else:
            if limits.mem_mb:
                with contextlib.suppress(OSError):
                    _write(mem_dir / "memory.low", str(int(limits.mem_mb * _MB)))
            if hard is not None:
                _write(mem_dir / "memory.max", "max" if hard < 0 else str(hard))
                with contextlib.suppress(OSError):
                    _write(mem_dir / "memory.swap.max", "0")
            if limits.cpus:
                weight = max(1, min(10000, int(limits.cpus * 100)))
                with contextlib.suppress(OSError):
                    _write(mem_dir / "cpu.weight", str(weight))
            quota = limits.cfs_quota_us()
            if quota is not None:
                with contextlib.suppress(OSError):
                    _write(mem_dir / "cpu.max",
                           f"{'max' if quota < 0 else quota} {CPU_CFS_PERIOD_US}")


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
                    _write(directory / "cgroup.subtree_control", "+memory +cpu")
            with contextlib.suppress(OSError):
                if "memory" in (parent / "cgroup.subtree_control").read_text():
                    return Cgroups(version=2, memory_root=parent, cpu_root=None)
    if not _warned:
        _warned = True
        log.warning("no writable cgroup hierarchy under %s: tasks run without memory or cpu "
                    "limits", root)
    return Cgroups(version=None, memory_root=None, cpu_root=None)
