"""The CronJob controller: create a CronJob's Jobs on schedule, as kube-controller-manager's V2.

Each sync reconciles ``status.active`` with the Jobs the CronJob controls, records
``lastSuccessfulTime``, then (unless the CronJob is suspended or being deleted) starts the most
recent unmet schedule time if it is within ``startingDeadlineSeconds``, honouring
``concurrencyPolicy`` (Allow, Forbid: skip while one runs, Replace: delete the running ones),
trims finished Jobs to the history limits and asks to be woken for the next schedule time.
The clock is injectable, so unit tests drive schedules without waiting.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable
from typing import Any

from k8sbridge.devkube import cron
from k8sbridge.devkube.controllers import base, cronplan, errors, jobplan
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

Clock = Callable[[], datetime.datetime]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class CronJobController:
    def __init__(self, *, client: api.ApiClient, jobs: Informer, cronjobs: Informer,
                 recorder: EventRecorder | None = None, clock: Clock = _now) -> None:
        self.client = client
        self.jobs = jobs
        self.cronjobs = cronjobs
        self.recorder = recorder
        self.clock = clock
        self.queue = WorkQueue(name="cronjob")
        self._unexpected: set[str] = set()  # job UIDs already reported as UnexpectedJob
        jobs.add_handler(self._on_job)
        cronjobs.add_handler(self._on_cronjob)

    def _on_cronjob(self, old: RawObject | None, new: RawObject | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _on_job(self, old: RawObject | None, new: RawObject | None) -> None:
        for obj in (old, new):
            key = owner_key(obj, "CronJob")
            if key is not None:
                self.queue.add(key)

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.jobs, self.cronjobs])
        finally:
            self.queue.close()

    async def sync(self, key: ObjectKey) -> float | None:
        cronjob = self.cronjobs.get(key)
        if cronjob is None:
            return None
        cronjob = copy_json(cronjob)
        original = copy_json(cronjob.get("status") or {})
        jobs = self.jobs.controlled_by(uid_of(cronjob))
        again = await self._schedule(cronjob, jobs)
        if (cronjob.get("status") or {}) != original:
            status = cronjob.get("status") or {}

            def mutate(obj: RawObject) -> bool:
                if obj.get("status") == status:
                    return False
                obj["status"] = copy_json(status)
                return True

            try:
                await base.update(client=self.client, resource=api.CRONJOBS,
                                  informer=self.cronjobs, current=self.cronjobs.get(key) or
                                  cronjob, mutate=mutate, subresource="status")
            except errors.NotFound:
                return None
        for job in cronplan.to_clean_up(cronjob, jobs):
            await self._delete_job(cronjob, job, reason="SuccessfulDelete")
        return again

    def _reconcile_active(self, cronjob: RawObject, jobs: list[RawObject]) -> None:
        status = cronjob.setdefault("status", {})
        active: list[dict[str, Any]] = list(status.get("active") or [])
        uids = {str(ref.get("uid")) for ref in active}
        children = {str(uid_of(j)) for j in jobs}
        for job in jobs:
            uid = str(uid_of(job))
            finished = jobplan.is_finished(job)
            if uid not in uids and not finished and uid not in self._unexpected:
                self._unexpected.add(uid)
                self._event(cronjob, "UnexpectedJob", "Saw a job that the controller did not "
                            f"create or forgot: {(job.get('metadata') or {}).get('name')}",
                            warning=True)
            elif uid in uids and finished:
                active = [r for r in active if str(r.get("uid")) != uid]
                condition = "Complete" if jobplan.has_condition(job, "Complete") else "Failed"
                self._event(cronjob, "SawCompletedJob", "Saw completed job: "
                            f"{(job.get('metadata') or {}).get('name')}, condition: {condition}")
            if jobplan.has_condition(job, "Complete"):
                done = podfacts.parse_time((job.get("status") or {}).get("completionTime"))
                last = podfacts.parse_time(status.get("lastSuccessfulTime"))
                if done is not None and (last is None or done > last):
                    status["lastSuccessfulTime"] = podfacts.format_time(done)
        for ref in list(active):
            if str(ref.get("uid")) not in children:
                self._event(cronjob, "MissingJob", f"Active job went missing: {ref.get('name')}")
                active.remove(ref)
        if active:
            status["active"] = active
        else:
            status.pop("active", None)

    async def _schedule(self, cronjob: RawObject, jobs: list[RawObject]) -> float | None:
        """syncCronJob: edits ``cronjob["status"]``; returns when to look again."""
        self._reconcile_active(cronjob, jobs)
        spec = cronjob.get("spec") or {}
        status = cronjob["status"]
        if podfacts.is_terminating(cronjob) or spec.get("suspend"):
            return None
        try:
            schedule = cronplan.schedule_of(cronjob)
        except cron.CronError as e:
            self._event(cronjob, "UnparseableSchedule",
                        f'unparseable schedule: "{spec.get("schedule")}" : {e}', warning=True)
            return None
        now = self.clock()
        try:
            recent = cronplan.most_recent(cronjob, schedule, now=now, with_deadline=True)
        except ValueError as e:
            self._event(cronjob, "InvalidSchedule",
                        f"invalid schedule: {spec.get('schedule')} : {e}", warning=True)
            return None
        if recent.missed > cronplan.TOO_MANY_MISSED:
            self._event(cronjob, "TooManyMissedTimes", f"too many missed start times: "
                        f"{recent.missed}. Set or decrease .spec.startingDeadlineSeconds or "
                        "check clock skew", warning=True)
        scheduled = recent.most_recent
        again = cronplan.next_in(cronjob, schedule, now=now)
        if scheduled is None:
            return again
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + datetime.timedelta(
                seconds=int(deadline)) < now:
            self._event(cronjob, "MissSchedule", "Missed scheduled time to start a job: "
                        + scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000"), warning=True)
            return again
        name = cronplan.job_name(cronjob, scheduled)
        if any(r.get("name") == name for r in status.get("active") or []) or \
                status.get("lastScheduleTime") == podfacts.format_time(scheduled):
            return again
        if spec.get("concurrencyPolicy") == "Forbid" and status.get("active"):
            self._event(cronjob, "JobAlreadyActive", "Not starting job because prior execution "
                        "is running and concurrency policy is Forbid")
            return again
        if spec.get("concurrencyPolicy") == "Replace":
            for ref in list(status.get("active") or []):
                job = self.jobs.get(ObjectKey(f"{ref.get('namespace')}/{ref.get('name')}"))
                if job is not None:
                    await self._delete_job(cronjob, job, reason="SuccessfulDelete")
                status["active"] = [r for r in status.get("active") or [] if r is not ref]
        body = cronplan.job_from_template(cronjob, scheduled, schedule.location)
        ns = (cronjob.get("metadata") or {}).get("namespace")
        try:
            created = await self.client.create(api.JOBS, body, namespace=ns)
        except errors.AlreadyExists:
            created = await self.client.get(api.JOBS, namespace=ns, name=name)
            if (controller_ref(created) or {}).get("uid") != uid_of(cronjob):
                return again
            if any(r.get("uid") == uid_of(created) for r in status.get("active") or []):
                return again
        except errors.ControllerError as e:
            self._event(cronjob, "FailedCreate", f"Error creating job: {e}", warning=True)
            raise
        else:
            self._event(cronjob, "SuccessfulCreate", f"Created job {name}")
        created.setdefault("kind", "Job")
        created.setdefault("apiVersion", "batch/v1")
        self.jobs.upsert(created)
        status["active"] = [*(status.get("active") or []), cronplan.job_reference(created)]
        status["lastScheduleTime"] = podfacts.format_time(scheduled)
        return cronplan.next_in(cronjob, schedule, now=now)

    async def _delete_job(self, cronjob: RawObject, job: RawObject, *, reason: str) -> None:
        m = job.get("metadata") or {}
        try:
            await self.client.delete(api.JOBS, namespace=m.get("namespace"),
                                     name=str(m.get("name")), uid=str(m.get("uid")),
                                     propagation="Background")
        except (errors.NotFound, errors.Conflict):
            return
        self.jobs.remove(job)
        self._event(cronjob, reason, f"Deleted job {m.get('name')}")

    def _event(self, cronjob: RawObject, reason: str, message: str, *,
               warning: bool = False) -> None:
        if self.recorder is not None:
            cronjob.setdefault("kind", "CronJob")
            cronjob.setdefault("apiVersion", "batch/v1")
            self.recorder.record(cronjob, reason=reason, message=message,
                                 type_="Warning" if warning else "Normal")
