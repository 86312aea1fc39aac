"""The node lifecycle controller owns the condition taints; the kubelet owns the conditions.

Issue 11: the bridge and this controller swapped a node's taint between ``not-ready`` and
``unreachable`` every minute, restarting the eviction timer. Here: the controller keeps its
taints (and their ``timeAdded``) and every taint it does not own, and a status the kubelet
posted after the controller judged the node silent is never overwritten with Unknown, even when
the controller's write meets a 409 and re-reads.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from k8sbridge.devkube import main
from k8sbridge.devkube.controllers import base, taints
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.nodelifecycle import NodeLifecycleController
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
PROVIDER = {"key": "virtual-kubelet.io/provider", "value": "mesos", "effect": "NoSchedule"}


def _node(*, ready: str, taint_list: list[dict[str, str]]) -> RawObject:
    return {"metadata": {"name": "n"}, "spec": {"taints": taint_list},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_the_controller_keeps_its_taints_and_their_time_added_and_every_other_taint() -> None:
    stale = taints.NodeVerdict(stale=True, ready_status="Unknown")
    first = taints.reconcile_taints(_node(ready="Unknown", taint_list=[PROVIDER]), stale, now=T0)
    assert first is not None
    assert first[0] == PROVIDER
    assert [(t["key"], t["effect"]) for t in first[1:]] == [
        (taints.UNREACHABLE, "NoExecute"), (taints.UNREACHABLE, "NoSchedule")]
    added = first[1]["timeAdded"]
    later = T0 + datetime.timedelta(minutes=5)
    assert taints.reconcile_taints(_node(ready="Unknown", taint_list=first), stale,
                                   now=later) is None  # nothing to change: timeAdded stays
    fresh = taints.NodeVerdict(stale=False, ready_status="True")
    assert taints.reconcile_taints(_node(ready="True", taint_list=first), fresh,
                                   now=later) == [PROVIDER]
    assert added == podfacts.format_time(T0)


def _heartbeat(at: datetime.datetime) -> str:
    return podfacts.format_time(at)


async def test_a_report_posted_after_the_silence_was_judged_is_not_overwritten(
    tmp_path: Path,
) -> None:
    config = main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig", controllers=False)
    async with main.running(config) as kube, api.ApiClient(
            url=kube.url, token=kube.token, ca_file=kube.ca_file) as client:
        old_beat = _heartbeat(datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1))
        node = await client.create(api.NODES, {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
            "spec": {"taints": [PROVIDER]},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady",
                                       "lastHeartbeatTime": old_beat}]}})
        nodes = Informer(client=client, resource=api.NODES)
        leases = Informer(client=client, resource=api.LEASES, namespace="kube-node-lease")
        pods = Informer(client=client, resource=api.PODS)
        now = [100.0]
        controller = NodeLifecycleController(client=client, nodes=nodes, leases=leases,
                                             pods=pods, grace_seconds=40.0,
                                             clock=lambda: now[0])
        nodes.upsert(node)
        controller._on_node(None, node)  # what the informer tells it (its watch is not run)
        now[0] += 41.0  # silent for longer than the grace period, as far as it knows

        # The kubelet posts a fresh report before the controller's write reaches the server.
        def fresh(obj: RawObject) -> bool:
            obj["status"]["conditions"][0]["lastHeartbeatTime"] = _heartbeat(
                datetime.datetime.now(datetime.UTC))
            return True

        posted = await base.update(client=client, resource=api.NODES, informer=None,
                                   current=node, mutate=fresh, subresource="status")
        assert posted is not None

        await controller.sync(ObjectKey("n"))  # its PUT gets a 409, it re-reads: fresh
        stored = await client.get(api.NODES, namespace=None, name="n")
        ready = podfacts.condition(stored, "Ready") or {}
        assert ready.get("status") == "True", ready
        assert ready.get("lastHeartbeatTime") == posted["status"]["conditions"][0][
            "lastHeartbeatTime"]
        assert stored["spec"]["taints"] == [PROVIDER]

        # That report was a signal: the node is judged anew from it, and silent only after a
        # full grace period without another one.
        await controller.sync(ObjectKey("n"))
        stored = await client.get(api.NODES, namespace=None, name="n")
        assert (podfacts.condition(stored, "Ready") or {}).get("status") == "True"
        nodes.upsert(stored)
        now[0] += 41.0
        await controller.sync(ObjectKey("n"))
        stored = await client.get(api.NODES, namespace=None, name="n")
        assert (podfacts.condition(stored, "Ready") or {}).get("status") == "Unknown"
        assert [(t["key"], t["effect"]) for t in stored["spec"]["taints"]] == [
            (PROVIDER["key"], "NoSchedule"), (taints.UNREACHABLE, "NoExecute"),
            (taints.UNREACHABLE, "NoSchedule")]
