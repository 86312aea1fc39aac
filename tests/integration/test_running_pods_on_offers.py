"""Pods run as Mesos task groups on accepted offers (embedded kernel + devkube + bridge)."""

from __future__ import annotations

from typing import Any

import aiohttp

from k8sbridge import app
from k8sbridge.kube import errors as kube_errors
from tests.integration.conftest import eventually


def _pod(name: str, *, command: list[str], cpu: str = "100m", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": command,
                    "resources": {"requests": {"cpu": cpu, "memory": "32Mi"}},
                }
            ],
        },
    }
    body["spec"].update(spec)
    return body


async def _state(targets: app.EmbeddedTargets) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(targets.kernel_url + "/state") as r:
        data: dict[str, Any] = await r.json()
        return data


def _our_tasks(state: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for fw in state.get("frameworks") or []:
        if fw.get("name") == "k8sbridge":
            out.extend(fw.get("tasks") or [])
    return out


async def test_a_pod_runs_is_deleted_and_its_task_is_killed(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    nodes = await eventually(
        lambda: _names(kube, "/api/v1/nodes"), what="three nodes"
    )
    assert len(nodes) == 3
    await kube.create("/api/v1/namespaces/default/pods",
                      _pod("sleeper", command=["sleep", "60"]))

    async def running() -> dict[str, Any] | None:
        pod = await kube.get_pod("default", "sleeper")
        return pod if (pod.get("status") or {}).get("phase") == "Running" else None

    pod = await eventually(running, what="pod Running")
    assert pod["spec"]["nodeName"] in nodes
    status = pod["status"]
    assert status["podIP"] and status["hostIP"] and status["startTime"]
    (cs,) = status["containerStatuses"]
    assert "running" in cs["state"] and cs["ready"] is True
    assert cs["containerID"].startswith("mesos://")
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == "True" and conditions["PodScheduled"] == "True"
    tasks = _our_tasks(await _state(embedded))
    assert [t["state"] for t in tasks] == ["TASK_RUNNING"]
    assert tasks[0]["id"].startswith(pod["metadata"]["uid"])

    async def quiet() -> bool:  # nothing pending: SUPPRESSed, no offer held
        state = await _state(embedded)
        ours = [fw for fw in state["frameworks"] if fw["name"] == "k8sbridge"]
        return embedded.bridge.scheduler.suppressed and not ours[0].get("offers")

    await eventually(quiet, what="suppressed with no offers held")

    await kube.delete("/api/v1/namespaces/default/pods/sleeper", grace_period_seconds=1)

    async def gone() -> bool:
        try:
            await kube.get_pod("default", "sleeper")
        except kube_errors.NotFound:
            return True
        return False

    await eventually(gone, what="pod deleted after its task was killed")
    tasks = _our_tasks(await _state(embedded))
    assert not [t for t in tasks if t["state"] in ("TASK_RUNNING", "TASK_STAGING")]


async def test_run_to_completion_and_impossible_pods(embedded: app.EmbeddedTargets) -> None:
    kube = embedded.bridge.kube
    await eventually(lambda: _names(kube, "/api/v1/nodes"), what="nodes")
    await kube.create(
        "/api/v1/namespaces/default/pods",
        _pod("once", command=["sh", "-c", "echo done; exit 0"], restartPolicy="Never"),
    )
    await kube.create(
        "/api/v1/namespaces/default/pods",
        _pod("fails", command=["sh", "-c", "exit 3"], restartPolicy="Never"),
    )
    await kube.create(
        "/api/v1/namespaces/default/pods",
        _pod("huge", command=["sleep", "1"], cpu="1000"),
    )

    async def phase(name: str, want: str) -> dict[str, Any] | None:
        pod = await kube.get_pod("default", name)
        return pod if (pod.get("status") or {}).get("phase") == want else None

    once = await eventually(lambda: phase("once", "Succeeded"), what="Succeeded")
    term = once["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    fails = await eventually(lambda: phase("fails", "Failed"), what="Failed")
    term = fails["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"

    async def explained() -> dict[str, Any] | None:
        pod = await kube.get_pod("default", "huge")
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c["type"] == "PodScheduled" and c["status"] == "False":
                return c
        return None

    cond = await eventually(explained, what="Unschedulable condition")
    assert cond["reason"] == "Unschedulable"
    assert cond["message"].startswith(
        "0/3 nodes are available: 3 Insufficient cpu (requested 1000"), cond

    async def event() -> list[dict[str, Any]]:
        reply = await kube.get("/api/v1/namespaces/default/events")
        return [e for e in reply.get("items") or []
                if e.get("reason") == "FailedScheduling"
                and e["involvedObject"]["name"] == "huge"]

    (ev, *_) = await eventually(event, what="FailedScheduling event")
    assert "Insufficient cpu" in ev["message"]


async def _names(kube: Any, path: str) -> list[str]:
    reply = await kube.get(path)
    return sorted(i["metadata"]["name"] for i in reply.get("items") or [])
