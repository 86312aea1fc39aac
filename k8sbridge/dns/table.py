"""A zone's records as a lookup table: (name, type) -> rdatas, plus every name that exists.

Why a table built ahead and replaced whole: a query is then one or two dictionary reads, never
a walk over Services, and the record builders (``cluster``, ``mesosnames``) stay pure functions
of their inputs. Why the set of names apart from the records: DNS tells "this name does not
exist" (NXDOMAIN) from "it exists, but has no record of that type" (NOERROR with no answer,
NODATA), and a name exists when it or any name below it has records (an empty non-terminal
such as ``svc.cluster.local`` or ``_tcp.<svc>...`` exists too, RFC 8020).

Names are kept lowercased, absolute (``dns.name.Name``); lookups lowercase the question's name,
so answers match case-insensitively while the reply keeps the asker's spelling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV

__all__ = [
    "Answer",
    "Table",
    "TableBuilder",
    "a_or_aaaa",
    "cname",
    "ptr",
    "srv",
    "txt",
]

IN = dns.rdataclass.IN
DEFAULT_TTL = 5  # seconds, as coredns' kubernetes plugin (Services change; caches must follow)
SOA_MINIMUM = 5  # negative answers are cached this long (RFC 2308: the SOA's minimum)

Key = tuple[dns.name.Name, dns.rdatatype.RdataType]


def a_or_aaaa(address: str) -> dns.rdata.Rdata:
    """An A record for an IPv4 address, AAAA for an IPv6 one (ValueError for neither)."""
    if ":" in address:
        return dns.rdtypes.IN.AAAA.AAAA(IN, dns.rdatatype.AAAA, address)  # type: ignore[no-untyped-call]
    return dns.rdtypes.IN.A.A(IN, dns.rdatatype.A, address)  # type: ignore[no-untyped-call]


def cname(target: dns.name.Name) -> dns.rdata.Rdata:
    return dns.rdtypes.ANY.CNAME.CNAME(IN, dns.rdatatype.CNAME, target)  # type: ignore[no-untyped-call]


def ptr(target: dns.name.Name) -> dns.rdata.Rdata:
    return dns.rdtypes.ANY.PTR.PTR(IN, dns.rdatatype.PTR, target)  # type: ignore[no-untyped-call]


def srv(*, port: int, target: dns.name.Name, weight: int = 100,
        priority: int = 0) -> dns.rdata.Rdata:
    return dns.rdtypes.IN.SRV.SRV(IN, dns.rdatatype.SRV, priority, weight, port, target)  # type: ignore[no-untyped-call]


def txt(text: str) -> dns.rdata.Rdata:
    return dns.rdtypes.ANY.TXT.TXT(IN, dns.rdatatype.TXT, [text.encode()])


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """What the server answers for a name inside one of the tables' zones.

    ``rcode`` is NOERROR (``records`` may be empty: NODATA) or NXDOMAIN; ``authority`` carries
    the zone's SOA on negative answers; ``additional`` the addresses of SRV targets."""

    rcode: int
    records: tuple[tuple[dns.name.Name, dns.rdata.Rdata], ...] = ()
    additional: tuple[tuple[dns.name.Name, dns.rdata.Rdata], ...] = ()
    authority: tuple[tuple[dns.name.Name, dns.rdata.Rdata], ...] = ()
    ttl: int = DEFAULT_TTL


NOERROR = 0
NXDOMAIN = 3


class TableBuilder:
    """Collects records, then ``build()`` freezes them into a ``Table`` for ``origin``."""

    def __init__(self, *, origin: dns.name.Name, ttl: int = DEFAULT_TTL) -> None:
        self.origin = origin
        self.ttl = ttl
        self._records: dict[Key, list[dns.rdata.Rdata]] = {}

    def add(self, name: dns.name.Name, rdata: dns.rdata.Rdata) -> None:
        found = self._records.setdefault((name.canonicalize(), rdata.rdtype), [])
        if rdata not in found:
            found.append(rdata)

    def add_all(self, name: dns.name.Name, rdatas: Iterable[dns.rdata.Rdata]) -> None:
        for rdata in rdatas:
            self.add(name, rdata)

    def build(self) -> Table:
        origin = self.origin.canonicalize()
        names: set[dns.name.Name] = {origin}
        for name, _ in self._records:
            while name != origin and name.is_subdomain(origin) and name not in names:
                names.add(name)
                name = name.parent()
        records = {k: tuple(v) for k, v in self._records.items()}
        return Table(origin=origin, records=records, names=frozenset(names), ttl=self.ttl)


def soa_of(origin: dns.name.Name) -> dns.rdata.Rdata:
    """The zone's SOA, as coredns makes one (ns.dns.<zone>, hostmaster.<zone>)."""
    return dns.rdtypes.ANY.SOA.SOA(  # type: ignore[no-untyped-call]
        IN, dns.rdatatype.SOA, dns.name.Name(("ns", "dns", *origin.labels)),
        dns.name.Name(("hostmaster", *origin.labels)), 1, 7200, 1800, 86400, SOA_MINIMUM)


@dataclasses.dataclass(frozen=True, slots=True)
class Table:
    """One zone's records: read-only once built; replaced whole when its inputs change."""

    origin: dns.name.Name
    records: dict[Key, tuple[dns.rdata.Rdata, ...]]
    names: frozenset[dns.name.Name]
    ttl: int = DEFAULT_TTL

    def covers(self, name: dns.name.Name) -> bool:
        return name.canonicalize().is_subdomain(self.origin)

    def exists(self, name: dns.name.Name) -> bool:
        return name.canonicalize() in self.names

    def get(self, name: dns.name.Name,
            rdtype: dns.rdatatype.RdataType) -> tuple[dns.rdata.Rdata, ...]:
        return self.records.get((name.canonicalize(), rdtype), ())

    def negative(self, rcode: int) -> Answer:
        return Answer(rcode=rcode, authority=((self.origin, soa_of(self.origin)),),
                      ttl=self.ttl)

    def lookup(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> Answer:
        """The answer for ``name``/``rdtype`` from the table alone (the caller has checked
        ``covers``): records, else a CNAME, else NODATA for a name that exists, else
        NXDOMAIN. SRV answers carry their targets' addresses as additional records."""
        key = name.canonicalize()
        if key == self.origin and rdtype in (dns.rdatatype.SOA, dns.rdatatype.NS):
            rdata = soa_of(self.origin) if rdtype == dns.rdatatype.SOA else \
                dns.rdtypes.ANY.NS.NS(IN, dns.rdatatype.NS, dns.name.Name(  # type: ignore[no-untyped-call]
                    ("ns", "dns", *self.origin.labels)))
            return Answer(rcode=NOERROR, records=((name, rdata),), ttl=self.ttl)
        found = self.records.get((key, rdtype))
        if found:
            extra: list[tuple[dns.name.Name, dns.rdata.Rdata]] = []
            if rdtype == dns.rdatatype.SRV:
                for rdata in found:
                    target = rdata.target  # type: ignore[attr-defined]
                    for kind in (dns.rdatatype.A, dns.rdatatype.AAAA):
                        extra.extend((target, a) for a in self.get(target, kind))
            return Answer(rcode=NOERROR, records=tuple((name, r) for r in found),
                          additional=tuple(extra), ttl=self.ttl)
        alias = self.records.get((key, dns.rdatatype.CNAME))
        if alias:
            chain: list[tuple[dns.name.Name, dns.rdata.Rdata]] = [(name, alias[0])]
            target = alias[0].target  # type: ignore[attr-defined]
            if self.covers(target):
                chain.extend((target, r) for r in self.get(target, rdtype))
            return Answer(rcode=NOERROR, records=tuple(chain), ttl=self.ttl)
        if key in self.names:
            return self.negative(NOERROR)
        return self.negative(NXDOMAIN)
