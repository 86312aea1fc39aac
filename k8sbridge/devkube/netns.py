"""A listening socket inside another network namespace (``--listen-netns``).

Why: in the embedded cluster the pods' network lives in a namespace of its own; pods reach the
API server at the advertise address on that network, as they reach kube-apiserver on a kind
network. The server process stays in the host's namespace and listens there too: a short-lived
thread enters the pod network's namespace (setns(2) changes only the calling thread), creates,
binds and listens a socket, and ends; the socket stays in the namespace it was made in and the
event loop serves it like any other. Python 3.11 has no ``os.setns``, so libc's is called.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

CLONE_NEWNET = 0x40000000

Bind = Callable[[str, int], socket.socket]


def _setns(fd: int, nstype: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    if libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def listen_in(path: Path, *, host: str, port: int, bind: Bind) -> socket.socket:
    """``bind(host, port)`` run inside the network namespace at ``path`` (e.g.
    ``/run/netns/NAME``); raises OSError saying which step failed."""
    outcome: list[socket.socket | BaseException] = []

    def enter_and_bind() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            outcome.append(OSError(e.errno, f"cannot open network namespace {path}: "
                                            f"{e.strerror}"))
            return
        try:
            try:
                _setns(fd, CLONE_NEWNET)
            except OSError as e:
                outcome.append(OSError(e.errno, f"cannot enter network namespace {path}: "
                                                f"{e.strerror}"))
                return
        finally:
            os.close(fd)
        try:
            outcome.append(bind(host, port))
        except OSError as e:
            outcome.append(OSError(e.errno, f"cannot listen on {host}:{port} in network "
                                            f"namespace {path}: {e.strerror}"))

    thread = threading.Thread(target=enter_and_bind, name="devkube-netns-listen", daemon=True)
    thread.start()
    thread.join()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result
