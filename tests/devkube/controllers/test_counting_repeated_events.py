"""The controllers' events are correlated as kube-controller-manager's recorder does: a
ReplicaSet whose pods the server keeps refusing reports one FailedCreate Event whose count
grows (``kubectl get events`` COUNT, ``kubectl describe`` ``(xN over ...)``), and the
correlator itself combines similar messages and cuts off a flood."""

from __future__ import annotations

import re
from typing import Any

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import eventcorrelation

from .conftest import Cluster, eventually


def _event(message: str, *, reason: str = "SuccessfulCreate") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "j.1", "namespace": "default"},
            "involvedObject": {"kind": "Job", "apiVersion": "batch/v1", "name": "j",
                               "namespace": "default", "uid": "u"},
            "reason": reason, "message": message, "type": "Normal",
            "source": {"component": "job-controller"},
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
            "count": 1}


def test_similar_events_are_combined_and_a_flood_is_cut_off() -> None:
    correlator = eventcorrelation.EventCorrelator()
    writes = [correlator.correlate(_event(f"Created pod: j-{i}"), now=float(i))
              for i in range(30)]
    created = [w for w in writes if w is not None and w.patch is None]
    patched = [w for w in writes if w is not None and w.patch is not None]
    # nine distinct messages, then one combined event patched on every further one, until
    # the 25-event burst for the Job is spent
    assert [w.event["message"] for w in created][-1] == (
        eventcorrelation.COMBINED_PREFIX + "Created pod: j-9")
    assert len(created) == 10 and len(patched) == 15
    assert patched[-1].patch is not None and patched[-1].patch["count"] == 16
    assert correlator.skipped == 5


async def test_a_repeated_failure_is_one_event_with_a_count(cluster: Cluster) -> None:
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "refused", "namespace": "default"},
          "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "refused"}},
                   # the server checks pod annotations (strings only) but not a template's
                   "template": {"metadata": {"labels": {"app": "refused"},
                                             "annotations": {"replicas": 1}},
                                "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}}}
    await cluster.client.create(api.REPLICASETS, rs, namespace="default")

    events = api.Resource(group_version="v1", plural="events", kind="Event")

    async def combined() -> list[dict[str, Any]]:
        listed = await cluster.client.list(events, namespace="default")
        return [e for e in listed["items"] if e["involvedObject"]["name"] == "refused"
                and e["message"].startswith(eventcorrelation.COMBINED_PREFIX)]

    async def counted() -> bool:
        return any(e["count"] >= 2 for e in await combined())

    # each refusal names another generated pod, so the messages differ: nine events, then
    # one "(combined from similar events)" event whose count grows, as on a real cluster
    await eventually(counted, timeout=30, what="a combined FailedCreate event counted twice")
    [event] = await combined()
    assert event["reason"] == "FailedCreate" and event["type"] == "Warning"
    out = await cluster.kubectl(
        "get", "events", "--field-selector", "involvedObject.name=refused",
        "-o", "custom-columns=REASON:.reason,COUNT:.count", "--no-headers")
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert len(rows) == 10 and all(reason == "FailedCreate" for reason, _ in rows)
    assert max(int(count) for _, count in rows) >= 2
    # (kubectl describe cannot decode this template's number annotation; kubectl events
    # shows the same "(xN over ...)")
    shown = await cluster.kubectl("events", "--for", "replicaset/refused")
    assert "(combined from similar events)" in shown and re.search(r"\(x\d+ over ", shown), shown
