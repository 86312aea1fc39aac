"""The EndpointSlice controller: the slices of every Service with a selector, as
kube-controller-manager's ``endpointslice-controller.k8s.io`` keeps them.

A Service is synced when it changes, when a pod it selects (before or after the change)
changes, and when one of its managed slices changes behind the controller's back. The plan is
``endpointplan.plan_slices`` (pure); this module reads the caches and writes the plan. Slices
carry a controller reference to their Service, so the garbage collector removes them with it.
Services without a selector are left alone (their slices, if any, are someone else's).
"""

from __future__ import annotations

import asyncio
import logging

from k8sbridge.devkube.controllers import base, endpointplan, errors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject, key_of, split_key
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)


def services_selecting(services: Informer, pod: RawObject | None) -> list[ObjectKey]:
    """Keys of the Services (same namespace) whose selector matches ``pod``."""
    if pod is None:
        return []
    ns = (pod.get("metadata") or {}).get("namespace") or ""
    found = []
    for svc in services.items(ns):
        selector = endpointplan.selector_of(svc)
        if selector is not None and endpointplan.selects(selector, pod):
            found.append(key_of(svc))
    return found


def zones_of(nodes: Informer | None) -> dict[str, str]:
    if nodes is None:
        return {}
    zones = {}
    for node in nodes:
        m = node.get("metadata") or {}
        zone = (m.get("labels") or {}).get(endpointplan.ZONE_LABEL)
        if zone:
            zones[str(m.get("name"))] = str(zone)
    return zones


async def apply(client: api.ApiClient, slices: Informer, plan: endpointplan.SlicePlan) -> None:
    """Write a slice plan (updates, creations, deletions), keeping ``slices`` current."""
    for body in plan.update:
        try:
            reply = await client.replace(api.ENDPOINTSLICES, body)
        except errors.NotFound:
            continue  # deleted meanwhile: the slice watch queues the owner again
        _remember(slices, reply)
    for body in plan.create:
        _remember(slices, await client.create(
            api.ENDPOINTSLICES, body, namespace=(body.get("metadata") or {}).get("namespace")))
    for old in plan.delete:
        m = old.get("metadata") or {}
        try:
            await client.delete(api.ENDPOINTSLICES, namespace=m.get("namespace"),
                                name=str(m["name"]), uid=str(m.get("uid")))
        except (errors.NotFound, errors.Conflict):
            pass
        slices.remove(old)


def _remember(slices: Informer, reply: RawObject) -> None:
    reply.setdefault("kind", "EndpointSlice")
    reply.setdefault("apiVersion", "discovery.k8s.io/v1")
    slices.upsert(reply)


class EndpointSliceController:
    def __init__(self, *, client: api.ApiClient, services: Informer, pods: Informer,
                 slices: Informer, nodes: Informer | None = None,
                 batch_seconds: float = endpointplan.POD_BATCH_SECONDS) -> None:
        """``batch_seconds``: pod changes within this long are handled in one sync (as
        kube-controller-manager's ``--endpoint[slice]-updates-batch-period``)."""
        self.client = client
        self.services = services
        self.pods = pods
        self.slices = slices
        self.nodes = nodes
        self.batch_seconds = batch_seconds
        self.queue = WorkQueue(name="endpointslice")
        services.add_handler(self._on_service)
        pods.add_handler(self._on_pod)
        slices.add_handler(self._on_slice)

    def _on_service(self, old: RawObject | None, new: RawObject | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _on_pod(self, old: RawObject | None, new: RawObject | None) -> None:
        for key in {*services_selecting(self.services, old),
                    *services_selecting(self.services, new)}:
            self.queue.add_after(key, self.batch_seconds)

    def _on_slice(self, old: RawObject | None, new: RawObject | None) -> None:
        obj = new if new is not None else old
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        if labels.get(endpointplan.MANAGED_BY_LABEL) != endpointplan.MANAGED_BY:
            return
        name = labels.get(endpointplan.SERVICE_NAME_LABEL)
        ns = ((obj or {}).get("metadata") or {}).get("namespace")
        if name and ns:
            self.queue.add(ObjectKey(f"{ns}/{name}"))

    async def run(self, *, stop: asyncio.Event) -> None:
        informers = [self.services, self.pods, self.slices]
        if self.nodes is not None:
            informers.append(self.nodes)
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop, informers=informers)
        finally:
            self.queue.close()

    def _managed_slices(self, ns: str, name: str) -> list[RawObject]:
        return [s for s in self.slices.items(ns)
                if ((s.get("metadata") or {}).get("labels") or {}).get(
                    endpointplan.SERVICE_NAME_LABEL) == name
                and ((s.get("metadata") or {}).get("labels") or {}).get(
                    endpointplan.MANAGED_BY_LABEL) == endpointplan.MANAGED_BY]

    async def sync(self, key: ObjectKey) -> float | None:
        service = self.services.get(key)
        if service is None or (service.get("metadata") or {}).get("deletionTimestamp"):
            return None  # the garbage collector removes the slices it owns
        selector = endpointplan.selector_of(service)
        if selector is None:
            return None
        ns, name = split_key(key)
        pods = [p for p in self.pods.items(ns or "") if endpointplan.selects(selector, p)]
        zones = zones_of(self.nodes)
        existing = self._managed_slices(ns or "", name)
        wanted = endpointplan.families(service)
        for family in wanted:
            desired = endpointplan.desired_endpoints(service, pods, zones, family=family)
            mine = [s for s in existing if s.get("addressType") == family]
            if family != wanted[0] and not desired and not mine:
                continue  # the placeholder is the primary family's
            plan = endpointplan.plan_slices(endpointplan.for_service(service, family), desired,
                                            mine)
            await apply(self.client, self.slices, plan)
        stale = [s for s in existing if s.get("addressType") not in wanted]
        if stale:
            await apply(self.client, self.slices, endpointplan.SlicePlan(delete=stale))
        return None

