"""The Linux system calls a container's file-system view is made of (``mount``, ``umount2``,
``pivot_root``, ``unshare``, ``setns``) and the reading of ``/proc/self/mountinfo``; and
``renameat2`` with ``RENAME_EXCHANGE``, which the checkpoints' writes use (``paths``).

Why ctypes: Python 3.11 has none of these calls (see ``confinement``); one module keeps their
argument types and the errno handling in one place for the namespace holders (``holders``,
``rootfs``) and the tests that check what is mounted where.
"""

from __future__ import annotations

import ctypes
import errno
import os

__all__ = [
    "CLONE_NEWNET", "CLONE_NEWNS", "CLONE_NEWPID", "CLONE_NEWUTS", "Mount", "bind", "exchange",
    "mount",
    "mountinfo", "pivot_root",
    "remount_readonly", "setns", "umount", "unshare",
]

CLONE_FS = 0x00000200
CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

_OPTION_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
                 "ro": MS_RDONLY}
_STATVFS_FLAGS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC))

# The interpreter's own symbols, libc's among them: no ``ctypes.util.find_library`` (it runs
# ``ldconfig`` and imports subprocess, tempfile, re ...), and nothing more to load.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long
try:  # glibc 2.28 and later
    _libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                ctypes.c_uint]
    _HAS_RENAMEAT2 = True
except AttributeError:
    _HAS_RENAMEAT2 = False
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_SYS_PIVOT_ROOT = 155  # x86_64; aarch64 has 41
if os.uname().machine in ("aarch64", "arm64"):
    _SYS_PIVOT_ROOT = 41


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(),
                       fstype.encode() if fstype else None, flags,
                       data.encode() if data else None),
           f"mount {source} on {target}")


def bind(source: str, target: str, *, readonly: bool = False, recursive: bool = True) -> None:
    """Bind ``source`` on ``target`` (with its submounts), read-only when asked: a bind mount
    takes its read-only flag from a remount, never from the first call."""
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        remount_readonly(target)


def remount_readonly(target: str, *, options: tuple[str, ...] | None = None) -> None:
    """Make the mount at ``target`` read-only, keeping its nosuid/nodev/noexec (the kernel
    refuses a bind remount that would clear a flag the mount's owner locked); ``options``:
    its per-mount options when the caller has read them already, else its flags come from
    ``statvfs`` (one call; reading and parsing ``mountinfo`` cost ~0.1 ms per bind)."""
    keep = 0
    if options is None:
        flags = os.statvfs(target).f_flag
        for st_flag, ms_flag in _STATVFS_FLAGS:
            if flags & st_flag:
                keep |= ms_flag
    for option in options or ():
        keep |= _OPTION_FLAGS.get(option, 0)
    mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)


def umount(target: str, *, detach: bool = False) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH if detach else 0), f"umount {target}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, kind: int) -> None:
    _check(_libc.setns(fd, kind), "setns")


def exchange(a: str, b: str) -> None:
    """Swap the names ``a`` and ``b`` (both must exist) in one atomic step; ``OSError`` with
    ``ENOSYS`` or ``EINVAL`` where the C library or the file system cannot."""
    if not _HAS_RENAMEAT2:
        raise OSError(errno.ENOSYS, "renameat2: not in this C library")
    _check(_libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b),
                           _RENAME_EXCHANGE), f"exchange {a} and {b}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(int(_libc.syscall(_SYS_PIVOT_ROOT, new_root.encode(), put_old.encode())),
           f"pivot_root {new_root}")


class Mount:
    """One line of ``/proc/<pid>/mountinfo``. A plain class, not a dataclass: the view maker
    (``viewmaker``) imports this module, and every module it imports (``dataclasses`` brings
    ``inspect``, ``ast``, ``dis`` ...) is memory each holder's fork copies."""

    __slots__ = ("fstype", "options", "point", "source")

    def __init__(self, *, point: str, fstype: str, source: str,
                 options: tuple[str, ...]) -> None:
        self.point = point
        self.fstype = fstype
        self.source = source
        self.options = options

    def __repr__(self) -> str:
        return (f"Mount(point={self.point!r}, fstype={self.fstype!r}, "
                f"source={self.source!r}, options={self.options!r})")


def _unescape(text: str) -> str:
    return (text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def parse_mountinfo(text: str) -> list[Mount]:
    out: list[Mount] = []
    for line in text.splitlines():
        if " - " not in line:
            continue
        head, tail = line.split(" - ", 1)
        fields, rest = head.split(), tail.split()
        if len(fields) < 6 or len(rest) < 2:
            continue
        out.append(Mount(point=_unescape(fields[4]), fstype=rest[0], source=_unescape(rest[1]),
                         options=tuple(fields[5].split(","))))
    return out


def mountinfo(pid: int | str = "thread-self") -> list[Mount]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return parse_mountinfo(f.read())
