"""A high-priority pod whose required anti-affinity refuses a node preempts exactly the
conflicting low-priority pod there, as kube-scheduler's DefaultPreemption does (it runs the
InterPodAffinity filter again with the victims gone), everything applied with real kubectl.

Agent 127.0.0.2 has 2 cpus: two low-priority pods of 0.5 cpu (``web`` and ``batch``, plus the
executor's 0.1 each; slow to stop on SIGTERM, so the victim is seen terminating) leave room
for a third. The high-priority pod, pinned there, asks only
0.3 cpu, but avoids ``app=web`` on its host: resources alone would need no victim at all, and
removing ``batch`` would not help. So ``web`` alone is marked ``DisruptionTarget``, gets a
``Preempted`` event and is deleted; ``batch`` keeps running, and the preemptor runs there
once ``web`` is gone.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from k8sbridge import app
from tests.integration.conftest import eventually
from tests.integration.test_placing_by_node_state import N2, kubectl, running_on
from tests.integration.test_preempting_for_higher_priority_pods import (
    SLOW_TO_STOP,
    _apply,
    _nominated,
    _pod,
)


def pinned(name: str, *, cpu: str, priority_class: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "priorityClassName": priority_class, "terminationGracePeriodSeconds": 5,
            "nodeSelector": {"kubernetes.io/hostname": N2},
            "containers": [{"name": "main", "image": "busybox",
                            "command": ["sh", "-c", SLOW_TO_STOP],
                            "resources": {"requests": {"cpu": cpu, "memory": "32Mi"}}}],
            **spec},
    }


AVOIDS_WEB = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
    {"labelSelector": {"matchLabels": {"app": "web"}},
     "topologyKey": "kubernetes.io/hostname"}]}}


async def _kubectl_apply(embedded: app.EmbeddedTargets, obj: dict[str, Any]) -> None:
    path = embedded.kubeconfig.parent / f"{obj['metadata']['name']}.json"
    path.write_text(json.dumps(obj))
    await kubectl(embedded, "apply", "-f", str(path))


def _disruption(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    for cond in ((raw or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "DisruptionTarget":
            return dict(cond)
    return None


async def test_anti_affinity_preempts_only_the_conflicting_low_priority_pod(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await asyncio.to_thread(_apply, embedded)  # the PriorityClasses low (10) and high (1000)
    for name in ("web", "batch"):
        await _kubectl_apply(embedded, pinned(name, cpu="500m", priority_class="low"))
    for name in ("web", "batch"):
        assert await eventually(lambda n=name: running_on(kube, n),  # type: ignore[misc]
                                what=f"{name} running") == N2
    await _kubectl_apply(embedded, pinned("high", cpu="300m", priority_class="high",
                                          affinity=AVOIDS_WEB))

    async def web_marked() -> dict[str, Any] | None:
        raw = await _pod(kube, "web")
        return raw if _disruption(raw) and raw and raw["metadata"].get(
            "deletionTimestamp") else None

    marked = await eventually(web_marked, what="web marked DisruptionTarget, terminating")
    cond = _disruption(marked)
    assert cond is not None and (cond["reason"], cond["message"]) == (
        "PreemptionByScheduler",
        "default-scheduler: preempting to accommodate a higher priority pod")
    assert await eventually(lambda: _nominated(kube),
                            what="the preemptor's nominatedNodeName") == N2
    assert await eventually(lambda: running_on(kube, "high"), timeout=60,
                            what="the preemptor running") == N2
    assert await _pod(kube, "web") is None
    batch = await _pod(kube, "batch")
    assert batch is not None and not batch["metadata"].get("deletionTimestamp")
    assert _disruption(batch) is None and await running_on(kube, "batch") == N2
    events = await kube.get("/api/v1/namespaces/default/events")
    preempted = {e["involvedObject"]["name"] for e in events["items"]
                 if e["reason"] == "Preempted"}
    assert preempted == {"web"}
    high = await kube.get_pod("default", "high")
    assert high["spec"]["priority"] == 1000
