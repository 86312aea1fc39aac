"""Services and EndpointSlices as the proxy sees them (pure parsing of raw API objects).

Why a model apart from the rules: kube-proxy's decisions (which endpoints serve, which Services
are proxied at all) are Kubernetes semantics and are tested from static objects; the nft rules
are one rendering of them. Only IPv4 is proxied (the rules live in ``table ip``): IPv6 cluster
IPs and endpoints are ignored, as a single-stack IPv4 kube-proxy ignores them.

Which endpoints serve (kube-proxy's ``CategorizeEndpoints``): the ready ones (``ready`` unset
counts as ready); when a Service has none, the ones still serving while terminating, so that
connections drain instead of being refused during a rolling update. An endpoint whose
``serving`` is false never gets traffic.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["SERVICE_NAME_LABEL", "Endpoint", "ServicePort", "endpoints_of", "service_ports"]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_SECONDS = 10800  # Kubernetes' default sessionAffinityConfig timeout
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclasses.dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of one Service, the unit kube-proxy proxies."""

    namespace: str
    name: str
    port_name: str  # "" for an unnamed port
    protocol: str  # "TCP" | "UDP" | "SCTP"
    cluster_ip: str  # IPv4
    port: int
    node_port: int = 0  # 0: none
    affinity_seconds: int = 0  # 0: no sessionAffinity
    internal_local: bool = False  # internalTrafficPolicy: Local
    external_local: bool = False  # externalTrafficPolicy: Local (NodePort traffic)

    @property
    def key(self) -> str:
        """``ns/name/proto/port`` (kube-proxy's ServicePortName with the protocol)."""
        return f"{self.namespace}/{self.name}/{self.protocol.lower()}/{self.port_name}"


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    ip: str
    port: int
    node: str = ""  # the endpoint's nodeName ("" unknown)


def _ipv4(text: Any) -> str | None:
    try:
        address = ipaddress.ip_address(str(text))
    except ValueError:
        return None
    return str(address) if address.version == 4 else None


def service_ports(raw: Mapping[str, Any]) -> list[ServicePort]:
    """The proxied ports of one Service: none for a headless or ExternalName Service, or one
    without an IPv4 cluster IP; ports with an unknown protocol or no number are skipped."""
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return []
    ips = [spec.get("clusterIP"), *(spec.get("clusterIPs") or [])]
    cluster_ip = next((ip for ip in (_ipv4(x) for x in ips if x and x != "None") if ip), None)
    if cluster_ip is None:
        return []
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        timeout = config.get("timeoutSeconds")
        affinity = int(timeout) if isinstance(timeout, int) and timeout > 0 \
            else DEFAULT_AFFINITY_SECONDS
    out = []
    for port in spec.get("ports") or []:
        protocol = str(port.get("protocol") or "TCP")
        number = port.get("port")
        if protocol not in PROTOCOLS or not isinstance(number, int) or not 0 < number < 65536:
            continue
        node_port = port.get("nodePort")
        out.append(ServicePort(
            namespace=str(meta.get("namespace") or "default"), name=str(meta.get("name")),
            port_name=str(port.get("name") or ""), protocol=protocol, cluster_ip=cluster_ip,
            port=number,
            node_port=node_port if isinstance(node_port, int) and 0 < node_port < 65536 else 0,
            affinity_seconds=affinity,
            internal_local=spec.get("internalTrafficPolicy") == "Local",
            external_local=spec.get("externalTrafficPolicy") == "Local",
        ))
    return out


def endpoints_of(port: ServicePort, slices: Iterable[Mapping[str, Any]]) -> list[Endpoint]:
    """The endpoints that serve ``port`` from its Service's EndpointSlices (see the module
    docstring), sorted and without duplicates (one address may be in two slices)."""
    ready: set[Endpoint] = set()
    terminating: set[Endpoint] = set()
    for raw in slices:
        if raw.get("addressType", "IPv4") != "IPv4":
            continue
        number = None
        for p in raw.get("ports") or []:
            if str(p.get("name") or "") == port.port_name and \
                    str(p.get("protocol") or "TCP") == port.protocol:
                number = p.get("port")
        if not isinstance(number, int) or not 0 < number < 65536:
            continue
        for ep in raw.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            node = str(ep.get("nodeName") or "")
            for address in ep.get("addresses") or []:
                ip = _ipv4(address)
                if ip is None:
                    continue
                endpoint = Endpoint(ip=ip, port=number, node=node)
                if cond.get("ready") is not False:
                    ready.add(endpoint)
                elif cond.get("serving") is True and cond.get("terminating") is True:
                    terminating.add(endpoint)
    return sorted(ready or terminating)
