"""The kubelet API listens on every node address (``kubelet.host``) on one port.

With port 0 the port must be free on every address. The system's pick for the first address
alone is not: Linux's bind(0) prefers a port that another address already uses (the full
suite once failed its setup on ``127.0.0.2:44265``, held by someone else). A taken port the
user chose stays an error that names the address.
"""

from __future__ import annotations

import socket

import pytest

from k8sbridge.kubelet.api import bind_sockets

HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def test_port_zero_gives_one_port_on_every_address_and_they_accept() -> None:
    sockets = bind_sockets(HOSTS, 0)
    try:
        (port,) = {s.getsockname()[1] for s in sockets}
        assert port != 0
        assert [s.getsockname()[0] for s in sockets] == HOSTS
        for s in sockets:
            s.listen()
        for host in HOSTS:
            with socket.create_connection((host, port), timeout=2):
                pass
    finally:
        for s in sockets:
            s.close()


def test_a_chosen_port_taken_on_a_later_address_is_an_error_naming_it() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.2", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.2:{port}"):
            bind_sockets(HOSTS, port)
        # nothing of the attempt is left bound: the first address's port is free again
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def _ephemeral_ports() -> range:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = (int(x) for x in f.read().split())
    return range(low, high + 1)


def test_port_zero_moves_on_when_the_picked_port_is_taken_on_a_later_address() -> None:
    # 127.0.0.2 held on 8,000 ports of the range the system picks from (odd ones: Linux gives
    # bind(0) odd ports first). A pick for 127.0.0.1 alone lands on one of them nearly
    # every time (bind(0) prefers ports in use elsewhere); the binds must never fail.
    blockers: list[socket.socket] = []
    try:
        for port in _ephemeral_ports()[1::2][:8000]:  # odd: bind(0) picks odd ones first
            b = socket.socket()
            try:
                b.bind(("127.0.0.2", port))
            except OSError:
                b.close()
                continue
            blockers.append(b)
        taken = {b.getsockname()[1] for b in blockers}
        assert len(taken) > 5000
        for _ in range(20):
            sockets = bind_sockets(HOSTS[:2], 0)
            try:
                (port,) = {s.getsockname()[1] for s in sockets}
                assert port not in taken
            finally:
                for s in sockets:
                    s.close()
    finally:
        for b in blockers:
            b.close()
