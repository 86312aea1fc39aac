"""Services as kube-apiserver keeps them: ClusterIPs from the service CIDR, NodePorts from the
node-port range, and the Service validation, in the apiserver's words.

Why: clients (kubectl expose, Helm charts, operators) rely on what the apiserver does with a
Service: an address from ``--service-cluster-ip-range`` (the ``kubernetes`` Service has the
first), ``clusterIP: None`` for headless Services, a requested address refused when taken or
outside the range, the address fixed for the Service's life, NodePorts from
``--service-node-port-range`` for NodePort and LoadBalancer Services, and everything released
when the Service goes. The allocations are read from the stored Services themselves (as
kube-apiserver's repair loop rebuilds its bitmaps from them), so they hold across every way a
Service disappears (delete, namespace cascade) and across restarts with no state of their own.
Pure functions over dicts; the registry calls them inside its synchronous create/update.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Any

from k8sbridge.devkube import errors, store

Obj = dict[str, Any]
Cause = errors.Cause
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
HEADLESS = "None"
SERVICES_STORE_KEY = "/services"
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
PROTOCOLS = ("SCTP", "TCP", "UDP")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PORT_NAME = re.compile(r"^[-a-z0-9]+$")
RANGE_FULL = "range is full"
ALREADY_ALLOCATED_IP = "provided IP is already allocated"
ALREADY_ALLOCATED_PORT = "provided port is already allocated"
PORT_RANGE_MESSAGE = "must be between 1 and 65535, inclusive"
IP_MESSAGE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
LABEL_MESSAGE = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                 "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',"
                 "  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def go_value(value: Any) -> str:
    """A bad value as field.Error renders it: numbers bare, strings quoted, the rest JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"))


def invalid_cause(field: str, value: Any, detail: str) -> Cause:
    return ("FieldValueInvalid", field, f"Invalid value: {go_value(value)}: {detail}")


def unsupported_cause(field: str, value: Any, supported: Iterable[str]) -> Cause:
    listed = ", ".join(f'"{s}"' for s in supported)
    return ("FieldValueNotSupported", field,
            f"Unsupported value: {go_value(value)}: supported values: {listed}")


@functools.lru_cache(maxsize=65536)
def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address, or None; cached (the same pod addresses are checked on every write of
    their Endpoints and EndpointSlices)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_cidr(text: str) -> Network:
    """``--service-cluster-ip-range``; ValueError names what is wrong."""
    network = ipaddress.ip_network(text.strip(), strict=True)
    if network.num_addresses < 8:
        raise ValueError(f"{text}: the service CIDR must hold at least 8 addresses")
    return network


def parse_port_range(text: str) -> tuple[int, int]:
    """``--service-node-port-range`` (``30000-32767``; a single port is a range of one)."""
    low, sep, high = text.strip().partition("-")
    try:
        lo = int(low)
        hi = int(high) if sep else lo
    except ValueError:
        raise ValueError(f"{text}: not a port range such as 30000-32767") from None
    if not 0 < lo <= hi <= 65535:
        raise ValueError(f"{text}: not a port range within 1-65535")
    return lo, hi


@dataclasses.dataclass(frozen=True, slots=True)
class Ranges:
    """What kube-apiserver's ``--service-cluster-ip-range`` and ``--service-node-port-range``
    say."""

    cidr: Network = dataclasses.field(
        default_factory=lambda: parse_cidr(DEFAULT_SERVICE_CIDR))
    node_ports: tuple[int, int] = (30000, 32767)

    @property
    def first_ip(self) -> str:
        """The ``kubernetes`` Service's address: the first of the range."""
        return str(self.cidr.network_address + 1)

    @property
    def family(self) -> str:
        return "IPv6" if self.cidr.version == 6 else "IPv4"

    def _ip_offsets(self) -> tuple[int, int]:
        """(first usable offset, one past the last): no network or broadcast address."""
        size = self.cidr.num_addresses
        return 1, size - 1 if self.cidr.version == 4 else size

    def ip_in_range(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if ip.version != self.cidr.version or ip not in self.cidr:
            return False
        lo, hi = self._ip_offsets()
        return lo <= int(ip) - int(self.cidr.network_address) < hi

    def next_ip(self, used: set[int]) -> str | None:
        """The first free address of the upper (dynamic) band, then of the lower (static) band,
        as kube-apiserver's allocator prefers (ServiceIPStaticSubrange)."""
        lo, hi = self._ip_offsets()
        band = min(max(16, (hi - lo) // 16), 256, hi - lo)
        base = int(self.cidr.network_address)
        for start, end in ((lo + band, hi), (lo, lo + band)):
            for offset in range(start, end):
                if base + offset not in used:
                    return str(ipaddress.ip_address(base + offset))
        return None

    def next_port(self, used: set[int]) -> int | None:
        lo, hi = self.node_ports
        band = min(max(16, (hi - lo + 1) // 32), 128, hi - lo + 1)
        for start, end in ((lo + band, hi + 1), (lo, lo + band)):
            for port in range(start, end):
                if port not in used:
                    return port
        return None

    @property
    def port_range_text(self) -> str:
        return f"{self.node_ports[0]}-{self.node_ports[1]}"


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _ports(spec: Obj) -> list[Obj]:
    return [p for p in spec.get("ports") or [] if isinstance(p, dict)]


def is_headless(spec: Obj) -> bool:
    ips = spec.get("clusterIPs")
    return isinstance(ips, list) and len(ips) == 1 and ips[0] == HEADLESS


Held = tuple[frozenset[int], frozenset[int]]  # (addresses as integers, node ports)


def held_by(svc: Obj) -> Held:
    """What one Service holds: its cluster IPs and node ports."""
    spec = _spec(svc)
    ips: set[int] = set()
    ports: set[int] = set()
    for ip in spec.get("clusterIPs") or []:
        if isinstance(ip, str) and ip not in ("", HEADLESS):
            try:
                ips.add(int(ipaddress.ip_address(ip)))
            except ValueError:
                continue
    for port in _ports(spec):
        if isinstance(port.get("nodePort"), int) and port["nodePort"]:
            ports.add(port["nodePort"])
    if isinstance(spec.get("healthCheckNodePort"), int) and spec["healthCheckNodePort"]:
        ports.add(spec["healthCheckNodePort"])
    return frozenset(ips), frozenset(ports)


class Holdings:
    """What the stored Services hold, kept in step with the store: after a first reading of
    every Service, only the Service changes committed since the last allocation are applied
    (from the store's change history; all are read again when that history no longer reaches
    back so far)."""

    def __init__(self, store_key: str) -> None:
        self._store_key = store_key
        self._rv: int | None = None
        self._by_service: dict[tuple[str, str], Held] = {}
        self._ips: collections.Counter[int] = collections.Counter()
        self._ports: collections.Counter[int] = collections.Counter()

    def _count(self, held: Held, step: int) -> None:
        for counter, values in ((self._ips, held[0]), (self._ports, held[1])):
            for value in values:
                counter[value] += step
                if counter[value] <= 0:
                    del counter[value]

    def _set(self, key: tuple[str, str], svc: Obj | None) -> None:
        old = self._by_service.pop(key, None)
        if old is not None:
            self._count(old, -1)
        if svc is not None:
            held = held_by(svc)
            self._by_service[key] = held
            self._count(held, +1)

    def _catch_up(self, st: store.Store) -> None:
        changes = st.changes_since(self._rv, self._store_key) if self._rv is not None else None
        if changes is None:
            self._by_service.clear()
            self._ips.clear()
            self._ports.clear()
            for stored in st.items(self._store_key):
                meta = stored.obj.get("metadata") or {}
                self._set((str(meta.get("namespace", "")), str(meta.get("name"))), stored.obj)
        else:
            for change in changes:
                meta = change.obj.get("metadata") or {}
                key = (str(meta.get("namespace", "")), str(meta.get("name")))
                self._set(key, None if change.type == "DELETED" else change.obj)
        self._rv = st.rv

    def used(self, st: store.Store, *, skip: tuple[str, str]) -> tuple[set[int], set[int]]:
        """Addresses and node ports held by the stored Services other than ``skip``."""
        self._catch_up(st)
        ips, ports = set(self._ips), set(self._ports)
        own = self._by_service.get(skip)
        if own is not None:
            ips -= {ip for ip in own[0] if self._ips[ip] == 1}
            ports -= {port for port in own[1] if self._ports[port] == 1}
        return ips, ports


def _internal(message: str) -> errors.ApiError:
    return errors.ApiError(code=500, reason="InternalError",
                           message=f"Internal error occurred: {message}",
                           details={"causes": [{"message": message}]})


def _refuse(name: str, causes: list[Cause]) -> errors.ApiError:
    return errors.invalid(kind="Service", group="", name=name, causes=causes)


class Allocator:
    """ClusterIP and NodePort allocation for Services being written (PrepareForCreate/Update
    and the allocation hooks of kube-apiserver's Service storage)."""

    def __init__(self, ranges: Ranges | None = None) -> None:
        self.ranges = ranges or Ranges()
        self.holdings = Holdings(SERVICES_STORE_KEY)

    def create(self, obj: Obj, *, stored: store.Store) -> None:
        """Normalise and allocate for a new Service (raises the apiserver's refusals)."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        used_ips, used_ports = self.holdings.used(stored, skip=key)
        if spec.get("type") != "ExternalName":
            self._families(obj, spec)
            self._cluster_ips(obj, spec, used_ips)
        self._node_ports(obj, spec, old_spec=None, used=used_ports)

    def update(self, old: Obj, new: Obj, *, stored: store.Store) -> None:
        """Carry the allocated values into an update that left them out, allocate what the
        update newly needs (a NodePort, an address when leaving ExternalName)."""
        spec = new.get("spec")
        old_spec = _spec(old)
        if not isinstance(spec, dict):
            return
        _patch_allocated(old_spec, spec)
        _normalize_update(old_spec, spec)
        _drop_type_dependent(old_spec, spec)
        meta = new.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        used_ips, used_ports = self.holdings.used(stored, skip=key)
        if spec.get("type") != "ExternalName":
            if old_spec.get("type") == "ExternalName":
                self._families(new, spec)
                self._cluster_ips(new, spec, used_ips)
            else:
                for field in ("ipFamilyPolicy", "ipFamilies"):
                    if spec.get(field) is None and old_spec.get(field) is not None:
                        spec[field] = old_spec[field]
        self._node_ports(new, spec, old_spec=old_spec, used=used_ports)

    def _families(self, obj: Obj, spec: Obj) -> None:
        """initIPFamilyFields on a single-stack cluster."""
        name = str((obj.get("metadata") or {}).get("name", ""))
        headless_selectorless = spec.get("clusterIP") == HEADLESS and not spec.get("selector")
        if spec.get("ipFamilyPolicy") is None:
            spec["ipFamilyPolicy"] = (
                "RequireDualStack" if headless_selectorless else "SingleStack")
        families = spec.get("ipFamilies")
        if not isinstance(families, list):
            families = spec["ipFamilies"] = []
        causes: list[Cause] = []
        for i, ip in enumerate(spec.get("clusterIPs") or []):
            if ip == HEADLESS or not isinstance(ip, str):
                break
            try:
                family = "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
            except ValueError:
                return  # validation reports it
            if i >= len(families):
                if family != self.ranges.family:
                    causes.append(invalid_cause(f"spec.clusterIPs[{i}]", spec.get("clusterIPs"),
                                           f"{family} is not configured on this cluster"))
                else:
                    families.append(family)
        if causes:
            raise _refuse(name, causes)
        if headless_selectorless:
            if not families:
                families.append(self.ranges.family)
            if len(families) < 2 and spec["ipFamilyPolicy"] != "SingleStack":
                families.append("IPv6" if families[0] == "IPv4" else "IPv4")
            return
        if spec["ipFamilyPolicy"] == "RequireDualStack":
            causes.append(invalid_cause("spec.ipFamilyPolicy", spec["ipFamilyPolicy"],
                                   "this cluster is not configured for dual-stack services"))
        for i, family in enumerate(families):
            if family != self.ranges.family and family in ("IPv4", "IPv6"):
                causes.append(invalid_cause(f"spec.ipFamilies[{i}]", family,
                                       "not configured on this cluster"))
        if causes:
            raise _refuse(name, causes)
        if not families:
            families.append(self.ranges.family)

    def _cluster_ips(self, obj: Obj, spec: Obj, used: set[int]) -> None:
        ips = spec.get("clusterIPs")
        if isinstance(ips, list) and ips and ips[0] == HEADLESS:
            return
        name = str((obj.get("metadata") or {}).get("name", ""))
        requested = ips[0] if isinstance(ips, list) and ips else ""
        if not requested:
            chosen = self.ranges.next_ip(used)
            if chosen is None:
                raise _internal(f"failed to allocate a serviceIP: {RANGE_FULL}")
            spec["clusterIP"] = chosen
            spec["clusterIPs"] = [chosen]
            return
        if not isinstance(requested, str):
            return
        try:
            ip = ipaddress.ip_address(requested)
        except ValueError:
            return  # validation reports it
        problem = None
        if not self.ranges.ip_in_range(ip):
            problem = (f"the provided IP ({ip}) is not in the valid range. The range of valid "
                       f"IPs is {self.ranges.cidr}")
        elif int(ip) in used:
            problem = ALREADY_ALLOCATED_IP
        if problem is not None:
            raise _refuse(name, [invalid_cause("spec.clusterIPs", ips,
                                          f"failed to allocate IP {requested}: {problem}")])

    def _node_ports(self, obj: Obj, spec: Obj, *, old_spec: Obj | None,
                    used: set[int]) -> None:
        """initNodePorts/updateNodePorts: keep the ports this Service already holds, take the
        requested ones if free and in range, allocate the rest (one per service port number)."""
        if spec.get("type") not in NODE_PORT_TYPES:
            return
        allocate = spec.get("type") == "NodePort" or spec.get(
            "allocateLoadBalancerNodePorts", True) is not False
        held = {p["nodePort"] for p in _ports(old_spec or {}) if isinstance(
            p.get("nodePort"), int) and p["nodePort"]} if old_spec is not None else set()
        name = str((obj.get("metadata") or {}).get("name", ""))
        by_port: dict[Any, int] = {}
        taken = set(used)
        lo, hi = self.ranges.node_ports
        for i, port in enumerate(_ports(spec)):
            wanted = port.get("nodePort")
            if not isinstance(wanted, int) or isinstance(wanted, bool):
                wanted = 0
            if not wanted and not allocate:
                continue
            if not wanted and port.get("port") in by_port:
                port["nodePort"] = by_port[port.get("port")]
                continue
            if wanted:
                if wanted in held or wanted in by_port.values():
                    by_port[port.get("port")] = wanted
                    continue
                problem = None
                if not lo <= wanted <= hi:
                    problem = ("provided port is not in the valid range. The range of valid "
                               f"ports is {self.ranges.port_range_text}")
                elif wanted in taken:
                    problem = ALREADY_ALLOCATED_PORT
                if problem is not None:
                    raise _refuse(name, [invalid_cause(f"spec.ports[{i}].nodePort", wanted,
                                                       problem)])
                taken.add(wanted)
                by_port[port.get("port")] = wanted
                continue
            chosen = self.ranges.next_port(taken | held)
            if chosen is None:
                raise _internal(f"failed to allocate a nodePort: {RANGE_FULL}")
            taken.add(chosen)
            port["nodePort"] = chosen
            by_port[port.get("port")] = chosen


def _needs_node_port(spec: Obj) -> bool:
    return spec.get("type") in NODE_PORT_TYPES


def _patch_allocated(old: Obj, new: Obj) -> None:
    """patchAllocatedValues: an update that left out clusterIP(s) or nodePorts keeps them."""
    if old.get("type") != "ExternalName" and new.get("type") != "ExternalName":
        if not new.get("clusterIP") and old.get("clusterIP"):
            new["clusterIP"] = old["clusterIP"]
        if not new.get("clusterIPs") and old.get("clusterIPs"):
            new["clusterIPs"] = list(old["clusterIPs"])
    if _needs_node_port(old) and _needs_node_port(new):
        def used(spec: Obj) -> set[int]:
            return {int(p["nodePort"]) for p in _ports(spec) if p.get("nodePort")}

        taken = used(old) & used(new)
        by_name = {p.get("name", ""): p.get("nodePort") for p in _ports(old)}
        for port in _ports(new):
            if not port.get("nodePort"):
                value = by_name.get(port.get("name", ""))
                if value and value not in taken:
                    port["nodePort"] = value


def _normalize_update(old: Obj, new: Obj) -> None:
    """normalizeClusterIPs for an update (keeps clusterIP and clusterIPs in step)."""
    if old.get("clusterIPs") and not new.get("clusterIPs") and old.get(
            "clusterIP") == new.get("clusterIP"):
        new["clusterIPs"] = list(old["clusterIPs"])
    if old.get("clusterIP") != new.get("clusterIP"):
        same = old.get("clusterIPs") == new.get("clusterIPs")
        if old.get("clusterIP") and not new.get("clusterIP") and same:
            new.pop("clusterIPs", None)
        elif same:
            new["clusterIPs"] = [new.get("clusterIP")]


def _drop_type_dependent(old: Obj, new: Obj) -> None:
    """dropTypeDependentFields: leaving NodePort/LoadBalancer drops unchanged nodePorts,
    turning into ExternalName drops the addresses."""
    if _needs_node_port(old) and not _needs_node_port(new):
        if [p.get("nodePort") for p in _ports(old)] == [p.get("nodePort") for p in _ports(new)]:
            for port in _ports(new):
                port.pop("nodePort", None)
    def external(spec: Obj) -> bool:
        return _needs_node_port(spec) or bool(
            spec.get("type") == "ClusterIP" and spec.get("externalIPs"))

    if external(old) and not external(new) and old.get(
            "externalTrafficPolicy") == new.get("externalTrafficPolicy"):
        new.pop("externalTrafficPolicy", None)
    if old.get("type") == "LoadBalancer" and new.get("type") != "LoadBalancer":
        for field in ("allocateLoadBalancerNodePorts", "loadBalancerClass",
                      "healthCheckNodePort"):
            if old.get(field) == new.get(field):
                new.pop(field, None)
    if new.get("type") == "ExternalName" and old.get("type") != "ExternalName":
        for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if new.get(field) == old.get(field):
                new.pop(field, None)
