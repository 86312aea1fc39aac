"""The DNS server's sockets: UDP and TCP on each listen address, in this process' network
namespace or in another one (``--listen-netns``).

Why a thread per namespace: pods reach the cluster DNS at an address of the cluster network,
whose namespace is not the one this process runs in. setns(2) changes only the calling
thread, so a short-lived thread enters the namespace, optionally puts the listen addresses on
its loopback (``ip addr add``: the embedded cluster's namespace has no such address until the
DNS claims it; a child process forked from that thread is in the namespace too), binds, and
ends; the sockets stay in the namespace they were made in and the event loop serves them.
Python 3.11 has no ``os.setns``, so libc's is called.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["Sockets", "bind_all"]

CLONE_NEWNET = 0x40000000

Sockets = tuple[list[socket.socket], list[socket.socket]]  # (udp, tcp)


def _setns(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot enter network namespace {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _bind_one(host: str, port: int, kind: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _add_address(host: str) -> None:
    prefix = 128 if ":" in host else 32
    done = subprocess.run(["ip", "addr", "add", f"{host}/{prefix}", "dev", "lo"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 and "File exists" not in done.stderr:
        raise OSError(errno.EADDRNOTAVAIL, f"cannot add {host} to lo: {done.stderr.strip()}")
    subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, check=False)


def _bind_here(hosts: Sequence[str], port: int, add_addresses: bool) -> Sockets:
    udp: list[socket.socket] = []
    tcp: list[socket.socket] = []
    try:
        for host in hosts:
            try:
                udp.append(_bind_one(host, port, socket.SOCK_DGRAM))
            except OSError as e:
                if e.errno != errno.EADDRNOTAVAIL or not add_addresses:
                    raise OSError(e.errno, f"cannot listen on {host}:{port}/udp: "
                                           f"{e.strerror}") from e
                _add_address(host)
                udp.append(_bind_one(host, port, socket.SOCK_DGRAM))
            tcp.append(_bind_one(host, port, socket.SOCK_STREAM))
    except OSError:
        for s in udp + tcp:
            s.close()
        raise
    return udp, tcp


def bind_all(hosts: Sequence[str], *, port: int, netns: Path | None = None,
             add_addresses: bool = False) -> Sockets:
    """UDP and TCP sockets on ``hosts``:``port`` (inside ``netns`` when given); with
    ``add_addresses`` a missing address is put on the namespace's loopback first. Raises
    OSError saying which step failed."""
    if netns is None:
        return _bind_here(hosts, port, add_addresses)
    outcome: list[Sockets | BaseException] = []

    def enter_and_bind() -> None:
        try:
            _setns(netns)
            outcome.append(_bind_here(hosts, port, add_addresses))
        except OSError as e:
            outcome.append(e)

    thread = threading.Thread(target=enter_and_bind, name="dns-netns-listen", daemon=True)
    thread.start()
    thread.join()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result
