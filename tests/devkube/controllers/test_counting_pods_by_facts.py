"""The ReplicaSet controller's per-owner fact counts always equal a walk over the cache.

A sync reads these counts instead of walking thousands of pods, so after any sequence of
informer changes (creations, updates that adopt/release/ready/finish/terminate pods, deletions,
write-through replies, relists) they must be exactly what the pods in the cache say.
"""

from __future__ import annotations

import collections
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectUid, RawObject, controller_ref
from k8sbridge.devkube.controllers.replicaset import PodFacts, ReplicaSetController

OWNERS = ["rs-a", "rs-b"]

_pod_state = st.fixed_dictionaries({
    "name": st.sampled_from(["p0", "p1", "p2", "p3", "p4"]),
    "uid": st.sampled_from(["u0", "u1", "u2"]),
    "owner": st.sampled_from([None, *OWNERS]),
    "controller": st.booleans(),
    "phase": st.sampled_from([None, "Pending", "Running", "Succeeded", "Failed"]),
    "ready": st.sampled_from([None, "True", "False"]),
    "terminating": st.booleans(),
    "labels": st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["x", "y"]),
                              max_size=2),
})
_step = st.tuples(st.sampled_from(["upsert", "upsert", "upsert", "remove", "event-delete"]),
                  _pod_state)


def _pod(state: dict[str, Any], rv: int) -> RawObject:
    meta: dict[str, Any] = {"name": state["name"], "namespace": "ns", "uid": state["uid"],
                            "resourceVersion": str(rv), "labels": state["labels"]}
    if state["owner"] is not None:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": state["owner"], "uid": state["owner"],
                                    "controller": state["controller"]}]
    if state["terminating"]:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {}
    if state["phase"] is not None:
        status["phase"] = state["phase"]
    if state["ready"] is not None:
        status["conditions"] = [{"type": "Ready", "status": state["ready"]}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": status}


def _walk(informer: Informer, owner: str) -> collections.Counter[PodFacts]:
    counts: collections.Counter[PodFacts] = collections.Counter()
    for pod in informer:
        if (controller_ref(pod) or {}).get("uid") == owner:
            counts[PodFacts.of(pod)] += 1
    return counts


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(_step, max_size=40))
def test_fact_counts_match_the_cache(steps: list[tuple[str, dict[str, Any]]]) -> None:
    client = api.ApiClient(url="http://127.0.0.1:1", token=None, ca_file=None)
    pods = Informer(client=client, resource=api.PODS)
    replicasets = Informer(client=client, resource=api.REPLICASETS)
    controller = ReplicaSetController(client=client, pods=pods, replicasets=replicasets)
    for rv, (op, state) in enumerate(steps, start=1):
        pod = _pod(state, rv)
        if op == "upsert":
            pods.upsert(pod)
        elif op == "remove":
            pods.remove(pod)
        else:
            pods._apply_event("DELETED", pod)  # a DELETED watch event
        for owner in OWNERS:
            assert collections.Counter(dict(controller.index.counts(ObjectUid(owner)))) == \
                _walk(pods, owner)


def test_facts_read_what_a_sync_needs() -> None:
    pod = _pod({"name": "p", "uid": "u", "owner": "rs-a", "controller": True,
                "phase": "Running", "ready": "True", "terminating": False,
                "labels": {"tier": "b", "app": "a"}}, 1)
    assert PodFacts.of(pod) == PodFacts(active=True, terminating=False, ready=True,
                                        labels=(("app", "a"), ("tier", "b")))
    pod["status"]["phase"] = "Succeeded"
    assert not PodFacts.of(pod).active
    pod["status"]["phase"] = "Running"
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    facts = PodFacts.of(pod)
    assert facts.terminating and not facts.active
