"""The Job controller: run a Job's pods to ``completions`` or to failure, as the real one does.

The decisions are ``jobplan.plan`` (pure); this module reads the caches, applies a plan (status
first, then finalizers, deletions and creations) and plans again until nothing is left to do in
this sync, so a finished pod is counted and released in one pass. Pods carry the
``batch.kubernetes.io/job-tracking`` finalizer until counted; pods left with it by a deleted Job
are released here too, so the garbage collector's cascade can remove them.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable
from typing import Any

from k8sbridge.devkube.controllers import base, errors, jobplan
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.events import EventRecorder
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import (
    ObjectKey,
    RawObject,
    controller_ref,
    copy_json,
    key_of,
    owner_key,
    split_key,
    uid_of,
)
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]
MAX_PASSES = 4
CONCURRENT_SYNCS = 5  # kube-controller-manager's --concurrent-job-syncs default


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def pod_from_template(job: RawObject, index: int | None, *, failures: int = 0) -> RawObject:
    """The pod a Job creates: its template, the tracking finalizer, a controller reference; an
    Indexed Job's pod also gets its index (annotation, label, ``JOB_COMPLETION_INDEX``) and the
    hostname ``<job>-<index>``."""
    m = job.get("metadata") or {}
    name = str(m.get("name"))
    template = copy_json((job.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    spec: dict[str, Any] = template.get("spec") or {}
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    meta: dict[str, Any] = {
        "generateName": f"{name}-", "namespace": m.get("namespace"),
        "finalizers": [*(tmeta.get("finalizers") or []), jobplan.TRACKING_FINALIZER],
        "ownerReferences": [base.owner_reference(job, api_version="batch/v1", kind="Job")],
    }
    if index is not None:
        meta["generateName"] = f"{name}-{index}-"
        labels[jobplan.INDEX_KEY] = str(index)
        annotations[jobplan.INDEX_KEY] = str(index)
        if (job.get("spec") or {}).get("backoffLimitPerIndex") is not None:
            annotations[jobplan.INDEX_FAILURES_KEY] = str(failures)
        spec.setdefault("hostname", f"{name}-{index}")
        env_var = {"name": jobplan.INDEX_ENV, "valueFrom": {"fieldRef": {
            "apiVersion": "v1",
            "fieldPath": f"metadata.annotations['{jobplan.INDEX_KEY}']"}}}
        for group in ("initContainers", "containers"):
            for container in spec.get(group) or []:
                env = container.setdefault("env", [])
                if not any(e.get("name") == jobplan.INDEX_ENV for e in env):
                    env.append(dict(env_var))
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


class JobController:
    def __init__(self, *, client: api.ApiClient, pods: Informer, jobs: Informer,
                 recorder: EventRecorder | None = None, clock: Clock = _now,
                 backoff_base: float = jobplan.BACKOFF_BASE) -> None:
        self.client = client
        self.pods = pods
        self.jobs = jobs
        self.recorder = recorder
        self.clock = clock
        self.backoff_base = backoff_base
        self.queue = WorkQueue(name="job")
        pods.add_handler(self._on_pod)
        jobs.add_handler(self._on_job)

    def _on_job(self, old: RawObject | None, new: RawObject | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _on_pod(self, old: RawObject | None, new: RawObject | None) -> None:
        for obj in (old, new):
            key = owner_key(obj, "Job")
            if key is not None:
                self.queue.add(key)

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.pods, self.jobs], workers=CONCURRENT_SYNCS)
        finally:
            self.queue.close()

    async def sync(self, key: ObjectKey) -> float | None:
        job = self.jobs.get(key)
        if job is None:
            await self._release_orphans(key)
            return None
        if (job.get("metadata") or {}).get("deletionTimestamp"):
            for pod in self.pods.controlled_by(uid_of(job)):  # being deleted: let them go
                await self._release(pod)
            return None
        requeue: float | None = None
        for _ in range(MAX_PASSES):
            pods = self.pods.controlled_by(uid_of(job))
            step = jobplan.plan(job, pods, now=self.clock(), backoff_base=self.backoff_base)
            requeue = step.requeue
            if step.status != (job.get("status") or {}):
                written = await self._write_status(job, step.status)
                if written is None:
                    return None
                job = written
            for reason, message, warning in step.events:
                self._event(job, reason, message, warning=warning)
            if not (step.release or step.delete or step.create):
                break
            for pod in step.release:
                await self._release(pod)
            for pod in step.delete:
                await self._delete(job, pod)
            await self._create(job, step.create, step.index_failures)
        return requeue

    async def _write_status(self, job: RawObject, status: dict[str, Any]) -> RawObject | None:
        def mutate(obj: RawObject) -> bool:
            if obj.get("status") == status:
                return False
            obj["status"] = copy_json(status)
            return True

        try:
            reply = await base.update(client=self.client, resource=api.JOBS, informer=self.jobs,
                                      current=job, mutate=mutate, subresource="status")
        except errors.NotFound:
            return None
        if reply is None:
            return job
        reply.setdefault("kind", "Job")
        reply.setdefault("apiVersion", "batch/v1")
        return reply

    async def _release(self, pod: RawObject) -> None:
        """Remove the tracking finalizer (a JSON patch tested against the current list)."""
        m = pod.get("metadata") or {}
        finalizers = list(m.get("finalizers") or [])
        if jobplan.TRACKING_FINALIZER not in finalizers:
            return
        at = finalizers.index(jobplan.TRACKING_FINALIZER)
        body = [{"op": "test", "path": f"/metadata/finalizers/{at}",
                 "value": jobplan.TRACKING_FINALIZER},
                {"op": "remove", "path": f"/metadata/finalizers/{at}"}]
        try:
            reply = await self.client.patch(api.PODS, namespace=m.get("namespace"),
                                            name=str(m.get("name")), body=body,
                                            content_type="application/json-patch+json")
        except errors.NotFound:
            self.pods.remove(pod)
            return
        except errors.Invalid:
            return  # the list changed meanwhile (the test failed); the next sync sees it
        if (reply.get("metadata") or {}).get("deletionTimestamp") and not (
                reply.get("metadata") or {}).get("finalizers") and not int(
                (reply.get("metadata") or {}).get("deletionGracePeriodSeconds") or 0):
            self.pods.remove(pod)
        else:
            self.pods.upsert(reply)

    async def _release_orphans(self, key: ObjectKey) -> None:
        """Pods a deleted Job left with the tracking finalizer."""
        ns, name = split_key(key)
        for pod in self.pods.items(ns or ""):
            ref = controller_ref(pod)
            if ref is not None and ref.get("kind") == "Job" and ref.get("name") == name:
                await self._release(pod)

    async def _delete(self, job: RawObject, pod: RawObject) -> None:
        m = pod.get("metadata") or {}
        try:
            reply = await self.client.delete(api.PODS, namespace=m.get("namespace"),
                                             name=str(m.get("name")), uid=str(m.get("uid")))
        except errors.NotFound:
            self.pods.remove(pod)
            return
        except errors.Conflict:
            return
        self._event(job, "SuccessfulDelete", f"Deleted pod: {m.get('name')}")
        if reply is not None:
            self.pods.upsert(reply)
        else:
            self.pods.remove(pod)

    async def _create(self, job: RawObject, indexes: list[int | None],
                      failures: dict[int, int]) -> None:
        """Create pods in slow-start batches (1, 2, 4, ...) that stop at the first error."""
        ns = (job.get("metadata") or {}).get("namespace")
        batch = 1
        while indexes:
            now, indexes = indexes[:batch], indexes[batch:]
            results = await asyncio.gather(
                *(self.client.create(api.PODS, pod_from_template(
                    job, i, failures=failures.get(i, 0) if i is not None else 0), namespace=ns)
                  for i in now), return_exceptions=True)
            failure: BaseException | None = None
            for result in results:
                if isinstance(result, BaseException):
                    failure = failure or result
                    continue
                result.setdefault("kind", "Pod")
                result.setdefault("apiVersion", "v1")
                self.pods.upsert(result)
                self._event(job, "SuccessfulCreate",
                            f"Created pod: {result['metadata'].get('name')}")
            if failure is not None:
                self._event(job, "FailedCreate", f"Error creating: {failure}", warning=True)
                if isinstance(failure, errors.ControllerError):
                    raise failure
                raise errors.ControllerError(f"creating pods: {failure!r}") from failure
            batch *= 2

    def _event(self, job: RawObject, reason: str, message: str, *,
               warning: bool = False) -> None:
        if self.recorder is not None:
            job.setdefault("kind", "Job")
            job.setdefault("apiVersion", "batch/v1")
            self.recorder.record(job, reason=reason, message=message,
                                 type_="Warning" if warning else "Normal")
