"""Validation of Services (ValidateService, ValidateServiceUpdate), in kube-apiserver's words.

Why: ``kubectl apply`` of a wrong Service must fail here as it fails on a cluster (ports
without names, a nodePort on a ClusterIP Service, a changed clusterIP, an unknown type), with
the same field paths and wording, so a manifest that passes devkube passes a real cluster.
Pure functions over dicts, run after defaulting and allocation (``services``).
"""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube import errors, services

Obj = dict[str, Any]
Cause = errors.Cause
invalid_cause = services.invalid_cause
unsupported_cause = services.unsupported_cause
POLICIES = ("Cluster", "Local")


def port_name_causes(value: Any, field: str) -> list[Cause]:
    """IsValidPortName (an IANA_SVC_NAME) for a named targetPort or containerPort."""
    text = str(value)
    problems = []
    if len(text) > 15:
        problems.append("must be no more than 15 characters")
    if not services.PORT_NAME.match(text):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not any("a" <= c <= "z" for c in text):
        problems.append("must contain at least one letter (a-z)")
    if "--" in text:
        problems.append("must not contain consecutive hyphens")
    if text.startswith("-") or text.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return [invalid_cause(field, text, p) for p in problems]


def port_number_causes(value: Any, field: str) -> list[Cause]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return [invalid_cause(field, value, services.PORT_RANGE_MESSAGE)]
    return []


def label_name_causes(value: Any, field: str) -> list[Cause]:
    text = str(value)
    if len(text) > 63 or not services.DNS_LABEL.match(text):
        return [invalid_cause(field, text, services.LABEL_MESSAGE)]
    return []


def ip_causes(value: Any, field: str) -> list[Cause]:
    ip = services.parse_ip(str(value))
    if ip is None:
        return [invalid_cause(field, value, services.IP_MESSAGE)]
    if str(ip) != str(value):
        return [invalid_cause(field, value, f'must be in canonical form ("{ip}")')]
    return []


def _port_causes(port: Obj, i: int, *, require_name: bool, names: set[str]) -> list[Cause]:
    where = f"spec.ports[{i}]"
    causes: list[Cause] = []
    name = port.get("name") or ""
    if require_name and not name:
        causes.append(("FieldValueRequired", f"{where}.name", "Required value"))
    elif name:
        causes += label_name_causes(name, f"{where}.name")
        if name in names:
            causes.append(("FieldValueDuplicate", f"{where}.name",
                           f"Duplicate value: {services.go_value(name)}"))
        names.add(name)
    causes += port_number_causes(port.get("port"), f"{where}.port")
    protocol = port.get("protocol")
    if not protocol:
        causes.append(("FieldValueRequired", f"{where}.protocol", "Required value"))
    elif protocol not in services.PROTOCOLS:
        causes.append(unsupported_cause(f"{where}.protocol", protocol, services.PROTOCOLS))
    target = port.get("targetPort")
    if isinstance(target, str):
        causes += port_name_causes(target, f"{where}.targetPort")
    elif target is not None:
        causes += port_number_causes(target, f"{where}.targetPort")
    return causes


def _cluster_ip_causes(spec: Obj) -> list[Cause]:
    """ValidateServiceClusterIPsRelatedFields (single-stack)."""
    if spec.get("type") == "ExternalName":
        return []
    causes: list[Cause] = []
    ip = spec.get("clusterIP") or ""
    ips = spec.get("clusterIPs") or []
    if ip:
        if not ips:
            causes.append(("FieldValueRequired", "spec.clusterIPs", "Required value"))
        elif ips[0] != ip:
            causes.append(invalid_cause("spec.clusterIPs", ips,
                                        "first value must match `clusterIP`"))
    elif ips:
        causes.append(invalid_cause("spec.clusterIPs", ips,
                               "must be empty when `clusterIP` is not specified"))
    families = spec.get("ipFamilies") or []
    for i, family in enumerate(families):
        if family not in ("IPv4", "IPv6"):
            causes.append(unsupported_cause(f"spec.ipFamilies[{i}]", family, ("IPv4", "IPv6")))
        elif family in families[:i]:
            causes.append(("FieldValueDuplicate", f"spec.ipFamilies[{i}]",
                           f"Duplicate value: {services.go_value(family)}"))
    policy = spec.get("ipFamilyPolicy")
    policies = ("PreferDualStack", "RequireDualStack", "SingleStack")
    if policy is not None and policy not in policies:
        causes.append(unsupported_cause("spec.ipFamilyPolicy", policy, policies))
    for i, each in enumerate(ips):
        if i == 0 and each == services.HEADLESS:
            if len(ips) > 1:
                causes.append(invalid_cause("spec.clusterIPs", ips,
                                       "'None' must be the first and only value"))
            continue
        causes += ip_causes(each, f"spec.clusterIPs[{i}]")
    if len(ips) > 2:
        causes.append(invalid_cause("spec.clusterIPs", ips, "may only hold up to 2 values"))
    return causes


def service_causes(obj: Obj, *, old: Obj | None) -> list[Cause]:
    """ValidateService (and, with ``old``, the update rules on clusterIPs)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("FieldValueRequired", "spec", "Required value")]
    causes: list[Cause] = []
    kind = spec.get("type")
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    headless = services.is_headless(spec)
    if old is not None:
        causes += _update_causes(old.get("spec") or {}, spec)
    if not ports and not headless and kind != "ExternalName":
        causes.append(("FieldValueRequired", "spec.ports", "Required value"))
    if kind in services.NODE_PORT_TYPES and headless:
        causes.append(invalid_cause("spec.clusterIPs[0]", services.HEADLESS,
                               f"may not be set to 'None' for {kind} services"))
    if kind == "ExternalName":
        for field in ("clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if spec.get(field):
                causes.append(("FieldValueForbidden", f"spec.{field}",
                               "Forbidden: may not be set for ExternalName services"))
        cname = str(spec.get("externalName") or "").removesuffix(".")
        if not cname:
            causes.append(("FieldValueRequired", "spec.externalName", "Required value"))
        elif len(cname) > 253 or not services.DNS_SUBDOMAIN.match(cname):
            causes.append(invalid_cause("spec.externalName", cname, (
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character "
                "(e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")))
    names: set[str] = set()
    for i, port in enumerate(ports):
        causes += _port_causes(port, i, require_name=len(ports) > 1, names=names)
    affinity = spec.get("sessionAffinity")
    if not affinity:
        causes.append(("FieldValueRequired", "spec.sessionAffinity", "Required value"))
    elif affinity not in ("ClientIP", "None"):
        causes.append(unsupported_cause("spec.sessionAffinity", affinity, ("ClientIP", "None")))
    causes += _cluster_ip_causes(spec)
    for i, ip in enumerate(spec.get("externalIPs") or []):
        causes += ip_causes(ip, f"spec.externalIPs[{i}]")
    if not kind:
        causes.append(("FieldValueRequired", "spec.type", "Required value"))
    elif kind not in services.SERVICE_TYPES:
        causes.append(unsupported_cause("spec.type", kind, services.SERVICE_TYPES))
    if kind == "ClusterIP":
        for i, port in enumerate(ports):
            if port.get("nodePort"):
                causes.append(("FieldValueForbidden", f"spec.ports[{i}].nodePort",
                               "Forbidden: may not be used when `type` is 'ClusterIP'"))
    seen_node: set[tuple[Any, Any]] = set()
    seen_port: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        if port.get("nodePort"):
            key = (port.get("protocol"), port.get("nodePort"))
            if key in seen_node:
                causes.append(("FieldValueDuplicate", f"spec.ports[{i}].nodePort",
                               f"Duplicate value: {port.get('nodePort')}"))
            seen_node.add(key)
        key = (port.get("protocol"), port.get("port"))
        if key in seen_port:
            value = {"protocol": port.get("protocol"), "port": port.get("port")}
            causes.append(("FieldValueDuplicate", f"spec.ports[{i}]",
                           f"Duplicate value: {services.go_value(value)}"))
        seen_port.add(key)
    if spec.get("allocateLoadBalancerNodePorts") is not None and kind != "LoadBalancer":
        causes.append(("FieldValueForbidden", "spec.allocateLoadBalancerNodePorts",
                       "Forbidden: may only be used when `type` is 'LoadBalancer'"))
    causes += _traffic_causes(spec)
    return causes


def _externally_accessible(spec: Obj) -> bool:
    return spec.get("type") in services.NODE_PORT_TYPES or (
        spec.get("type") == "ClusterIP" and bool(spec.get("externalIPs")))


def _traffic_causes(spec: Obj) -> list[Cause]:
    causes: list[Cause] = []
    external = spec.get("externalTrafficPolicy")
    if not _externally_accessible(spec):
        if external:
            causes.append(invalid_cause("spec.externalTrafficPolicy", external,
                                   "may only be set for externally-accessible services"))
    elif not external:
        causes.append(("FieldValueRequired", "spec.externalTrafficPolicy", "Required value"))
    elif external not in ("Cluster", "Local"):
        causes.append(unsupported_cause("spec.externalTrafficPolicy", external, POLICIES))
    internal = spec.get("internalTrafficPolicy")
    if internal is None and spec.get("type") in ("ClusterIP", "NodePort", "LoadBalancer"):
        causes.append(("FieldValueRequired", "spec.internalTrafficPolicy", "Required value"))
    elif internal is not None and internal not in ("Cluster", "Local"):
        causes.append(unsupported_cause("spec.internalTrafficPolicy", internal, POLICIES))
    return causes


def _update_causes(old: Obj, new: Obj) -> list[Cause]:
    """validateUpgradeDowngradeClusterIPs on a single-stack cluster: the address stays."""
    if "ExternalName" in (old.get("type"), new.get("type")):
        return []
    if services.is_headless(old) and services.is_headless(new):
        return []
    before = old.get("clusterIPs") or []
    after = new.get("clusterIPs") or []
    causes: list[Cause] = []
    if len(before) == len(after):
        for i, ip in enumerate(before):
            if ip != after[i]:
                causes.append(invalid_cause(f"spec.clusterIPs[{i}]", after,
                                            "may not change once set"))
    elif len(before) > len(after):
        if not after:
            causes.append(invalid_cause("spec.clusterIPs[0]", after,
                                   "primary clusterIP can not be unset"))
        elif after[0] != before[0]:
            causes.append(invalid_cause("spec.clusterIPs[0]", after, "may not change once set"))
    elif before and after[0] != before[0]:
        causes.append(invalid_cause("spec.clusterIPs[0]", after, "may not change once set"))
    return causes
