"""batch/v1 Jobs and CronJobs at the API: defaults, the generated selector, validation, updates.

Why: ``kubectl apply`` of a Job or CronJob must get what kube-apiserver gives: SetDefaults_Job
(completions and parallelism 1, backoffLimit 6, completionMode NonIndexed, suspend false,
manualSelector false), the Job strategy's generated selector and template labels
(``batch.kubernetes.io/controller-uid`` and ``job-name``, with their legacy twins),
SetDefaults_CronJob (concurrencyPolicy Allow, history limits 3 and 1, suspend false), and the
refusals of pkg/apis/batch/validation in its words (restartPolicy, negative counts, a schedule
robfig/cron does not parse, an immutable template). Pure functions over dicts.
"""

from __future__ import annotations

import json
from typing import Any

from k8sbridge.devkube import cron, errors, selectors, validation

Obj = dict[str, Any]
Cause = errors.Cause

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
CRONJOB_NAME_MAX = 52  # a Job name gets "-<minutes>" (11 characters) appended
INDEXED_MAX = 100000
_POD_FAILURE_ACTIONS = ("Count", "FailIndex", "FailJob", "Ignore")
# Job spec fields that can never change (ValidateJobSpecUpdate).
_JOB_IMMUTABLE = ("completionMode", "podFailurePolicy", "successPolicy", "selector",
                  "template", "backoffLimitPerIndex")


def _dict(obj: Any, key: str) -> Obj | None:
    """``obj[key]`` as a dict to default into (null becomes {}), None if it is not a dict."""
    if not isinstance(obj, dict):
        return None
    if obj.get(key) is None:
        obj[key] = {}
    value = obj[key]
    return value if isinstance(value, dict) else None


def _default_job_spec(spec: Obj) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", False)
    failure_policy = spec.get("podFailurePolicy")
    if isinstance(failure_policy, dict):
        for rule in failure_policy.get("rules") or []:
            for pattern in (rule.get("onPodConditions") or []) if isinstance(rule, dict) else ():
                if isinstance(pattern, dict):
                    pattern.setdefault("status", "True")
        spec.setdefault("podReplacementPolicy", "Failed")
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")


def _generate_selector(job: Obj) -> None:
    """The Job strategy's generateSelector: template labels naming the Job, and a selector on
    the controller uid (unless ``manualSelector``)."""
    meta = job.get("metadata") or {}
    spec = job["spec"]
    template = _dict(spec, "template")
    tmeta = _dict(template, "metadata") if template is not None else None
    labels = _dict(tmeta, "labels") if tmeta is not None else None
    if labels is None:
        return
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, str(meta.get("name", "")))
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, str(meta.get("uid", "")))
    selector = _dict(spec, "selector")
    match = _dict(selector, "matchLabels") if selector is not None else None
    if match is not None:
        match.setdefault(CONTROLLER_UID_LABEL, str(meta.get("uid", "")))


def _copy_template_labels(job: Obj) -> None:
    """SetDefaults_Job: a Job without labels takes its template's."""
    meta = job.get("metadata")
    labels = (((job.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")
    if isinstance(meta, dict) and not meta.get("labels") and isinstance(labels, dict) and labels:
        meta["labels"] = dict(labels)


def default_job(job: Obj, *, create: bool, default_pod_spec: Any) -> None:
    spec = _dict(job, "spec")
    if spec is None:
        return
    _default_job_spec(spec)
    _default_template(spec.get("template"), default_pod_spec)
    _copy_template_labels(job)
    if create:
        if not spec.get("manualSelector"):
            _generate_selector(job)
            _copy_template_labels(job)  # a template without labels: the Job shows the generated
        job["status"] = {}


def default_cronjob(cronjob: Obj, *, create: bool, default_pod_spec: Any) -> None:
    spec = _dict(cronjob, "spec")
    if spec is None:
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict):
        if isinstance(job_template.get("metadata"), dict):
            job_template["metadata"].setdefault("creationTimestamp", None)
        job_spec = job_template.get("spec")
        if isinstance(job_spec, dict):
            _default_template(job_spec.get("template"), default_pod_spec)
    if create:
        cronjob["status"] = {}


def _default_template(template: Any, default_pod_spec: Any) -> None:
    if not isinstance(template, dict):
        return
    if isinstance(template.get("metadata"), dict) or template.get("metadata") is None:
        tmeta = _dict(template, "metadata")
        if tmeta is not None:
            tmeta.setdefault("creationTimestamp", None)
    if isinstance(template.get("spec"), dict):
        default_pod_spec(template["spec"], template=True)


# --- validation ----------------------------------------------------------------------------

def _nonnegative(spec: Obj, field: str, where: str) -> list[Cause]:
    value = spec.get(field)
    if value is None:
        return []
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return [("FieldValueInvalid", f"{where}.{field}",
                 f"Invalid value: {json.dumps(value)}: must be greater than or equal to 0")]
    return []


def _job_spec_causes(spec: Any, where: str) -> list[Cause]:
    """validateJobSpec: counts, completion mode, the pod template and its restart policy."""
    if not isinstance(spec, dict):
        return [("FieldValueRequired", where, "Required value")]
    causes: list[Cause] = []
    for field in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                  "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes"):
        causes += _nonnegative(spec, field, where)
    mode = spec.get("completionMode")
    if mode not in (None, "NonIndexed", "Indexed"):
        causes.append(("FieldValueNotSupported", f"{where}.completionMode",
                       f'Unsupported value: "{mode}": supported values: "NonIndexed", '
                       '"Indexed"'))
    if mode == "Indexed":
        completions = spec.get("completions")
        if completions is None:
            causes.append(("FieldValueRequired", f"{where}.completions",
                           "Required value: when completion mode is Indexed"))
        elif isinstance(completions, int) and completions > INDEXED_MAX:
            causes.append(("FieldValueInvalid", f"{where}.completions",
                           f"Invalid value: {completions}: must be less than or equal to "
                           f"{INDEXED_MAX} when completion mode is Indexed"))
        parallelism = spec.get("parallelism")
        if isinstance(parallelism, int) and parallelism > INDEXED_MAX:
            causes.append(("FieldValueInvalid", f"{where}.parallelism",
                           f"Invalid value: {parallelism}: must be less than or equal to "
                           f"{INDEXED_MAX} when completion mode is Indexed"))
    causes += _pod_failure_policy_causes(spec.get("podFailurePolicy"), f"{where}.podFailurePolicy")
    causes += _success_policy_causes(spec, f"{where}.successPolicy")
    causes += _per_index_causes(spec, where)
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*causes, ("FieldValueRequired", f"{where}.template", "Required value")]
    labels = (template.get("metadata") or {}).get("labels")
    causes += validation.label_causes(f"{where}.template.metadata.labels", labels)
    pod_spec = template.get("spec")
    causes += validation.pod_spec_causes(pod_spec, f"{where}.template.spec", in_template=True)
    policy = pod_spec.get("restartPolicy") if isinstance(pod_spec, dict) else None
    if policy not in ("OnFailure", "Never"):
        causes.append(("FieldValueNotSupported", f"{where}.template.spec.restartPolicy",
                       f'Unsupported value: "{policy or ""}": supported values: "OnFailure", '
                       '"Never"'))
    return causes


def _pod_failure_policy_causes(policy: Any, where: str) -> list[Cause]:
    if policy is None:
        return []
    rules = policy.get("rules") if isinstance(policy, dict) else None
    if not isinstance(rules, list):
        return [("FieldValueRequired", f"{where}.rules", "Required value")]
    causes: list[Cause] = []
    for i, rule in enumerate(rules):
        at = f"{where}.rules[{i}]"
        if not isinstance(rule, dict):
            causes.append(("FieldValueInvalid", at, "Invalid value: must be an object"))
            continue
        action = rule.get("action")
        if action not in _POD_FAILURE_ACTIONS:
            causes.append(("FieldValueNotSupported", f"{at}.action",
                           f'Unsupported value: "{action or ""}": supported values: '
                           + ", ".join(f'"{a}"' for a in _POD_FAILURE_ACTIONS)))
        exit_codes = rule.get("onExitCodes")
        conditions = rule.get("onPodConditions")
        if (exit_codes is None) == (not conditions):
            causes.append(("FieldValueInvalid", at, "Invalid value: specifying one of "
                           "OnExitCodes and OnPodConditions is required"))
        if isinstance(exit_codes, dict):
            operator = exit_codes.get("operator")
            if operator not in ("In", "NotIn"):
                causes.append(("FieldValueNotSupported", f"{at}.onExitCodes.operator",
                               f'Unsupported value: "{operator or ""}": supported values: '
                               '"In", "NotIn"'))
            values = exit_codes.get("values")
            if not isinstance(values, list) or not values:
                causes.append(("FieldValueRequired", f"{at}.onExitCodes.values",
                               "Required value: at least one value is required"))
            elif operator == "In" and 0 in values:
                causes.append(("FieldValueInvalid", f"{at}.onExitCodes.values[{values.index(0)}]",
                               "Invalid value: 0: must not be 0 for the In operator"))
    return causes


def _per_index_causes(spec: Obj, where: str) -> list[Cause]:
    """backoffLimitPerIndex needs Indexed; maxFailedIndexes and FailIndex need it."""
    causes: list[Cause] = []
    per_index = spec.get("backoffLimitPerIndex")
    if per_index is not None and spec.get("completionMode") != "Indexed":
        causes.append(("FieldValueInvalid", f"{where}.backoffLimitPerIndex",
                       f"Invalid value: {json.dumps(per_index)}: requires indexed completion "
                       "mode"))
    most = spec.get("maxFailedIndexes")
    if most is not None and per_index is None:
        causes.append(("FieldValueInvalid", f"{where}.maxFailedIndexes",
                       f"Invalid value: {json.dumps(most)}: requires the backoffLimitPerIndex "
                       "to be set"))
    elif isinstance(most, int) and isinstance(spec.get("completions"), int) and \
            most > spec["completions"]:
        causes.append(("FieldValueInvalid", f"{where}.maxFailedIndexes",
                       f"Invalid value: {most}: must be less than or equal to completions"))
    rules = ((spec.get("podFailurePolicy") or {}).get("rules")) if isinstance(
        spec.get("podFailurePolicy"), dict) else None
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if isinstance(rule, dict) and rule.get("action") == "FailIndex" and per_index is None:
            causes.append(("FieldValueInvalid", f"{where}.podFailurePolicy.rules[{i}].action",
                           'Invalid value: "FailIndex": requires the backoffLimitPerIndex to be '
                           "set"))
    return causes


def _success_policy_causes(spec: Obj, where: str) -> list[Cause]:
    policy = spec.get("successPolicy")
    if policy is None:
        return []
    if spec.get("completionMode") != "Indexed":
        return [("FieldValueInvalid", where, "Invalid value: "
                 + json.dumps(policy, separators=(",", ":")) + ": requires indexed completion "
                 "mode")]
    rules = policy.get("rules") if isinstance(policy, dict) else None
    if not isinstance(rules, list) or not rules:
        return [("FieldValueRequired", f"{where}.rules", "Required value")]
    if len(rules) > 20:
        return [("FieldValueTooMany", f"{where}.rules",
                 f"Too many: {len(rules)}: must have at most 20 items")]
    causes: list[Cause] = []
    completions = spec.get("completions")
    for i, rule in enumerate(rules):
        at = f"{where}.rules[{i}]"
        if not isinstance(rule, dict) or (rule.get("succeededIndexes") is None
                                          and rule.get("succeededCount") is None):
            causes.append(("FieldValueRequired", at, "Required value: at least one of "
                           "succeededCount or succeededIndexes must be specified"))
            continue
        count = rule.get("succeededCount")
        if count is not None and (not isinstance(count, int) or count < 0):
            causes.append(("FieldValueInvalid", f"{at}.succeededCount",
                           f"Invalid value: {json.dumps(count)}: must be greater than or equal "
                           "to 0"))
        elif isinstance(count, int) and isinstance(completions, int) and count > completions:
            causes.append(("FieldValueInvalid", f"{at}.succeededCount",
                           f"Invalid value: {count}: must be less than or equal to "
                           f"{completions} (the number of specified completions)"))
    return causes


def _selector_causes(spec: Obj, where: str) -> list[Cause]:
    raw = spec.get("selector")
    if not isinstance(raw, dict):
        return [("FieldValueRequired", f"{where}.selector", "Required value")]
    try:
        selector = selectors.from_label_selector_object(raw)
    except ValueError as e:
        return [("FieldValueInvalid", f"{where}.selector", f"Invalid value: {e}")]
    labels = (((spec.get("template") or {}).get("metadata") or {}).get("labels")) or {}
    if not selector.matches(labels):
        return [("FieldValueInvalid", f"{where}.template.metadata.labels",
                 f"Invalid value: {json.dumps(labels, separators=(',', ':'))}: `selector` "
                 "does not match template `labels`")]
    return []


def _generated_selector_causes(job: Obj) -> list[Cause]:
    """ValidateGeneratedSelector: without manualSelector, the template carries the Job's uid
    and name."""
    spec = job.get("spec") or {}
    if spec.get("manualSelector") or not isinstance(spec.get("selector"), dict):
        return []
    meta = job.get("metadata") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    causes: list[Cause] = []
    for key, expected in ((CONTROLLER_UID_LABEL, meta.get("uid")),
                          (JOB_NAME_LABEL, meta.get("name"))):
        if labels.get(key) != expected:
            causes.append(("FieldValueInvalid", f"spec.template.metadata.labels[{key}]",
                           f"Invalid value: {json.dumps(labels.get(key))}: must be "
                           f"'{expected}'"))
    return causes


def job_causes(job: Obj) -> list[Cause]:
    spec = job.get("spec")
    if not isinstance(spec, dict):
        return [("FieldValueRequired", "spec", "Required value")]
    return [*_generated_selector_causes(job), *_job_spec_causes(spec, "spec"),
            *_selector_causes(spec, "spec")]


def cronjob_causes(cronjob: Obj, *, old: Obj | None) -> list[Cause]:
    meta = cronjob.get("metadata") or {}
    causes: list[Cause] = []
    name = str(meta.get("name", ""))
    if len(name) > CRONJOB_NAME_MAX:
        causes.append(("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": must be '
                       f"no more than {CRONJOB_NAME_MAX} characters"))
    spec = cronjob.get("spec")
    if not isinstance(spec, dict):
        return [*causes, ("FieldValueRequired", "spec", "Required value")]
    schedule = spec.get("schedule")
    time_zone = spec.get("timeZone")
    if not schedule:
        causes.append(("FieldValueRequired", "spec.schedule", "Required value"))
    elif not isinstance(schedule, str):
        causes.append(("FieldValueInvalid", "spec.schedule", "Invalid value: must be a string"))
    else:
        try:
            cron.parse(schedule)
        except cron.CronError as e:
            causes.append(("FieldValueInvalid", "spec.schedule",
                           f"Invalid value: {json.dumps(schedule)}: {e}"))
        old_schedule = str(((old or {}).get("spec") or {}).get("schedule") or "")
        allow_tz = "TZ" in old_schedule
        if "TZ" in schedule and allow_tz and time_zone is not None:
            causes.append(("FieldValueInvalid", "spec.schedule",
                           f"Invalid value: {json.dumps(schedule)}: cannot use both timeZone "
                           "field and TZ or CRON_TZ in schedule"))
        elif "TZ" in schedule and not allow_tz:
            causes.append(("FieldValueInvalid", "spec.schedule",
                           f"Invalid value: {json.dumps(schedule)}: cannot use TZ or CRON_TZ in "
                           "schedule, use timeZone field instead"))
    if time_zone is not None:
        causes += _time_zone_causes(time_zone)
    policy = spec.get("concurrencyPolicy")
    if not policy:
        causes.append(("FieldValueRequired", "spec.concurrencyPolicy", "Required value"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        causes.append(("FieldValueNotSupported", "spec.concurrencyPolicy",
                       f'Unsupported value: "{policy}": supported values: "Allow", "Forbid", '
                       '"Replace"'))
    for field in ("startingDeadlineSeconds", "successfulJobsHistoryLimit",
                  "failedJobsHistoryLimit"):
        causes += _nonnegative(spec, field, "spec")
    job_template = spec.get("jobTemplate")
    job_spec = job_template.get("spec") if isinstance(job_template, dict) else None
    causes += _job_spec_causes(job_spec, "spec.jobTemplate.spec")
    if isinstance(job_spec, dict):
        if job_spec.get("selector") is not None:
            causes.append(("FieldValueInvalid", "spec.jobTemplate.spec.selector",
                           "Invalid value: " + json.dumps(job_spec["selector"], separators=(
                               ",", ":")) + ": `selector` will be auto-generated"))
        if job_spec.get("manualSelector") is True:
            causes.append(("FieldValueNotSupported", "spec.jobTemplate.spec.manualSelector",
                           'Unsupported value: true: supported values: "nil", "false"'))
    return causes


def _time_zone_causes(time_zone: Any) -> list[Cause]:
    if not isinstance(time_zone, str) or not time_zone:
        return [("FieldValueInvalid", "spec.timeZone",
                 f"Invalid value: {json.dumps(time_zone)}: timeZone must be nil or non-empty "
                 "string")]
    if time_zone.lower() == "local":
        return [("FieldValueInvalid", "spec.timeZone",
                 f'Invalid value: "{time_zone}": timeZone must be an explicit time zone as '
                 "defined in https://www.iana.org/time-zones")]
    try:
        cron.load_location(time_zone)
    except ValueError as e:
        return [("FieldValueInvalid", "spec.timeZone", f'Invalid value: "{time_zone}": {e}')]
    return []


def update_causes(plural: str, old: Obj, new: Obj) -> list[Cause]:
    """ValidateJobSpecUpdate: fields of a Job that never change after creation."""
    if plural != "jobs":
        return []
    old_spec = old.get("spec") or {}
    new_spec = new.get("spec") or {}
    causes: list[Cause] = []
    for field in ("completions", *_JOB_IMMUTABLE):
        if old_spec.get(field) != new_spec.get(field):
            if field == "completions" and new_spec.get("completionMode") == "Indexed" and (
                    new_spec.get("completions") == new_spec.get("parallelism")):
                continue  # elastic Indexed Jobs scale completions with parallelism
            value = json.dumps(new_spec.get(field), separators=(",", ":"))
            causes.append(("FieldValueInvalid", f"spec.{field}",
                           f"Invalid value: {value}: field is immutable"))
    return causes
