"""Node lifecycle: a node whose Lease stops renewing goes Unknown, is tainted unreachable,
and its pods are evicted after their tolerationSeconds; renewing again lifts the taint."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from pathlib import Path
from typing import Any

from k8sbridge.devkube.controllers import base
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.raw import RawObject

from .conftest import Cluster, devkube_cluster, eventually

GRACE = 1.0
UNREACHABLE = "node.kubernetes.io/unreachable"


def _micro_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _register_node(cluster: Cluster, name: str) -> RawObject:
    node = await cluster.client.create(api.NODES, {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "lastHeartbeatTime": podfacts.format_time(datetime.datetime.now(datetime.UTC))},
            {"type": "MemoryPressure", "status": "False",
             "reason": "KubeletHasSufficientMemory"}]}})
    await cluster.client.create(api.LEASES, {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease",
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                                          "uid": node["metadata"]["uid"]}]},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                 "renewTime": _micro_now()}}, namespace="kube-node-lease")
    return node


async def _renew_forever(cluster: Cluster, name: str, period: float) -> None:
    while True:
        lease = await cluster.client.get(api.LEASES, namespace="kube-node-lease", name=name)
        lease["spec"]["renewTime"] = _micro_now()
        await cluster.client.replace(api.LEASES, lease)
        await asyncio.sleep(period)


async def _bound_running_pod(cluster: Cluster, name: str, node: str,
                             tolerations: list[dict[str, Any]] | None) -> RawObject:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx:1"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    await cluster.client.create(api.PODS, {"apiVersion": "v1", "kind": "Pod",
                                           "metadata": {"name": name, "namespace": "default"},
                                           "spec": spec}, namespace="default")
    await cluster.client.request("POST", api.PODS.path(namespace="default", name=name,
                                                       subresource="binding"), body={
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    pod = await cluster.client.get(api.PODS, namespace="default", name=name)
    stamp = podfacts.format_time(datetime.datetime.now(datetime.UTC))

    def running(obj: RawObject) -> bool:
        obj["status"].update(phase="Running", conditions=[
            {"type": "Ready", "status": "True", "lastTransitionTime": stamp}])
        return True

    reply = await base.update(client=cluster.client, resource=api.PODS, informer=None,
                              current=pod, mutate=running, subresource="status")
    assert reply is not None
    return reply


async def test_silent_node_goes_unknown_gets_tainted_and_evicts(tmp_path: Path) -> None:
    async with devkube_cluster(tmp_path, node_grace_seconds=GRACE, kubelet=False) as (
            cluster, _):
        await _register_node(cluster, "node-a")
        renewer = asyncio.create_task(_renew_forever(cluster, "node-a", 0.2))
        short = await _bound_running_pod(cluster, "short", "node-a", [
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 1}])
        await _bound_running_pod(cluster, "default-tolerations", "node-a", None)
        await _bound_running_pod(cluster, "forever", "node-a", [{"operator": "Exists"}])

        # while the lease renews, well past the grace period, nothing happens
        await asyncio.sleep(GRACE * 2.5)
        node = await cluster.client.get(api.NODES, namespace=None, name="node-a")
        assert podfacts.condition(node, "Ready")["status"] == "True"  # type: ignore[index]
        assert not node["spec"].get("taints")

        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer

        async def unknown_and_tainted() -> bool:
            n = await cluster.client.get(api.NODES, namespace=None, name="node-a")
            ready = podfacts.condition(n, "Ready") or {}
            keys = {(t["key"], t["effect"]) for t in n["spec"].get("taints") or []}
            return ready.get("status") == "Unknown" and (UNREACHABLE, "NoExecute") in keys

        await eventually(unknown_and_tainted, timeout=GRACE * 10, what="node Unknown + taint")
        node = await cluster.client.get(api.NODES, namespace=None, name="node-a")
        ready = podfacts.condition(node, "Ready") or {}
        assert ready["reason"] == "NodeStatusUnknown"
        assert ready["message"] == "Kubelet stopped posting node status."
        assert (podfacts.condition(node, "MemoryPressure") or {}).get("status") == "Unknown"
        taint = next(t for t in node["spec"]["taints"] if t["effect"] == "NoExecute")
        assert taint["key"] == UNREACHABLE and taint.get("timeAdded")
        assert (UNREACHABLE, "NoSchedule") in {(t["key"], t["effect"])
                                               for t in node["spec"]["taints"]}
        table = await cluster.kubectl("get", "node", "node-a")
        assert "NotReady" in table or "Unknown" in table

        # the pods on it are marked not ready
        async def pods_not_ready() -> bool:
            p = await cluster.client.get(api.PODS, namespace="default", name="forever")
            return (podfacts.condition(p, "Ready") or {}).get("status") == "False"

        await eventually(pods_not_ready, timeout=5, what="pods marked Ready=False")

        # the pod tolerating the taint for 1 s is evicted (graceful: the kubelet would finish)
        async def short_evicted() -> bool:
            pods = {p["metadata"]["name"]: p for p in await cluster.pods()}
            p = pods.get("short")
            return p is None or podfacts.is_terminating(p) or \
                p["metadata"]["uid"] != short["metadata"]["uid"]

        await eventually(short_evicted, timeout=10, what="short-tolerance pod evicted")
        pods = {p["metadata"]["name"]: p for p in await cluster.pods()}
        # the default 300 s toleration and the unlimited one keep their pods for now
        assert not podfacts.is_terminating(pods["default-tolerations"])
        assert not podfacts.is_terminating(pods["forever"])
        defaults = pods["default-tolerations"]["spec"].get("tolerations") or []
        assert any(t.get("key") == UNREACHABLE and t.get("tolerationSeconds") == 300
                   for t in defaults), defaults

        # and it is told as events
        async def events_told() -> bool:
            out = await cluster.kubectl("get", "events", "-A")
            return "TaintManagerEviction" in out and "NodeNotReady" in out

        await eventually(events_told, timeout=5, what="eviction and NodeNotReady events")

        # the lease renews again: the unreachable taints are removed
        renewer = asyncio.create_task(_renew_forever(cluster, "node-a", 0.2))
        try:
            async def untainted() -> bool:
                n = await cluster.client.get(api.NODES, namespace=None, name="node-a")
                return not any(t["key"] == UNREACHABLE for t in n["spec"].get("taints") or [])

            await eventually(untainted, timeout=5, what="taint removed after renewal")
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer


async def test_node_without_lease_is_judged_by_heartbeats(tmp_path: Path) -> None:
    async with devkube_cluster(tmp_path, node_grace_seconds=GRACE, kubelet=False) as (
            cluster, _):
        node = await cluster.client.create(api.NODES, {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "old-style"},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "lastHeartbeatTime": _micro_now()}]}})

        async def beat_forever() -> None:
            current = node
            while True:
                await asyncio.sleep(0.2)

                def beat(obj: RawObject) -> bool:
                    obj["status"]["conditions"] = [
                        {"type": "Ready", "status": "True", "reason": "KubeletReady",
                         "lastHeartbeatTime": _micro_now()}]
                    return True

                current = await base.update(client=cluster.client, resource=api.NODES,
                                            informer=None, current=current, mutate=beat,
                                            subresource="status") or current

        beater = asyncio.create_task(beat_forever())
        await asyncio.sleep(GRACE * 2.5)
        n = await cluster.client.get(api.NODES, namespace=None, name="old-style")
        assert (podfacts.condition(n, "Ready") or {}).get("status") == "True"
        assert not n["spec"].get("taints")
        beater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beater

        async def unknown() -> bool:
            n = await cluster.client.get(api.NODES, namespace=None, name="old-style")
            return (podfacts.condition(n, "Ready") or {}).get("status") == "Unknown"

        await eventually(unknown, timeout=GRACE * 10, what="node Unknown without heartbeats")
