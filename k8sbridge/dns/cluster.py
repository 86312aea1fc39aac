"""Kubernetes DNS-based service discovery (the specification's schema 1.1.0) as pure functions:
Services, EndpointSlices and Namespaces in, a record table and reverse (PTR) map out.

Why pure and whole: every rule of the specification lives here and is tested from static
objects; the server only looks names up. Where the specification leaves room, coredns'
``kubernetes`` plugin (the reference implementation) decides:

- ``<svc>.<ns>.svc.<zone>``: the ClusterIPs (A/AAAA) of a ClusterIP Service; the ready
  endpoints' addresses of a headless one (no ready endpoint: NXDOMAIN, as coredns); a CNAME to
  ``externalName`` for an ExternalName Service.
- ``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` SRV for each named port (``0 100 <port>
  <svc>...``; for a headless Service one per ready endpoint, targetting
  ``<hostname>.<svc>.<ns>.svc.<zone>``), and SRV for all ports at the Service's own name.
- ``<hostname>.<svc>.<ns>.svc.<zone>`` A for each ready endpoint of a headless Service, the
  hostname being the endpoint's ``hostname`` (a pod's ``hostname`` with ``subdomain`` = the
  Service) or, when it has none, its address with dashes (coredns' system-assigned name).
- PTR for ClusterIPs (to the Service's name), for headless endpoints' addresses (to their
  hostnames) and for other pods' addresses (to ``<a-b-c-d>.<ns>.pod.<zone>``).
- ``<a-b-c-d>.<ns>.pod.<zone>`` A, for any address in an existing namespace (coredns' ``pods
  insecure``, kubeadm's default); ``dns-version.<zone>`` TXT ``1.1.0``.
- A name that exists without records of the asked type is NODATA (NOERROR, empty), a name
  that does not exist NXDOMAIN: ``<ns>.svc.<zone>`` exists when the namespace does.

Why pods' PTRs apart (``PodNames``): pods come and go by the thousand in a burst, and each one
changes only its own PTR; a ``PodNames`` is updated one pod at a time and read after the
Services' reverse names, so a pod change costs a dictionary write, not a rebuild.

Objects that Kubernetes validation would refuse (a Service name that is not a DNS-1035 label,
a port name that is not a DNS-1123 label) get no records, with a constant reason.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype
import dns.reversename

from k8sbridge.dns import table as dns_table

__all__ = [
    "REASON_BAD_EXTERNAL_NAME",
    "REASON_BAD_NAMESPACE",
    "REASON_BAD_PORT_NAME",
    "REASON_BAD_SERVICE_NAME",
    "SCHEMA_VERSION",
    "ClusterRecords",
    "Endpoint",
    "Pod",
    "PodNames",
    "Port",
    "Service",
    "Slice",
    "build",
    "parse_pod",
    "parse_service",
    "parse_slice",
]

SCHEMA_VERSION = "1.1.0"
REASON_BAD_SERVICE_NAME = "the Service's name is not a DNS-1035 label: no records"
REASON_BAD_NAMESPACE = "the namespace is not a DNS-1123 label: no records"
REASON_BAD_PORT_NAME = "the port's name is not a DNS-1123 label: no SRV record"
REASON_BAD_EXTERNAL_NAME = "the externalName is not a DNS name: no records"

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclasses.dataclass(frozen=True, slots=True)
class Port:
    name: str
    protocol: str  # lowercase: tcp, udp, sctp
    port: int


@dataclasses.dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    kind: str  # "ClusterIP" (also NodePort, LoadBalancer), "Headless", "ExternalName"
    cluster_ips: tuple[str, ...] = ()
    external_name: str = ""
    ports: tuple[Port, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    hostname: str = ""
    ready: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Slice:
    namespace: str
    service: str  # the kubernetes.io/service-name label
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[Port, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    ips: tuple[str, ...]


def _ports(raw: Any, *, port_key: str) -> tuple[Port, ...]:
    out = []
    for p in raw if isinstance(raw, list) else []:
        if not isinstance(p, dict) or not isinstance(p.get(port_key), int):
            continue
        proto = _PROTOCOLS.get(str(p.get("protocol") or "TCP"))
        if proto is not None:
            out.append(Port(name=str(p.get("name") or ""), protocol=proto, port=p[port_key]))
    return tuple(out)


def parse_service(raw: Mapping[str, Any]) -> Service | None:
    """A core/v1 Service as DNS sees it (None for an object without a name)."""
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or not isinstance(namespace, str):
        return None
    ports = _ports(spec.get("ports"), port_key="port")
    if spec.get("type") == "ExternalName":
        return Service(namespace=namespace, name=name, kind="ExternalName",
                       external_name=str(spec.get("externalName") or ""), ports=ports)
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ips = tuple(str(ip) for ip in ips if ip and ip != "None")
    if spec.get("clusterIP") == "None" or not ips:
        return Service(namespace=namespace, name=name, kind="Headless", ports=ports)
    return Service(namespace=namespace, name=name, kind="ClusterIP", cluster_ips=ips,
                   ports=ports)


def parse_slice(raw: Mapping[str, Any]) -> Slice | None:
    """A discovery.k8s.io/v1 EndpointSlice (None when it names no Service)."""
    meta = raw.get("metadata") or {}
    service = (meta.get("labels") or {}).get("kubernetes.io/service-name")
    namespace = meta.get("namespace")
    if not isinstance(service, str) or not isinstance(namespace, str):
        return None
    endpoints = []
    for ep in raw.get("endpoints") or []:
        if not isinstance(ep, dict):
            continue
        addresses = tuple(str(a) for a in ep.get("addresses") or [] if isinstance(a, str))
        ready = (ep.get("conditions") or {}).get("ready")
        endpoints.append(Endpoint(addresses=addresses, hostname=str(ep.get("hostname") or ""),
                                  ready=ready is not False))  # unset means ready (API docs)
    return Slice(namespace=namespace, service=service, endpoints=tuple(endpoints),
                 ports=_ports(raw.get("ports"), port_key="port"))


def parse_pod(raw: Mapping[str, Any]) -> Pod | None:
    """A pod's addresses on the pod network (None: none yet, or it shares its node's)."""
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    namespace = meta.get("namespace")
    if not isinstance(namespace, str) or spec.get("hostNetwork"):
        return None
    ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if isinstance(p, dict)
           and p.get("ip")] or ([str(status["podIP"])] if status.get("podIP") else [])
    return Pod(namespace=namespace, ips=tuple(ips)) if ips else None


def _reverse_name(address: str) -> str | None:
    try:
        return dns.reversename.from_address(address).to_text().lower()
    except (ValueError, dns.exception.SyntaxError):
        return None


class PodNames:
    """The PTR target of each pod address (``<a-b-c-d>.<ns>.pod.<zone>``), kept pod by pod;
    two pods with one address (one leaving, one coming) keep it until both are gone."""

    def __init__(self, *, domain: str) -> None:
        self.origin = domain.lower().strip(".") + "."
        self._targets: dict[str, dict[str, str]] = {}  # reverse name -> pod key -> target
        self._names: dict[str, tuple[str, ...]] = {}  # pod key -> its reverse names

    def put(self, key: str, pod: Pod | None) -> None:
        """Pod ``key`` (``namespace/name``) is now ``pod`` (None: gone, or no address)."""
        for name in self._names.pop(key, ()):
            found = self._targets.get(name)
            if found is not None:
                found.pop(key, None)
                if not found:
                    del self._targets[name]
        if pod is None or not _DNS1123.match(pod.namespace):
            return
        names = []
        for ip in pod.ips:
            reverse = _reverse_name(ip)
            if reverse is not None:
                self._targets.setdefault(reverse, {})[key] = \
                    f"{_label_of(ip)}.{pod.namespace}.pod.{self.origin}"
                names.append(reverse)
        if names:
            self._names[key] = tuple(names)

    def get(self, name: str) -> str | None:
        """The target for reverse name ``name`` (the first pod that had the address)."""
        found = self._targets.get(name)
        return next(iter(found.values())) if found else None

    def __len__(self) -> int:
        return len(self._names)


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterRecords:
    """The cluster domain's table, the PTRs of cluster addresses (reverse name -> targets,
    as text; ``pods`` after them), and why objects were left out (``(namespace/name,
    reason)``)."""

    table: dns_table.Table
    reverse: Mapping[str, tuple[str, ...]]
    namespaces: frozenset[str]
    skipped: tuple[tuple[str, str], ...] = ()
    pods: PodNames | None = None

    def lookup(self, name: dns.name.Name,
               rdtype: dns.rdatatype.RdataType) -> dns_table.Answer | None:
        """The answer for a name this component is authoritative for; None: not ours (the
        server forwards it)."""
        key = dns_table.key_of(name)
        if self.table.covers(key):
            pod = self._pod(name, key, rdtype)
            return pod if pod is not None else self.table.lookup(name, rdtype, key)
        targets = self.reverse.get(key)
        if targets is None:
            target = self.pods.get(key) if self.pods is not None else None
            if target is None:
                return None
            targets = (target,)
        if rdtype != dns.rdatatype.PTR:
            return dns_table.Answer(rcode=dns_table.NOERROR, ttl=self.table.ttl)
        return dns_table.Answer(rcode=dns_table.NOERROR, ttl=self.table.ttl, records=tuple(
            (name, dns_table.rdata_of(dns.rdatatype.PTR, t)) for t in targets))

    def _pod(self, name: dns.name.Name, key: str,
             rdtype: dns.rdatatype.RdataType) -> dns_table.Answer | None:
        """``<a-b-c-d>.<ns>.pod.<zone>`` (None: not a pod name)."""
        relative = key[:-len(self.table.origin)].rstrip(".").split(".")
        if len(relative) != 3 or relative[2] != "pod":
            return None
        label, namespace = relative[0], relative[1]
        if label.count("-") == 3 and "--" not in label:
            text = label.replace("-", ".")
        else:
            text = label.replace("-", ":")
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return self.table.negative(dns_table.NXDOMAIN)
        if namespace not in self.namespaces:
            return self.table.negative(dns_table.NXDOMAIN)
        rtype, data = dns_table.a_or_aaaa(str(address))
        if rdtype != rtype:
            return self.table.negative(dns_table.NOERROR)
        return dns_table.Answer(rcode=dns_table.NOERROR, ttl=self.table.ttl, records=(
            (name, dns_table.rdata_of(rtype, data)),))


def _label_of(address: str) -> str:
    """coredns' system-assigned endpoint name: the address with dashes."""
    return address.replace(".", "-").replace(":", "-")


def build(
    *,
    domain: str,
    services: Iterable[Service],
    slices: Iterable[Slice],
    namespaces: Iterable[str],
    pods: Iterable[Pod] | PodNames = (),
    ttl: int = dns_table.DEFAULT_TTL,
) -> ClusterRecords:
    """Every record of the cluster domain ``domain`` (e.g. ``cluster.local``); ``pods`` give
    their addresses PTRs to their pod names unless a headless endpoint named them already (a
    ``PodNames`` is read as it changes; other pods are taken as they are now)."""
    origin = domain.lower().strip(".") + "."
    builder = dns_table.TableBuilder(origin=origin, ttl=ttl)
    builder.add(f"dns-version.{origin}", dns_table.txt(SCHEMA_VERSION))
    reverse: dict[str, list[str]] = {}
    skipped: list[tuple[str, str]] = []
    known_ns = set(namespaces)
    by_service: dict[tuple[str, str], list[Slice]] = {}
    for s in slices:
        by_service.setdefault((s.namespace, s.service), []).append(s)
    for svc in services:
        key = f"{svc.namespace}/{svc.name}"
        if not _DNS1123.match(svc.namespace):
            skipped.append((key, REASON_BAD_NAMESPACE))
            continue
        if not _DNS1035.match(svc.name):
            skipped.append((key, REASON_BAD_SERVICE_NAME))
            continue
        known_ns.add(svc.namespace)
        base = f"{svc.name}.{svc.namespace}.svc.{origin}"
        if svc.kind == "ExternalName":
            try:
                target = dns.name.from_text(svc.external_name).to_text()
            except dns.exception.DNSException:
                skipped.append((key, REASON_BAD_EXTERNAL_NAME))
                continue
            builder.add(base, dns_table.cname(target))
            continue
        for p in svc.ports:
            if p.name and not _DNS1123.match(p.name):
                skipped.append((key, REASON_BAD_PORT_NAME))
        if svc.kind == "ClusterIP":
            _cluster_ip(builder, reverse, svc, base)
        else:
            _headless(builder, reverse, base, by_service.get((svc.namespace, svc.name), []))
    if not isinstance(pods, PodNames):
        given, pods = pods, PodNames(domain=domain)
        for i, pod in enumerate(given):
            pods.put(str(i), pod)
    valid_ns = [ns for ns in known_ns if _DNS1123.match(ns)]
    names = [f"svc.{origin}", f"pod.{origin}"]
    names += [f"{ns}.svc.{origin}" for ns in valid_ns] + [f"{ns}.pod.{origin}" for ns in valid_ns]
    return ClusterRecords(
        table=builder.build(names=names), reverse={k: tuple(v) for k, v in reverse.items()},
        namespaces=frozenset(known_ns), skipped=tuple(skipped), pods=pods)


def _add_reverse(reverse: dict[str, list[str]], address: str, target: str) -> None:
    name = _reverse_name(address)
    if name is None:
        return
    found = reverse.setdefault(name, [])
    if target not in found:
        found.append(target)


def _named(port: Port) -> bool:
    return bool(port.name) and bool(_DNS1123.match(port.name))


def _cluster_ip(builder: dns_table.TableBuilder, reverse: dict[str, list[str]], svc: Service,
                base: str) -> None:
    addresses: list[dns_table.Record] = []
    for ip in svc.cluster_ips:
        try:
            addresses.append(dns_table.a_or_aaaa(ip))
        except ValueError:
            continue
        _add_reverse(reverse, ip, base)
    builder.add_all(base, addresses)
    for p in svc.ports:
        record = dns_table.srv(port=p.port, target=base)
        if _named(p):
            name = f"_{p.name}._{p.protocol}.{base}"
            builder.add(name, record)
            builder.add_all(name, addresses)
        builder.add(base, record)


def _headless(builder: dns_table.TableBuilder, reverse: dict[str, list[str]], base: str,
              slices: list[Slice]) -> None:
    ready: list[tuple[str, dns_table.Record, Slice]] = []
    for s in slices:
        for ep in s.endpoints:
            if not ep.ready:
                continue
            for address in ep.addresses:
                try:
                    record = dns_table.a_or_aaaa(address)
                except ValueError:
                    continue
                label = ep.hostname if _DNS1123.match(ep.hostname) else _label_of(record[1])
                host = f"{label}.{base}"
                ready.append((host, record, s))
                builder.add(host, record)
                builder.add(base, record)
                if ep.hostname:
                    _add_reverse(reverse, address, host)
    if not ready:
        return  # no ready endpoint: the name does not exist (coredns: NXDOMAIN)
    weight = max(1, 100 // len(ready))
    for host, a_record, s in ready:
        for p in s.ports:
            srv = dns_table.srv(port=p.port, target=host, weight=weight)
            builder.add(base, srv)
            if _named(p):
                name = f"_{p.name}._{p.protocol}.{base}"
                builder.add(name, srv)
                builder.add(name, a_record)
