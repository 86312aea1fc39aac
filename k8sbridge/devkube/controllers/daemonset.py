"""The DaemonSet controller: one pod per eligible Node, as the real one.

Each sync makes sure the set's template has a ControllerRevision, asks ``daemonplan.plan``
(pure) which nodes need a pod and which pods must go, does it, and writes the status counters.
Node changes (added, removed, relabelled, tainted) queue every DaemonSet; pod changes queue
their owner. Pods are pinned to their node through required node affinity, so whatever
scheduler runs (the bridge's, or a kubelet's) binds them there.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from k8sbridge.devkube.controllers import (
    base,
    claiming,
    daemonplan,
    errors,
    history,
    revisions,
    selectors,
)
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.events import EventRecorder
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import (
    ObjectKey,
    RawObject,
    controller_ref,
    copy_json,
    key_of,
    owner_key,
    uid_of,
)
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)
KIND = "DaemonSet"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def pod_for(ds: RawObject, node: str, *, hash_: str) -> RawObject:
    meta = ds.get("metadata") or {}
    template = copy_json((ds.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels[revisions.REVISION_LABEL] = hash_
    labels[daemonplan.GENERATION_LABEL] = str(meta.get("generation") or 1)
    pod_meta: dict[str, Any] = {
        "generateName": f"{meta.get('name')}-", "namespace": meta.get("namespace"),
        "labels": labels,
        "ownerReferences": [base.owner_reference(ds, api_version="apps/v1", kind=KIND)],
    }
    for field in ("annotations", "finalizers"):
        if tmeta.get(field):
            pod_meta[field] = tmeta[field]
    spec: dict[str, Any] = template.get("spec") or {}
    daemonplan.pin(spec, node)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


class DaemonSetController:
    def __init__(self, *, client: api.ApiClient, pods: Informer, nodes: Informer,
                 daemonsets: Informer, revisions: Informer,
                 recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.pods = pods
        self.nodes = nodes
        self.daemonsets = daemonsets
        self.revisions = revisions
        self.recorder = recorder
        self.queue = WorkQueue(name="daemonset")
        pods.add_handler(self._on_pod)
        nodes.add_handler(self._on_node)
        daemonsets.add_handler(self._on_set)

    def _on_set(self, old: RawObject | None, new: RawObject | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _on_node(self, old: RawObject | None, new: RawObject | None) -> None:
        if old is not None and new is not None and old.get("spec") == new.get("spec") and \
                (old.get("metadata") or {}).get("labels") == (new.get("metadata") or {}).get(
                    "labels"):
            return  # a status heartbeat changes nothing a DaemonSet reads
        for ds in self.daemonsets.items():
            self.queue.add(key_of(ds))

    def _on_pod(self, old: RawObject | None, new: RawObject | None) -> None:
        for obj in (old, new):
            if obj is None:
                continue
            ns = (obj.get("metadata") or {}).get("namespace") or ""
            key = owner_key(obj, KIND)
            if key is not None:
                self.queue.add(key)
            elif obj is new and controller_ref(obj) is None and not podfacts.is_terminating(obj):
                labels = (obj.get("metadata") or {}).get("labels") or {}
                for ds in self.daemonsets.items(ns):  # a possible adoption
                    try:
                        sel = selectors.parse_selector((ds.get("spec") or {}).get("selector"))
                    except selectors.SelectorError:
                        continue
                    if sel.matches(labels):
                        self.queue.add(key_of(ds))

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.pods, self.nodes, self.daemonsets, self.revisions])
        finally:
            self.queue.close()

    async def sync(self, key: ObjectKey) -> float | None:
        ds = self.daemonsets.get(key)
        if ds is None or podfacts.is_terminating(ds):
            return None
        await claiming.adopt_orphans(self.client, self.pods, ds, kind=KIND)
        revision = await history.ensure(self.client, self.revisions, ds, kind=KIND)
        nodes = list(self.nodes.items())
        pods = self.pods.controlled_by(uid_of(ds))
        now = _now()
        plan = daemonplan.plan(ds, nodes, pods, hash_=revision.hash, now=now)
        for name in plan.delete:
            await self._delete(ds, name)
        for node in plan.create:
            await self._create(ds, pod_for(ds, node, hash_=revision.hash))
        pods = self.pods.controlled_by(uid_of(ds))
        await history.trim(self.client, self.revisions, ds, live={revision.name})
        await self._write_status(ds, daemonplan.status(ds, nodes, pods, hash_=revision.hash,
                                                       now=now))
        min_ready = float((ds.get("spec") or {}).get("minReadySeconds") or 0)
        waits = [w for p in pods if min_ready > 0 and (w := podfacts.available_in(
            p, min_ready_seconds=min_ready, now=now)) is not None and w > 0]
        return min(waits) + 0.05 if waits else None

    async def _create(self, ds: RawObject, pod: RawObject) -> None:
        ns = (ds.get("metadata") or {}).get("namespace")
        try:
            reply = await self.client.create(api.PODS, pod, namespace=ns)
        except errors.ControllerError as e:
            self._event(ds, "FailedCreate", f"Error creating: {e}", warning=True)
            raise
        reply.setdefault("kind", "Pod")
        reply.setdefault("apiVersion", "v1")
        self.pods.upsert(reply)
        self._event(ds, "SuccessfulCreate", f"Created pod: {reply['metadata'].get('name')}")

    async def _delete(self, ds: RawObject, name: str) -> None:
        ns = (ds.get("metadata") or {}).get("namespace")
        if not await claiming.delete_pod(self.client, self.pods, namespace=ns, name=name):
            return
        self._event(ds, "SuccessfulDelete", f"Deleted pod: {name}")

    def _event(self, ds: RawObject, reason: str, message: str, *,
               warning: bool = False) -> None:
        if self.recorder is not None:
            ds.setdefault("kind", KIND)
            ds.setdefault("apiVersion", "apps/v1")
            self.recorder.record(ds, reason=reason, message=message,
                                 type_="Warning" if warning else "Normal")

    async def _write_status(self, ds: RawObject, wanted: dict[str, Any]) -> None:
        optional = ("numberAvailable", "updatedNumberScheduled", "numberUnavailable")

        def mutate(obj: RawObject) -> bool:
            status = obj.setdefault("status", {})
            new = {k: v for k, v in status.items() if k not in optional}
            new.update(wanted)
            if new == status:
                return False
            obj["status"] = new
            return True

        try:
            await base.update(client=self.client, resource=api.DAEMONSETS,
                              informer=self.daemonsets, current=ds, mutate=mutate,
                              subresource="status")
        except errors.NotFound:
            log.debug("daemonset %s vanished before its status update", key_of(ds))
