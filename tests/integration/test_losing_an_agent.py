"""An agent is lost (its process stops; the master marks it unreachable) and comes back.

As Mesos and Kubernetes define it: the pod's task becomes TASK_UNREACHABLE and the pod stays
as it is, not Ready, not restarted; a pod deleted meanwhile stays Terminating (a kubelet cut off
from its node does the same) while a replacement runs on another agent; a pod force-deleted
leaves a task no pod owns, which is killed with back-off — never in a loop on the master's
"unknown task" answers — and killed for real once its agent is back. Never two live
incarnations of a pod's container.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors
from tests.integration import two_agents
from tests.integration.conftest import eventually
from tests.integration.two_agents import LIVE, Cluster, bridge_tasks


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with two_agents.running(tmp_path) as running:
        yield running


async def _capabilities(master_url: str) -> list[str]:
    async with aiohttp.ClientSession() as http, http.get(master_url + "/state") as r:
        state = await r.json()
    (fw,) = [fw for fw in state["frameworks"] if fw["name"] == "k8sbridge"]
    return list(fw.get("capabilities") or [])


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "main", "image": "busybox", "command": ["sleep", "300"]}], **spec},
    }


async def _running(kube: kube_client.KubeClient, name: str) -> dict[str, Any] | None:
    try:
        pod = await kube.get_pod("default", name)
    except kube_errors.NotFound:
        return None
    return pod if (pod.get("status") or {}).get("phase") == "Running" else None


async def _lose(cluster: Cluster, node: str) -> None:
    """Stop the agent of ``node`` and wait until the master has marked it unreachable."""
    await cluster.kernel.stop_agent(int(node.rsplit(".", 1)[1]) - 1)

    async def unreachable() -> bool:
        return any(t["state"] == "TASK_UNREACHABLE" for t in await bridge_tasks(
            cluster.kernel.master_url))

    await eventually(unreachable, what="the lost agent's tasks unreachable")


def _kill_lines(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if "kill" in r.getMessage().lower())


async def test_a_force_deleted_pod_on_a_lost_agent_is_killed_without_a_loop(
    cluster: Cluster, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    # partition-aware: TASK_UNREACHABLE (not TASK_LOST) while the agent is away
    assert "PARTITION_AWARE" in await _capabilities(cluster.kernel.master_url)
    kube = cluster.kube
    await kube.create("/api/v1/namespaces/default/pods", _pod("lost", nodeName="127.0.0.1"))
    pod = await eventually(lambda: _running(kube, "lost"), what="lost Running")
    task_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("mesos://")
    await _lose(cluster, "127.0.0.1")

    async def not_ready() -> dict[str, Any] | None:
        got = await _running(kube, "lost")
        cs = (got or {}).get("status", {}).get("containerStatuses") or [{}]
        return got if cs[0].get("ready") is False else None

    got = await eventually(not_ready, what="lost not Ready while its agent is away")
    assert got["status"]["containerStatuses"][0]["restartCount"] == 0  # not restarted
    await kube.delete("/api/v1/namespaces/default/pods/lost", grace_period_seconds=0)
    caplog.clear()
    await asyncio.sleep(10)
    kills = _kill_lines(caplog)
    assert kills < 25, f"{kills} log lines about kills in 10 s (a kill loop)"
    assert [t["state"] for t in await bridge_tasks(cluster.kernel.master_url)
            if t["id"] == task_id] == ["TASK_UNREACHABLE"]
    await cluster.kernel.add_agent(cluster.agents[0], _keep_tasks=True)

    async def killed() -> bool:
        return [t["state"] for t in await bridge_tasks(cluster.kernel.master_url)
                if t["id"] == task_id] == ["TASK_KILLED"]

    await eventually(killed, timeout=30, what="the orphan killed once its agent is back")


async def test_a_replacement_runs_elsewhere_and_the_old_incarnation_is_killed_on_return(
    cluster: Cluster, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    kube = cluster.kube
    template = _pod("web")
    await kube.create("/apis/apps/v1/namespaces/default/replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": template["metadata"] | {"name": None},
                              "spec": template["spec"]}},
    })

    async def web_pods() -> list[dict[str, Any]]:
        return await two_agents.web_pods(kube)

    async def one_running() -> dict[str, Any] | None:
        return await two_agents.one_running_web_pod(kube)

    first = await eventually(one_running, what="the ReplicaSet's pod Running")
    lost_node = first["spec"]["nodeName"]
    await _lose(cluster, lost_node)
    # evicted, as the node lifecycle controller does: a graceful delete
    await kube.delete(f"/api/v1/namespaces/default/pods/{first['metadata']['name']}",
                      grace_period_seconds=30)
    caplog.clear()

    async def replaced() -> dict[str, Any] | None:
        pod = await one_running()
        return pod if pod is not None and pod["metadata"]["uid"] != first["metadata"][
            "uid"] else None

    second = await eventually(replaced, timeout=30, what="a replacement Running")
    assert second["spec"]["nodeName"] != lost_node
    old = await kube.get_pod("default", first["metadata"]["name"])
    assert old["metadata"].get("deletionTimestamp")  # Terminating while its node is away
    await asyncio.sleep(3)
    assert _kill_lines(caplog) < 20, [r.getMessage() for r in caplog.records]
    await cluster.kernel.add_agent(cluster.agents[int(lost_node.rsplit(".", 1)[1]) - 1],
                                   _keep_tasks=True)

    async def old_gone() -> bool:
        return first["metadata"]["name"] not in [p["metadata"]["name"]
                                                 for p in await web_pods()]

    await eventually(old_gone, timeout=30, what="the old pod deleted once its task ended")
    live = [t for t in await bridge_tasks(cluster.kernel.master_url) if t["state"] in LIVE]
    assert [t["id"].split(".")[0] for t in live] == [second["metadata"]["uid"]], live
