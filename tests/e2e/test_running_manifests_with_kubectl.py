"""e2e with REAL kubectl against `k8sbridge run`: the example manifests reach their states."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from k8sbridge.lifecycle import taskids
from tests.e2e.conftest import EXAMPLES, Target, eventually

pytestmark = pytest.mark.e2e


def _phase(target: Target, name: str) -> str:
    return target.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}", check=False)


def _nodes(target: Target) -> dict[str, dict[str, str]]:
    nodes = target.kubectl_json("get", "nodes")["items"]
    return {n["metadata"]["name"]: n["metadata"]["labels"] for n in nodes}


def _running_tasks(target: Target, prefix: str = "") -> list[dict[str, Any]]:
    """The pods' containers' running tasks (not the pods' sandbox tasks, ``podsandbox``)."""
    return [t for t in target.bridge_tasks()
            if t["state"] == "TASK_RUNNING" and t["id"].startswith(prefix)
            and not taskids.is_sandbox(t["id"].split(".")[-1])]


def _agents(target: Target) -> int:
    """How many active agents the master has (the embedded default has 3; an external
    target has what it has: expectations are derived from it and the Nodes' labels)."""
    return sum(1 for a in target.state().get("slaves") or [] if a.get("active", True))


def test_nodes_one_per_agent(target: Target) -> None:
    agents = eventually(lambda: _agents(target) or None, what="agents")
    nodes = eventually(lambda: _nodes(target) if len(_nodes(target)) >= agents else None,
                       what=f"{agents} nodes")
    for labels in nodes.values():
        assert labels["type"] == "virtual-kubelet"
        assert "rack" in labels and "topology.kubernetes.io/zone" in labels
    wide = target.kubectl("get", "nodes", "-o", "wide")
    assert "Ready" in wide
    taints = target.kubectl_json("get", "nodes")["items"][0]["spec"]["taints"]
    assert {"key": "virtual-kubelet.io/provider", "value": "mesos",
            "effect": "NoSchedule"} in taints


def test_a_pod_runs_logs_and_its_delete_kills_the_task(target: Target) -> None:
    target.kubectl("apply", "-f", str(EXAMPLES / "pod.yaml"))
    target.kubectl("wait", "--for=condition=Ready", "pod/hello", "--timeout=60s", timeout=90)
    pod = target.kubectl_json("get", "pod", "hello")
    uid = pod["metadata"]["uid"]
    assert pod["spec"]["nodeName"] in _nodes(target)
    wide = target.kubectl("get", "pods", "-o", "wide")
    assert "hello" in wide and pod["spec"]["nodeName"] in wide
    assert len(_running_tasks(target, uid)) == 1
    logs = eventually(lambda: target.kubectl("logs", "hello", check=False), what="logs")
    assert "hello from k8sbridge" in logs
    target.kubectl("delete", "pod", "hello", "--grace-period=1", "--wait=true", timeout=90)
    eventually(lambda: not _running_tasks(target, uid), what="task killed")
    assert "hello" not in target.kubectl("get", "pods")


def test_node_selector_host_port_and_run_to_completion(target: Target) -> None:
    for name in ("node-selector.yaml", "host-port.yaml", "run-to-completion.yaml"):
        target.kubectl("apply", "-f", str(EXAMPLES / name))
    if any(labels.get("rack") == "r3" for labels in _nodes(target).values()):
        eventually(lambda: _phase(target, "on-rack-r3") == "Running",
                   what="on-rack-r3 Running")
        node = target.kubectl("get", "pod", "on-rack-r3", "-o", "jsonpath={.spec.nodeName}")
        assert _nodes(target)[node]["rack"] == "r3"
    else:  # an external target without such an agent: the pod must say why it waits
        def waits() -> str | None:
            pod = target.kubectl_json("get", "pod", "on-rack-r3")
            for cond in pod.get("status", {}).get("conditions") or []:
                if cond["type"] == "PodScheduled" and cond["status"] == "False":
                    return str(cond["message"])
            return None

        assert "didn't match Pod's node affinity/selector" in eventually(waits, what="explanation")
    eventually(lambda: _phase(target, "http-on-host-port") == "Running", what="http Running")
    host_ip = target.kubectl("get", "pod", "http-on-host-port", "-o",
                             "jsonpath={.status.hostIP}")

    def serves() -> bool:
        try:
            with urllib.request.urlopen(f"http://{host_ip}:31080/", timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    eventually(serves, what="HTTP on the host port")
    eventually(lambda: _phase(target, "once") == "Succeeded", what="once Succeeded")
    term = target.kubectl_json("get", "pod", "once")["status"]["containerStatuses"][0]
    assert term["state"]["terminated"]["exitCode"] == 0
    assert "done" in target.kubectl("logs", "once")
    target.kubectl("delete", "-f", str(EXAMPLES / "node-selector.yaml"), "-f",
                   str(EXAMPLES / "host-port.yaml"), "-f",
                   str(EXAMPLES / "run-to-completion.yaml"), "--wait=true", timeout=90)


def test_the_impossible_pod_is_explained(target: Target) -> None:
    target.kubectl("apply", "-f", str(EXAMPLES / "impossible.yaml"))

    def explained() -> dict[str, Any] | None:
        pod = target.kubectl_json("get", "pod", "impossible")
        for cond in pod.get("status", {}).get("conditions") or []:
            if cond["type"] == "PodScheduled" and cond["status"] == "False":
                return dict(cond)
        return None

    cond = eventually(explained, what="PodScheduled=False")
    assert cond["reason"] == "Unschedulable"
    n = sum(1 for labels in _nodes(target).values() if labels.get("type") == "virtual-kubelet")
    # the pod's own request: the executor's 0.1 cpu does not leak into the figure
    assert cond["message"].startswith(
        f"0/{n} nodes are available: {n} Insufficient cpu (requested 1000, largest offer "), cond
    describe = eventually(
        lambda: (out if "FailedScheduling" in (out := target.kubectl(
            "describe", "pod", "impossible")) else None),
        what="FailedScheduling event in describe",
    )
    assert "Insufficient cpu" in describe
    assert _phase(target, "impossible") == "Pending"
    target.kubectl("delete", "pod", "impossible", "--wait=true")


def test_deployment_scales_3_10_2_with_tasks_following(target: Target) -> None:
    target.kubectl("apply", "-f", str(EXAMPLES / "deployment.yaml"))

    def running_web(n: int) -> bool:
        pods = target.kubectl_json("get", "pods", "-l", "app=web")["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return len(live) == n and all(p["status"].get("phase") == "Running" for p in live)

    seen: set[str] = set()  # every web pod's uid (the scaled-down ones' tasks must end too)

    def web_tasks() -> int:
        seen.update(p["metadata"]["uid"] for p in
                    target.kubectl_json("get", "pods", "-l", "app=web")["items"])
        return sum(1 for t in _running_tasks(target) if t["id"].split(".")[0] in seen)

    eventually(lambda: running_web(3), what="3 web pods Running", timeout=90)
    assert web_tasks() == 3
    target.kubectl("scale", "deployment/web", "--replicas=10")
    eventually(lambda: running_web(10), what="10 web pods Running", timeout=120)
    eventually(lambda: web_tasks() == 10, what="10 RUNNING tasks")
    target.kubectl("scale", "deployment/web", "--replicas=2")
    eventually(lambda: running_web(2), what="2 web pods", timeout=120)
    # the tasks of every web pod seen, the 8 removed ones included (other test files share
    # this cluster and may have tasks of their own)
    eventually(lambda: web_tasks() == 2, what="2 RUNNING tasks", timeout=60)
    target.kubectl("delete", "-f", str(EXAMPLES / "deployment.yaml"), "--wait=true",
                   timeout=90)
