"""DaemonSets on devkube with several nodes, each with a kubelet that runs only the pods pinned
to it: one pod per eligible node (the bridge's taint keeps pods off unless tolerated), nodes
added and removed, a nodeSelector, a rolling update, the columns and the refusals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import daemonplan
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.raw import ObjectKey

from .conftest import Cluster, FakeKubelet, devkube_cluster, eventually

BRIDGE_TAINT = "virtual-kubelet.io/provider=mesos:NoSchedule"  # settings.kubelet.node_taint


class PinnedKubelet(FakeKubelet):
    """Binds only the pods whose node affinity names its node (as a scheduler would)."""

    async def sync(self, key: ObjectKey) -> float | None:
        pod = self.pods.get(key)
        if pod is not None and not podfacts.node_name(pod) and \
                daemonplan.target_node(pod) != self.node:
            return None
        return await super().sync(key)


class Nodes:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def add(self, name: str) -> None:
        kubelet = PinnedKubelet(client=self.cluster.client, node=name)
        self.tasks.append(asyncio.create_task(kubelet.run(stop=self.stop)))

        async def registered() -> bool:
            nodes = await self.cluster.client.list(api.NODES)
            return name in {n["metadata"]["name"] for n in nodes["items"]}

        await eventually(registered, what=f"node {name}")


@pytest.fixture
async def three(tmp_path: Path) -> AsyncIterator[tuple[Cluster, Nodes]]:
    async with devkube_cluster(tmp_path, kubelet=False) as (cluster, _):
        nodes = Nodes(cluster)
        for name in ("node-1", "node-2", "node-3"):
            await nodes.add(name)
        await cluster.kubectl("taint", "nodes", "node-3", BRIDGE_TAINT)
        try:
            yield cluster, nodes
        finally:
            nodes.stop.set()
            for task in nodes.tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def daemonset(name: str = "agent", *, image: str = "busybox:1.36",
              **pod_spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}],
                                           **pod_spec}}}}


async def apply(cluster: Cluster, tmp_path: Path, manifest: dict[str, Any]) -> str:
    path = tmp_path / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return await cluster.kubectl("apply", "-f", str(path))


async def placement(cluster: Cluster, app: str = "agent") -> dict[str, str]:
    """node → image of the live daemon pods (bound or pinned)."""
    return {daemonplan.target_node(p): p["spec"]["containers"][0]["image"]
            for p in await cluster.pods(selector=f"app={app}")
            if not podfacts.is_terminating(p)}


async def until(cluster: Cluster, wanted: dict[str, str], app: str = "agent") -> None:
    async def check() -> bool:
        return await placement(cluster, app) == wanted

    await eventually(check, what=f"daemon pods on {sorted(wanted)}")


async def test_one_pod_per_eligible_node(three: tuple[Cluster, Nodes], tmp_path: Path) -> None:
    cluster, nodes = three
    await apply(cluster, tmp_path, daemonset())
    await until(cluster, {"node-1": "busybox:1.36", "node-2": "busybox:1.36"})
    await cluster.kubectl("rollout", "status", "daemonset/agent", "--timeout=20s")
    pod = (await cluster.pods(selector="app=agent"))[0]
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                       "values": [podfacts.node_name(pod)]}]}]
    tolerated = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tolerated
    assert ("node.kubernetes.io/unreachable", "NoExecute") in tolerated
    assert pod["metadata"]["labels"]["pod-template-generation"] == "1"
    ds = await cluster.client.get(api.DAEMONSETS, namespace="default", name="agent")
    assert {k: ds["status"].get(k) for k in (
        "desiredNumberScheduled", "currentNumberScheduled", "numberReady", "numberAvailable",
        "updatedNumberScheduled", "numberMisscheduled")} == {
        "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 2,
        "numberAvailable": 2, "updatedNumberScheduled": 2, "numberMisscheduled": 0}
    table = (await cluster.kubectl("get", "ds")).split("\n")
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE",
                                "AVAILABLE", "NODE", "SELECTOR", "AGE"]
    assert table[1].split()[:7] == ["agent", "2", "2", "2", "2", "2", "<none>"]
    described = await cluster.kubectl("describe", "ds", "agent")
    assert "Desired Number of Nodes Scheduled: 2" in described, described
    assert "Pods Status:  2 Running / 0 Waiting / 0 Succeeded / 0 Failed" in described

    await nodes.add("node-4")  # a node joins: it gets a pod
    await until(cluster, {f"node-{i}": "busybox:1.36" for i in (1, 2, 4)})
    await cluster.client.delete(api.NODES, namespace=None, name="node-4")  # and leaves
    await until(cluster, {"node-1": "busybox:1.36", "node-2": "busybox:1.36"})

    await cluster.kubectl("set", "image", "daemonset/agent", "c=busybox:1.37")
    await until(cluster, {"node-1": "busybox:1.37", "node-2": "busybox:1.37"})
    await cluster.kubectl("rollout", "status", "daemonset/agent", "--timeout=20s")

    tolerant = daemonset("tolerant", tolerations=[
        {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}])
    await apply(cluster, tmp_path, tolerant)
    await until(cluster, {f"node-{i}": "busybox:1.36" for i in (1, 2, 3)}, app="tolerant")


async def test_a_node_selector(three: tuple[Cluster, Nodes], tmp_path: Path) -> None:
    cluster, _ = three
    await apply(cluster, tmp_path, daemonset("ssd", nodeSelector={"disk": "ssd"}))
    await cluster.kubectl("label", "nodes", "node-2", "disk=ssd")
    await until(cluster, {"node-2": "busybox:1.36"}, app="ssd")
    table = (await cluster.kubectl("get", "ds", "ssd")).split("\n")
    assert table[1].split()[6] == "disk=ssd"
    await cluster.kubectl("label", "nodes", "node-2", "disk-")
    await until(cluster, {}, app="ssd")


async def test_an_orphan_on_a_node_is_adopted(three: tuple[Cluster, Nodes],
                                             tmp_path: Path) -> None:
    cluster, _ = three
    await cluster.client.create(api.PODS, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "labels": {"app": "agent"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox:1.35"}]},
    }, namespace="default")
    manifest = daemonset()
    manifest["spec"]["updateStrategy"] = {"type": "OnDelete"}
    await apply(cluster, tmp_path, manifest)
    await until(cluster, {"node-1": "busybox:1.35", "node-2": "busybox:1.36"})
    stray = await cluster.client.get(api.PODS, namespace="default", name="stray")
    [ref] = stray["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("DaemonSet", "agent", True)

    async def one_updated() -> bool:
        ds = await cluster.client.get(api.DAEMONSETS, namespace="default", name="agent")
        return (ds["status"].get("updatedNumberScheduled"), ds["status"].get(
            "currentNumberScheduled")) == (1, 2)

    await eventually(one_updated, what="one updated pod of two")


async def test_refusals(cluster: Cluster) -> None:
    bad = daemonset("bad", restartPolicy="Never")
    bad["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 0, "maxSurge": 0}}
    with pytest.raises(Exception) as refused:
        await cluster.client.create(api.DAEMONSETS, bad, namespace="default")
    message = str(refused.value)
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: ' \
        '"Always"' in message, message
    assert "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 " \
        "when maxSurge is 0" in message, message
    both = daemonset("both")
    both["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": "10%", "maxSurge": 1}}
    with pytest.raises(Exception) as refused:
        await cluster.client.create(api.DAEMONSETS, both, namespace="default")
    assert "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when " \
        "maxUnavailable is non-zero" in str(refused.value), str(refused.value)
    good = await cluster.client.create(api.DAEMONSETS, daemonset("good"), namespace="default")
    assert good["spec"]["updateStrategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    good["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(Exception) as refused:
        await cluster.client.replace(api.DAEMONSETS, good)
    assert 'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{' \
        '"app":"other"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is ' \
        "immutable" in str(refused.value), str(refused.value)
