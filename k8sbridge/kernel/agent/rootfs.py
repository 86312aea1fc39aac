"""A container's root file system, made inside its own mount namespace by its namespace holder
(``holders``): what Mesos' ``filesystem/linux`` isolator, the provisioner's overlay backend
and the ``volume/*`` isolators make, from one plan the agent wrote (``filesystems``).

The root is an overlay: the image's layers (lowest first in the plan) or, for a container
without an image, the host's ``/`` itself as the only lower layer; the upper layer is private
to the container (on disk under the agent's provisioner directory for an image, a tmpfs that
lives only in the container's namespace for the host's root -- overlayfs refuses an upper
directory on the file system it overlays), so nothing the container writes reaches the host or
another container. Then, as Mesos: a ``/proc`` of the container's pid namespace, a ``/dev``
with the standard devices only, ``/sys`` read-only (so the cgroup file system is read-only,
see ``confinement``), the sandbox at its place, for an image the host's ``/etc/hosts``,
``/etc/resolv.conf`` and ``/etc/hostname`` read-only (Mesos' ``network/cni`` isolator for a
container with an image that joins no CNI network), then the volumes (so a volume at one of
those paths, such as a framework's own ``/etc/hosts`` as a SECRET, wins, as in Mesos where the
volumes are mounted after the isolators' setup).

Why every target is made after ``pivot_root`` (the host's root kept at ``/.oldroot`` until the
end): a path inside an image may be a symbolic link to ``/etc/...``; resolved from the host's
root it would make or mount something on the host. Inside the new root the kernel resolves it
inside the container, and sources (host paths) are resolved on the host before the pivot.

Everything here runs in the forked holder (single-threaded, about to be the container's
namespace keeper); nothing is mounted in the agent's or the daemon's namespace, so the kernel
takes every mount away when the namespace's last process exits.
"""

from __future__ import annotations

import base64
import contextlib
import os
import stat

from k8sbridge.kernel.agent import mounting

TYPE_CHECKING = False  # no ``typing`` in the view maker (``viewmaker``) at run time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["OLD_ROOT", "build", "overlay_options"]

OLD_ROOT = "/.oldroot"
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def overlay_options(*, lower: list[str], upper: str, work: str) -> str:
    """Overlay mount data: ``lower`` lowest first (overlayfs lists the top-most first)."""
    for path in [*lower, upper, work]:
        if any(c in path for c in ",:\\"):
            raise OSError(f"overlay layer path {path!r} contains ',', ':' or '\\'")
    return f"lowerdir={':'.join(reversed(lower))},upperdir={upper},workdir={work}"


def _host(path: str) -> str:
    """A host path (resolved on the host before the pivot) as seen after it."""
    return OLD_ROOT + path


def _make_target(target: str, *, directory: bool) -> None:
    """The mount point inside the container (the new root): a directory, or an empty file for
    a file bind mount; its missing parents are made too."""
    parent = os.path.dirname(target)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if directory:
        os.makedirs(target, exist_ok=True)
    elif not os.path.lexists(target):
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _mount_root(plan: dict[str, Any]) -> str:
    """Mount the overlay; its path. An image's upper layer is on disk under the container's
    provisioner directory; the host's root gets a tmpfs (at a directory all holders share: the
    mount exists only in this namespace) holding its upper layer and its mount point, so such
    a view touches the agent's disk not at all."""
    scratch = str(plan["scratch"])
    os.makedirs(scratch, exist_ok=True)
    layers = [str(p) for p in plan.get("layers") or []]
    if layers:
        root = str(plan["root"])
        os.makedirs(root, exist_ok=True)
    else:  # the host's root: the upper layer cannot be on it
        mounting.mount("tmpfs", scratch, "tmpfs", mounting.MS_NOSUID | mounting.MS_NODEV,
                       "mode=0755")
        layers = ["/"]
        root = os.path.join(scratch, "root")
        os.mkdir(root)
    upper, work = os.path.join(scratch, "upper"), os.path.join(scratch, "work")
    os.makedirs(upper, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    mounting.mount("overlay", root, "overlay", 0,
                   overlay_options(lower=layers, upper=upper, work=work))
    return root


def _pivot(root: str) -> None:
    os.makedirs(root + OLD_ROOT, exist_ok=True)
    os.chdir(root)
    mounting.pivot_root(".", "." + OLD_ROOT)
    os.chdir("/")


def _standard_mounts() -> None:
    """``/proc``, ``/sys`` (read-only), ``/dev`` (tmpfs with the standard devices, its own
    ``devpts`` and ``/dev/shm``), as Mesos' linux file-system isolator makes them: the devices
    are copies of the host's nodes (``mknod``, as Mesos' ``copyDeviceNode``)."""
    _make_target("/proc", directory=True)
    mounting.mount("proc", "/proc", "proc",
                   mounting.MS_NOSUID | mounting.MS_NODEV | mounting.MS_NOEXEC)
    _make_target("/sys", directory=True)
    mounting.bind(_host("/sys"), "/sys")
    for entry in sorted(mounting.mountinfo(), key=lambda m: len(m.point)):
        if entry.point == "/sys" or entry.point.startswith("/sys/"):
            with contextlib.suppress(OSError):  # a mount that went away meanwhile
                mounting.remount_readonly(entry.point, options=entry.options)
    _make_target("/dev", directory=True)
    mounting.mount("tmpfs", "/dev", "tmpfs", mounting.MS_NOSUID | mounting.MS_NOEXEC,
                   "mode=0755")
    for name in _DEVICES:
        with contextlib.suppress(FileNotFoundError):
            host = os.stat(_host(f"/dev/{name}"))
            os.mknod(f"/dev/{name}", host.st_mode, host.st_rdev)
            os.chmod(f"/dev/{name}", stat.S_IMODE(host.st_mode))  # not less the umask
    os.mkdir("/dev/pts")
    mounting.mount("devpts", "/dev/pts", "devpts", mounting.MS_NOSUID | mounting.MS_NOEXEC,
                   "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", "/dev/ptmx")
    os.mkdir("/dev/shm")
    mounting.mount("tmpfs", "/dev/shm", "tmpfs",
                   mounting.MS_NOSUID | mounting.MS_NODEV | mounting.MS_NOEXEC, "mode=1777")
    for name, to in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                     ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(to, f"/dev/{name}")


def _bind(source: str, target: str, *, readonly: bool) -> None:
    """Bind a host path (already resolved) at ``target`` inside the container."""
    _make_target(target, directory=os.path.isdir(_host(source)))
    mounting.bind(_host(source), target, readonly=readonly)


def _secrets(plan: dict[str, Any]) -> None:
    """``SECRET`` volumes as Mesos' ``volume/secret`` isolator makes them: the values are
    written to a ``ramfs`` mounted (in the container only) under the sandbox, and each file is
    bound at its path; an ``RO`` volume is a read-only bind. The files are made as Mesos'
    ``os::write`` makes them (mode 0644 less the umask, owned by the agent's user)."""
    secrets = plan.get("secrets") or []
    if not secrets:
        return
    store = os.path.join(str(plan["sandbox_at"]), str(plan["secret_dir"]))
    os.makedirs(store, exist_ok=True)
    mounting.mount("ramfs", store, "ramfs", 0)
    for i, secret in enumerate(secrets):
        source = os.path.join(store, str(i))
        data = base64.b64decode(str(secret.get("data", "")))
        fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        target = str(secret["target"])
        _make_target(target, directory=False)
        mounting.bind(source, target, readonly=bool(secret.get("readonly")))


def _network_files(plan: dict[str, Any]) -> dict[str, str]:
    """The host's network files for the container (``etc`` in the plan), resolved on the
    host, as Mesos' ``network/cni`` isolator takes them for a container with an image on the
    host network: ``/etc/hosts`` and ``/etc/hostname`` when the host has them,
    ``/etc/resolv.conf`` always (the launch fails without it); for a container on a CNI
    network the files its isolator wrote (``etc_sources``)."""
    out: dict[str, str] = {}
    given = plan.get("etc_sources") or {}  # a CNI container's own files (``cni``)
    for path in plan.get("etc") or []:
        if path in given:
            out[str(path)] = os.path.realpath(str(given[path]))
        elif os.path.exists(path):
            out[str(path)] = os.path.realpath(path)
        elif path == "/etc/resolv.conf":
            raise OSError(f"Unable to find '{path}'")
    return out


def _bind_network_file(source: str, target: str) -> None:
    """Bind a host network file at ``target`` read-only (and nosuid, nodev, noexec), as the
    ``network/cni`` isolator's setup helper: a symbolic link there (``/etc/resolv.conf`` often
    is one in an image) is replaced by a file first, so the mount lands at the path itself."""
    if os.path.islink(target):
        os.unlink(target)
    _make_target(target, directory=False)
    mounting.mount(_host(source), target, None, mounting.MS_BIND)
    mounting.mount("none", target, None,
                   mounting.MS_REMOUNT | mounting.MS_BIND | mounting.MS_RDONLY |
                   mounting.MS_NOSUID | mounting.MS_NODEV | mounting.MS_NOEXEC)


def _make_source(directory: str, base: str) -> None:
    """A ``SANDBOX_PATH`` source as ``volume/sandbox_path`` makes it: one that exists is left
    as it is (another user may own it); a new one is owned by the owner of the sandbox it is
    in (``base``: the task's own, or for ``PARENT`` its executor's), not by the agent."""
    if os.path.exists(directory):
        return
    try:
        os.makedirs(directory)
    except FileExistsError:  # another task of the group, prepared at the same moment, made it
        return
    owner = os.stat(base)
    os.chown(directory, owner.st_uid, owner.st_gid)


def build(plan: dict[str, Any]) -> None:
    """Make the container's root in the calling process's (new, private) mount namespace and
    move the process into it; raises ``OSError`` naming the step that failed."""
    mounting.mount("none", "/", None, mounting.MS_REC | mounting.MS_SLAVE)
    sources: dict[str, str] = {}  # host paths resolved on the host, before the pivot
    for m in plan.get("mounts") or []:
        sources[str(m["source"])] = os.path.realpath(str(m["source"]))
    for directory, base in plan.get("make_dirs") or []:  # SANDBOX_PATH sources
        _make_source(str(directory), str(base))
    sandbox = os.path.realpath(str(plan["sandbox"]))
    etc_sources = _network_files(plan)
    root = _mount_root(plan)
    _pivot(root)
    _standard_mounts()
    _bind(sandbox, str(plan["sandbox_at"]), readonly=False)
    for path, source in etc_sources.items():  # before the volumes: a volume there wins
        _bind_network_file(source, path)
    for m in plan.get("mounts") or []:
        source = sources[str(m["source"])]
        if not os.path.exists(_host(source)):
            raise OSError(f"the source {m['source']!r} of the volume at {m['target']!r} does "
                          "not exist")
        _bind(source, str(m["target"]), readonly=bool(m.get("readonly")))
    _secrets(plan)
    mounting.umount(OLD_ROOT, detach=True)
    os.rmdir(OLD_ROOT)
    workdir = str(plan.get("workdir") or plan["sandbox_at"])
    os.makedirs(workdir, exist_ok=True)  # an image's WorkingDir, made as docker makes it
    os.chdir(workdir)
