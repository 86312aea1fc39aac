"""The ``kubernetes`` Service and the endpoints that name this API server, as kube-apiserver's
endpoint reconciler keeps them.

Why: pods reach the API server through the ``kubernetes`` Service in ``default``; its Endpoints
and EndpointSlice name the server's advertise address and secure port (the Service maps 443 to
that port). kube-apiserver writes them itself, not a controller: the Endpoints carry
``endpointslice.kubernetes.io/skip-mirror`` and the slice has no managing controller label.
They are put back if deleted or changed (``reconcile`` runs at start and periodically). They
are written straight to the store: devkube's default advertise address is loopback, which the
validation of user-written endpoints refuses.
"""

from __future__ import annotations

import ipaddress
import socket
import uuid
from typing import Any

from k8sbridge.devkube import kinds, registry

Obj = dict[str, Any]

NAMESPACE = "default"
NAME = "kubernetes"
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_PORT = 443
RECONCILE_INTERVAL = 10.0  # seconds, as --endpoint-reconciler-type=lease's interval
EP_KIND = kinds.BY_KEY[kinds.ResourceKey("/endpoints")]
SLICE_KIND = kinds.BY_KEY[kinds.ResourceKey("discovery.k8s.io/endpointslices")]


def default_advertise_address(bind_host: str) -> str:
    """The bind address; for a wildcard bind, the address of the host's default route (as
    kube-apiserver picks one), else loopback."""
    if bind_host not in ("", "0.0.0.0", "::"):
        return bind_host
    family = socket.AF_INET6 if bind_host == "::" else socket.AF_INET
    probe = "2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1"
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((probe, 9))  # no packet is sent: this only selects a route
            return str(s.getsockname()[0])
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"


def desired_endpoints(ip: str, port: int) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {SKIP_MIRROR: "true"}},
        "subsets": [{"addresses": [{"ip": ip}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    }


def desired_slice(ip: str, port: int) -> Obj:
    family = "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {"kubernetes.io/service-name": NAME}},
        "addressType": family,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


def _put(reg: registry.Registry, kind: kinds.Kind, desired: Obj,
         fields: tuple[str, ...]) -> None:
    """Create ``desired`` or bring ``fields`` (and its labels) of the stored one in line."""
    current = reg.store.peek(kind.store_key, NAMESPACE, NAME)
    if current is None:
        meta = desired["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = registry.rfc3339(registry.now())
        reg.store.create(kind.store_key, desired)
        return
    obj = current.obj
    labels = dict(obj["metadata"].get("labels") or {})
    if all(obj.get(f) == desired[f] for f in fields) and all(
            labels.get(k) == v for k, v in desired["metadata"]["labels"].items()):
        return
    changed = reg.store.get(kind.store_key, NAMESPACE, NAME)
    assert changed is not None
    for field in fields:
        changed[field] = desired[field]
    changed["metadata"]["labels"] = {**labels, **desired["metadata"]["labels"]}
    reg.store.update(kind.store_key, changed)


def reconcile(reg: registry.Registry, *, ip: str, port: int) -> None:
    """Make the ``kubernetes`` Service (443 → ``port``), its Endpoints and its EndpointSlice
    name ``ip``:``port``."""
    service = reg.store.get(registry.SVC_KIND.store_key, NAMESPACE, NAME)
    if service is None:
        reg.bootstrap()
        service = reg.store.get(registry.SVC_KIND.store_key, NAMESPACE, NAME)
    if service is not None:
        ports = [{"name": "https", "port": SERVICE_PORT, "protocol": "TCP", "targetPort": port}]
        if service.get("spec", {}).get("ports") != ports:
            service["spec"]["ports"] = ports
            reg.store.update(registry.SVC_KIND.store_key, service)
    _put(reg, EP_KIND, desired_endpoints(ip, port), ("subsets",))
    _put(reg, SLICE_KIND, desired_slice(ip, port), ("addressType", "endpoints", "ports"))
