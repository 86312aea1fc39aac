"""A stand-in upstream resolver for the DNS tests, on a loopback address of their own.

Why: names outside the cluster are forwarded to the host's resolvers, and a test must never
send a query to a real outside address. This one answers ``*.upstream.test`` (A 192.0.2.1;
``big.upstream.test``: 60 TXT records, more than 512 bytes) and NXDOMAIN for the rest, over
UDP (truncating as a server must) and TCP, in threads.
"""

from __future__ import annotations

import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

ADDRESS = "192.0.2.1"


def answer(wire: bytes, *, limit: int) -> bytes:
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    q = query.question[0]
    name = q.name.to_text().lower()
    if name == "big.upstream.test." and q.rdtype == dns.rdatatype.TXT:
        response.answer.append(dns.rrset.from_text_list(
            q.name, 30, "IN", "TXT", [f'"record {i:02d} of a long upstream answer"'
                                      for i in range(60)]))
    elif name.endswith(".upstream.test.") and q.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text(q.name, 30, "IN", "A", ADDRESS))
    elif not name.endswith(".upstream.test."):
        response.set_rcode(dns.rcode.NXDOMAIN)
    return response.to_wire(max_size=limit, prefer_truncation=True)


class _Udp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(answer(data, limit=512), self.client_address)


class _Tcp(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        size = struct.unpack("!H", self.rfile.read(2))[0]
        reply = answer(self.rfile.read(size), limit=65535)
        self.wfile.write(struct.pack("!H", len(reply)) + reply)


@contextmanager
def running(host: str, port: int) -> Iterator[tuple[str, int]]:
    socketserver.ThreadingUDPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    udp = socketserver.ThreadingUDPServer((host, port), _Udp)
    tcp = socketserver.ThreadingTCPServer((host, port), _Tcp)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (udp, tcp)]
    for t in threads:
        t.start()
    try:
        yield host, port
    finally:
        for s in (udp, tcp):
            s.shutdown()
            s.server_close()
