"""The Endpoints controller: the ``v1`` Endpoints of every Service with a selector, as
kube-controller-manager's endpoint controller keeps them.

Same triggers as the EndpointSlice controller (the Service, the pods it selects, its Endpoints
object). The subsets are ``endpointplan.desired_subsets`` (pure). A Service without a selector
keeps the Endpoints its user writes; a deleted Service's Endpoints are deleted.
"""

from __future__ import annotations

import asyncio
from typing import Any

from k8sbridge.devkube.controllers import base, endpointplan, errors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.endpointslice import services_selecting
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject, copy_json, key_of, split_key
from k8sbridge.devkube.controllers.workqueue import WorkQueue


def endpoints_labels(service: RawObject) -> dict[str, str]:
    labels = dict((service.get("metadata") or {}).get("labels") or {})
    if endpointplan.is_headless(service):
        labels[endpointplan.HEADLESS_LABEL] = ""
    else:
        labels.pop(endpointplan.HEADLESS_LABEL, None)
    return labels


class EndpointsController:
    def __init__(self, *, client: api.ApiClient, services: Informer, pods: Informer,
                 endpoints: Informer,
                 batch_seconds: float = endpointplan.POD_BATCH_SECONDS) -> None:
        """``batch_seconds``: pod changes within this long are handled in one sync (as
        kube-controller-manager's ``--endpoint[slice]-updates-batch-period``)."""
        self.client = client
        self.services = services
        self.pods = pods
        self.endpoints = endpoints
        self.batch_seconds = batch_seconds
        self.queue = WorkQueue(name="endpoints")
        services.add_handler(self._on_service)
        endpoints.add_handler(self._on_endpoints)
        pods.add_handler(self._on_pod)

    def _on_service(self, old: RawObject | None, new: RawObject | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _on_endpoints(self, old: RawObject | None, new: RawObject | None) -> None:
        """Only a deletion matters (onEndpointsDelete): the Service's Endpoints come back."""
        if old is not None and new is None:
            self.queue.add(key_of(old))

    def _on_pod(self, old: RawObject | None, new: RawObject | None) -> None:
        for key in {*services_selecting(self.services, old),
                    *services_selecting(self.services, new)}:
            self.queue.add_after(key, self.batch_seconds)

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.services, self.pods, self.endpoints])
        finally:
            self.queue.close()

    async def sync(self, key: ObjectKey) -> float | None:
        ns, name = split_key(key)
        service = self.services.get(key)
        current = self.endpoints.get(key)
        if service is None:
            if current is not None:
                try:
                    await self.client.delete(api.ENDPOINTS, namespace=ns, name=name,
                                             uid=str((current.get("metadata") or {}).get("uid")))
                except (errors.NotFound, errors.Conflict):
                    pass
                self.endpoints.remove(current)
            return None
        selector = endpointplan.selector_of(service)
        if selector is None or (service.get("metadata") or {}).get("deletionTimestamp"):
            return None
        pods = [p for p in self.pods.items(ns or "") if endpointplan.selects(selector, p)]
        subsets, truncated = endpointplan.desired_subsets(service, pods)
        labels = endpoints_labels(service)
        annotations: dict[str, Any] = dict(
            ((current or {}).get("metadata") or {}).get("annotations") or {})
        if truncated:
            annotations[endpointplan.OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(endpointplan.OVER_CAPACITY, None)
        if current is None:
            meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels}
            if annotations:
                meta["annotations"] = annotations
            body: RawObject = {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta,
                               "subsets": subsets}
            try:
                reply = await self.client.create(api.ENDPOINTS, body, namespace=ns)
            except errors.AlreadyExists:
                return 0.05  # not in the cache yet: sync again once it is
        else:
            m = current.get("metadata") or {}
            if (current.get("subsets") or []) == subsets and (m.get("labels") or {}) == labels \
                    and (m.get("annotations") or {}) == annotations:
                return None
            body = copy_json(current)
            body["subsets"] = subsets
            body["metadata"]["labels"] = labels
            body["metadata"]["annotations"] = annotations
            try:
                reply = await self.client.replace(api.ENDPOINTS, body)
            except errors.NotFound:
                return 0.05
        reply.setdefault("kind", "Endpoints")
        reply.setdefault("apiVersion", "v1")
        self.endpoints.upsert(reply)
        return None
