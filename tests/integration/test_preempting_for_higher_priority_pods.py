"""A high-priority pod preempts two low-priority ones on the embedded cluster, as
kube-scheduler's DefaultPreemption would (issue 16), with PriorityClasses applied by kubectl.

Agent 127.0.0.2 has 2 cpus: two low-priority pods of 0.9 cpu (plus the executor's 0.1 each)
fill it. A high-priority pod of 1.5 cpu pinned there fits only once both are gone: the bridge
nominates the node, marks both victims ``DisruptionTarget`` (``PreemptionByScheduler``), posts
``Preempted`` events, deletes them gracefully (they take their time on SIGTERM), and places the
preemptor there when Mesos offers the room again.
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

from k8sbridge import app
from k8sbridge.kube import client as kube_client
from tests.integration.conftest import eventually
from tests.integration.test_placing_by_node_state import N2, create, running_on

CLASSES = """
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: low}
value: 10
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
"""
# SIGTERM takes a second to finish: the victims are seen terminating
SLOW_TO_STOP = "trap 'sleep 1; exit 0' TERM; while true; do sleep 0.1; done"


def pinned(name: str, *, cpu: str, priority_class: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "priorityClassName": priority_class, "terminationGracePeriodSeconds": 5,
            "nodeSelector": {"kubernetes.io/hostname": N2},
            "containers": [{"name": "main", "image": "busybox",
                            "command": ["sh", "-c", SLOW_TO_STOP],
                            "resources": {"requests": {"cpu": cpu, "memory": "32Mi"}}}]},
    }


async def _pod(kube: kube_client.KubeClient, name: str) -> dict[str, Any] | None:
    listing = await kube.get("/api/v1/namespaces/default/pods",
                             fieldSelector=f"metadata.name={name}")
    items = listing.get("items") or []
    return items[0] if items else None


async def test_a_high_priority_pod_preempts_two_low_priority_ones(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await asyncio.to_thread(_apply, embedded)
    for name in ("low-1", "low-2"):
        await create(kube, pinned(name, cpu="900m", priority_class="low"))
    for name in ("low-1", "low-2"):
        assert await eventually(lambda n=name: running_on(kube, n),  # type: ignore[misc]
                                what=f"{name} running") == N2
    await create(kube, pinned("high", cpu="1500m", priority_class="high"))
    high = await kube.get_pod("default", "high")
    assert high["spec"]["priority"] == 1000

    seen: dict[str, dict[str, Any]] = {}

    async def victims_marked() -> bool:
        for name in ("low-1", "low-2"):
            raw = await _pod(kube, name)
            conds = {c["type"]: c for c in ((raw or {}).get("status") or {}).get(
                "conditions") or []}
            if raw is not None and "DisruptionTarget" in conds and raw["metadata"].get(
                    "deletionTimestamp"):
                seen[name] = raw
        return len(seen) == 2

    await eventually(victims_marked, what="both victims marked DisruptionTarget, terminating")
    # deleted gracefully: with their own grace period, which SIGTERM's trap takes a second of
    assert {raw["metadata"]["deletionGracePeriodSeconds"] for raw in seen.values()} == {5}
    for raw in seen.values():
        cond = next(c for c in raw["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert (cond["status"], cond["reason"], cond["message"]) == (
            "True", "PreemptionByScheduler",
            "default-scheduler: preempting to accommodate a higher priority pod")
    nominated = await eventually(
        lambda: _nominated(kube), what="the preemptor's nominatedNodeName")
    assert nominated == N2
    events = await kube.get("/api/v1/namespaces/default/events")
    preempted = {e["involvedObject"]["name"]: e["message"] for e in events["items"]
                 if e["reason"] == "Preempted"}
    expected = f"Preempted by pod {high['metadata']['uid']} on node {N2}"
    assert preempted == {"low-1": expected, "low-2": expected}
    assert await eventually(lambda: running_on(kube, "high"), timeout=60,
                            what="the preemptor running") == N2
    assert await _pod(kube, "low-1") is None and await _pod(kube, "low-2") is None


async def _nominated(kube: kube_client.KubeClient) -> str | None:
    raw = await kube.get_pod("default", "high")
    return (raw.get("status") or {}).get("nominatedNodeName")


def _apply(embedded: app.EmbeddedTargets) -> None:
    done = subprocess.run(["kubectl", "--kubeconfig", str(embedded.kubeconfig), "apply", "-f",
                           "-"], input=CLASSES, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
