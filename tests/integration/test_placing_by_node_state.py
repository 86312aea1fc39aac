"""What users change on Nodes steers placement, driven with real kubectl (issue 16).

The embedded cluster has three agents: 127.0.0.1 (zone z1, 4 cpus), 127.0.0.2 (z1, 2 cpus)
and 127.0.0.3 (z2, 8 cpus); their Nodes carry the agents' attributes as labels. Users taint,
label, cordon and drain them with kubectl; the bridge reads the Nodes (watch) and places as
kube-scheduler would, explaining what does not fit in its words.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

from k8sbridge import app
from k8sbridge.kube import client as kube_client
from k8sbridge.kubelet import nodes as kubelet_nodes
from tests.integration.conftest import eventually

N1, N2, N3 = "127.0.0.1", "127.0.0.2", "127.0.0.3"


def _kubectl(kubeconfig: Path, *args: str) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


async def kubectl(targets: app.EmbeddedTargets, *args: str) -> str:
    return await asyncio.to_thread(_kubectl, targets.kubeconfig, *args)


def pod(name: str, *, labels: dict[str, str] | None = None, cpu: str = "100m",
        **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": name}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "main", "image": "busybox", "command": ["sleep", "300"],
             "resources": {"requests": {"cpu": cpu, "memory": "32Mi"}}}], **spec},
    }


def deployment(name: str, replicas: int, **spec: Any) -> dict[str, Any]:
    template = pod(name, labels={"app": name}, **spec)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": template["metadata"] | {"name": None},
                              "spec": template["spec"]}},
    }


async def create(kube: kube_client.KubeClient, obj: dict[str, Any]) -> None:
    if obj["kind"] == "Deployment":
        obj["spec"]["template"]["metadata"].pop("name", None)
        await kube.create("/apis/apps/v1/namespaces/default/deployments", obj)
    else:
        await kube.create("/api/v1/namespaces/default/pods", obj)


async def nodes_of(kube: kube_client.KubeClient, app_label: str) -> list[str]:
    """The nodes of the running pods labelled app=<app_label>."""
    listing = await kube.get("/api/v1/namespaces/default/pods",
                             labelSelector=f"app={app_label}")
    return sorted(p["spec"]["nodeName"] for p in listing["items"]
                  if (p.get("status") or {}).get("phase") == "Running"
                  and not p["metadata"].get("deletionTimestamp"))


async def unschedulable_message(kube: kube_client.KubeClient, name: str) -> str | None:
    raw = await kube.get_pod("default", name)
    for cond in (raw.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return str(cond.get("message"))
    return None


async def running_on(kube: kube_client.KubeClient, name: str) -> str | None:
    raw = await kube.get_pod("default", name)
    if (raw.get("status") or {}).get("phase") == "Running":
        return str(raw["spec"]["nodeName"])
    return None


async def test_taints_labels_and_selectors_set_with_kubectl(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    for node in (N1, N2, N3):
        await kubectl(embedded, "taint", "node", node, "dedicated=gpu:NoSchedule")
    await create(kube, pod("plain"))
    message = await eventually(lambda: unschedulable_message(kube, "plain"),
                               what="an explanation")
    assert message == ("0/3 nodes are available: 3 node(s) had untolerated taint "
                       "{dedicated: gpu}."), message
    # a toleration lets a pod on; lifting the taint from one node lets the other one run
    await create(kube, pod("tolerant", tolerations=[
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]))
    assert await eventually(lambda: running_on(kube, "tolerant"), what="tolerant running")
    await kubectl(embedded, "taint", "node", N2, "dedicated-")
    assert await eventually(lambda: running_on(kube, "plain"), what="plain running") == N2

    # a label a user adds, and a nodeSelector on it
    await kubectl(embedded, "label", "node", N3, "team=blue")
    await create(kube, pod("blue", nodeSelector={"team": "blue"},
                           tolerations=[{"key": "dedicated", "operator": "Exists"}]))
    await create(kube, pod("red", nodeSelector={"team": "red"},
                           tolerations=[{"key": "dedicated", "operator": "Exists"}]))
    assert await eventually(lambda: running_on(kube, "blue"), what="blue running") == N3
    message = await eventually(lambda: unschedulable_message(kube, "red"),
                               what="an explanation")
    assert message == ("0/3 nodes are available: 3 node(s) didn't match Pod's node "
                       "affinity/selector."), message
    await kubectl(embedded, "label", "node", N1, "team=red")
    assert await eventually(lambda: running_on(kube, "red"), what="red running") == N1

    # a restarted bridge's node controller adopts the Nodes and writes their status and its
    # labels again: what users set stays
    await kubectl(embedded, "cordon", N3)
    before = await kube.get(kube_client.node_path(N3))
    restarted = kubelet_nodes.NodeController(
        kube=kube, reader=embedded.bridge.nodes._reader, settings=embedded.bridge.settings)
    await restarted.sync_once()
    after = await kube.get(kube_client.node_path(N3))
    assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    assert after["metadata"]["labels"]["team"] == "blue"
    assert after["metadata"]["labels"]["rack"] == "r3"  # the agent's attribute, still there
    assert after["spec"]["unschedulable"] is True
    taints = [{k: t.get(k) for k in ("key", "value", "effect")} for t in after["spec"]["taints"]]
    assert {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"} in taints
    assert {"key": "virtual-kubelet.io/provider", "value": "mesos",
            "effect": "NoSchedule"} in taints


async def test_cordon_keeps_new_pods_off_and_drain_empties_a_node(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await kubectl(embedded, "cordon", N3)
    await create(kube, deployment("web", 6))
    found = await eventually(
        lambda: _when(nodes_of(kube, "web"), lambda n: len(n) == 6), what="6 replicas")
    assert N3 not in found, found
    await kubectl(embedded, "uncordon", N3)
    await kubectl(embedded, "drain", N1, "--ignore-daemonsets", "--delete-emptydir-data",
                  "--grace-period=1", "--timeout=90s")
    drained = await kube.get(kube_client.node_path(N1))
    assert drained["spec"].get("unschedulable") is True
    after = await eventually(
        lambda: _when(nodes_of(kube, "web"), lambda n: len(n) == 6 and N1 not in n),
        what="the replicas off the drained node")
    assert N1 not in after, after


async def test_anti_affinity_and_zone_spread(embedded: app.EmbeddedTargets) -> None:
    kube = embedded.bridge.kube
    term = {"topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {"app": "db"}}}
    await create(kube, deployment("db", 3, affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [term]}}))
    spread = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
               "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "spread"}}}]
    await create(kube, deployment("spread", 4, topologySpreadConstraints=spread))
    db = await eventually(lambda: _when(nodes_of(kube, "db"), lambda n: len(n) == 3),
                          what="3 db replicas")
    assert db == [N1, N2, N3]
    placed = await eventually(
        lambda: _when(nodes_of(kube, "spread"), lambda n: len(n) == 4), what="4 replicas")
    zones = {N1: "z1", N2: "z1", N3: "z2"}
    assert sorted(zones[n] for n in placed) == ["z1", "z1", "z2", "z2"], placed
    # a fifth replica would make the skew 2 in one zone either way: with a zone full of
    # nothing else it still goes (skew 1), so scale to 5 and see it placed in either zone
    # only once both hold two
    await kube.patch("/apis/apps/v1/namespaces/default/deployments/spread",
                     {"spec": {"replicas": 5}})
    five = await eventually(
        lambda: _when(nodes_of(kube, "spread"), lambda n: len(n) == 5), what="5 replicas")
    counts = sorted([sum(1 for n in five if zones[n] == z) for z in ("z1", "z2")])
    assert counts == [2, 3], five


async def _when(value: Any, check: Any) -> Any:
    found = await value
    return found if check(found) else None
