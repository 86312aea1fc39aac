"""A read-only view of the cgroup file system for tasks: one private mount namespace, made once
by the container daemon, in which every cgroup mount (and ``/sys/fs/cgroup`` itself) is
remounted read-only; the daemon steps into it around each spawn, so a task is born there.

Why: the audit saw a pod escape its memory limit by writing its pid into the cgroup file
system (a parent cgroup's ``cgroup.procs``). Until containers get a file-system view of their
own, tasks must not be able to write it; the daemon itself must (it creates, joins, kills and
removes cgroups), so the namespace is the tasks' only.

Why one namespace entered with ``setns`` rather than a pre-exec hook per task: a pre-exec hook
turns every spawn into a full ``fork`` of the daemon (see ``supervisor._inside``), and a wrapper
program would cost an exec per task; ``setns`` around a ``posix_spawn`` costs two system calls,
and the namespace is a copy of the host's (propagation: slave, so the host's later mounts still
appear in it, and nothing mounted in it leaks out).

Why ctypes: Python 3.11 has no ``os.unshare``/``os.setns`` and no ``mount``. A mount namespace
is per thread (and ``setns`` into one needs an unshared ``fs_struct``): the daemon's main thread
does all of it, unsharing ``CLONE_FS`` first, and spawns from the same thread.

Why tasks also lose ``CAP_SYS_ADMIN`` and ``CAP_SYS_PTRACE`` (from the bounding set of the
thread that spawns them, ``drop_task_capabilities``): a task running as root could otherwise
remount the view writable, mount a cgroup hierarchy of its own, or reach the host's mounts
through ``/proc/1/root``; Docker's and so Kubernetes' default capability set lacks both too.
The daemon keeps them in its effective set (it needs ``setns``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterator

__all__ = ["CgroupView", "cgroup_mounts", "drop_task_capabilities"]

CLONE_FS = 0x00000200
CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19

_OPTION_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]

PR_CAPBSET_DROP = 24
CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21
TASK_DROPPED_CAPABILITIES = (CAP_SYS_ADMIN, CAP_SYS_PTRACE)


def drop_task_capabilities() -> None:
    """Take ``TASK_DROPPED_CAPABILITIES`` out of the calling thread's bounding set: no program
    it (or a child) executes gets them, while the thread keeps its own effective set."""
    for cap in TASK_DROPPED_CAPABILITIES:
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNS), "setns")


def cgroup_mounts(mountinfo: str) -> list[tuple[str, int]]:
    """``(mount point, per-mount flags to keep)`` of every cgroup/cgroup2 mount and of every
    mount at or under ``/sys/fs/cgroup``, from ``/proc/self/mountinfo`` text."""
    out: list[tuple[str, int]] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 7:
            continue
        point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        fstype = line.split(" - ", 1)[1].split()[0]
        if fstype in ("cgroup", "cgroup2") or point == "/sys/fs/cgroup" or point.startswith(
                "/sys/fs/cgroup/"):
            keep = 0
            for option in fields[5].split(","):
                keep |= _OPTION_FLAGS.get(option, 0)
            out.append((point, keep))
    return out


class CgroupView:
    """The tasks' mount namespace (see the module docstring). ``make()`` returns None, with the
    reason in ``why_not``, where it cannot be made (not root)."""

    why_not: str = ""

    def __init__(self, *, home: int, confined: int) -> None:
        self._home = home
        self._confined = confined

    @classmethod
    def make(cls) -> CgroupView | None:
        home = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _unshare(CLONE_NEWNS | CLONE_FS)
        except OSError as e:
            os.close(home)
            cls.why_not = f"cannot make a mount namespace for tasks: {e}"
            return None
        try:
            _check(_libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None),
                   "mount --make-rslave /")
            with open("/proc/thread-self/mountinfo") as f:
                mounts = cgroup_mounts(f.read())
            # Deepest first is not needed (per-mount flags), but every mount must be done.
            for point, keep in mounts:
                _check(_libc.mount(b"none", point.encode(), None,
                                   MS_REMOUNT | MS_BIND | MS_RDONLY | keep, None),
                       f"remount {point} read-only")
            confined = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            cls.why_not = f"cannot make the cgroup file system read-only for tasks: {e}"
            _setns(home)
            os.close(home)
            return None
        _setns(home)
        return cls(home=home, confined=confined)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread in the tasks' namespace for the block (it must not await: every
        spawn of the daemon happens in it, no cgroup write may)."""
        _unshare(CLONE_FS)  # a thread started since shares it again; setns needs it alone
        _setns(self._confined)
        try:
            yield
        finally:
            _setns(self._home)

    def enter_in_child(self) -> None:
        """For a pre-exec hook (a forked child, single-threaded): into the tasks' view, keeping
        the working directory Popen gave it (``setns`` moves it to the namespace's root)."""
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _setns(self._confined)
            os.fchdir(cwd)
        finally:
            os.close(cwd)
