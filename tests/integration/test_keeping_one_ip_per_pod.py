"""A pod keeps one IP for its whole life, as a kubelet's pod sandbox does: its init container
and its app container see the same address, which is ``status.podIP``, and a container that
exits and is restarted (restartPolicy Always) comes back on it. The bridge launches a sandbox
task with the pod's first task group and every later group onto the same executor
(``scheduler.podsandbox``); the sandbox is not a container of the pod and goes with it. Real
processes (``k8sbridge run``), real kubectl."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge import app, embedded
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel import network
from k8sbridge.kernel.agent import cni
from k8sbridge.kernel.master import config as master_config
from k8sbridge.lifecycle import taskids
from tests.integration.conftest import eventually, fast_settings
from tests.integration.test_giving_pods_their_own_network import Cluster
from tests.integration.test_giving_pods_their_own_network import eventually as soon

# Its address on eth0 and in /etc/hosts, the same line in each container.
SHOW = ("echo ip=$(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1) "
        "hosts=$(hostname -i) env=$MESOS_CONTAINER_IP")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path / "run", agents=1, K8SBRIDGE_SCHEDULER_POD_SANDBOX="true")
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
    [node] = soon(lambda: cluster.json("get", "nodes")["items"], what="the Node")
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

    running = soon(lambda: restarted("keeper"), timeout=150,
                         what="the app container restarted", output=cluster.lines)
    pod_ip = running["status"]["podIP"]
    assert pod_ip.startswith("10.88."), pod_ip
    assert running["status"]["podIPs"] == [{"ip": pod_ip}]
    # The sandbox is no container of the pod.
    assert [c["name"] for c in running["status"]["containerStatuses"]] == ["main"]
    assert [c["name"] for c in running["status"]["initContainerStatuses"]] == ["first"]
    assert _addresses(cluster.kubectl("logs", "keeper", "-c", "first")) == {pod_ip}
    assert _addresses(cluster.kubectl("logs", "keeper", "-c", "main", "--previous")) == {pod_ip}
    current = soon(lambda: cluster.kubectl("logs", "keeper", "-c", "main").strip(),
                         what="the restarted container's log")
    assert _addresses(current) == {pod_ip}
    again = soon(lambda: restarted("crasher"), timeout=150,
                       what="the crashing container restarted", output=cluster.lines)
    crasher_ip = again["status"]["podIP"]
    assert crasher_ip != pod_ip
    assert _addresses(cluster.kubectl("logs", "crasher", "-c", "main", "--previous")) == {
        crasher_ip}
    # One namespace for all of a pod's groups; it goes with the pod (its sandbox is killed).
    assert len(_namespaces(cluster)) == 2
    cluster.kubectl("delete", "pod", "keeper", "crasher", "--wait=true", "--timeout=60s")
    soon(lambda: not _namespaces(cluster), what="the pod's namespace gone",
               output=cluster.lines)


async def _master_tasks(master_url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(master_url + "/state") as r:
        state = await r.json()
    return [t for fw in state["frameworks"] for t in fw.get("tasks", [])]


async def test_a_restarted_bridge_restarts_a_container_on_the_pods_ip(tmp_path: Path) -> None:
    """The new bridge joins the sandbox it finds (its ExecutorInfo from GET_EXECUTORS)."""
    net = network.ClusterNetwork()
    net.create()
    try:
        [agent] = embedded.embedded_agent_configs(data_dir=tmp_path / "run", count=1)
        agent = dataclasses.replace(agent, **net.agent_flags(0, work_dir=agent.work_dir))
        base = fast_settings(tmp_path / "run")
        async with kernel_main.running_kernel(
            master=master_config.MasterConfig(port=0), agents=[agent]
        ) as kernel, devkube_main.running(
            devkube_main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig")
        ) as dk:
            settings = dataclasses.replace(
                base, mesos=dataclasses.replace(base.mesos, masters=(kernel.master_url,)),
                kube=dataclasses.replace(base.kube, kubeconfig=dk.kubeconfig),
                scheduler=dataclasses.replace(
                    base.scheduler, scheduler_names=("default-scheduler",), image_mode="none",
                    pod_network=net.network_name, pod_sandbox=True))
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kept"}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": "busybox",
                                "command": ["sh", "-c", "sleep 6; exit 3"]}]}}
            async with app.running_bridge(settings) as first:
                await first.kube.create("/api/v1/namespaces/default/pods", pod)

                async def running() -> dict[str, Any] | None:
                    got = await first.kube.get_pod("default", "kept")
                    status = got.get("status") or {}
                    return got if status.get("phase") == "Running" and status.get(
                        "podIP") else None

                before = await eventually(running, what="kept Running")
            async with app.running_bridge(settings) as second:
                async def restarted() -> dict[str, Any] | None:
                    got = await second.kube.get_pod("default", "kept")
                    [main] = (got.get("status") or {}).get("containerStatuses") or [{}]
                    return got if main.get("restartCount", 0) >= 1 and main.get(
                        "state", {}).get("running") else None

                after = await eventually(restarted, timeout=60, what="kept restarted")
                assert after["status"]["podIP"] == before["status"]["podIP"]
                uid = after["metadata"]["uid"]
                sandboxes = [t for t in await _master_tasks(kernel.master_url)
                             if t["id"].startswith(uid) and t["id"].endswith(taskids.SANDBOX)]
                assert [t["state"] for t in sandboxes] == ["TASK_RUNNING"]
                await second.kube.delete_pod_now(namespace="default", name="kept", uid=uid)

                async def gone() -> bool:
                    return not any(t["id"].startswith(uid) and t["state"] == "TASK_RUNNING"
                                   for t in await _master_tasks(kernel.master_url))

                await eventually(gone, what="the pod's tasks ended")
    finally:
        net.remove()
