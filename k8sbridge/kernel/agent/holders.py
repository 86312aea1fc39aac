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

Why a fork (not a new interpreter), and of the view maker (``viewmaker``) rather than of the
daemon: the holder runs the mount plan in Python, and a fork costs ~1 ms against tens for an
interpreter; a fork of the small maker costs a fifth of a fork of the daemon and does not make
the daemon's pages copy-on-write for the container's whole life. The maker is started once per
daemon (``start_maker``, again if it died); the holder reads its plan from its report socket,
joins the container's cgroups (so what it and its tmpfs use is the container's), makes the view
and answers ``ok`` with descriptors of itself (a pidfd) and of its mount and pid namespaces.

Cleanup is the kernel's: every mount was made inside the holder's namespace, so killing the
holder (SIGKILL, which also kills whatever is left in its pid namespace) unmounts them all;
what stays on the host is the container's provisioner directory (an image's upper layer),
removed by ``release``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import mounting

__all__ = ["Holder", "home_namespaces", "release", "start", "start_maker"]

_REPO_ROOT = str(Path(__file__).resolve().parents[3])
_HOME: dict[str, int] = {}  # the daemon's own namespaces (opened once, on first use)


def home_namespaces() -> dict[str, int]:
    """Descriptors of the calling thread's mount, pid, network and UTS namespaces (the
    daemon's, opened by its main thread before any ``setns``)."""
    if not _HOME:
        for kind in ("mnt", "pid", "net", "uts"):
            _HOME[kind] = os.open(f"/proc/thread-self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
    return _HOME


class Holder:
    """A running holder: its pid and descriptors of its namespaces."""

    def __init__(self, *, pidfd: int, mnt_fd: int, pid_fd: int, plan: dict[str, Any]) -> None:
        self.pidfd = pidfd
        self.pid = _pid_of(pidfd)
        self.plan = plan
        self.mnt_fd = mnt_fd
        self.pid_fd = pid_fd
        # A CNI container's network and UTS namespaces (the holder joined them, ``cni``).
        self.net_fds: list[tuple[int, int]] = []
        if plan.get("netns"):
            for kind, flag in (("net", mounting.CLONE_NEWNET), ("uts", mounting.CLONE_NEWUTS)):
                fd = os.open(f"/proc/{self.pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
                self.net_fds.append((fd, flag))

    @contextlib.contextmanager
    def entered(self, preexec: Callable[[], None] | None) -> Iterator[Any]:
        """Spawns in the block are born in the holder's pid namespace and (without a pre-exec
        hook) in its mount namespace, with its root; the block must not await. With a hook
        (the cgroup-join fallback) the child joins its cgroups first, then the view."""
        home = home_namespaces()
        mounting.unshare(mounting.CLONE_FS)
        mounting.setns(self.pid_fd, mounting.CLONE_NEWPID)
        for fd, flag in self.net_fds:
            mounting.setns(fd, flag)
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
            if self.net_fds:
                mounting.setns(home["net"], mounting.CLONE_NEWNET)
                mounting.setns(home["uts"], mounting.CLONE_NEWUTS)

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
        for fd in (self.mnt_fd, self.pid_fd, self.pidfd, *(f for f, _ in self.net_fds)):
            with contextlib.suppress(OSError):
                os.close(fd)


def _pid_of(pidfd: int) -> int:
    """The pid (in our pid namespace) of the process ``pidfd`` refers to."""
    with open(f"/proc/self/fdinfo/{pidfd}") as f:
        for line in f:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    raise OSError("not a pidfd")


class _Maker:
    """The daemon's end of its view maker (``viewmaker``)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["PYTHONPATH"] = _REPO_ROOT + (os.pathsep + env["PYTHONPATH"]
                                          if env.get("PYTHONPATH") else "")
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-S", "-m", "k8sbridge.kernel.agent.viewmaker",
                 str(theirs.fileno())],
                pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.sock = ours

    def request(self, mode: str, report: int, join: int | None) -> None:
        """Ask for a holder in pid namespace ``mode`` reporting on ``report``."""
        fds = [report] if join is None else [report, join]
        socket.send_fds(self.sock, [mode.encode()], fds)


_MAKER: list[_Maker] = []


def _maker() -> _Maker:
    if not _MAKER or _MAKER[0].proc.poll() is not None:
        if _MAKER:
            _MAKER[0].sock.close()
        _MAKER[:] = [_Maker()]
    return _MAKER[0]


def start_maker() -> None:
    """Start this process's view maker now rather than for its first view."""
    _maker()


async def start(plan: dict[str, Any], *, pid_namespace: str, join: Holder | None = None,
                cgroups: list[str] | None = None) -> Holder:
    """A holder for ``plan`` once its view is made; ``OSError`` with its reason if it cannot
    be (nothing of it is left then). ``pid_namespace``: ``"new"`` (the holder is its init),
    ``"join"`` (``join``'s namespace) or ``"host"`` (the daemon's). It joins ``cgroups`` (the
    container's cgroup directories) first."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours:
        try:
            _maker().request(
                pid_namespace, theirs.fileno(),
                join.pid_fd if pid_namespace == "join" and join is not None else None)
        finally:
            theirs.close()
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        data = json.dumps({**plan, "cgroups": cgroups or []}).encode()
        with contextlib.suppress(OSError):  # a holder that died first says why below
            await loop.sock_sendall(ours, len(data).to_bytes(8, "big") + data)
        answer, fds = await _read_answer(ours)
    if answer != b"ok" or len(fds) != 3:
        if fds:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(fds[0], signal.SIGKILL)
        for fd in fds:
            os.close(fd)
        raise OSError(answer.decode(errors="replace") or "the namespace holder died")
    return Holder(pidfd=fds[0], mnt_fd=fds[1], pid_fd=fds[2], plan=plan)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _read_answer(sock: socket.socket) -> tuple[bytes, list[int]]:
    """Everything the holder sends until it closes its end, and the descriptors with it."""
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    fds: list[int] = []
    while True:
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(sock.fileno(), _settle, readable)
        try:
            await readable
        finally:
            loop.remove_reader(sock.fileno())
        try:
            data, got, _, _ = socket.recv_fds(sock, 4096, 3)
        except BlockingIOError:
            continue
        except OSError:
            data, got = b"", []
        fds.extend(got)
        if not data:
            return b"".join(chunks), fds
        chunks.append(data)


def release(directory: str) -> None:
    """Remove a task's provisioner directory (upper layer, mount point) from the host, and
    its container's once empty."""
    shutil.rmtree(directory, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(directory))
