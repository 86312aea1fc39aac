"""What the EndpointSlice and Endpoints controllers want for one Service (pure decisions).

kube-controller-manager turns the pods a Service selects into addresses: a pod counts once it
has an IP and is not finished; its address is ready when the pod is Ready (or the Service
publishes not-ready addresses) and not terminating, serving when the pod is Ready, terminating
once it is being deleted; each Service port resolves per pod (a named targetPort is looked up
among that pod's container ports, a pod without it gets no such port). EndpointSlices group the
endpoints by their resolved ports, at most 100 per slice, keep endpoints in the slice they are
in (little churn), and a Service with no endpoints keeps one empty placeholder slice. Endpoints
(core/v1) list ready and not-ready addresses per port set, and leave out terminating pods
unless the Service publishes not-ready addresses.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.raw import RawObject, copy_json

MAX_ENDPOINTS_PER_SLICE = 100
# Pod changes this close together are handled in one sync of their Service: a Service of
# many pods is then rewritten a few times a second while they start, not once per pod.
POD_BATCH_SECONDS = 0.2
MAX_ENDPOINTS_ADDRESSES = 1000  # Endpoints beyond this are truncated (over-capacity)
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
ZONE_LABEL = "topology.kubernetes.io/zone"
RESERVED_LABELS = frozenset({SERVICE_NAME_LABEL, MANAGED_BY_LABEL})

PortKey = tuple[tuple[str, int, str, str], ...]  # (name, port, protocol, appProtocol) each


def is_headless(service: RawObject) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def selector_of(service: RawObject) -> dict[str, str] | None:
    """The Service's selector; None (no selector): its endpoints are the user's to manage."""
    spec = service.get("spec") or {}
    selector = spec.get("selector")
    if not isinstance(selector, dict) or spec.get("type") == "ExternalName":
        return None
    return {str(k): str(v) for k, v in selector.items()}


def selects(selector: dict[str, str], pod: RawObject | None) -> bool:
    """A Service selector with entries matches pods carrying all of them; an empty one none
    (as the controllers treat ``labels.Set(selector).AsSelectorPreValidated()`` on {})."""
    if pod is None or not selector:
        return False
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def pod_ip(pod: RawObject, *, family: int = 4) -> str | None:
    """The pod's address of the Service's family (status.podIPs, else status.podIP)."""
    status = pod.get("status") or {}
    candidates = [str(e.get("ip")) for e in status.get("podIPs") or [] if isinstance(e, dict)]
    if status.get("podIP"):
        candidates.append(str(status["podIP"]))
    for text in candidates:  # the kubelet wrote valid addresses: only the family is read
        if text and (":" in text) == (family == 6):
            return text
    return None


def should_include(pod: RawObject, *, include_terminating: bool, family: int = 4) -> bool:
    """ShouldPodBeInEndpoints."""
    if podfacts.phase(pod) in ("Succeeded", "Failed"):
        return False
    if pod_ip(pod, family=family) is None:
        return False
    return include_terminating or not podfacts.is_terminating(pod)


def find_port(pod: RawObject, service_port: dict[str, Any]) -> int | None:
    """podutil.FindPort: a number is itself; a name is the matching container port (same
    protocol) of this pod, sidecars included."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if not isinstance(target, str):
        return None
    if target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    for group in ("containers", "initContainers"):
        for container in spec.get(group) or []:
            for port in container.get("ports") or []:
                if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                    return int(port.get("containerPort") or 0) or None
    return None


def resolved_ports(service: RawObject, pod: RawObject) -> PortKey:
    """The Service's ports as this pod serves them (unresolvable ones left out)."""
    out: list[tuple[str, int, str, str]] = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        number = find_port(pod, sp)
        if number is None:
            continue
        out.append((str(sp.get("name") or ""), number, str(sp.get("protocol") or "TCP"),
                    str(sp.get("appProtocol") or "")))
    return tuple(out)


def _hostname(pod: RawObject, service: RawObject) -> str | None:
    """ShouldSetHostname: the pod names this Service as its subdomain."""
    spec = pod.get("spec") or {}
    smeta = service.get("metadata") or {}
    pmeta = pod.get("metadata") or {}
    if spec.get("hostname") and spec.get("subdomain") == smeta.get("name") and pmeta.get(
            "namespace") == smeta.get("namespace"):
        return str(spec["hostname"])
    return None


def target_ref(pod: RawObject) -> dict[str, Any]:
    m = pod.get("metadata") or {}
    return {"kind": "Pod", "namespace": m.get("namespace"), "name": m.get("name"),
            "uid": m.get("uid")}


def families(service: RawObject) -> list[str]:
    """The Service's address families (``spec.ipFamilies``; IPv4 when unset)."""
    found = [f for f in (service.get("spec") or {}).get("ipFamilies") or []
             if f in ("IPv4", "IPv6")]
    return found or ["IPv4"]


def _version(family: str) -> int:
    return 6 if family == "IPv6" else 4


def endpoint(pod: RawObject, service: RawObject, zones: dict[str, str], *,
             family: str = "IPv4") -> RawObject:
    """podToEndpoint."""
    serving = podfacts.is_ready(pod)
    terminating = podfacts.is_terminating(pod)
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    ep: RawObject = {
        "addresses": [pod_ip(pod, family=_version(family))],
        "conditions": {"ready": publish or (serving and not terminating), "serving": serving,
                       "terminating": terminating},
        "targetRef": target_ref(pod),
    }
    node = podfacts.node_name(pod)
    if node:
        ep["nodeName"] = node
        if zones.get(node):
            ep["zone"] = zones[node]
    hostname = _hostname(pod, service)
    if hostname:
        ep["hostname"] = hostname
    return ep


def slice_ports(key: PortKey) -> list[RawObject]:
    out: list[RawObject] = []
    for name, port, protocol, app in key:
        entry: RawObject = {"name": name, "port": port, "protocol": protocol}
        if app:
            entry["appProtocol"] = app
        out.append(entry)
    return out


def port_key_of(slice_: RawObject) -> PortKey:
    return tuple((str(p.get("name") or ""), int(p.get("port") or 0),
                  str(p.get("protocol") or "TCP"), str(p.get("appProtocol") or ""))
                 for p in slice_.get("ports") or [])


def slice_labels(service: RawObject) -> dict[str, str]:
    """setEndpointSliceLabels: the Service's labels (not the reserved ones), the headless
    label when it has no cluster IP, the service name and the managing controller."""
    m = service.get("metadata") or {}
    labels = {k: v for k, v in (m.get("labels") or {}).items() if k not in RESERVED_LABELS}
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    labels[SERVICE_NAME_LABEL] = str(m.get("name"))
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return labels


def owner_reference(service: RawObject) -> dict[str, Any]:
    m = service.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Service", "name": m.get("name"), "uid": m.get("uid"),
            "controller": True, "blockOwnerDeletion": True}


def desired_endpoints(service: RawObject, pods: list[RawObject], zones: dict[str, str], *,
                      family: str = "IPv4") -> dict[PortKey, list[RawObject]]:
    """The endpoints (of ``family``) of the selected pods, grouped by their resolved ports
    (by pod name)."""
    groups: dict[PortKey, list[RawObject]] = {}
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name"))):
        if not should_include(pod, include_terminating=True, family=_version(family)):
            continue
        groups.setdefault(resolved_ports(service, pod), []).append(
            endpoint(pod, service, zones, family=family))
    return groups


def _identity(ep: RawObject) -> str:
    ref = ep.get("targetRef") or {}
    return str(ref.get("uid") or ",".join(ep.get("addresses") or []))


@dataclasses.dataclass
class SlicePlan:
    create: list[RawObject] = dataclasses.field(default_factory=list)
    update: list[RawObject] = dataclasses.field(default_factory=list)
    delete: list[RawObject] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class SliceOwner:
    """Whose slices a plan is about: their labels, controller reference and address type."""

    name: str
    namespace: str
    labels: dict[str, str]
    owner: dict[str, Any]
    address_type: str = "IPv4"
    placeholder: bool = True  # keep one empty slice when there are no endpoints


def for_service(service: RawObject, family: str = "IPv4") -> SliceOwner:
    m = service.get("metadata") or {}
    return SliceOwner(name=str(m.get("name")), namespace=str(m.get("namespace")),
                      labels=slice_labels(service), owner=owner_reference(service),
                      address_type=family)


def new_slice(who: SliceOwner, key: PortKey | None, endpoints: list[RawObject]) -> RawObject:
    body: RawObject = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"generateName": f"{who.name[:57]}-", "namespace": who.namespace,
                     "labels": dict(who.labels), "ownerReferences": [dict(who.owner)]},
        "addressType": who.address_type, "endpoints": endpoints,
    }
    if key is not None:
        body["ports"] = slice_ports(key)
    return body


def plan_slices(who: SliceOwner, desired: dict[PortKey, list[RawObject]],
                existing: list[RawObject]) -> SlicePlan:
    """Reconcile: endpoints stay in the slice they are in, free room is filled before new
    slices are made, emptied slices go, one placeholder stays when nothing is left."""
    plan = SlicePlan()
    labels = who.labels
    owner = who.owner
    existing = sorted(existing, key=lambda s: str((s.get("metadata") or {}).get("name")))
    kept: list[tuple[RawObject, list[RawObject]]] = []
    claimed: set[int] = set()
    for key, wanted in desired.items():
        by_id = {_identity(e): e for e in wanted}
        placed: set[str] = set()
        slots: list[tuple[RawObject, list[RawObject]]] = []
        for index, current in enumerate(existing):
            if index in claimed or current.get("addressType") != who.address_type or port_key_of(
                    current) != key or not current.get("endpoints"):
                continue
            claimed.add(index)
            eps = []
            for ep in current.get("endpoints") or []:
                ident = _identity(ep)
                if ident in by_id and ident not in placed:
                    eps.append(by_id[ident])
                    placed.add(ident)
            slots.append((current, eps))
        remaining = [e for e in wanted if _identity(e) not in placed]
        for _, eps in slots:
            while remaining and len(eps) < MAX_ENDPOINTS_PER_SLICE:
                eps.append(remaining.pop(0))
        while remaining:
            chunk, remaining = (remaining[:MAX_ENDPOINTS_PER_SLICE],
                                remaining[MAX_ENDPOINTS_PER_SLICE:])
            plan.create.append(new_slice(who, key, chunk))
        kept += slots
    for current, eps in kept:
        if not eps:
            plan.delete.append(current)
            continue
        _update_if_changed(plan, current, eps, labels, owner)
    leftovers = [s for i, s in enumerate(existing) if i not in claimed]
    if who.placeholder and not desired and not plan.create and not any(
            eps for _, eps in kept):
        if leftovers:
            placeholder = leftovers.pop(0)
            changed = copy_json(placeholder)
            changed.pop("ports", None)
            _update_if_changed(plan, changed, [], labels, owner, original=placeholder)
        elif not kept:
            plan.create.append(new_slice(who, None, []))
    plan.delete += leftovers
    return plan


def _update_if_changed(plan: SlicePlan, current: RawObject, eps: list[RawObject],
                       labels: dict[str, str], owner: dict[str, Any],
                       original: RawObject | None = None) -> None:
    before = original if original is not None else current
    meta = current.get("metadata") or {}
    if (before.get("endpoints") or []) == eps and meta.get("labels") == labels and (
            before.get("ports") == current.get("ports")):
        return
    body = copy_json(current)
    body["endpoints"] = eps
    body["metadata"]["labels"] = labels
    refs = [r for r in body["metadata"].get("ownerReferences") or []
            if r.get("uid") != owner["uid"]]
    body["metadata"]["ownerReferences"] = [*refs, owner]
    plan.update.append(body)


def desired_subsets(service: RawObject, pods: list[RawObject]) -> tuple[list[RawObject], bool]:
    """The Endpoints' subsets (RepackSubsets order) and whether they were truncated."""
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    version = _version(families(service)[0])  # the Endpoints show the primary family
    headless_portless = is_headless(service) and not (service.get("spec") or {}).get("ports")
    groups: dict[PortKey, tuple[list[RawObject], list[RawObject]]] = {}
    count = 0
    for pod in pods:
        if not should_include(pod, include_terminating=publish, family=version):
            continue
        key = () if headless_portless else resolved_ports(service, pod)
        if not key and not headless_portless:
            continue
        address: RawObject = {"ip": pod_ip(pod, family=version), "targetRef": target_ref(pod)}
        if podfacts.node_name(pod):
            address["nodeName"] = podfacts.node_name(pod)
        hostname = _hostname(pod, service)
        if hostname:
            address["hostname"] = hostname
        ready, not_ready = groups.setdefault(key, ([], []))
        if publish or podfacts.is_ready(pod):
            ready.append(address)
        else:
            not_ready.append(address)
        count += 1
    truncated = count > MAX_ENDPOINTS_ADDRESSES
    budget = MAX_ENDPOINTS_ADDRESSES
    subsets: list[RawObject] = []
    for key in sorted(groups):
        ready, not_ready = groups[key]
        subset: RawObject = {}
        for field, items in (("addresses", ready), ("notReadyAddresses", not_ready)):
            items = sorted(items, key=lambda a: (str(a["ip"]), str(a["targetRef"]["name"])))
            items = items[:budget]
            budget -= len(items)
            if items:
                subset[field] = items
        if key:
            subset["ports"] = [{k: v for k, v in p.items() if k != "appProtocol" or v}
                               for p in sorted(slice_ports(key), key=lambda p: p["name"])]
        if subset.get("addresses") or subset.get("notReadyAddresses"):
            subsets.append(subset)
    return subsets, truncated
