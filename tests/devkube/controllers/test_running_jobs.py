"""Jobs and CronJobs on devkube through real kubectl and the official client: Indexed Jobs run
to Complete, the JOBS and CRONJOBS columns, ``kubectl create job --from=cronjob/x``, the
apiserver's refusals, podFailurePolicy on exit code 42, and ttlSecondsAfterFinished."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from kubernetes import client, config

from k8sbridge.devkube.controllers import base
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.raw import RawObject

from .conftest import Cluster, eventually

INDEXED = {
    "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "idx"},
    "spec": {"completions": 3, "parallelism": 2, "completionMode": "Indexed",
             "template": {"spec": {"restartPolicy": "Never", "containers": [
                 {"name": "c", "image": "busybox", "command": ["true"]}]}}},
}
CRONJOB = {
    "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
    "spec": {"schedule": "@daily", "jobTemplate": {"metadata": {"labels": {"team": "a"}},
                                                   "spec": {"template": {"spec": {
                                                       "restartPolicy": "OnFailure",
                                                       "containers": [{"name": "c",
                                                                       "image": "busybox"}]}}}}},
}


def _api_client(cluster: Cluster) -> client.ApiClient:
    made: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kube.kubeconfig))
    return made


async def finish(cluster: Cluster, pod: RawObject, *, exit_code: int) -> None:
    """Report a running pod's container as terminated, as a kubelet would."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def mutate(obj: RawObject) -> bool:
        obj["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        obj["status"]["containerStatuses"] = [{
            "name": "c", "ready": False, "restartCount": 0, "image": "busybox", "imageID": "",
            "state": {"terminated": {"exitCode": exit_code, "startedAt": stamp,
                                     "finishedAt": stamp, "reason": "Completed"
                                     if exit_code == 0 else "Error"}}}]
        return True

    await base.update(client=cluster.client, resource=api.PODS, informer=None, current=pod,
                      mutate=mutate, subresource="status")


async def job_status(cluster: Cluster, name: str) -> dict[str, Any]:
    got = await cluster.client.get(api.JOBS, namespace="default", name=name)
    return dict(got.get("status") or {})


async def test_an_indexed_job_runs_to_complete(cluster: Cluster) -> None:
    await cluster.client.create(api.JOBS, json.loads(json.dumps(INDEXED)), namespace="default")
    seen: set[str] = set()

    async def progress() -> bool:
        for pod in await cluster.pods(selector="batch.kubernetes.io/job-name=idx"):
            if pod["status"].get("phase") == "Running" and pod["metadata"]["name"] not in seen:
                seen.add(pod["metadata"]["name"])
                assert pod["spec"]["hostname"] == \
                    f"idx-{pod['metadata']['annotations']['batch.kubernetes.io/job-completion-index']}"
                await finish(cluster, pod, exit_code=0)
        status = await job_status(cluster, "idx")
        assert status.get("active", 0) <= 2
        return any(c["type"] == "Complete" for c in status.get("conditions") or [])

    await eventually(progress, what="the Indexed Job to complete")
    status = await job_status(cluster, "idx")
    assert status["succeeded"] == 3 and status["completedIndexes"] == "0-2"
    assert len(seen) == 3
    for pod in await cluster.pods(selector="batch.kubernetes.io/job-name=idx"):
        assert not pod["metadata"].get("finalizers")  # counted, then released
    out = await cluster.kubectl("get", "jobs")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row.split()[:3] == ["idx", "Complete", "3/3"]


async def test_cronjob_columns_and_a_job_created_from_it(cluster: Cluster) -> None:
    await cluster.client.create(api.CRONJOBS, json.loads(json.dumps(CRONJOB)),
                                namespace="default")
    out = await cluster.kubectl("get", "cronjobs")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE",
                              "LAST", "SCHEDULE", "AGE"]
    assert row.split()[:6] == ["nightly", "@daily", "<none>", "False", "0", "<none>"]
    await cluster.kubectl("create", "job", "by-hand", "--from=cronjob/nightly")
    job = await cluster.client.get(api.JOBS, namespace="default", name="by-hand")
    assert job["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    assert job["metadata"]["labels"]["team"] == "a"
    assert job["metadata"]["ownerReferences"][0]["name"] == "nightly"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"

    async def pod_created() -> bool:
        return bool(await cluster.pods(selector="batch.kubernetes.io/job-name=by-hand"))

    await eventually(pod_created, what="the manual Job's pod")

    def read() -> tuple[Any, Any]:
        api_client = _api_client(cluster)
        batch = client.BatchV1Api(api_client)
        try:
            return (batch.read_namespaced_cron_job("nightly", "default"),
                    batch.read_namespaced_job("by-hand", "default"))
        finally:
            api_client.close()  # type: ignore[no-untyped-call]

    cron_model, job_model = await asyncio.to_thread(read)
    assert cron_model.spec.concurrency_policy == "Allow"
    assert cron_model.spec.successful_jobs_history_limit == 3
    assert job_model.spec.backoff_limit == 6 and job_model.spec.completion_mode == "NonIndexed"


@pytest.mark.parametrize(("change", "message"), [
    ({"restartPolicy": "Always"}, 'spec.template.spec.restartPolicy: Unsupported value: '
                                  '"Always": supported values: "OnFailure", "Never"'),
    ({"parallelism": -1}, "spec.parallelism: Invalid value: -1: must be greater than or "
                          "equal to 0"),
    ({"completionMode": "NonIndexed", "successPolicy": {"rules": [{"succeededCount": 1}]}},
     'spec.successPolicy: Invalid value: {"rules":[{"succeededCount":1}]}: requires indexed '
     "completion mode"),
    ({"completionMode": "NonIndexed", "backoffLimitPerIndex": 1},
     "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"),
])
async def test_bad_jobs_are_refused_as_kube_apiserver_does(
        cluster: Cluster, change: dict[str, Any], message: str) -> None:
    body = json.loads(json.dumps(INDEXED))
    body["metadata"]["name"] = "bad"
    if "restartPolicy" in change:
        body["spec"]["template"]["spec"].update(change)
    else:
        body["spec"].update(change)

    def create() -> client.exceptions.ApiException:
        api_client = _api_client(cluster)
        try:
            client.BatchV1Api(api_client).create_namespaced_job("default", body)
        except client.exceptions.ApiException as e:
            return e
        finally:
            api_client.close()  # type: ignore[no-untyped-call]
        raise AssertionError("the Job was accepted")

    refused = await asyncio.to_thread(create)
    assert refused.status == 422
    assert json.loads(refused.body or "{}")["message"] == f'Job.batch "bad" is invalid: {message}'


async def test_schedules_and_immutable_templates_are_refused_by_kubectl(
        cluster: Cluster) -> None:
    with pytest.raises(AssertionError) as bad:
        await cluster.kubectl("create", "cronjob", "bad", "--image=busybox",
                              "--schedule=61 * * * *")
    assert 'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum ' \
           "(59): 61" in str(bad.value)
    await cluster.kubectl("create", "job", "one", "--image=busybox", "--", "true")
    with pytest.raises(AssertionError) as immutable:
        await cluster.kubectl("set", "image", "job/one", "one=alpine")
    assert "spec.template: Invalid value:" in str(immutable.value)
    assert "field is immutable" in str(immutable.value)


async def test_exit_code_42_fails_the_job_through_its_pod_failure_policy(
        cluster: Cluster) -> None:
    body = json.loads(json.dumps(INDEXED))
    body["metadata"]["name"] = "policy"
    body["spec"].update(completions=1, parallelism=1, completionMode="NonIndexed",
                        backoffLimit=6, podFailurePolicy={"rules": [{
                            "action": "FailJob",
                            "onExitCodes": {"containerName": "c", "operator": "In",
                                            "values": [42]}}]})
    await cluster.client.create(api.JOBS, body, namespace="default")

    async def running() -> list[RawObject]:
        return [p for p in await cluster.pods(selector="batch.kubernetes.io/job-name=policy")
                if p["status"].get("phase") == "Running"]

    async def one_running() -> bool:
        return len(await running()) == 1

    await eventually(one_running, what="the pod to run")
    await finish(cluster, (await running())[0], exit_code=42)

    async def failed() -> bool:
        conditions = (await job_status(cluster, "policy")).get("conditions") or []
        return any(c["type"] == "Failed" for c in conditions)

    await eventually(failed, what="the Job to fail")
    status = await job_status(cluster, "policy")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["FailureTarget"]["reason"] == "PodFailurePolicy"
    assert conditions["Failed"]["message"].startswith("Container c for pod default/policy-")
    assert conditions["Failed"]["message"].endswith(
        "failed with exit code 42 matching FailJob rule at index 0")
    assert status["failed"] == 1
    out = await cluster.kubectl("get", "job", "policy", "--no-headers")
    assert out.split()[1] == "Failed"


async def test_a_finished_job_with_a_ttl_is_deleted_with_its_pods(cluster: Cluster) -> None:
    body = json.loads(json.dumps(INDEXED))
    body["metadata"]["name"] = "brief"
    body["spec"].update(completions=1, parallelism=1, completionMode="NonIndexed",
                        ttlSecondsAfterFinished=0)
    await cluster.client.create(api.JOBS, body, namespace="default")

    async def run_it() -> bool:
        for pod in await cluster.pods(selector="batch.kubernetes.io/job-name=brief"):
            if pod["status"].get("phase") == "Running":
                await finish(cluster, pod, exit_code=0)
        jobs = (await cluster.client.list(api.JOBS, namespace="default")).get("items") or []
        return not [j for j in jobs if j["metadata"]["name"] == "brief"]

    await eventually(run_it, what="the Job to expire")

    async def pods_gone() -> bool:
        return not await cluster.pods(selector="batch.kubernetes.io/job-name=brief")

    await eventually(pods_gone, what="the Job's pods to go")


async def test_deleting_a_running_job_in_the_foreground_releases_its_pods(
        cluster: Cluster) -> None:
    body = json.loads(json.dumps(INDEXED))
    body["metadata"]["name"] = "doomed"
    await cluster.client.create(api.JOBS, body, namespace="default")

    async def two_running() -> bool:
        pods = await cluster.pods(selector="batch.kubernetes.io/job-name=doomed")
        return len([p for p in pods if p["status"].get("phase") == "Running"]) == 2

    await eventually(two_running, what="two running pods")
    await cluster.kubectl("delete", "job", "doomed", "--cascade=foreground", "--wait=true")

    async def pods_gone() -> bool:
        return not await cluster.pods(selector="batch.kubernetes.io/job-name=doomed")

    await eventually(pods_gone, what="the pods to go with the Job")
