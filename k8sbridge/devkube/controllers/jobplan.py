"""What the Job controller decides for one Job, from the Job and its pods (pure, clock given).

kube-controller-manager's job controller, reduced to a function: which pods to create (and with
which completion index), which active pods to delete, which pods' ``batch.kubernetes.io/
job-tracking`` finalizer to remove, the status to write and when to look again. Pods are
counted in two steps, as the real controller does: a finished pod's UID first goes into
``status.uncountedTerminatedPods`` (written before its finalizer is removed), and only once
its finalizer is gone does it move into ``succeeded``/``failed`` — so no pod is counted twice
or lost if the controller stops in between. The final ``Complete``/``Failed`` condition follows
``SuccessCriteriaMet``/``FailureTarget`` once no pod is left running and nothing is uncounted.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.raw import RawObject, copy_json

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"  # annotation and label
INDEX_ENV = "JOB_COMPLETION_INDEX"
INDEX_FAILURES_KEY = "batch.kubernetes.io/job-index-failure-count"  # annotation
BACKOFF_BASE = 10.0  # DefaultJobPodFailureBackOff
BACKOFF_MAX = 600.0  # MaxJobPodFailureBackOff
BURST = 500

BACKOFF_LIMIT = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE = ("DeadlineExceeded", "Job was active longer than specified deadline")
COMPLETIONS = ("CompletionsReached", "Reached expected number of succeeded pods")
MAX_FAILED_INDEXES = ("MaxFailedIndexesExceeded",
                      "Job has exceeded the specified maximal number of failed indexes")
FAILED_INDEXES = ("FailedIndexes", "Job has failed indexes")


@dataclasses.dataclass(slots=True)
class JobPlan:
    status: dict[str, Any]
    create: list[int | None] = dataclasses.field(default_factory=list)  # indexes (or None)
    delete: list[RawObject] = dataclasses.field(default_factory=list)
    release: list[RawObject] = dataclasses.field(default_factory=list)  # remove the finalizer
    requeue: float | None = None
    index_failures: dict[int, int] = dataclasses.field(default_factory=dict)  # of new pods
    events: list[tuple[str, str, bool]] = dataclasses.field(default_factory=list)


def has_condition(job: RawObject, kind: str) -> bool:
    return any(isinstance(c, dict) and c.get("type") == kind and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def is_finished(job: RawObject) -> bool:
    return has_condition(job, "Complete") or has_condition(job, "Failed")


def pod_index(pod: RawObject) -> int | None:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX_KEY)
    try:
        return int(str(raw)) if raw is not None else None
    except ValueError:
        return None


def index_failures(pod: RawObject) -> int:
    """How often the pod's index failed before it (backoffLimitPerIndex)."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX_FAILURES_KEY)
    try:
        return int(str(raw)) if raw is not None else 0
    except ValueError:
        return 0


def parse_indexes(text: Any) -> set[int]:
    """``"1,3-5"`` -> {1, 3, 4, 5} (status.completedIndexes)."""
    out: set[int] = set()
    for part in str(text or "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            out.update(range(int(low), int(high or low) + 1))
        except ValueError:
            continue
    return out


def format_indexes(indexes: set[int]) -> str:
    parts: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def _int(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int) else default


def _has_finalizer(pod: RawObject) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or [])


def finished_at(pod: RawObject) -> datetime.datetime | None:
    """When a finished pod stopped: its containers' latest finishedAt, else its conditions',
    else its creation."""
    stamps: list[datetime.datetime] = []
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        term = ((st or {}).get("state") or {}).get("terminated") or {}
        if (moment := podfacts.parse_time(term.get("finishedAt"))) is not None:
            stamps.append(moment)
    if not stamps:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if (moment := podfacts.parse_time((cond or {}).get("lastTransitionTime"))):
                stamps.append(moment)
    if not stamps:  # nothing reported how it ended: it ended no earlier than it was created
        return podfacts.parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
    return max(stamps)


def _exit_codes(pod: RawObject, container: str | None) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        term = ((st or {}).get("state") or {}).get("terminated") or {}
        if "exitCode" in term and (container is None or st.get("name") == container):
            out.append((str(st.get("name")), int(term["exitCode"])))
    return out


def failure_policy_match(job: RawObject, pod: RawObject) -> tuple[str, str] | None:
    """(action, message) of the first podFailurePolicy rule matching a failed pod, or None."""
    rules = (((job.get("spec") or {}).get("podFailurePolicy") or {}).get("rules")) or []
    meta = pod.get("metadata") or {}
    who = f"{meta.get('namespace')}/{meta.get('name')}"
    for i, rule in enumerate(rules):
        action = str(rule.get("action"))
        on_codes = rule.get("onExitCodes")
        if isinstance(on_codes, dict):
            values = set(on_codes.get("values") or [])
            for name, code in _exit_codes(pod, on_codes.get("containerName")):
                if code == 0:
                    continue
                if (code in values) == (on_codes.get("operator") == "In"):
                    return action, (f"Container {name} for pod {who} failed with exit code "
                                    f"{code} matching {action} rule at index {i}")
        for pattern in rule.get("onPodConditions") or []:
            cond = podfacts.condition(pod, str(pattern.get("type")))
            if cond is not None and cond.get("status") == pattern.get("status", "True"):
                return action, (f"Pod {who} has condition {pattern.get('type')} matching "
                                f"{action} rule at index {i}")
    return None


def success_policy_match(spec: dict[str, Any], completed: set[int]) -> int | None:
    """The index of the first successPolicy rule the succeeded indexes satisfy: all of its
    ``succeededIndexes``, or ``succeededCount`` of them (of all indexes without a set)."""
    for i, rule in enumerate(((spec.get("successPolicy") or {}).get("rules")) or []):
        if not isinstance(rule, dict):
            continue
        wanted = parse_indexes(rule["succeededIndexes"]) if rule.get(
            "succeededIndexes") is not None else None
        count = rule.get("succeededCount")
        among = completed if wanted is None else completed & wanted
        if count is not None:
            if len(among) >= int(count):
                return i
        elif wanted is not None and wanted <= completed:
            return i
    return None


def _condition(kind: str, reason: str, message: str, now: str, status: str = "True") -> Any:
    return {"type": kind, "status": status, "lastProbeTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def _set_condition(status: dict[str, Any], cond: dict[str, Any]) -> bool:
    conditions = status.setdefault("conditions", [])
    for i, old in enumerate(conditions):
        if old.get("type") == cond["type"]:
            if old.get("status") == cond["status"]:
                return False
            conditions[i] = cond
            return True
    conditions.append(cond)
    return True


def plan(job: RawObject, pods: list[RawObject], *, now: datetime.datetime,
         backoff_base: float = BACKOFF_BASE) -> JobPlan:
    """The next step for ``job`` given the pods it controls."""
    spec = job.get("spec") or {}
    status: dict[str, Any] = copy_json(job.get("status") or {})
    stamp = podfacts.format_time(now)
    result = JobPlan(status=status)
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    parallelism = _int(spec.get("parallelism"), 1)
    suspended = bool(spec.get("suspend"))
    ending = is_finished(job) or has_condition(job, "FailureTarget") or has_condition(
        job, "SuccessCriteriaMet")
    by_uid = {str((p.get("metadata") or {}).get("uid")): p for p in pods}
    uncounted = status.get("uncountedTerminatedPods") or {}
    succeeded_uids = list(uncounted.get("succeeded") or [])
    failed_uids = list(uncounted.get("failed") or [])
    succeeded = int(status.get("succeeded") or 0)
    failed = int(status.get("failed") or 0)
    completed = parse_indexes(status.get("completedIndexes"))
    per_index = indexed and spec.get("backoffLimitPerIndex") is not None
    failed_indexes = parse_indexes(status.get("failedIndexes"))

    # 1. UIDs recorded before whose finalizer is gone now count.
    for uids, is_success in ((succeeded_uids, True), (failed_uids, False)):
        for uid in list(uids):
            pod = by_uid.get(uid)
            if pod is None or not _has_finalizer(pod):
                uids.remove(uid)
                if is_success:
                    succeeded += 1
                else:
                    failed += 1
    # 2. Pods that finished since: record their UIDs, then release them.
    fail_job: tuple[str, str] | None = None
    policy = spec.get("podFailurePolicy") is not None
    for pod in pods:
        uid = str((pod.get("metadata") or {}).get("uid"))
        if not _has_finalizer(pod):
            continue
        if uid in succeeded_uids or uid in failed_uids:
            result.release.append(pod)
            continue
        phase = podfacts.phase(pod)
        if phase == "Succeeded":
            succeeded_uids.append(uid)
            index = pod_index(pod)
            if indexed and index is not None and 0 <= index < int(completions or 0):
                completed.add(index)
            result.release.append(pod)
        elif phase == "Failed" or (podfacts.is_terminating(pod) and not policy):
            if podfacts.is_terminating(pod) and phase != "Failed" and (ending or suspended):
                result.release.append(pod)  # deleted by this controller: not a failure
                continue
            match = failure_policy_match(job, pod) if phase == "Failed" else None
            if match is not None and match[0] == "Ignore":
                result.release.append(pod)
                continue
            if match is not None and match[0] == "FailJob" and fail_job is None:
                fail_job = ("PodFailurePolicy", match[1])
            index = pod_index(pod)
            if per_index and index is not None and 0 <= index < int(completions or 0) and (
                    (match is not None and match[0] == "FailIndex")
                    or index_failures(pod) + 1 > _int(spec.get("backoffLimitPerIndex"), 0)):
                failed_indexes.add(index)
            failed_uids.append(uid)
            result.release.append(pod)
        elif podfacts.is_terminating(pod) and (ending or suspended):
            result.release.append(pod)
    status["uncountedTerminatedPods"] = {
        k: v for k, v in (("succeeded", succeeded_uids), ("failed", failed_uids)) if v}
    if indexed:
        succeeded = len(completed)
    failed_total = failed + len(failed_uids)
    succeeded_total = succeeded if indexed else succeeded + len(succeeded_uids)
    for key, value in (("succeeded", succeeded), ("failed", failed)):
        if value:
            status[key] = value
        else:
            status.pop(key, None)
    if indexed:
        if completed:
            status["completedIndexes"] = format_indexes(completed)
        else:
            status.pop("completedIndexes", None)
    if per_index:
        status["failedIndexes"] = format_indexes(failed_indexes)

    active = [p for p in pods if podfacts.is_active(p)]
    terminating = [p for p in pods if podfacts.is_terminating(p)
                   and podfacts.phase(p) not in ("Succeeded", "Failed")]
    # 3. Suspension, start time, the conditions.
    if not ending:
        if suspended:
            if _set_condition(status, _condition("Suspended", "JobSuspended", "Job suspended",
                                                 stamp)):
                result.events.append(("Suspended", "Job suspended", False))
        else:
            if has_condition(job, "Suspended"):
                _set_condition(status, _condition("Suspended", "JobResumed", "Job resumed", stamp,
                                                  status="False"))
                status["startTime"] = stamp
                result.events.append(("Resumed", "Job resumed", False))
            status.setdefault("startTime", stamp)
    deadline = spec.get("activeDeadlineSeconds")
    started = podfacts.parse_time(status.get("startTime"))
    target: tuple[str, str, str] | None = None  # (condition, reason, message)
    if not ending:
        if fail_job is not None:
            target = ("FailureTarget", *fail_job)
        elif failed_total > _int(spec.get("backoffLimit"), 6):
            target = ("FailureTarget", *BACKOFF_LIMIT)
        elif per_index and spec.get("maxFailedIndexes") is not None and len(
                failed_indexes) > _int(spec.get("maxFailedIndexes"), 0):
            target = ("FailureTarget", *MAX_FAILED_INDEXES)
        elif per_index and failed_indexes and len(completed | failed_indexes) >= int(
                completions or 0):
            target = ("FailureTarget", *FAILED_INDEXES)
        elif deadline is not None and started is not None and not suspended and (
                now - started).total_seconds() >= int(deadline):
            target = ("FailureTarget", *DEADLINE)
        elif indexed and (matched := success_policy_match(spec, completed)) is not None:
            target = ("SuccessCriteriaMet", "SuccessPolicy", f"Matched rules at index {matched}")
        elif completions is not None and succeeded_total >= int(completions):
            target = ("SuccessCriteriaMet", *COMPLETIONS)
        elif completions is None and succeeded_total > 0 and not active:
            target = ("SuccessCriteriaMet", *COMPLETIONS)
        if target is not None:
            _set_condition(status, _condition(target[0], target[1], target[2], stamp))
            ending = True
        elif deadline is not None and started is not None and not suspended:
            left = int(deadline) - (now - started).total_seconds()
            result.requeue = max(0.05, left)
    # 4. Ending: stop the pods, then the final condition once none runs and all are counted.
    if ending:
        result.delete = list(active)
        if is_finished(job):
            pass
        elif not active and not terminating and not status["uncountedTerminatedPods"]:
            failing = next((c for c in status.get("conditions") or []
                            if c.get("type") == "FailureTarget" and c.get("status") == "True"),
                           None)
            if failing is not None:
                _set_condition(status, _condition("Failed", str(failing.get("reason")),
                                                  str(failing.get("message")), stamp))
                result.events.append((str(failing.get("reason")), str(failing.get("message")),
                                      True))
            else:
                met: dict[str, Any] = next((c for c in status.get("conditions") or []
                            if c.get("type") == "SuccessCriteriaMet"), {})
                _set_condition(status, _condition(
                    "Complete", str(met.get("reason") or COMPLETIONS[0]),
                    str(met.get("message") or COMPLETIONS[1]), stamp))
                status["completionTime"] = stamp
                result.events.append(("Completed", "Job completed", False))
    elif suspended:
        result.delete = list(active)
    else:
        _plan_pods(result, job, active, completed | failed_indexes, succeeded_total, pods,
                   now=now, backoff_base=backoff_base, parallelism=parallelism)
    status["active"] = max(0, len(active) - len(result.delete)) + len(result.create)
    if not status["active"]:
        del status["active"]
    status["ready"] = sum(1 for p in active if podfacts.is_ready(p) and p not in result.delete)
    status["terminating"] = len(terminating)
    return result


def _backoff_left(job: RawObject, pods: list[RawObject], *, now: datetime.datetime,
                  base: float) -> float:
    """Seconds before failed pods may be replaced: base * 2^(failures since the last success
    - 1), capped, from the last failure (the controller's exponential back-off); failures the
    podFailurePolicy ignores do not count."""
    last_success = max((finished_at(p) or now for p in pods
                        if podfacts.phase(p) == "Succeeded"), default=None)
    failures = [finished_at(p) or now for p in pods if podfacts.phase(p) == "Failed"
                and (failure_policy_match(job, p) or ("",))[0] != "Ignore"]
    failures = [f for f in failures if last_success is None or f > last_success]
    if not failures:
        return 0.0
    delay = min(BACKOFF_MAX, base * 2 ** (len(failures) - 1))
    return max(0.0, (max(failures) + datetime.timedelta(seconds=delay) - now).total_seconds())


def _plan_pods(result: JobPlan, job: RawObject, active: list[RawObject],
               completed: set[int], succeeded: int, pods: list[RawObject], *,
               now: datetime.datetime, backoff_base: float, parallelism: int) -> None:
    spec = job.get("spec") or {}
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed":
        seen: set[int] = set()
        keep: list[RawObject] = []
        for pod in sorted(active, key=lambda p: (pod_index(p) or 0)):
            index = pod_index(pod)
            if index is None or index in completed or index in seen or index >= int(
                    completions or 0):
                result.delete.append(pod)  # a duplicate, or its index succeeded or failed
            else:
                seen.add(index)
                keep.append(pod)
        if len(keep) > parallelism:
            result.delete += keep[parallelism:]
            keep = keep[:parallelism]
        want = [i for i in range(int(completions or 0)) if i not in completed and i not in seen]
        slots = min(parallelism - len(keep), len(want), BURST)
        missing: list[int | None] = list(want[:max(0, slots)])
    else:
        if completions is None:
            target = 0 if succeeded > 0 else parallelism
        else:
            target = max(0, min(parallelism, int(completions) - succeeded))
        diff = target - len(active)
        if diff < 0:
            result.delete = podfacts.pods_to_delete(active, -diff)
        missing = [None] * min(max(0, diff), BURST)
    if missing and spec.get("backoffLimitPerIndex") is not None:
        result.create = _per_index_backoff(result, pods, missing, now=now, base=backoff_base)
        return
    if missing:
        left = _backoff_left(job, pods, now=now, base=backoff_base)
        if left > 0:
            result.requeue = left if result.requeue is None else min(result.requeue, left)
            return
        result.create = missing


def _per_index_backoff(result: JobPlan, pods: list[RawObject], missing: list[int | None], *,
                       now: datetime.datetime, base: float) -> list[int | None]:
    """backoffLimitPerIndex: each index waits its own back-off after its own failures, and its
    next pod carries how often it failed."""
    ready: list[int | None] = []
    for index in missing:
        failures = [p for p in pods if pod_index(p) == index and podfacts.phase(p) == "Failed"]
        if failures:
            count = max(index_failures(p) + 1 for p in failures)
            last = max(finished_at(p) or now for p in failures)
            delay = min(BACKOFF_MAX, base * 2 ** (count - 1))
            left = (last + datetime.timedelta(seconds=delay) - now).total_seconds()
            if left > 0:
                result.requeue = left if result.requeue is None else min(result.requeue, left)
                continue
            if index is not None:
                result.index_failures[index] = count
        ready.append(index)
    return ready
