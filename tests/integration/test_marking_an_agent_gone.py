"""An agent lost for good: the operator marks it gone (MARK_AGENT_GONE), through the bridge.

A Deployment's pod runs on agent A; A's process stops and the master marks it unreachable (the
pod stays as it is, not Ready). The operator then tells the master that A will not come back:
the pod's task becomes TASK_GONE_BY_OPERATOR, its container ends (restartPolicy decides), the
node lifecycle controller evicts the pod from the unreachable Node and, its task being over,
the pod is deleted for real (not left Terminating as while the agent was only unreachable);
the ReplicaSet's replacement runs on agent B. Exactly one live task, no kill loop. Agent A
started again on its work dir is refused by the master and kills what it still ran: one
process of the pod on the host, not two.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge import embedded
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.master import acls
from tests.integration import two_agents
from tests.integration.conftest import eventually
from tests.integration.two_agents import LIVE, Cluster, bridge_tasks

UNREACHABLE = "node.kubernetes.io/unreachable"
# The pod's command, unique to this run, to count its processes on the host.
MARK = str(random.SystemRandom().randint(10_000_000, 99_999_999))


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with two_agents.running(tmp_path, node_grace_seconds=2.0,
                                  lease_renew_seconds=0.5, status_report_seconds=1.0) as running:
        yield running


def _processes() -> list[int]:
    """Processes of the pod's container on this host (whoever runs them)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                zombie = f.read().split(") ")[1][0] == "Z"
        except OSError:
            continue
        if argv[:2] == [b"sleep", MARK.encode()] and not zombie:
            found.append(int(entry))
    return found


async def _operator(master_url: str, body: dict[str, Any]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(
            master_url + "/api/v1", data=json.dumps(body),
            headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.text()


def _kill_lines(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if "kill" in r.getMessage().lower())


def test_k8sbridge_run_lets_only_the_operator_mark_agents_gone() -> None:
    authorizer = acls.parse_acls(json.dumps(embedded.acl_document(
        roles=("kubernetes",), user="alice")))
    assert authorizer.may_mark_agent_gone(principal=embedded.OPERATOR_PRINCIPAL)
    assert not authorizer.may_mark_agent_gone(principal=embedded.BRIDGE_PRINCIPAL)
    assert not authorizer.may_mark_agent_gone(principal="guest")
    assert not authorizer.may_mark_agent_gone(principal=None)


async def test_a_pod_on_an_agent_marked_gone_is_replaced_and_the_agent_refused(
    cluster: Cluster, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    kube = cluster.kube
    url = cluster.kernel.master_url
    tolerations = [{"key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": 4}
                   for key in (UNREACHABLE, "node.kubernetes.io/not-ready")]
    await kube.create("/apis/apps/v1/namespaces/default/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 1, "tolerations": tolerations,
                     "containers": [{"name": "main", "image": "busybox",
                                     "command": ["sleep", MARK]}]}}},
    })

    async def web_pods() -> list[dict[str, Any]]:
        return await two_agents.web_pods(kube)

    async def one_running() -> dict[str, Any] | None:
        return await two_agents.one_running_web_pod(kube)

    first = await eventually(one_running, what="the Deployment's pod Running")
    node_a = first["spec"]["nodeName"]
    index_a = int(node_a.rsplit(".", 1)[1]) - 1
    agent_a = cluster.kernel.agents[index_a].agent_id
    (old_task,) = [t for t in await bridge_tasks(url) if t["state"] in LIVE]
    assert len(_processes()) == 1

    await cluster.kernel.stop_agent(index_a)  # its container runs on, nobody watching it

    async def unreachable() -> bool:
        return [t["state"] for t in await bridge_tasks(url) if t["id"] == old_task["id"]] == [
            "TASK_UNREACHABLE"]

    await eventually(unreachable, what="the pod's task unreachable")
    assert await _operator(url, {"type": "MARK_AGENT_GONE", "mark_agent_gone": {
        "agent_id": {"value": agent_a}}}) == (200, "")
    caplog.clear()

    async def gone() -> bool:
        return [t["state"] for t in await bridge_tasks(url) if t["id"] == old_task["id"]] == [
            "TASK_GONE_BY_OPERATOR"]

    await eventually(gone, what="the pod's task gone by operator")

    async def ended() -> dict[str, Any] | None:
        pod = await kube.get_pod("default", first["metadata"]["name"])
        (cs,) = pod["status"]["containerStatuses"]
        return cs if "terminated" in cs["state"] else None

    # The container ended (restartPolicy Always: to be relaunched on its node, which has no
    # agent) before the node lifecycle controller evicts the pod.
    cs = await eventually(ended, what="the pod's container ended")
    assert cs["ready"] is False
    assert cs["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert cs["state"]["terminated"]["message"] == "Agent has been marked gone"

    async def replaced() -> dict[str, Any] | None:
        pod = await one_running()
        return pod if pod is not None and pod["metadata"]["uid"] != first["metadata"][
            "uid"] else None

    second = await eventually(replaced, timeout=60, what="a replacement Running")
    assert second["spec"]["nodeName"] != node_a

    async def old_deleted() -> bool:
        return first["metadata"]["name"] not in [p["metadata"]["name"]
                                                 for p in await web_pods()]

    # Its task over, the evicted pod is deleted (no agent has to come back for that).
    await eventually(old_deleted, timeout=30, what="the evicted pod deleted")
    live = [t for t in await bridge_tasks(url) if t["state"] in LIVE]
    assert [t["id"].split(".")[0] for t in live] == [second["metadata"]["uid"]], live
    assert _kill_lines(caplog) < 20, [r.getMessage() for r in caplog.records
                                      if "kill" in r.getMessage().lower()]
    assert len(_processes()) == 2  # agent A's container, left behind on the host

    # Agent A comes back on its work dir: refused with a shutdown, it kills what it ran.
    with pytest.raises(kernel_main.KernelError):
        await cluster.kernel.add_agent(cluster.agents[index_a], _keep_tasks=True)
    assert "Refusing re-registration" in caplog.text

    async def one_process() -> bool:
        return len(_processes()) == 1

    await eventually(one_process, timeout=20, what="agent A's leftover process killed")
    agents = await _operator(url, {"type": "GET_AGENTS"})
    listed = [a["agent_info"]["id"]["value"] for a in json.loads(agents[1])["get_agents"][
        "agents"]]
    assert agent_a not in listed and len(listed) == 1
    live = [t for t in await bridge_tasks(url) if t["state"] in LIVE]
    assert [t["id"].split(".")[0] for t in live] == [second["metadata"]["uid"]], live
