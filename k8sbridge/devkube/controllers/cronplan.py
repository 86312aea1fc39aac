"""What the CronJob controller decides for one CronJob at a given time (pure, clock given).

kube-controller-manager's cronjob controller (ControllerV2) reduced to functions: the most recent
unmet schedule time (``mostRecentScheduleTime``, with the "too many missed start times" rule at
100 and ``startingDeadlineSeconds``), when to look again, the Job a schedule time makes (named
``<cronjob>-<minutes since the epoch>``, so a restart never creates it twice) and which finished
Jobs exceed the history limits.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from k8sbridge.devkube import cron
from k8sbridge.devkube.controllers import base, jobplan
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.raw import RawObject, copy_json

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100
NEXT_SCHEDULE_DELTA = 0.1  # seconds after the schedule time the controller looks again


@dataclasses.dataclass(frozen=True, slots=True)
class Recent:
    earliest: datetime.datetime
    most_recent: datetime.datetime | None
    missed: int  # 0: none; the estimated number of missed start times otherwise


def schedule_of(cronjob: RawObject) -> cron.Schedule:
    """formatSchedule + ParseStandard: ``spec.timeZone`` becomes the schedule's location."""
    spec = cronjob.get("spec") or {}
    text = str(spec.get("schedule") or "")
    time_zone = spec.get("timeZone")
    if time_zone and "TZ" not in text:
        text = f"TZ={time_zone} {text}"
    return cron.parse(text)


def most_recent(cronjob: RawObject, schedule: cron.Schedule, *, now: datetime.datetime,
                with_deadline: bool) -> Recent:
    """mostRecentScheduleTime; ValueError when two schedule times are under 1 s apart (e.g.
    February 31st never comes)."""
    meta = cronjob.get("metadata") or {}
    spec = cronjob.get("spec") or {}
    earliest = podfacts.parse_time((cronjob.get("status") or {}).get("lastScheduleTime")) or \
        podfacts.parse_time(meta.get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if with_deadline and deadline is not None:
        earliest = max(earliest, now - datetime.timedelta(seconds=int(deadline)))
    t1 = schedule.next_after(earliest)
    if t1 is None or now < t1:
        return Recent(earliest, None, 0)
    t2 = schedule.next_after(t1)
    if t2 is None or now < t2:
        return Recent(earliest, t1, 0)
    between = round((t2 - t1).total_seconds())
    if between < 1:
        raise ValueError("time difference between two schedules is less than 1 second")
    missed = int((now - t1).total_seconds()) // between + 1
    found: datetime.datetime | None = None
    moment: datetime.datetime | None = schedule.next_after(
        t1 + datetime.timedelta(seconds=(missed - 2) * between))
    while moment is not None and moment <= now:
        found = moment
        moment = schedule.next_after(moment)
    return Recent(earliest, found, missed)


def next_in(cronjob: RawObject, schedule: cron.Schedule, *,
            now: datetime.datetime) -> float | None:
    """nextScheduleTimeDuration: seconds until the controller should look again."""
    try:
        recent = most_recent(cronjob, schedule, now=now, with_deadline=False)
    except ValueError:
        return None
    base_time = recent.most_recent or (recent.earliest if not recent.missed else now)
    following = schedule.next_after(base_time)
    if following is None:
        return None
    return max(0.0, (following - now).total_seconds()) + NEXT_SCHEDULE_DELTA


def job_name(cronjob: RawObject, scheduled: datetime.datetime) -> str:
    return f"{(cronjob.get('metadata') or {}).get('name')}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cronjob: RawObject, scheduled: datetime.datetime,
                      location: Any) -> RawObject:
    """getJobFromTemplate2: the template's labels, annotations and spec, a controller
    reference, and the scheduled time (in the CronJob's time zone) as an annotation."""
    meta = cronjob.get("metadata") or {}
    template = copy_json((cronjob.get("spec") or {}).get("jobTemplate") or {})
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    local = scheduled.astimezone(location) if location is not None else scheduled
    annotations[SCHEDULED_TIMESTAMP] = local.isoformat().replace("+00:00", "Z")
    job_meta: dict[str, Any] = {
        "name": job_name(cronjob, scheduled), "namespace": meta.get("namespace"),
        "annotations": annotations,
        "ownerReferences": [base.owner_reference(cronjob, api_version="batch/v1",
                                                 kind="CronJob")],
    }
    if tmeta.get("labels"):
        job_meta["labels"] = dict(tmeta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta,
            "spec": template.get("spec") or {}}


def job_reference(job: RawObject) -> dict[str, Any]:
    m = job.get("metadata") or {}
    return {"kind": "Job", "namespace": m.get("namespace"), "name": m.get("name"),
            "uid": m.get("uid"), "apiVersion": "batch/v1",
            "resourceVersion": m.get("resourceVersion")}


def to_clean_up(cronjob: RawObject, jobs: list[RawObject]) -> list[RawObject]:
    """Finished Jobs beyond ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit``, oldest
    first (by start time, then creation)."""
    spec = cronjob.get("spec") or {}
    out: list[RawObject] = []
    for condition, field in (("Complete", "successfulJobsHistoryLimit"),
                             ("Failed", "failedJobsHistoryLimit")):
        limit = spec.get(field)
        if limit is None:
            continue
        done = [j for j in jobs if jobplan.has_condition(j, condition)]
        done.sort(key=lambda j: (str((j.get("status") or {}).get("startTime") or ""),
                                 str((j.get("metadata") or {}).get("creationTimestamp") or "")))
        if len(done) > int(limit):
            out += done[:len(done) - int(limit)]
    return out
