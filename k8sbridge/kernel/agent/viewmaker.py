"""The view maker: a small process of its own (``python -S -m
k8sbridge.kernel.agent.viewmaker FD``, started once by the container daemon, see ``holders``)
that forks every namespace holder, and what a holder runs.

Why not fork the holders from the daemon itself (as the first version did): a fork copies the
page tables of the forking process and marks its pages copy-on-write for as long as the child
lives, and a holder lives as long as its container. Measured with ``perf`` during
``bench/bench_agent_launch.py``, page copies (``do_wp_page``) and ``copy_page_range`` were the
largest cost of an isolated launch: a fork and exit of a 37 MB Python process cost ~4.8 ms of
CPU, of a 10 MB one ~1 ms. This process imports only what a holder needs (no asyncio), so it
stays about 10 MB and a holder forked from it touches few pages.

Protocol (a ``SOCK_SEQPACKET`` socket pair; one message per request, never answered): the daemon
sends ``new``, ``host`` or ``join`` (the holder's pid namespace: a new one it is the init of,
the maker's, which is the daemon's, or the one of the descriptor that comes with it) and, as
``SCM_RIGHTS``, one end of a stream socket pair the holder reports on. The maker unshares or
enters the pid namespace, forks, goes back to its own and closes its copies. The holder reads
its plan from that socket (8-byte length, then JSON), joins the container's cgroups, makes the
view (``rootfs``), answers ``ok`` with descriptors of itself (a pidfd) and of its mount and pid
namespaces (or its error as text) and keeps the namespaces until it is killed. The maker reaps
its exited children and ends when the daemon's end of the pair closes.

Why the maker has a mount namespace of its own: ``unshare(CLONE_NEWNS)`` copies every mount of
the caller's namespace, and making the view then walks them again (``--make-rslave``, the
unmount of the old root). The host's namespace holds one ``nsfs`` bind per CNI container (its
network namespace, ``cni``), so with the views copied from it a burst of N pods cost O(N) per
view and O(N²) in all, each copy holding the kernel's global mount lock: measured while the
test suite ran, 50 copies of a namespace of 989 mounts took 228 s, of one without the ``nsfs``
binds 2.7 s. The maker drops those binds from its copy, and again whenever its mount table changes
(``/proc/self/mountinfo`` polls exceptional then): the copy is a slave of the host's, so mounts
the host makes later, e.g. under a hostPath, still reach it, and on a host whose ``/`` is
shared so would the binds. A holder opens its network namespace through the host's root, kept
open from before the copy.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import socket
import sys

from k8sbridge.kernel.agent import mounting, rootfs

TYPE_CHECKING = False  # no ``typing`` at run time: see ``mounting.Mount``
if TYPE_CHECKING:
    from typing import Any, TextIO

__all__ = ["MODES", "main"]

MODES = ("new", "host", "join")


def main(argv: list[str]) -> int:
    """``viewmaker FD``: serve the daemon on the socket ``FD``."""
    if len(argv) != 2:
        print("usage: python -m k8sbridge.kernel.agent.viewmaker FD", file=sys.stderr)
        return 2
    sock = socket.socket(fileno=int(argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the agent's terminal
    home = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    host_root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    mounts = _own_mount_namespace()
    while True:
        ready, _, changed = select.select([sock], [], [mounts], 1.0)
        _reap()
        if changed:
            _drop_network_namespaces(mounts)
        if not ready:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(sock, 64, 2)
        except InterruptedError:
            continue
        if not data:
            return 0  # the daemon is gone
        try:
            _fork_holder(data.decode(errors="replace"), fds, home=home, host_root=host_root,
                         sock=sock)
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _own_mount_namespace() -> TextIO:
    """Move into a copy of the host's mount namespace without the network namespaces' binds
    (see the module docstring); its open ``mountinfo``, which polls exceptional on a change."""
    mounting.unshare(mounting.CLONE_NEWNS)
    mounting.mount("none", "/", None, mounting.MS_REC | mounting.MS_SLAVE)
    mounts = open("/proc/self/mountinfo")  # noqa: SIM115 -- kept open for the process's life
    _drop_network_namespaces(mounts)
    return mounts


def _drop_network_namespaces(mounts: TextIO) -> None:
    mounts.seek(0)
    for entry in reversed(mounting.parse_mountinfo(mounts.read())):
        if entry.fstype == "nsfs":
            with contextlib.suppress(OSError):  # under another bind that went first
                mounting.umount(entry.point, detach=True)


def _fork_holder(mode: str, fds: list[int], *, home: int, host_root: int,
                 sock: socket.socket) -> None:
    if not fds or mode not in MODES or (mode == "join" and len(fds) < 2):
        return  # closing the report socket tells the daemon
    report = fds[0]
    try:
        if mode == "new":
            mounting.unshare(mounting.CLONE_NEWPID)
        elif mode == "join":
            mounting.setns(fds[1], mounting.CLONE_NEWPID)
        try:
            pid = os.fork()
            if pid == 0:
                sock.close()
                _holder(report, host_root=host_root)
        finally:
            if mode != "host":
                mounting.setns(home, mounting.CLONE_NEWPID)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.write(report, f"cannot fork a namespace holder: {e}".encode())


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _holder(report: int, *, host_root: int) -> None:
    """In the forked holder: read the plan, join the container's cgroups, make the view,
    answer, then keep the namespaces (never returns)."""
    code = 0
    sock = socket.socket(fileno=report)
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps orphans for us
        low, high = sorted((report, host_root))
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 20)
        gc.disable()
        plan = _read_plan(sock)
        for directory in plan.get("cgroups") or []:
            with open(os.path.join(str(directory), "cgroup.procs"), "w") as f:
                f.write("0")
        if plan.get("netns"):  # a CNI container's (``cni``): joined, with a hostname of its own
            fd = os.open(str(plan["netns"]).lstrip("/"), os.O_RDONLY | os.O_CLOEXEC,
                         dir_fd=host_root)  # the bind is the host's, not in our copy
            mounting.setns(fd, mounting.CLONE_NEWNET)
            os.close(fd)
            mounting.unshare(mounting.CLONE_NEWUTS)
            socket.sethostname(str(plan["hostname"]))
        os.close(host_root)
        mounting.unshare(mounting.CLONE_NEWNS)
        rootfs.build(plan)
        mine = [os.pidfd_open(os.getpid()),
                os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC),
                os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)]
        socket.send_fds(sock, [b"ok"], mine)
        sock.close()
        for fd in mine:
            os.close(fd)
        while True:
            signal.pause()
    except BaseException as e:  # everything goes to the daemon through the socket
        with contextlib.suppress(OSError):
            sock.sendall(f"{e}".encode(errors="replace")[:4000] or b"failed")
        code = 1
    os._exit(code)


def _read_plan(sock: socket.socket) -> dict[str, Any]:
    size = int.from_bytes(_read_exactly(sock, 8), "big")
    plan = json.loads(_read_exactly(sock, size))
    if not isinstance(plan, dict):
        raise OSError("malformed plan")
    return plan


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise OSError("the daemon closed the report socket")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
