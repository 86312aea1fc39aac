"""A pod keeps one IP for its whole life, as a kubelet's pod sandbox does: its init container
and its app container see the same address, which is ``status.podIP``, and a container that
exits and is restarted (restartPolicy Always) comes back on it. The bridge launches a sandbox
task with the pod's first task group and every later group onto the same executor
(``scheduler.podsandbox``); the sandbox is not a container of the pod and goes with it. Real
processes (``k8sbridge run``), real kubectl."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge.kernel.agent import cni
from tests.integration.test_giving_pods_their_own_network import Cluster, eventually

# Its address on eth0 and in /etc/hosts, the same line in each container.
SHOW = ("echo ip=$(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1) "
        "hosts=$(hostname -i) env=$MESOS_CONTAINER_IP")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path / "run", agents=1)
    try:
        running.ready()
        yield running
    finally:
        running.stop()


def _addresses(log: str) -> set[str]:
    found = re.findall(r"ip=(\S+) hosts=(\S+) env=(\S+)", log)
    assert found, log
    return {a for line in found for a in line}


def _namespaces(cluster: Cluster) -> list[str]:
    """The network namespaces the agent's isolator holds (one per executor)."""
    work_dirs = {p.parent for p in cluster.data_dir.glob("**/slaves")}
    roots = [cni.root_dir(work_dir=w, persist=p) for w in work_dirs for p in (False, True)]
    return [c.name for r in roots if r.is_dir() for c in r.iterdir() if c.is_dir()]


def test_init_and_app_containers_and_restarts_share_the_pods_ip(cluster: Cluster) -> None:
    [node] = eventually(lambda: cluster.json("get", "nodes")["items"], what="the Node")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "keeper"}, "spec": {
        "nodeSelector": {"kubernetes.io/hostname": node["metadata"]["name"]},
        "terminationGracePeriodSeconds": 1,
        "initContainers": [{"name": "first", "image": "busybox",
                            "command": ["sh", "-c", SHOW]}],
        "containers": [{"name": "main", "image": "busybox",
                        "command": ["sh", "-c", SHOW + "; sleep 2; exit 3"]}]}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    # Without an init container: its failing container must not take the sandbox down.
    crasher = json.loads(json.dumps(pod))
    crasher["metadata"]["name"] = "crasher"
    del crasher["spec"]["initContainers"]
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(crasher))

    def restarted(name: str) -> dict[str, Any] | None:
        got = cluster.json("get", "pod", name)
        [main] = got["status"].get("containerStatuses") or [{}]
        return got if main.get("restartCount", 0) >= 1 and main.get("state", {}).get(
            "running") else None

    running = eventually(lambda: restarted("keeper"), timeout=150,
                         what="the app container restarted", output=cluster.lines)
    pod_ip = running["status"]["podIP"]
    assert pod_ip.startswith("10.88."), pod_ip
    assert running["status"]["podIPs"] == [{"ip": pod_ip}]
    # The sandbox is no container of the pod.
    assert [c["name"] for c in running["status"]["containerStatuses"]] == ["main"]
    assert [c["name"] for c in running["status"]["initContainerStatuses"]] == ["first"]
    assert _addresses(cluster.kubectl("logs", "keeper", "-c", "first")) == {pod_ip}
    assert _addresses(cluster.kubectl("logs", "keeper", "-c", "main", "--previous")) == {pod_ip}
    current = eventually(lambda: cluster.kubectl("logs", "keeper", "-c", "main").strip(),
                         what="the restarted container's log")
    assert _addresses(current) == {pod_ip}
    again = eventually(lambda: restarted("crasher"), timeout=150,
                       what="the crashing container restarted", output=cluster.lines)
    crasher_ip = again["status"]["podIP"]
    assert crasher_ip != pod_ip
    assert _addresses(cluster.kubectl("logs", "crasher", "-c", "main", "--previous")) == {
        crasher_ip}
    # One namespace for all of a pod's groups; it goes with the pod (its sandbox is killed).
    assert len(_namespaces(cluster)) == 2
    cluster.kubectl("delete", "pod", "keeper", "crasher", "--wait=true", "--timeout=60s")
    eventually(lambda: not _namespaces(cluster), what="the pod's namespace gone",
               output=cluster.lines)
