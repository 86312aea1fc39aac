"""Defaults and validation of Endpoints (core/v1) and EndpointSlices (discovery.k8s.io/v1), in
kube-apiserver's words.

Why: user-managed Endpoints (a Service without a selector) and EndpointSlices written by other
controllers must be refused here as on a cluster: no address, an address that is not an IP of
the slice's type or that is special (loopback, link-local, unspecified), unnamed ports when
there are several, too many endpoints. Pure functions over dicts.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from k8sbridge.devkube import errors, servicecheck, services

Obj = dict[str, Any]
Cause = errors.Cause

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_PORTS = 100
# as Go's net.ParseCIDR reads them (host bits masked)
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_LINK_LOCAL_MULTICAST = (ipaddress.ip_network("224.0.0.0/24"),
                         ipaddress.ip_network("ff02::/10", strict=False))


def default_endpoints(obj: Obj) -> None:
    """SetDefaults_EndpointPort: ports are TCP unless said otherwise."""
    for subset in obj.get("subsets") or []:
        if isinstance(subset, dict):
            for port in subset.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def default_endpointslice(obj: Obj) -> None:
    for port in obj.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("name", "")


def special_ip_causes(value: str, field: str) -> list[Cause]:
    """ValidateNonSpecialIP."""
    ip = services.parse_ip(value)
    if ip is None:
        return []
    problem = None
    if ip.is_unspecified:
        problem = f"may not be unspecified ({ip})"
    elif ip.is_loopback:
        problem = "may not be in the loopback range (127.0.0.0/8, ::1/128)"
    elif any(ip in n for n in _LINK_LOCAL):
        problem = "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
    elif any(ip in n for n in _LINK_LOCAL_MULTICAST):
        problem = "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
    return [services.invalid_cause(field, value, problem)] if problem else []


def _port_causes(ports: list[Any], where: str, *, require_names: bool) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        at = f"{where}[{i}]"
        if not isinstance(port, dict):
            continue
        name = port.get("name") or ""
        if require_names and not name:
            causes.append(("FieldValueRequired", f"{at}.name", "Required value"))
        elif name:
            causes += servicecheck.label_name_causes(name, f"{at}.name")
        if name in names:
            causes.append(("FieldValueDuplicate", f"{at}.name",
                           f"Duplicate value: {services.go_value(name)}"))
        names.add(name)
        if "port" in port or require_names:
            causes += servicecheck.port_number_causes(port.get("port"), f"{at}.port")
        protocol = port.get("protocol")
        if not protocol:
            causes.append(("FieldValueRequired", f"{at}.protocol", "Required value"))
        elif protocol not in services.PROTOCOLS:
            causes.append(services.unsupported_cause(f"{at}.protocol", protocol,
                                                     services.PROTOCOLS))
    return causes


def endpoints_causes(obj: Obj) -> list[Cause]:
    """ValidateEndpoints (validateEndpointSubsets)."""
    causes: list[Cause] = []
    for i, subset in enumerate(obj.get("subsets") or []):
        where = f"subsets[{i}]"
        if not isinstance(subset, dict):
            continue
        if not subset.get("addresses") and not subset.get("notReadyAddresses"):
            causes.append(("FieldValueRequired", where, "Required value: must specify "
                           "`addresses` or `notReadyAddresses`"))
        for group in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(subset.get(group) or []):
                at = f"{where}.{group}[{j}]"
                ip = address.get("ip") if isinstance(address, dict) else None
                if not isinstance(ip, str) or not ip:
                    causes.append(("FieldValueRequired", f"{at}.ip", "Required value"))
                    continue
                bad = servicecheck.ip_causes(ip, f"{at}.ip")
                causes += bad or special_ip_causes(ip, f"{at}.ip")
                hostname = address.get("hostname")
                if hostname:
                    causes += servicecheck.label_name_causes(hostname, f"{at}.hostname")
        causes += _port_causes(list(subset.get("ports") or []), f"{where}.ports",
                               require_names=len(subset.get("ports") or []) > 1)
    return causes


def endpointslice_causes(obj: Obj, *, old: Obj | None) -> list[Cause]:
    """ValidateEndpointSlice (and, on update, the immutable addressType)."""
    causes: list[Cause] = []
    address_type = obj.get("addressType")
    if not address_type:
        causes.append(("FieldValueRequired", "addressType", "Required value"))
    elif address_type not in ADDRESS_TYPES and not (
            old is not None and address_type == "IP"):
        causes.append(services.unsupported_cause("addressType", address_type, ADDRESS_TYPES))
    endpoints = obj.get("endpoints") or []
    if len(endpoints) > MAX_ENDPOINTS:
        causes.append(("FieldValueTooMany", "endpoints",
                       f"Too many: {len(endpoints)}: must have at most {MAX_ENDPOINTS} items"))
        endpoints = []
    for i, endpoint in enumerate(endpoints):
        at = f"endpoints[{i}].addresses"
        addresses = endpoint.get("addresses") or [] if isinstance(endpoint, dict) else []
        if not addresses:
            causes.append(("FieldValueRequired", at,
                           "Required value: must contain at least 1 address"))
        elif len(addresses) > MAX_ADDRESSES:
            causes.append(("FieldValueTooMany", at, f"Too many: {len(addresses)}: must have "
                           f"at most {MAX_ADDRESSES} items"))
        for j, address in enumerate(addresses):
            causes += _address_causes(address_type, str(address), f"{at}[{j}]")
        hostname = endpoint.get("hostname") if isinstance(endpoint, dict) else None
        if hostname is not None:
            causes += servicecheck.label_name_causes(hostname, f"endpoints[{i}].hostname")
    ports = obj.get("ports") or []
    if len(ports) > MAX_PORTS:
        causes.append(("FieldValueTooMany", "ports",
                       f"Too many: {len(ports)}: must have at most {MAX_PORTS} items"))
    else:
        causes += _port_causes(list(ports), "ports", require_names=False)
    if old is not None and old.get("addressType") != address_type:
        causes.append(services.invalid_cause("addressType", address_type,
                                             "field is immutable"))
    return causes


def _address_causes(address_type: Any, address: str, field: str) -> list[Cause]:
    if address_type in ("IPv4", "IPv6"):
        ip = services.parse_ip(address)
        family = 4 if address_type == "IPv4" else 6
        if ip is None or ip.version != family:
            text = ("must be a valid IPv4 address" if family == 4
                    else "must be a valid IPv6 address")
            return [services.invalid_cause(field, address, text)]
        return servicecheck.ip_causes(address, field) or special_ip_causes(address, field)
    if address_type == "FQDN" and (len(address) > 253 or "." not in address
                                   or not services.DNS_SUBDOMAIN.match(address)):
        return [services.invalid_cause(field, address, "should be a domain with at least two "
                                       "segments separated by dots")]
    return []
