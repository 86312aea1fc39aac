"""e2e with REAL kubectl: apps/v1 StatefulSets and DaemonSets on the embedded default run as
real pods (issue 17): two pods ``ordered-0`` and ``ordered-1`` with their stable hostnames
become Ready in order, ``kubectl rollout status`` follows it, and a scale-down removes the
highest ordinal; a DaemonSet that tolerates the bridge's node taint runs one pod on every bridge
Node (placed by its ``metadata.name`` node affinity), one that does not runs none."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.e2e.conftest import Target, eventually

pytestmark = pytest.mark.e2e

STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ordered}  # not "web": the shared cluster's manifest tests own app=web
spec:
  replicas: 2
  serviceName: ordered
  selector: {matchLabels: {app: ordered}}
  template:
    metadata: {labels: {app: ordered}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: busybox:1.36
        command: [sh, -c, 'echo "host=$(cat /etc/hostname)"; exec sleep 3600']
"""


def _apply(target: Target, manifest: str) -> None:
    done = subprocess.run(["kubectl", "--kubeconfig", str(target.kubeconfig), "apply", "-f",
                           "-"], input=manifest, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_statefulset_of_two_becomes_ready_in_order(target: Target) -> None:
    _apply(target, STATEFULSET)
    out = target.kubectl("rollout", "status", "statefulset/ordered", "--timeout=150s", timeout=170)
    assert "partitioned roll out complete" in out or "roll out complete" in out, out
    pods = target.kubectl_json("get", "pods", "-l", "app=ordered")["items"]
    by_name: dict[str, Any] = {p["metadata"]["name"]: p for p in pods}
    assert sorted(by_name) == ["ordered-0", "ordered-1"]
    assert all(p["status"]["phase"] == "Running" for p in pods)
    ready = {name: next(c["lastTransitionTime"] for c in p["status"]["conditions"]
                        if c["type"] == "Ready") for name, p in by_name.items()}
    created = {name: p["metadata"]["creationTimestamp"] for name, p in by_name.items()}
    assert created["ordered-1"] >= ready["ordered-0"], "ordered-1 waits for ordered-0 Ready"
    for name in by_name:
        def output(name: str = name) -> str:
            return target.kubectl("logs", name, check=False).strip()

        assert eventually(output, what="the pod's output") == f"host={name}"
    row = target.kubectl("get", "sts", "ordered", "--no-headers").split()
    assert row[:2] == ["ordered", "2/2"]
    target.kubectl("scale", "statefulset/ordered", "--replicas=1")

    def one_left() -> bool:
        names = [p["metadata"]["name"] for p in
                 target.kubectl_json("get", "pods", "-l", "app=ordered")["items"]]
        return names == ["ordered-0"]

    eventually(one_left, timeout=90, what="ordered-1 removed first")
    target.kubectl("delete", "statefulset", "ordered", "--wait=true", timeout=90)

    def pods_gone() -> bool:
        return not target.kubectl_json("get", "pods", "-l", "app=ordered")["items"]

    eventually(pods_gone, timeout=90, what="the StatefulSet's pods to be deleted with it")


DAEMONSETS = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: everywhere}
spec:
  selector: {matchLabels: {app: everywhere}}
  template:
    metadata: {labels: {app: everywhere}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {key: virtual-kubelet.io/provider, operator: Exists, effect: NoSchedule}
      containers:
      - name: agent
        image: busybox:1.36
        command: [sh, -c, 'exec sleep 3600']
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: nowhere}
spec:
  selector: {matchLabels: {app: nowhere}}
  template:
    metadata: {labels: {app: nowhere}}
    spec:
      containers:
      - name: agent
        image: busybox:1.36
"""


def test_a_daemonset_runs_on_every_bridge_node_that_it_tolerates(target: Target) -> None:
    nodes = sorted(n["metadata"]["name"] for n in target.kubectl_json("get", "nodes")["items"])
    assert nodes
    _apply(target, DAEMONSETS)
    target.kubectl("rollout", "status", "daemonset/everywhere", "--timeout=150s", timeout=170)
    pods = target.kubectl_json("get", "pods", "-l", "app=everywhere")["items"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == nodes
    assert all(p["status"]["phase"] == "Running" for p in pods)
    nowhere = target.kubectl_json("get", "daemonset", "nowhere")
    # the bridge's Nodes carry its NoSchedule taint: without the toleration, no node is eligible
    assert nowhere["status"]["desiredNumberScheduled"] == 0
    target.kubectl("delete", "daemonset", "everywhere", "nowhere", "--wait=true", timeout=90)

    def pods_gone() -> bool:
        return not target.kubectl_json("get", "pods", "-l", "app=everywhere")["items"]

    eventually(pods_gone, timeout=90, what="the DaemonSet's pods to be deleted with it")
