"""The StatefulSet controller: stable, ordered pods ``<set>-<ordinal>``, as the real one.

Each sync makes sure the set's template has a ControllerRevision (the update revision), adopts
orphan pods that belong to it, asks ``statefulsetplan.plan`` (pure) what to create or delete,
does it, and writes the status counters. Pods change as the kubelet reports them, which queues
the set again, so an OrderedReady set advances one Ready pod at a time.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

from k8sbridge.devkube.controllers import base, claiming, errors, history
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers import statefulsetplan as plans
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
KIND = "StatefulSet"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class StatefulSetController:
    def __init__(self, *, client: api.ApiClient, pods: Informer, statefulsets: Informer,
                 revisions: Informer, recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.pods = pods
        self.statefulsets = statefulsets
        self.revisions = revisions
        self.recorder = recorder
        self.queue = WorkQueue(name="statefulset")
        pods.add_handler(self._on_pod)
        statefulsets.add_handler(self._on_set)

    def _on_set(self, old: RawObject | None, new: RawObject | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _on_pod(self, old: RawObject | None, new: RawObject | None) -> None:
        for obj in (old, new):
            if obj is None:
                continue
            ns = (obj.get("metadata") or {}).get("namespace") or ""
            key = owner_key(obj, KIND)
            if key is not None:
                self.queue.add(key)
            elif obj is new and controller_ref(obj) is None:
                for sts in self.statefulsets.items(ns):
                    if plans.ordinal_of(str(sts["metadata"]["name"]), obj) is not None:
                        self.queue.add(key_of(sts))

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.pods, self.statefulsets, self.revisions])
        finally:
            self.queue.close()

    async def sync(self, key: ObjectKey) -> float | None:
        sts = self.statefulsets.get(key)
        if sts is None or podfacts.is_terminating(sts):
            return None
        name = str(sts["metadata"]["name"])
        await claiming.adopt_orphans(self.client, self.pods, sts, kind=KIND,
                                     belongs=lambda pod: plans.ordinal_of(name, pod) is not None)
        update = await history.ensure(self.client, self.revisions, sts, kind=KIND)
        current = str((sts.get("status") or {}).get("currentRevision") or update.name)
        if history.template_of(self.revisions, sts, current) is None:
            current = update.name
        pods = self.pods.controlled_by(uid_of(sts))
        now = _now()
        plan = plans.plan(sts, pods, update_revision=update.name, now=now)
        for name in plan.delete:
            await self._delete(sts, name)
        for ordinal in plan.create:
            revision = current if ordinal in plan.at_current else update.name
            template = history.template_of(self.revisions, sts, revision) or copy_json(
                (sts.get("spec") or {}).get("template") or {})
            await self._create(sts, plans.pod_for(sts, ordinal, revision=revision,
                                                  template=template))
        pods = self.pods.controlled_by(uid_of(sts))
        status = plans.status(sts, pods, current_revision=current, update_revision=update.name,
                              now=now)
        await history.trim(self.client, self.revisions, sts,
                           live={status["currentRevision"], update.name,
                                 *(plans.revision_of(p) for p in pods)})
        await self._write_status(sts, status)
        return plans.next_wake(sts, pods, now=now)

    async def _create(self, sts: RawObject, pod: RawObject) -> None:
        ns = (sts.get("metadata") or {}).get("namespace")
        name = pod["metadata"]["name"]
        try:
            reply = await self.client.create(api.PODS, pod, namespace=ns)
        except errors.AlreadyExists:
            return  # the cache lags; the pod's notification queues the set again
        except errors.ControllerError as e:
            self._event(sts, "FailedCreate", f"create Pod {name} in StatefulSet "
                        f"{sts['metadata']['name']} failed error: {e}", warning=True)
            raise
        reply.setdefault("kind", "Pod")
        reply.setdefault("apiVersion", "v1")
        self.pods.upsert(reply)
        self._event(sts, "SuccessfulCreate",
                    f"create Pod {name} in StatefulSet {sts['metadata']['name']} successful")

    async def _delete(self, sts: RawObject, name: str) -> None:
        ns = (sts.get("metadata") or {}).get("namespace")
        if not await claiming.delete_pod(self.client, self.pods, namespace=ns, name=name):
            return
        self._event(sts, "SuccessfulDelete",
                    f"delete Pod {name} in StatefulSet {sts['metadata']['name']} successful")

    def _event(self, sts: RawObject, reason: str, message: str, *,
               warning: bool = False) -> None:
        if self.recorder is not None:
            sts.setdefault("kind", KIND)
            sts.setdefault("apiVersion", "apps/v1")
            self.recorder.record(sts, reason=reason, message=message,
                                 type_="Warning" if warning else "Normal")

    async def _write_status(self, sts: RawObject, wanted: dict[str, object]) -> None:
        def mutate(obj: RawObject) -> bool:
            status = obj.setdefault("status", {})
            if all(status.get(k) == v for k, v in wanted.items()):
                return False
            status.update(wanted)
            return True

        try:
            await base.update(client=self.client, resource=api.STATEFULSETS,
                              informer=self.statefulsets, current=sts, mutate=mutate,
                              subresource="status")
        except errors.NotFound:
            log.debug("statefulset %s vanished before its status update", key_of(sts))
