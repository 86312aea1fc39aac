"""The Job controller's decisions as a pure function of a Job, its pods and a given time."""

from __future__ import annotations

import datetime
from typing import Any

from k8sbridge.devkube.controllers import jobplan
from k8sbridge.devkube.controllers.job import pod_from_template

T0 = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def job(**spec: Any) -> dict[str, Any]:
    full = {"parallelism": 1, "completions": 1, "backoffLimit": 6,
            "completionMode": "NonIndexed", "suspend": False,
            "template": {"metadata": {"labels": {"job-name": "work"}},
                         "spec": {"restartPolicy": "Never",
                                  "containers": [{"name": "c", "image": "busybox"}]}}}
    full.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "work", "namespace": "default", "uid": "job-uid"},
            "spec": full, "status": {}}


def pod(uid: str, phase: str = "Running", *, index: int | None = None, tracked: bool = True,
        exit_code: int | None = None, finished: datetime.datetime = T0,
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"work-{uid}", "namespace": "default", "uid": uid,
                            "creationTimestamp": _stamp(T0 - datetime.timedelta(minutes=5))}
    if tracked:
        meta["finalizers"] = [jobplan.TRACKING_FINALIZER]
    if index is not None:
        meta["annotations"] = {jobplan.INDEX_KEY: str(index)}
    if deleting:
        meta["deletionTimestamp"] = _stamp(T0)
    status: dict[str, Any] = {"phase": phase}
    if exit_code is not None:
        status["containerStatuses"] = [{"name": "c", "state": {"terminated": {
            "exitCode": exit_code, "finishedAt": _stamp(finished)}}}]
    return {"metadata": meta, "spec": {}, "status": status}


def settle(j: dict[str, Any], pods: list[dict[str, Any]], *,
           now: datetime.datetime = T0) -> jobplan.JobPlan:
    """Plan, apply the status and the finalizer removals, plan again (as one sync does)."""
    first = jobplan.plan(j, pods, now=now)
    j["status"] = first.status
    released = {p["metadata"]["uid"] for p in first.release}
    for p in pods:
        if p["metadata"]["uid"] in released:
            p["metadata"]["finalizers"] = []
    second = jobplan.plan(j, pods, now=now)
    j["status"] = second.status
    return second


def test_a_new_job_starts_and_creates_parallelism_pods() -> None:
    step = jobplan.plan(job(completions=5, parallelism=2), [], now=T0)
    assert step.create == [None, None]
    assert step.status["startTime"] == _stamp(T0)
    assert step.status["active"] == 2
    assert step.status["uncountedTerminatedPods"] == {}


def test_work_queue_jobs_stop_creating_after_the_first_success() -> None:
    j = job(completions=None, parallelism=3)
    step = settle(j, [pod("a", "Succeeded"), pod("b"), pod("c")])
    assert step.create == [] and step.status["succeeded"] == 1
    assert not any(c["type"] == "Complete" for c in step.status.get("conditions", []))


def test_indexed_jobs_create_the_lowest_missing_indexes() -> None:
    j = job(completions=5, parallelism=2, completionMode="Indexed")
    j["status"] = {"completedIndexes": "0,2", "succeeded": 2, "startTime": _stamp(T0)}
    step = jobplan.plan(j, [pod("x", index=1)], now=T0)
    assert step.create == [3]
    assert step.status["completedIndexes"] == "0,2"


def test_a_succeeded_pod_is_recorded_then_counted_once_released() -> None:
    j = job(completions=2, parallelism=2, completionMode="Indexed")
    pods = [pod("a", "Succeeded", index=0), pod("b", index=1)]
    first = jobplan.plan(j, pods, now=T0)
    assert first.status["uncountedTerminatedPods"] == {"succeeded": ["a"]}
    assert [p["metadata"]["uid"] for p in first.release] == ["a"]
    j["status"] = first.status
    pods[0]["metadata"]["finalizers"] = []
    second = jobplan.plan(j, pods, now=T0)
    assert second.status["uncountedTerminatedPods"] == {}
    assert second.status["succeeded"] == 1 and second.status["completedIndexes"] == "0"


def test_success_criteria_then_complete_once_no_pod_runs() -> None:
    j = job(completions=2, parallelism=2)
    pods = [pod("a", "Succeeded"), pod("b", "Succeeded")]
    step = settle(j, pods, now=T0)
    types = [c["type"] for c in step.status["conditions"]]
    assert types == ["SuccessCriteriaMet", "Complete"]
    assert step.status["completionTime"] == _stamp(T0)
    assert step.status["succeeded"] == 2
    assert step.events[-1][0] == "Completed"


def test_failures_beyond_the_backoff_limit_fail_the_job() -> None:
    j = job(backoffLimit=1)
    pods = [pod("a", "Failed", exit_code=1), pod("b", "Failed", exit_code=1)]
    step = settle(j, pods)
    conditions = {c["type"]: c for c in step.status["conditions"]}
    assert conditions["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert conditions["Failed"]["message"] == "Job has reached the specified backoff limit"
    assert step.status["failed"] == 2 and "completionTime" not in step.status


def test_failed_pods_are_replaced_after_an_exponential_back_off() -> None:
    j = job(backoffLimit=6)
    finished = T0 - datetime.timedelta(seconds=15)
    pods = [pod("a", "Failed", exit_code=1, finished=finished),
            pod("b", "Failed", exit_code=1, finished=finished)]
    step = settle(j, pods, now=T0)  # two failures: 20 s from the last one
    assert step.create == [] and step.requeue == 5.0
    later = settle(j, pods, now=T0 + datetime.timedelta(seconds=5))
    assert later.create == [None]


def test_the_active_deadline_fails_the_job_and_deletes_its_pods() -> None:
    j = job(activeDeadlineSeconds=30)
    j["status"] = {"startTime": _stamp(T0)}
    early = jobplan.plan(j, [pod("a")], now=T0 + datetime.timedelta(seconds=10))
    assert early.requeue == 20.0 and early.delete == []
    late = jobplan.plan(j, [pod("a")], now=T0 + datetime.timedelta(seconds=30))
    assert [p["metadata"]["uid"] for p in late.delete] == ["a"]
    target = late.status["conditions"][0]
    assert (target["type"], target["reason"]) == ("FailureTarget", "DeadlineExceeded")
    assert not any(c["type"] == "Failed" for c in late.status["conditions"])


def test_suspending_deletes_pods_without_counting_them_and_resuming_restarts() -> None:
    j = job(suspend=True, parallelism=2, completions=2)
    step = settle(j, [pod("a"), pod("b", deleting=True)])
    assert [p["metadata"]["uid"] for p in step.delete] == ["a"]
    assert "failed" not in step.status
    suspended = step.status["conditions"][0]
    assert (suspended["type"], suspended["status"], suspended["reason"]) == (
        "Suspended", "True", "JobSuspended")
    j["spec"]["suspend"] = False
    resumed = jobplan.plan(j, [], now=T0 + datetime.timedelta(minutes=1))
    assert resumed.status["conditions"][0]["reason"] == "JobResumed"
    assert resumed.create == [None, None]


def test_pod_failure_policy_fail_job_on_exit_code_42() -> None:
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget",
                                                                  "status": "True"}]},
                        {"action": "FailJob", "onExitCodes": {"operator": "In",
                                                              "values": [42]}}]}
    j = job(backoffLimit=6, podFailurePolicy=policy)
    step = settle(j, [pod("a", "Failed", exit_code=42)])
    failed = next(c for c in step.status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "PodFailurePolicy"
    assert failed["message"] == ("Container c for pod default/work-a failed with exit code 42 "
                                 "matching FailJob rule at index 1")


def test_pod_failure_policy_ignores_disrupted_pods() -> None:
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget",
                                                                  "status": "True"}]}]}
    j = job(backoffLimit=0, podFailurePolicy=policy)
    disrupted = pod("a", "Failed", exit_code=137)
    disrupted["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True"}]
    step = settle(j, [disrupted])
    assert "failed" not in step.status and step.create == [None]


def test_indexed_pods_carry_their_index_hostname_and_environment() -> None:
    created = pod_from_template(job(completionMode="Indexed", completions=3), 2)
    meta = created["metadata"]
    assert meta["generateName"] == "work-2-"
    assert meta["labels"][jobplan.INDEX_KEY] == "2"
    assert meta["annotations"][jobplan.INDEX_KEY] == "2"
    assert meta["finalizers"] == [jobplan.TRACKING_FINALIZER]
    assert meta["ownerReferences"][0]["kind"] == "Job"
    assert created["spec"]["hostname"] == "work-2"
    env = created["spec"]["containers"][0]["env"]
    assert env == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "apiVersion": "v1",
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]


def test_completed_indexes_round_trip() -> None:
    assert jobplan.format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7"
    assert jobplan.parse_indexes("0-2,4,6-7") == {0, 1, 2, 4, 6, 7}


def test_a_success_policy_completes_an_indexed_job_early() -> None:
    j = job(completions=5, parallelism=5, completionMode="Indexed",
            successPolicy={"rules": [{"succeededIndexes": "0-1,4", "succeededCount": 3},
                                     {"succeededIndexes": "0"}]})
    pods = [pod("a", "Succeeded", index=0), pod("b", index=1), pod("c", index=2)]
    step = settle(j, pods)
    met = next(c for c in step.status["conditions"] if c["type"] == "SuccessCriteriaMet")
    assert (met["reason"], met["message"]) == ("SuccessPolicy", "Matched rules at index 1")
    assert sorted(p["metadata"]["uid"] for p in step.delete) == ["b", "c"]
    for p in pods[1:]:
        p["metadata"]["deletionTimestamp"] = _stamp(T0)
        p["metadata"]["finalizers"] = []
    pods = pods[:1]
    done = settle(j, pods)
    complete = next(c for c in done.status["conditions"] if c["type"] == "Complete")
    assert (complete["reason"], complete["message"]) == ("SuccessPolicy",
                                                         "Matched rules at index 1")
    assert "failed" not in done.status


def indexed_pod(uid: str, phase: str, index: int, failures: int, **kw: Any) -> dict[str, Any]:
    made = pod(uid, phase, index=index, **kw)
    made["metadata"]["annotations"][jobplan.INDEX_FAILURES_KEY] = str(failures)
    return made


def test_backoff_limit_per_index_retries_each_index_then_marks_it_failed() -> None:
    j = job(completions=3, parallelism=3, completionMode="Indexed", backoffLimitPerIndex=1,
            backoffLimit=2147483647)
    first = indexed_pod("a", "Failed", 1, 0, exit_code=1, finished=T0)
    pods = [indexed_pod("s0", "Succeeded", 0, 0), first, indexed_pod("r2", "Running", 2, 0)]
    waiting = settle(j, pods, now=T0 + datetime.timedelta(seconds=4))
    assert waiting.status["failedIndexes"] == "" and waiting.create == []
    assert waiting.requeue == 6.0  # index 1's own back-off: 10 s after its failure
    retry = settle(j, pods, now=T0 + datetime.timedelta(seconds=10))
    assert retry.create == [1] and retry.index_failures == {1: 1}
    created = pod_from_template(j, 1, failures=1)
    assert created["metadata"]["annotations"][jobplan.INDEX_FAILURES_KEY] == "1"
    pods += [indexed_pod("b", "Failed", 1, 1, exit_code=1),
             indexed_pod("s2", "Succeeded", 2, 0)]
    pods[2]["status"]["phase"] = "Succeeded"
    done = settle(j, pods, now=T0 + datetime.timedelta(seconds=60))
    assert done.status["failedIndexes"] == "1" and done.status["completedIndexes"] == "0,2"
    failed = next(c for c in done.status["conditions"] if c["type"] == "Failed")
    assert (failed["reason"], failed["message"]) == FAILED
    assert done.create == []


FAILED = ("FailedIndexes", "Job has failed indexes")


def test_fail_index_and_max_failed_indexes() -> None:
    policy = {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In",
                                                                "values": [42]}}]}
    j = job(completions=4, parallelism=4, completionMode="Indexed", backoffLimitPerIndex=3,
            maxFailedIndexes=0, podFailurePolicy=policy)
    pods = [indexed_pod("a", "Failed", 0, 0, exit_code=42)] + [
        indexed_pod(f"r{i}", "Running", i, 0) for i in (1, 2, 3)]
    step = settle(j, pods)
    assert step.status["failedIndexes"] == "0"
    target = next(c for c in step.status["conditions"] if c["type"] == "FailureTarget")
    assert target["reason"] == "MaxFailedIndexesExceeded"
    assert sorted(p["metadata"]["uid"] for p in step.delete) == ["r1", "r2", "r3"]
