"""The TTL-after-finished controller: delete finished Jobs ``ttlSecondsAfterFinished`` later.

As kube-controller-manager's: the clock starts at the ``Complete`` or ``Failed`` condition's
``lastTransitionTime``; the Job is deleted with ``propagationPolicy: Foreground`` (its pods go
first) and a UID precondition, so a Job re-created under the same name is never hit.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable

from k8sbridge.devkube.controllers import base, errors, jobplan
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject, key_of
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def expires_in(job: RawObject, *, now: datetime.datetime) -> float | None:
    """Seconds until ``job`` expires (0: now), or None if it has no TTL or is not finished."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or podfacts.is_terminating(job):
        return None
    finished: datetime.datetime | None = None
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            finished = podfacts.parse_time(cond.get("lastTransitionTime"))
    if finished is None:
        return None
    return max(0.0, (finished + datetime.timedelta(seconds=int(ttl)) - now).total_seconds())


class TTLAfterFinishedController:
    def __init__(self, *, client: api.ApiClient, jobs: Informer, clock: Clock = _now) -> None:
        self.client = client
        self.jobs = jobs
        self.clock = clock
        self.queue = WorkQueue(name="ttlafterfinished")
        jobs.add_handler(self._on_job)

    def _on_job(self, old: RawObject | None, new: RawObject | None) -> None:
        if new is not None and jobplan.is_finished(new) and (new.get("spec") or {}).get(
                "ttlSecondsAfterFinished") is not None:
            self.queue.add(key_of(new))

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop, informers=[self.jobs])
        finally:
            self.queue.close()

    async def sync(self, key: ObjectKey) -> float | None:
        job = self.jobs.get(key)
        if job is None:
            return None
        left = expires_in(job, now=self.clock())
        if left is None:
            return None
        if left > 0:
            return left
        m = job.get("metadata") or {}
        try:
            await self.client.delete(api.JOBS, namespace=m.get("namespace"),
                                     name=str(m.get("name")), uid=str(m.get("uid")),
                                     propagation="Foreground")
        except (errors.NotFound, errors.Conflict):
            return None
        log.info("deleted job %s: its TTL after finishing expired", key)
        return None
