"""Whatever bytes arrive get an answer, FORMERR or nothing, never an exception; and a flood of
queries meets limits, not unbounded work: forwarded questions beyond
``max_forwards`` get SERVFAIL at once while local names keep answering, and TCP connections
beyond ``max_connections`` are closed at once. The server runs in this event loop on loopback
sockets; the upstream is a socket that never answers (a resolver that hangs)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import dns.message
import dns.rcode
import hypothesis
import pytest
from hypothesis import strategies as st

from k8sbridge.dns import cluster, listen, server, sources
from tests.conftest import free_port

HOST = "127.0.0.156"
SILENT = "127.0.0.157"


@pytest.fixture
async def flooded() -> AsyncIterator[tuple[server.Server, int]]:
    port = free_port(HOST)
    hang = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hang.bind((SILENT, 0))  # reads nothing, answers nothing
    records = cluster.build(domain="cluster.local", services=[cluster.Service(
        namespace="default", name="web", kind="ClusterIP", cluster_ips=("10.96.0.20",))],
        slices=[], namespaces=["default"])
    zones = sources.Zones(cluster=records)
    dns_server = server.Server(zones=lambda: zones, max_forwards=8, max_connections=4,
                               upstreams=[server.Upstream(SILENT, hang.getsockname()[1])])
    udp, tcp = listen.bind_all([HOST], port=port)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(dns_server.serve(udp_socks=udp, tcp_socks=tcp, stop=stop,
                                                ready=ready))
    await ready.wait()
    try:
        yield dns_server, port
    finally:
        stop.set()
        await task
        for s in (*udp, *tcp, hang):
            s.close()


async def _ask(sock: socket.socket, port: int, name: str, ident: int) -> None:
    query = dns.message.make_query(name, "A")
    query.id = ident
    sock.sendto(query.to_wire(), (HOST, port))


async def test_forwards_beyond_the_limit_fail_fast_and_local_names_still_answer(
        flooded: tuple[server.Server, int]) -> None:
    dns_server, port = flooded
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        for i in range(200):
            await _ask(sock, port, f"host-{i}.example.org", i)
        await _ask(sock, port, "web.default.svc.cluster.local", 999)
        replies: dict[int, dns.message.Message] = {}
        async with asyncio.timeout(10):
            while 999 not in replies or len(replies) < 193:
                data = await loop.sock_recv(sock, 4096)
                reply = dns.message.from_wire(data)
                replies[reply.id] = reply
    finally:
        sock.close()
    assert [r.to_text() for r in replies[999].answer] == [
        "web.default.svc.cluster.local. 5 IN A 10.96.0.20"]
    overloaded = [r for i, r in replies.items() if i != 999]
    assert len(overloaded) == 192 and all(r.rcode() == dns.rcode.SERVFAIL for r in overloaded)
    assert dns_server.counts["refused_overload"] == 192  # 8 wait on the silent upstream


async def test_tcp_connections_beyond_the_limit_are_closed(
        flooded: tuple[server.Server, int]) -> None:
    _, port = flooded
    held = [await asyncio.open_connection(HOST, port) for _ in range(4)]
    try:
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection(HOST, port)
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the server at once
        writer.close()
        # a held connection still answers
        r0, w0 = held[0]
        query = dns.message.make_query("web.default.svc.cluster.local", "A").to_wire()
        w0.write(len(query).to_bytes(2, "big") + query)
        async with asyncio.timeout(5):
            size = int.from_bytes(await r0.readexactly(2), "big")
            reply = dns.message.from_wire(await r0.readexactly(size))
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    finally:
        for _, w in held:
            w.close()


_QUERY = dns.message.make_query("web.default.svc.cluster.local", "SRV", use_edns=0).to_wire()


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(st.one_of(
    st.binary(max_size=600),
    st.tuples(st.integers(0, len(_QUERY) - 1), st.binary(min_size=1, max_size=8)).map(
        lambda cut: _QUERY[:cut[0]] + cut[1] + _QUERY[cut[0] + len(cut[1]):])))
async def test_any_bytes_get_an_answer_formerr_or_nothing_never_an_exception(
        wire: bytes) -> None:
    records = cluster.build(domain="cluster.local", services=[cluster.Service(
        namespace="default", name="web", kind="ClusterIP", cluster_ips=("10.96.0.20",),
        ports=(cluster.Port("http", "tcp", 80),))], slices=[], namespaces=["default"])
    zones = sources.Zones(cluster=records)
    dns_server = server.Server(zones=lambda: zones)  # no upstream: others get SERVFAIL
    for tcp in (False, True):
        reply = await dns_server.handle(wire, tcp=tcp)
        if reply is not None:
            assert reply[:2] == wire[:2]  # the asker's ID
            assert len(reply) <= (65535 if tcp else 4096)
            dns.message.from_wire(reply)  # well-formed
