"""Namespace holders: one small process per container view (a task's mount namespace, and its
pid namespace unless it shares one) that makes the view (``rootfs``) and keeps it alive while
the container runs; the container daemon spawns the task into it with ``setns``.

Why a holder process and not the task itself: a pid namespace needs its init (pid 1) before
anything can be spawned into it, and dies with it; the task must not be that init (a task's
exit would kill its peers of a shared namespace, and pid 1 ignores SIGTERM without a handler,
so killing a task would always wait its whole grace). The holder is what Mesos'
``mesos-containerizer launch`` is to a container with its own pid namespace: its init, which
reaps what is orphaned inside (SIGCHLD ignored: the kernel reaps for it). The task stays the
daemon's child, so the daemon waits for it and signals it exactly as for a task on the host.

Why a fork of the daemon (not a new interpreter): the holder runs the mount plan in Python,
and a fork costs ~1-5 ms against tens for an interpreter; the price is the holder's private
pages (under 1 MiB; see docs/kernel.md for the measured figures).

Cleanup is the kernel's: every mount was made inside the holder's namespace, so killing the
holder (SIGKILL, which also kills whatever is left in its pid namespace) unmounts them all;
what stays on the host is the container's provisioner directory, removed by ``release``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from typing import Any

from k8sbridge.kernel.agent import mounting, rootfs

__all__ = ["Holder", "fork", "home_namespaces", "ready", "release"]

_HOME: dict[str, int] = {}  # the daemon's own namespaces (opened once, on first use)


def home_namespaces() -> dict[str, int]:
    """Descriptors of the calling thread's mount and pid namespaces (the daemon's, opened by
    its main thread before any ``setns``)."""
    if not _HOME:
        for kind in ("mnt", "pid"):
            _HOME[kind] = os.open(f"/proc/thread-self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
    return _HOME


class Holder:
    """A running holder: its pid and descriptors of its namespaces."""

    def __init__(self, *, pid: int, pidfd: int, plan: dict[str, Any]) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.plan = plan
        self.mnt_fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        self.pid_fd = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)

    @contextlib.contextmanager
    def entered(self, preexec: Callable[[], None] | None) -> Iterator[Any]:
        """Spawns in the block are born in the holder's pid namespace and (without a pre-exec
        hook) in its mount namespace, with its root; the block must not await. With a hook
        (the cgroup-join fallback) the child joins its cgroups first, then the view."""
        home = home_namespaces()
        mounting.unshare(mounting.CLONE_FS)
        mounting.setns(self.pid_fd, mounting.CLONE_NEWPID)
        try:
            if preexec is None:
                mounting.setns(self.mnt_fd, mounting.CLONE_NEWNS)
                try:
                    yield None
                finally:
                    mounting.setns(home["mnt"], mounting.CLONE_NEWNS)
            else:
                def hook() -> None:
                    preexec()
                    mounting.setns(self.mnt_fd, mounting.CLONE_NEWNS)
                    os.chdir(str(self.plan.get("workdir") or self.plan["sandbox_at"]))
                yield hook
        finally:
            mounting.setns(home["pid"], mounting.CLONE_NEWPID)

    def root_path(self, inner: str) -> str:
        """``inner`` (a path in the container) as the host reaches it."""
        return f"/proc/{self.pid}/root{inner}"

    async def stop(self) -> None:
        """Kill the holder (and all that is left in its pid namespace), reap it, close its
        descriptors; its mounts go with its namespace."""
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def exited() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_reader(self.pidfd, exited)
        try:
            await done
        finally:
            loop.remove_reader(self.pidfd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        for fd in (self.mnt_fd, self.pid_fd, self.pidfd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _child(plan: dict[str, Any], report: int) -> None:
    """In the forked holder: become the view's keeper (never returns)."""
    code = 0
    try:
        os.setsid()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps orphans for us
        os.closerange(3, report)
        os.closerange(report + 1, 1 << 20)
        gc.disable()
        mounting.unshare(mounting.CLONE_NEWNS)
        rootfs.build(plan)
        os.write(report, b"ok")
        os.close(report)
        while True:
            signal.pause()
    except BaseException as e:  # everything goes to the daemon through the pipe
        with contextlib.suppress(OSError):
            os.write(report, f"{e}".encode(errors="replace")[:4000] or b"failed")
        code = 1
    os._exit(code)


def fork(plan: dict[str, Any], *, pid_namespace: str, join: Holder | None = None
         ) -> tuple[int, int]:
    """Fork a holder for ``plan``: ``(pid, descriptor its answer comes on)``, for ``ready``.
    ``pid_namespace``: ``"new"`` (the holder is its init), ``"join"`` (``join``'s namespace)
    or ``"host"`` (the daemon's). The holder is born in the caller's cgroups."""
    home = home_namespaces()
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        if pid_namespace == "new":
            mounting.unshare(mounting.CLONE_NEWPID)
        elif pid_namespace == "join" and join is not None:
            mounting.setns(join.pid_fd, mounting.CLONE_NEWPID)
        try:
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                _child(plan, write_fd)
        finally:
            if pid_namespace != "host":
                mounting.setns(home["pid"], mounting.CLONE_NEWPID)
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    os.close(write_fd)
    return pid, read_fd


async def ready(plan: dict[str, Any], pid: int, read_fd: int) -> Holder:
    """The forked holder once its view is made (``OSError`` with its reason if it cannot be;
    it is then reaped)."""
    pidfd = os.pidfd_open(pid)
    try:
        answer = await _read_all(read_fd)
    finally:
        os.close(read_fd)
    if answer != b"ok":
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        os.close(pidfd)
        raise OSError(answer.decode(errors="replace") or "the namespace holder died")
    return Holder(pid=pid, pidfd=pidfd, plan=plan)


async def _read_all(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        if data:
            chunks.append(data)
        elif not done.done():
            done.set_result(None)

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
    return b"".join(chunks)


def release(directory: str) -> None:
    """Remove a task's provisioner directory (upper layer, mount point) from the host, and
    its container's once empty."""
    shutil.rmtree(directory, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(directory))
