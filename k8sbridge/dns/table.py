"""A zone's records as a lookup table: (name, type) -> rdatas, plus every name that exists.

Why a table built ahead and replaced whole: a query is then one or two dictionary reads, never
a walk over Services, and the record builders (``cluster``, ``mesosnames``) stay pure functions
of their inputs. Why the set of names apart from the records: DNS tells "this name does not
exist" (NXDOMAIN) from "it exists, but has no record of that type" (NOERROR with no answer,
NODATA), and a name exists when it or any name below it has records (an empty non-terminal
such as ``svc.cluster.local`` or ``_tcp.<svc>...`` exists too, RFC 8020).

Why a counted ``Zone`` beside the builder: the Mesos names follow an event stream, one task at
a time, and pods' PTRs follow the pod watch; rebuilding a zone of 1,000 tasks or pods for each
event made a start burst quadratic. A ``Zone`` adds and removes one object's records (counted,
so two objects giving the same record or name keep it until both are gone) and hands out a new
``Table`` over its records after each change, so answer caches keyed on the table end; the
server reads it in the same event loop, so a query sees a change whole or not at all.

Names and records are kept as text (lowercased absolute names, records in presentation form)
and become dnspython objects only when a query needs them (cached): building 1,000 Services
from dnspython ``Name`` objects took over a second, as text it takes a fraction of that.
Lookups lowercase the question's name, so answers match case-insensitively while the reply
keeps the asker's spelling.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Collection, Iterable, Mapping

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

__all__ = [
    "NOERROR",
    "NXDOMAIN",
    "Answer",
    "Record",
    "Table",
    "TableBuilder",
    "Zone",
    "a_or_aaaa",
    "cname",
    "ptr",
    "srv",
    "txt",
]

IN = dns.rdataclass.IN
A, AAAA, CNAME, PTR, SRV, TXT, SOA, NS = (
    dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME, dns.rdatatype.PTR,
    dns.rdatatype.SRV, dns.rdatatype.TXT, dns.rdatatype.SOA, dns.rdatatype.NS)
DEFAULT_TTL = 5  # seconds, as coredns' kubernetes plugin (Services change; caches must follow)
SOA_MINIMUM = 5  # negative answers are cached this long (RFC 2308: the SOA's minimum)
NOERROR = 0
NXDOMAIN = 3

Record = tuple[dns.rdatatype.RdataType, str]  # (type, record data in presentation form)
Key = tuple[str, dns.rdatatype.RdataType]  # (lowercased absolute name, type)
Owned = tuple[dns.name.Name, dns.rdata.Rdata]
Entry = tuple[str, Record]  # (owner name, record)


def a_or_aaaa(address: str) -> Record:
    """An A record for an IPv4 address, AAAA for an IPv6 one (ValueError for neither)."""
    ip = ipaddress.ip_address(address)
    return (A if ip.version == 4 else AAAA), str(ip)


def cname(target: str) -> Record:
    return CNAME, target


def ptr(target: str) -> Record:
    return PTR, target


def srv(*, port: int, target: str, weight: int = 100, priority: int = 0) -> Record:
    return SRV, f"{priority} {weight} {port} {target}"


def txt(text: str) -> Record:
    return TXT, '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.lru_cache(maxsize=65536)
def rdata_of(rdtype: dns.rdatatype.RdataType, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(IN, rdtype, text)


@functools.lru_cache(maxsize=65536)
def name_of(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def key_of(name: dns.name.Name) -> str:
    """The table's key for a question's name: absolute, lowercased text."""
    return name.to_text().lower()


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """What the server answers for a name inside one of the tables' zones.

    ``rcode`` is NOERROR (``records`` may be empty: NODATA) or NXDOMAIN; ``authority`` carries
    the zone's SOA on negative answers; ``additional`` the addresses of SRV targets."""

    rcode: int
    records: tuple[Owned, ...] = ()
    additional: tuple[Owned, ...] = ()
    authority: tuple[Owned, ...] = ()
    ttl: int = DEFAULT_TTL


class TableBuilder:
    """Collects records, then ``build()`` freezes them into a ``Table`` for ``origin``."""

    def __init__(self, *, origin: str, ttl: int = DEFAULT_TTL) -> None:
        self.origin = origin.lower().rstrip(".") + "."
        self.ttl = ttl
        # an ordered set per key (a dict): adding stays O(1) with 1,000 endpoints
        self._records: dict[Key, dict[str, None]] = {}

    def add(self, name: str, record: Record) -> None:
        self._records.setdefault((name.lower(), record[0]), {})[record[1]] = None

    def add_all(self, name: str, records: Iterable[Record]) -> None:
        for record in records:
            self.add(name, record)

    def build(self, *, names: Iterable[str] = ()) -> Table:
        """The table; ``names`` exist too (with no records of their own)."""
        origin = self.origin
        suffix = "." + origin
        exists: set[str] = {origin}
        for name in [n for n, _ in self._records] + [n.lower() for n in names]:
            while name != origin and name.endswith(suffix) and name not in exists:
                exists.add(name)
                name = name.split(".", 1)[1]
        records = {k: tuple(v) for k, v in self._records.items()}
        return Table(origin=origin, records=records, names=frozenset(exists), ttl=self.ttl)


def _soa_text(origin: str) -> str:
    """The zone's SOA, as coredns makes one (ns.dns.<zone>, hostmaster.<zone>)."""
    return f"ns.dns.{origin} hostmaster.{origin} 1 7200 1800 86400 {SOA_MINIMUM}"


@dataclasses.dataclass(frozen=True, slots=True)
class Table:
    """One zone's records: read-only once built; replaced whole when its inputs change."""

    origin: str
    records: Mapping[Key, Collection[str]]  # record texts, in the order they were added
    names: Collection[str]
    ttl: int = DEFAULT_TTL

    def covers(self, key: str) -> bool:
        return key == self.origin or key.endswith("." + self.origin)

    def negative(self, rcode: int) -> Answer:
        soa = (name_of(self.origin), rdata_of(SOA, _soa_text(self.origin)))
        return Answer(rcode=rcode, authority=(soa,), ttl=self.ttl)

    def _owned(self, owner: dns.name.Name, key: str,
               rdtype: dns.rdatatype.RdataType) -> tuple[Owned, ...]:
        return tuple((owner, rdata_of(rdtype, t)) for t in self.records.get((key, rdtype), ()))

    def lookup(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType,
               key: str | None = None) -> Answer:
        """The answer for ``name``/``rdtype`` from the table alone (the caller has checked
        ``covers``): records, else a CNAME, else NODATA for a name that exists, else
        NXDOMAIN. SRV answers carry their targets' addresses as additional records."""
        key = key_of(name) if key is None else key
        if key == self.origin and rdtype in (SOA, NS):
            text = _soa_text(self.origin) if rdtype == SOA else f"ns.dns.{self.origin}"
            return Answer(rcode=NOERROR, records=((name, rdata_of(rdtype, text)),),
                          ttl=self.ttl)
        found = self._owned(name, key, rdtype)
        if found:
            extra: list[Owned] = []
            if rdtype == SRV:
                for text in self.records[(key, rdtype)]:
                    target = text.rsplit(" ", 1)[1].lower()
                    for kind in (A, AAAA):
                        extra.extend(self._owned(name_of(target), target, kind))
            return Answer(rcode=NOERROR, records=found, additional=tuple(extra), ttl=self.ttl)
        alias = self.records.get((key, CNAME))
        if alias:
            first = next(iter(alias))
            chain: list[Owned] = [(name, rdata_of(CNAME, first))]
            target = first.lower()
            if self.covers(target):
                chain.extend(self._owned(name_of(target), target, rdtype))
            return Answer(rcode=NOERROR, records=tuple(chain), ttl=self.ttl)
        if key in self.names:
            return self.negative(NOERROR)
        return self.negative(NXDOMAIN)


class Zone:
    """A zone whose records come and go by object: ``add`` an object's entries, ``remove``
    the same entries later; ``table()`` is a ``Table`` over the current records."""

    def __init__(self, *, origin: str, ttl: int = DEFAULT_TTL) -> None:
        self.origin = origin.lower().rstrip(".") + "."
        self.ttl = ttl
        self._suffix = "." + self.origin
        self._records: dict[Key, dict[str, int]] = {}
        self._names: dict[str, int] = {self.origin: 1}
        self._table = Table(origin=self.origin, records=self._records, names=self._names,
                            ttl=ttl)

    def table(self) -> Table:
        """The current table (the same object until the next change)."""
        return self._table

    def _changed(self) -> None:
        self._table = Table(origin=self.origin, records=self._records, names=self._names,
                            ttl=self.ttl)

    def add(self, entries: Iterable[Entry], *, names: Iterable[str] = ()) -> None:
        """Add ``entries`` (and ``names`` that exist without records of their own)."""
        for name, (rdtype, text) in entries:
            name = name.lower()
            found = self._records.setdefault((name, rdtype), {})
            found[text] = found.get(text, 0) + 1
            self._count_name(name, 1)
        for name in names:
            self._count_name(name.lower(), 1)
        self._changed()

    def remove(self, entries: Iterable[Entry], *, names: Iterable[str] = ()) -> None:
        """Take back what an ``add`` with the same arguments added."""
        for name, (rdtype, text) in entries:
            name = name.lower()
            key = (name, rdtype)
            found = self._records.get(key)
            if found is None or text not in found:
                continue
            if found[text] > 1:
                found[text] -= 1
            else:
                del found[text]
                if not found:
                    del self._records[key]
            self._count_name(name, -1)
        for name in names:
            self._count_name(name.lower(), -1)
        self._changed()

    def _count_name(self, name: str, delta: int) -> None:
        """``name`` and every name between it and the origin (they exist through it)."""
        while name != self.origin and name.endswith(self._suffix):
            left = self._names.get(name, 0) + delta
            if left > 0:
                self._names[name] = left
            else:
                self._names.pop(name, None)
            name = name.split(".", 1)[1]
