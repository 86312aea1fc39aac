"""e2e with REAL kubectl: batch/v1 Jobs on the embedded default run as real pods (issue 17): an
Indexed Job with 5 completions and parallelism 2 runs each index once to Complete, and a Job
whose pods fail is retried up to its backoffLimit, then Failed; a CronJob every minute starts a
Job at the next minute (at most one real minute of waiting)."""

from __future__ import annotations

import datetime
import subprocess
from typing import Any

import pytest

from tests.e2e.conftest import Target, eventually

pytestmark = pytest.mark.e2e

INDEXED = """
apiVersion: batch/v1
kind: Job
metadata: {name: indexed}
spec:
  completions: 5
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox:1.36
        command: [sh, -c, 'echo "index=$JOB_COMPLETION_INDEX host=$(cat /etc/hostname)"']
"""

FAILING = """
apiVersion: batch/v1
kind: Job
metadata: {name: failing}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox:1.36
        command: [sh, -c, 'exit 3']
"""

EVERY_MINUTE = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: minutely}
spec:
  schedule: "* * * * *"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: tick
            image: busybox:1.36
            command: [sh, -c, 'echo tick']
"""


def test_an_indexed_job_runs_every_index_to_complete(target: Target) -> None:
    _apply(target, INDEXED)
    target.kubectl("wait", "--for=condition=complete", "job/indexed", "--timeout=150s",
                   timeout=170)
    job = target.kubectl_json("get", "job", "indexed")
    assert job["status"]["succeeded"] == 5
    assert job["status"]["completedIndexes"] == "0-4"
    assert {c["type"] for c in job["status"]["conditions"]} >= {"SuccessCriteriaMet",
                                                                "Complete"}
    pods = target.kubectl_json("get", "pods", "-l", "batch.kubernetes.io/job-name=indexed")
    done = [p for p in pods["items"] if p["status"]["phase"] == "Succeeded"]
    indexes = sorted(int(p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"])
                     for p in done)
    assert indexes == [0, 1, 2, 3, 4]
    for pod in done:
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert not pod["metadata"].get("finalizers")
        name = str(pod["metadata"]["name"])

        def output(name: str = name) -> str:
            return target.kubectl("logs", name, check=False).strip()

        logs = eventually(output, what="the pod's output")
        assert logs == f"index={index} host=indexed-{index}"
    row = target.kubectl("get", "job", "indexed", "--no-headers").split()
    assert row[:3] == ["indexed", "Complete", "5/5"]
    target.kubectl("delete", "job", "indexed", "--wait=true", timeout=90)

    def pods_gone() -> bool:
        listed = target.kubectl_json("get", "pods", "-l", "batch.kubernetes.io/job-name=indexed")
        return not listed["items"]

    eventually(pods_gone, what="the Job's pods to be deleted with it")


def test_a_failing_job_is_retried_up_to_its_backoff_limit(target: Target) -> None:
    _apply(target, FAILING)
    target.kubectl("wait", "--for=condition=failed", "job/failing", "--timeout=150s",
                   timeout=170)
    job = target.kubectl_json("get", "job", "failing")
    assert job["status"]["failed"] == 2  # the first try and one retry
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    pods = target.kubectl_json("get", "pods", "-l", "batch.kubernetes.io/job-name=failing")
    assert [p["status"]["phase"] for p in pods["items"]] == ["Failed", "Failed"]
    codes = [s["state"]["terminated"]["exitCode"] for p in pods["items"]
             for s in p["status"]["containerStatuses"]]
    assert codes == [3, 3]
    target.kubectl("delete", "job", "failing", "--wait=true", timeout=90)


def test_a_cronjob_every_minute_starts_its_job_on_the_minute(target: Target) -> None:
    _apply(target, EVERY_MINUTE)

    def succeeded() -> dict[str, Any] | None:
        got: dict[str, Any] = target.kubectl_json("get", "cronjob", "minutely")
        return got if (got.get("status") or {}).get("lastSuccessfulTime") else None

    cronjob = eventually(succeeded, timeout=100, what="a successful scheduled Job")
    scheduled = datetime.datetime.fromisoformat(
        cronjob["status"]["lastScheduleTime"].replace("Z", "+00:00"))
    assert scheduled.second == 0
    name = f"minutely-{int(scheduled.timestamp()) // 60}"
    job = target.kubectl_json("get", "job", name)
    assert job["metadata"]["ownerReferences"][0]["name"] == "minutely"
    assert job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] \
        == cronjob["status"]["lastScheduleTime"]
    [pod] = target.kubectl_json("get", "pods", "-l", f"batch.kubernetes.io/job-name={name}")[
        "items"]
    assert target.kubectl("logs", pod["metadata"]["name"]).strip() == "tick"
    row = target.kubectl("get", "cronjob", "minutely", "--no-headers").split()
    assert row[:8] == ["minutely", "*", "*", "*", "*", "*", "<none>", "False"]
    assert row[8] in ("0", "1")  # ACTIVE: the next minute may have started one
    target.kubectl("delete", "cronjob", "minutely", "--wait=true", timeout=90)


def _apply(target: Target, manifest: str) -> None:
    done = subprocess.run(["kubectl", "--kubeconfig", str(target.kubeconfig), "apply", "-f",
                           "-"], input=manifest, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
