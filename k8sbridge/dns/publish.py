"""The cluster DNS as a Service object (``kube-system/kube-dns`` by convention), when asked.

Why: clients and people look for the cluster DNS there (``kubectl get svc -n kube-system``),
and a service proxy that programs every ClusterIP must send ``<clusterIP>:53`` somewhere. The
Service has no selector (no pod backs it); its EndpointSlice names the address the server
listens on, so a proxy forwards to the server, and without a proxy the ClusterIP itself is one
of the server's addresses. An existing Service is left as it is (its clusterIP cannot change);
the EndpointSlice is replaced with ours.
"""

from __future__ import annotations

import logging
from typing import Any

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors

__all__ = ["MANAGED_BY", "ensure_service", "service_objects"]

log = logging.getLogger(__name__)

MANAGED_BY = "k8sbridge-dns"


def service_objects(*, namespace: str, name: str, cluster_ip: str, endpoint: str,
                    port: int = 53) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Service (port 53, as clients ask) and its EndpointSlice (the server's address and
    ``port``), pure."""
    ports = [{"name": "dns", "protocol": "UDP", "port": port},
             {"name": "dns-tcp", "protocol": "TCP", "port": port}]
    service_ports = [{**p, "port": 53, "targetPort": port} for p in ports]
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"k8s-app": "kube-dns",
                                "kubernetes.io/name": "CoreDNS-compatible",
                                "app.kubernetes.io/managed-by": MANAGED_BY}},
        "spec": {"clusterIP": cluster_ip, "ports": service_ports},
    }
    family = "IPv6" if ":" in endpoint else "IPv4"
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-{MANAGED_BY}", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": name,
                                "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
        "addressType": family,
        "endpoints": [{"addresses": [endpoint], "conditions": {"ready": True}}],
        "ports": ports,
    }
    return service, endpoint_slice


async def ensure_service(*, kube: kube_client.KubeClient, namespace: str, name: str,
                         cluster_ip: str, endpoint: str, port: int = 53) -> None:
    """Create the Service (kept when it exists) and create or replace its EndpointSlice."""
    service, endpoint_slice = service_objects(namespace=namespace, name=name,
                                              cluster_ip=cluster_ip, endpoint=endpoint,
                                              port=port)
    await kube.ensure_namespace(namespace)
    try:
        await kube.create(f"/api/v1/namespaces/{namespace}/services", service)
        log.info("created Service %s/%s with clusterIP %s", namespace, name, cluster_ip)
    except kube_errors.Conflict:
        log.info("Service %s/%s exists: kept as it is", namespace, name)
    slices = f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
    path = f"{slices}/{endpoint_slice['metadata']['name']}"
    try:
        current = await kube.get(path)
    except kube_errors.NotFound:
        await kube.create(slices, endpoint_slice)
        return
    version = (current.get("metadata") or {}).get("resourceVersion")
    endpoint_slice["metadata"]["resourceVersion"] = version
    await kube.replace(path, endpoint_slice)
