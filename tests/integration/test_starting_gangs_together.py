"""A gang of 4 (a scheduler-plugins PodGroup with minMember 4) waits until all 4 fit, then
starts together; driven with real kubectl against the embedded cluster (issue 16).

The agents: 127.0.0.1 (4 cpus), 127.0.0.2 (2 cpus), 127.0.0.3 (8 cpus). A 7-cpu blocker takes
127.0.0.3, so only 3 members of 1.5 cpus (+ 0.1 for the executor) fit: none is launched, and
``kubectl describe`` says why. Deleting the blocker frees room for the fourth: all 4 start.
"""

from __future__ import annotations

import asyncio
from typing import Any

import yaml

from k8sbridge import app
from k8sbridge.kube import client as kube_client
from k8sbridge.scheduler import gangs
from tests.integration.conftest import eventually
from tests.integration.test_placing_by_node_state import (
    N3,
    create,
    kubectl,
    pod,
    running_on,
    unschedulable_message,
)


def member(name: str, group: str = "gang") -> dict[str, Any]:
    return pod(name, cpu="1500m", labels={"app": "gang", gangs.POD_GROUP_LABEL: group})


async def apply(embedded: app.EmbeddedTargets, *objects: dict[str, Any]) -> None:
    path = embedded.kubeconfig.parent / "gang.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    await kubectl(embedded, "apply", "-f", str(path))


async def bound(kube: kube_client.KubeClient) -> list[str]:
    listing = await kube.get("/api/v1/namespaces/default/pods", labelSelector="app=gang")
    return sorted(p["metadata"]["name"] for p in listing["items"] if p["spec"].get("nodeName"))


async def test_a_gang_of_four_waits_until_four_fit_then_starts_together(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await create(kube, pod("blocker", cpu="7"))
    assert await eventually(lambda: running_on(kube, "blocker"), what="the blocker") == N3

    group = {"apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
             "metadata": {"name": "gang", "namespace": "default"}, "spec": {"minMember": 4}}
    names = [f"gang-{i}" for i in range(4)]
    await apply(embedded, group, *(member(n) for n in names))
    held = ("PodGroup default/gang gets rejected due to Pod {} is unschedulable even after "
            "PostFilter (3/4 members fit, minMember 4)")

    async def explained() -> list[str] | None:
        messages = [await unschedulable_message(kube, n) or "" for n in names]
        rejected = [m for m in messages if m.startswith("PodGroup default/gang gets rejected")]
        short = [m for m in messages if "Insufficient cpu" in m]
        return messages if len(rejected) == 3 and len(short) == 1 else None

    messages = await eventually(explained, what="the gang's reasons")
    blocker = names[next(i for i, m in enumerate(messages) if "Insufficient cpu" in m)]
    assert all(m == held.format(blocker) for m in messages if m.startswith("PodGroup")), messages
    one = next(n for n in names if n != blocker)

    async def described() -> bool:  # (the FailedScheduling event follows the condition)
        return held.format(blocker) in await kubectl(embedded, "describe", "pod", one)

    await eventually(described, what="the reason in kubectl describe")
    # nothing was launched half-way, and nothing is a little later either; the offers the
    # group could not use are declined, not held hostage (the loop's book empties)
    await asyncio.sleep(2.0)
    assert await bound(kube) == []

    async def released() -> bool:
        return len(embedded.bridge.scheduler._book) == 0

    await eventually(released, what="the offers declined")

    # a pod naming a PodGroup that does not exist waits, saying so
    await create(kube, pod("stray", labels={"app": "stray", gangs.POD_GROUP_LABEL: "ghost"}))
    assert await eventually(lambda: unschedulable_message(kube, "stray"),
                            what="the stray's reason") == "PodGroup default/ghost not found"

    async def described_stray() -> bool:
        return "PodGroup default/ghost not found" in await kubectl(
            embedded, "describe", "pod", "stray")

    await eventually(described_stray, what="the stray's FailedScheduling event")

    await kubectl(embedded, "delete", "pod", "blocker", "--grace-period=1")

    async def all_running() -> list[str] | None:
        nodes = [await running_on(kube, n) for n in names]
        return [n for n in nodes if n] if all(nodes) else None

    nodes = await eventually(all_running, timeout=60, what="the 4 members running")
    assert N3 in nodes, nodes
    assert await unschedulable_message(kube, "stray") == "PodGroup default/ghost not found"
