"""The EndpointSlice mirroring controller: the Endpoints a user writes for a Service without a
selector appear as EndpointSlices too, as kube-controller-manager's
``endpointslicemirroring-controller.k8s.io`` mirrors them.

Why: consumers that read EndpointSlices only (``kubectl describe svc``, kube-proxy, DNS) must
see the addresses of selectorless Services. Endpoints labelled
``endpointslice.kubernetes.io/skip-mirror: "true"`` (the API server's own ``kubernetes``
Endpoints) and Endpoints of Services that have a selector (the Endpoints controller's) are not
mirrored; their mirrored slices, if any, are deleted. Addresses become ready endpoints,
not-ready addresses not-ready ones, one set of slices per address family and port set, at
most 100 endpoints a slice and 1000 addresses a subset. Slices are owned by the Endpoints.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from k8sbridge.devkube.controllers import base, endpointplan, endpointslice
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject, key_of, split_key
from k8sbridge.devkube.controllers.workqueue import WorkQueue

MANAGED_BY = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
MAX_ADDRESSES_PER_SUBSET = 1000

Desired = dict[str, dict[endpointplan.PortKey, list[RawObject]]]  # family → port set → eps


def mirrored(endpoints: RawObject) -> Desired:
    """The endpoints of each family and port set that mirror ``endpoints``' subsets."""
    out: Desired = {}
    for subset in endpoints.get("subsets") or []:
        key = tuple((str(p.get("name") or ""), int(p.get("port") or 0),
                     str(p.get("protocol") or "TCP"), str(p.get("appProtocol") or ""))
                    for p in subset.get("ports") or [])
        count = 0
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(field) or []:
                if count >= MAX_ADDRESSES_PER_SUBSET:
                    break
                try:
                    family = "IPv6" if ipaddress.ip_address(
                        str(address.get("ip"))).version == 6 else "IPv4"
                except ValueError:
                    continue
                ep: RawObject = {"addresses": [address["ip"]], "conditions": {"ready": ready}}
                for name in ("targetRef", "nodeName", "hostname"):
                    if address.get(name):
                        ep[name] = address[name]
                out.setdefault(family, {}).setdefault(key, []).append(ep)
                count += 1
    return out


def owner_of(endpoints: RawObject, family: str) -> endpointplan.SliceOwner:
    m = endpoints.get("metadata") or {}
    labels = {k: v for k, v in (m.get("labels") or {}).items()
              if k not in endpointplan.RESERVED_LABELS and k != SKIP_MIRROR}
    labels[endpointplan.SERVICE_NAME_LABEL] = str(m.get("name"))
    labels[endpointplan.MANAGED_BY_LABEL] = MANAGED_BY
    owner: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints", "name": m.get("name"),
                             "uid": m.get("uid"), "controller": True,
                             "blockOwnerDeletion": True}
    return endpointplan.SliceOwner(name=str(m.get("name")), namespace=str(m.get("namespace")),
                                   labels=labels, owner=owner, address_type=family,
                                   placeholder=False)


class EndpointSliceMirroringController:
    def __init__(self, *, client: api.ApiClient, services: Informer, endpoints: Informer,
                 slices: Informer) -> None:
        self.client = client
        self.services = services
        self.endpoints = endpoints
        self.slices = slices
        self.queue = WorkQueue(name="endpointslicemirroring")
        services.add_handler(self._on_object)
        endpoints.add_handler(self._on_object)
        slices.add_handler(self._on_slice)

    def _on_object(self, old: RawObject | None, new: RawObject | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _on_slice(self, old: RawObject | None, new: RawObject | None) -> None:
        meta = ((new if new is not None else old) or {}).get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(endpointplan.MANAGED_BY_LABEL) == MANAGED_BY and labels.get(
                endpointplan.SERVICE_NAME_LABEL):
            self.queue.add(ObjectKey(f"{meta.get('namespace')}/"
                                     f"{labels[endpointplan.SERVICE_NAME_LABEL]}"))

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.services, self.endpoints, self.slices])
        finally:
            self.queue.close()

    def _mirrored_slices(self, ns: str, name: str) -> list[RawObject]:
        return [s for s in self.slices.items(ns)
                if ((s.get("metadata") or {}).get("labels") or {}).get(
                    endpointplan.SERVICE_NAME_LABEL) == name
                and ((s.get("metadata") or {}).get("labels") or {}).get(
                    endpointplan.MANAGED_BY_LABEL) == MANAGED_BY]

    async def sync(self, key: ObjectKey) -> float | None:
        ns, name = split_key(key)
        existing = self._mirrored_slices(ns or "", name)
        endpoints = self.endpoints.get(key)
        service = self.services.get(key)
        wanted: Desired = {}
        if endpoints is not None and service is not None and (
                service.get("spec") or {}).get("selector") is None and (
                (endpoints.get("metadata") or {}).get("labels") or {}).get(
                SKIP_MIRROR) != "true":
            wanted = mirrored(endpoints)
        for family in ("IPv4", "IPv6"):
            mine = [s for s in existing if s.get("addressType") == family]
            if endpoints is None or (not wanted.get(family) and not mine):
                continue
            plan = endpointplan.plan_slices(owner_of(endpoints, family),
                                            wanted.get(family, {}), mine)
            await endpointslice.apply(self.client, self.slices, plan)
        if endpoints is None and existing:
            await endpointslice.apply(self.client, self.slices,
                                      endpointplan.SlicePlan(delete=existing))
        return None

