"""The DNS server: UDP and TCP listeners that answer from the current record tables and forward
every other name to upstream resolvers.

Why these limits: a DNS server faces whatever a pod sends. A packet that does not parse gets
FORMERR when its header can be read and is dropped otherwise (never an exception out of the
listener); a reply larger than the client can take over UDP (512 bytes, or its EDNS size) is
truncated with the TC bit set, and the client asks again over TCP. A flood is bounded: local
answers are computed inline (no task, no queue), forwarded questions are at most
``max_forwards`` at once (beyond that, SERVFAIL at once), TCP connections at most
``max_connections`` (beyond that, closed at once), each idle for at most ``TCP_IDLE_SECONDS``.

Answers come from ``Zones``: an object with ``lookup(name, rdtype) -> Answer | None`` (None:
not ours, forward it), replaced by the watchers whenever the cluster changes; the server reads
it once per question.

Why an answer cache: dnspython spends about a quarter of a millisecond parsing a query and
writing its answer; a pod asks the same few names over and over (every search-path suffix,
A and AAAA). An authoritative answer is a function of the query's bytes after its ID (name as
spelled, type, flags, EDNS size) and of the zones, so it is kept by those bytes, at most
``CACHE_ENTRIES`` of them, and all dropped when the zones object changes; a hit costs a
dictionary read and two byte slices.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Protocol

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from k8sbridge.dns import table as dns_table

__all__ = ["Server", "Upstream", "Zones"]

log = logging.getLogger(__name__)

TCP_IDLE_SECONDS = 10.0
FORWARD_TIMEOUT = 2.0  # per upstream try
MAX_FORWARDS = 256
MAX_CONNECTIONS = 128
UDP_DEFAULT_SIZE = 512  # RFC 1035, without EDNS
EDNS_MAX_SIZE = 4096  # what we advertise and the most we send over UDP
HEADER = 12
CACHE_ENTRIES = 10_000


class Zones(Protocol):
    def lookup(self, name: dns.name.Name,
               rdtype: dns.rdatatype.RdataType) -> dns_table.Answer | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int = 53


def _formerr(wire: bytes) -> bytes | None:
    """FORMERR for a query whose header is readable; None (drop) for anything else."""
    if len(wire) < HEADER:
        return None
    ident, flags = struct.unpack("!HH", wire[:4])
    if flags & dns.flags.QR:
        return None  # a response: never answer it (that is how loops and reflections start)
    opcode = flags & 0x7800
    return struct.pack("!HHHHHH", ident, dns.flags.QR | opcode | dns.rcode.FORMERR, 0, 0, 0, 0)


class Server:
    """Answers queries (``handle``) and serves them on UDP and TCP (``serve``)."""

    def __init__(self, *, zones: Callable[[], Zones], upstreams: Sequence[Upstream] = (),
                 max_forwards: int = MAX_FORWARDS,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self._zones = zones
        self.upstreams = tuple(upstreams)
        self._max_forwards = max_forwards
        self._max_connections = max_connections
        self._forwards = 0
        self._connections = 0
        self.counts = {"local": 0, "forwarded": 0, "formerr": 0, "dropped": 0,
                       "refused_overload": 0, "cached": 0}
        self._cache: dict[tuple[bytes, bool], bytes] = {}
        self._cached_zones: Zones | None = None

    def cached(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The reply to ``wire`` from the answer cache (None: not there)."""
        zones = self._zones()
        if zones is not self._cached_zones:
            self._cache.clear()
            self._cached_zones = zones
            return None
        found = self._cache.get((wire[2:], tcp))
        if found is None:
            return None
        self.counts["cached"] += 1
        return wire[:2] + found[2:]

    def remember(self, wire: bytes, reply: bytes, *, tcp: bool) -> None:
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        self._cache[(wire[2:], tcp)] = reply

    # -- one message -------------------------------------------------------------------------

    def parse(self, wire: bytes) -> dns.message.Message | bytes | None:
        """The query, or the bytes to answer at once (FORMERR, NOTIMP), or None (drop)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            self.counts["dropped"] += 1
            return None
        except Exception:  # any parse failure of any kind: a malformed query
            answer = _formerr(wire)
            self.counts["formerr" if answer else "dropped"] += 1
            return answer
        if query.flags & dns.flags.QR:
            self.counts["dropped"] += 1
            return None
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY
                               else dns.rcode.FORMERR)
            response.question = []
            self.counts["formerr"] += 1
            return response.to_wire()
        return query

    def local(self, query: dns.message.Message) -> dns.message.Message | None:
        """The answer from our tables; None when the name is not ours."""
        q = query.question[0]
        if q.rdclass != dns.rdataclass.IN:
            return None
        found = self._zones().lookup(q.name, q.rdtype)
        if found is None:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if self.upstreams:
            response.flags |= dns.flags.RA
        response.set_rcode(dns.rcode.Rcode(found.rcode))
        response.answer = _rrsets(found.records, found.ttl)
        response.authority = _rrsets(found.authority, found.ttl)
        response.additional = _rrsets(found.additional, found.ttl)
        self.counts["local"] += 1
        return response

    async def forward(self, query: dns.message.Message) -> dns.message.Message:
        """The upstreams' answer (the first that answers), else SERVFAIL."""
        if not self.upstreams or self._forwards >= self._max_forwards:
            if self.upstreams:
                self.counts["refused_overload"] += 1
            return _servfail(query)
        self._forwards += 1
        self.counts["forwarded"] += 1
        try:
            for up in self.upstreams:
                try:
                    reply = await dns.asyncquery.udp(query, up.host, timeout=FORWARD_TIMEOUT,
                                                     port=up.port)
                    if reply.flags & dns.flags.TC:
                        reply = await dns.asyncquery.tcp(query, up.host,
                                                         timeout=FORWARD_TIMEOUT, port=up.port)
                    return reply
                except (dns.exception.DNSException, OSError, EOFError) as e:
                    log.debug("upstream %s:%d failed for %s: %r", up.host, up.port,
                              query.question[0].name, e)
            return _servfail(query)
        finally:
            self._forwards -= 1

    def alias_elsewhere(self, query: dns.message.Message,
                         response: dns.message.Message) -> dns.name.Name | None:
        """The target of the answer's last CNAME when no zone of ours holds it (an
        ExternalName Service's name); None when there is nothing to chase."""
        q = query.question[0]
        if q.rdtype in (dns.rdatatype.CNAME, dns.rdatatype.ANY) or not response.answer:
            return None
        last = response.answer[-1]
        if last.rdtype != dns.rdatatype.CNAME:
            return None
        target: dns.name.Name = last[0].target
        return None if self._zones().lookup(target, q.rdtype) is not None else target

    async def chase(self, query: dns.message.Message,
                    response: dns.message.Message) -> dns.message.Message:
        """``response`` with the upstreams' records for the CNAME target outside our zones
        appended (as a recursive server answers a stub resolver, which does not chase)."""
        target = self.alias_elsewhere(query, response)
        if target is None or not self.upstreams:
            return response
        reply = await self.forward(dns.message.make_query(target, query.question[0].rdtype))
        if reply.rcode() == dns.rcode.NOERROR:
            response.answer.extend(reply.answer)
        return response

    async def handle(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The reply to one message in wire form (None: send nothing)."""
        hit = self.cached(wire, tcp=tcp)
        if hit is not None:
            return hit
        parsed = self.parse(wire)
        if parsed is None or isinstance(parsed, bytes):
            return parsed
        response = self.local(parsed)
        if response is not None and self.alias_elsewhere(parsed, response) is None:
            reply = _to_wire(parsed, response, tcp=tcp)
            self.remember(wire, reply, tcp=tcp)
            return reply
        if response is not None:
            return _to_wire(parsed, await self.chase(parsed, response), tcp=tcp)
        return _to_wire(parsed, await self.forward(parsed), tcp=tcp)

    # -- transports ------------------------------------------------------------------------

    async def serve(self, *, udp_socks: Sequence[socket.socket],
                    tcp_socks: Sequence[socket.socket],
                    stop: asyncio.Event, ready: asyncio.Event) -> None:
        """Serve on already bound sockets (UDP ones, listening TCP ones) until ``stop``."""
        loop = asyncio.get_running_loop()
        transports: list[asyncio.BaseTransport] = []
        servers: list[asyncio.base_events.Server] = []
        try:
            for sock in udp_socks:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self), sock=sock)
                transports.append(transport)
            for sock in tcp_socks:
                servers.append(await asyncio.start_server(
                    self._tcp_client, sock=sock))
            ready.set()
            await stop.wait()
        finally:
            for t in transports:
                t.close()
            for s in servers:
                s.close()

    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        if self._connections >= self._max_connections:
            writer.close()
            return
        self._connections += 1
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_SECONDS):
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    wire = await reader.readexactly(size)
                reply = await self.handle(wire, tcp=True)
                if reply is None:
                    break  # an undecodable stream: close it
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._connections -= 1
            writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: Server) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        server = self._server
        try:
            hit = server.cached(data, tcp=False)
            if hit is not None:
                self._send(hit, addr)
                return
            parsed = server.parse(data)
            if parsed is None:
                return
            if isinstance(parsed, bytes):
                self._send(parsed, addr)
                return
            response = server.local(parsed)
            if response is not None and server.alias_elsewhere(parsed, response) is None:
                reply = _to_wire(parsed, response, tcp=False)
                server.remember(data, reply, tcp=False)
                self._send(reply, addr)
                return
        except Exception:  # a bug must cost one answer, not the listener
            log.exception("answering a query failed")
            return
        if response is not None:
            task = asyncio.ensure_future(server.chase(parsed, response))
        else:
            task = asyncio.ensure_future(server.forward(parsed))
        task.add_done_callback(lambda t: self._forwarded(t, parsed, addr))

    def _forwarded(self, task: asyncio.Future[dns.message.Message],
                   query: dns.message.Message, addr: tuple[str | object, ...]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        self._send(_to_wire(query, task.result(), tcp=False), addr)

    def _send(self, wire: bytes, addr: tuple[str | object, ...]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(wire, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %r", exc)


def _rrsets(records: Sequence[tuple[dns.name.Name, dns.rdata.Rdata]],
            ttl: int) -> list[dns.rrset.RRset]:
    out: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
    for name, rdata in records:
        rrset = out.get((name, rdata.rdtype))
        if rrset is None:
            rrset = out[(name, rdata.rdtype)] = dns.rrset.RRset(
                name, dns.rdataclass.IN, rdata.rdtype)
        rrset.add(rdata, ttl)
    return list(out.values())


def _servfail(query: dns.message.Message) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.SERVFAIL)
    return response


def _to_wire(query: dns.message.Message, response: dns.message.Message, *, tcp: bool) -> bytes:
    """``response`` in wire form, for the query's transport: over UDP at most 512 bytes (or
    the query's EDNS size, up to ``EDNS_MAX_SIZE``); what does not fit is cut with TC set."""
    response.id = query.id
    if query.edns >= 0:
        response.use_edns(0, payload=EDNS_MAX_SIZE)
    else:
        response.use_edns(False)
    if tcp:
        limit = 65535
    elif query.edns >= 0:
        limit = min(max(query.payload, UDP_DEFAULT_SIZE), EDNS_MAX_SIZE)
    else:
        limit = UDP_DEFAULT_SIZE
    try:
        return response.to_wire(max_size=limit, prefer_truncation=True)
    except dns.exception.TooBig:  # not even the question fits: header and question alone
        response.answer, response.authority, response.additional = [], [], []
        response.flags |= dns.flags.TC
        return response.to_wire()
