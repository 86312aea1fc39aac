"""``statefulsetplan`` and ``revisions`` decisions, pure: ordered and parallel creation, failed
pods replaced, scale-down order, RollingUpdate with partition and maxUnavailable, OnDelete,
minReadySeconds, the status counters and revision reuse."""

from __future__ import annotations

import datetime
from typing import Any

from k8sbridge.devkube.controllers import revisions
from k8sbridge.devkube.controllers import statefulsetplan as plans
from k8sbridge.devkube.controllers.raw import RawObject

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
STAMP = "2026-01-01T11:00:00Z"


def sts(replicas: int = 3, **spec: Any) -> RawObject:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "u1", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "a"}]}},
                     **spec}}


def pod(ordinal: int, *, revision: str = "web-r1", phase: str = "Running", ready: bool = True,
        ready_since: str = STAMP, terminating: bool = False) -> RawObject:
    meta: dict[str, Any] = {"name": f"web-{ordinal}",
                            "labels": {"controller-revision-hash": revision}}
    if terminating:
        meta["deletionTimestamp"] = STAMP
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False",
         "lastTransitionTime": ready_since}]}}


def plan(s: RawObject, pods: list[RawObject], update: str = "web-r1") -> plans.Plan:
    return plans.plan(s, pods, update_revision=update, now=NOW)


def test_ordered_ready_creates_the_next_ordinal_only_after_the_previous_is_ready() -> None:
    assert plan(sts(), []).create == (0,)
    assert plan(sts(), [pod(0, ready=False)]) == plans.Plan()
    assert plan(sts(), [pod(0, phase="Pending", ready=False)]) == plans.Plan()
    assert plan(sts(), [pod(0)]).create == (1,)
    assert plan(sts(ordinals={"start": 3}), []).create == (3,)


def test_min_ready_seconds_delays_the_next_pod() -> None:
    fresh = pod(0, ready_since="2026-01-01T11:59:58Z")
    assert plan(sts(minReadySeconds=10), [fresh]) == plans.Plan()
    assert plans.next_wake(sts(minReadySeconds=10), [fresh], now=NOW) is not None
    assert plan(sts(minReadySeconds=10), [pod(0)]).create == (1,)


def test_parallel_creates_and_deletes_everything_at_once() -> None:
    parallel = sts(podManagementPolicy="Parallel")
    assert plan(parallel, []).create == (0, 1, 2)
    assert plan(sts(1, podManagementPolicy="Parallel"),
                [pod(0), pod(1, ready=False), pod(2)]).delete == ("web-2", "web-1")


def test_scale_down_removes_the_highest_ordinal_first_one_at_a_time() -> None:
    pods = [pod(0), pod(1), pod(2)]
    assert plan(sts(1), pods).delete == ("web-2",)
    assert plan(sts(1), [pod(0), pod(1), pod(2, terminating=True)]) == plans.Plan()


def test_a_failed_pod_is_deleted_to_be_recreated() -> None:
    assert plan(sts(), [pod(0), pod(1, phase="Failed", ready=False)]).delete == ("web-1",)


def test_rolling_update_from_the_highest_ordinal_down_to_the_partition() -> None:
    pods = [pod(0), pod(1), pod(2)]
    assert plan(sts(), pods, update="web-r2").delete == ("web-2",)
    assert plan(sts(), [pod(0), pod(1), pod(2, revision="web-r2")],
                update="web-r2").delete == ("web-1",)
    waiting = [pod(0), pod(1), pod(2, revision="web-r2", ready=False)]
    assert plan(sts(), waiting, update="web-r2") == plans.Plan()
    partitioned = sts(updateStrategy={"type": "RollingUpdate",
                                      "rollingUpdate": {"partition": 2}})
    assert plan(partitioned, [pod(0), pod(1), pod(2, revision="web-r2")],
                update="web-r2") == plans.Plan()
    assert plan(partitioned, []).at_current == frozenset({0, 1})
    wide = sts(updateStrategy={"type": "RollingUpdate",
                               "rollingUpdate": {"partition": 0, "maxUnavailable": 2}})
    assert plan(wide, pods, update="web-r2").delete == ("web-2", "web-1")
    on_delete = sts(updateStrategy={"type": "OnDelete"})
    assert plan(on_delete, pods, update="web-r2") == plans.Plan()


def test_status_counts_and_the_current_revision_advances_when_complete() -> None:
    s = sts()
    mixed = plans.status(s, [pod(0), pod(1), pod(2, revision="web-r2", ready=False)],
                         current_revision="web-r1", update_revision="web-r2", now=NOW)
    assert mixed == {"observedGeneration": 2, "replicas": 3, "readyReplicas": 2,
                     "currentReplicas": 2, "updatedReplicas": 1, "availableReplicas": 2,
                     "currentRevision": "web-r1", "updateRevision": "web-r2",
                     "collisionCount": 0}
    done = plans.status(s, [pod(i, revision="web-r2") for i in range(3)],
                        current_revision="web-r1", update_revision="web-r2", now=NOW)
    assert done["currentRevision"] == "web-r2" and done["currentReplicas"] == 3


def test_pods_carry_their_identity() -> None:
    made = plans.pod_for(sts(serviceName="svc"), 1, revision="web-r1",
                         template=sts()["spec"]["template"])
    assert made["metadata"]["name"] == "web-1"
    assert made["metadata"]["labels"] == {
        "app": "web", "statefulset.kubernetes.io/pod-name": "web-1",
        "apps.kubernetes.io/pod-index": "1", "controller-revision-hash": "web-r1"}
    assert made["spec"]["hostname"] == "web-1" and made["spec"]["subdomain"] == "svc"


def test_revisions_are_reused_for_an_equal_template_and_renumbered_on_rollback() -> None:
    first = revisions.decide(sts(), [], kind="StatefulSet")
    assert first.create is not None and first.create["revision"] == 1
    assert first.name == f"web-{first.hash}"
    assert first.create["metadata"]["labels"] == {"app": "web",
                                                  "controller.kubernetes.io/hash": first.hash}
    stored_one = {**first.create}
    changed = sts()
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "b"
    second = revisions.decide(changed, [stored_one], kind="StatefulSet")
    assert second.create is not None and second.create["revision"] == 2
    assert second.name != first.name
    again = revisions.decide(changed, [stored_one, second.create], kind="StatefulSet")
    assert again.existing is second.create and again.renumber is None
    back = revisions.decide(sts(), [stored_one, second.create], kind="StatefulSet")
    assert back.existing is stored_one and back.renumber == 3
    assert revisions.surplus([stored_one, second.create], live={second.name}, keep=0) == [
        stored_one]
