"""A pod's CPU and memory limits reach the master only when its version takes them.

Through the embedded kernel: the bridge reads the master's version (GET_VERSION) when it
subscribes; below 1.10 the task carries no limits and the pod gets a LimitsNotEnforced event;
from 1.10 the task group is launched with ``limits`` and ``share_cgroups: false`` on every
task, and runs.
"""

from __future__ import annotations

import math
from typing import Any

import aiohttp

from k8sbridge import app
from k8sbridge.kernel.master import base as kernel_master
from k8sbridge.scheduler import limits
from tests.integration.conftest import eventually


def _pod(name: str) -> dict[str, Any]:
    def container(cname: str, **resources: Any) -> dict[str, Any]:
        return {"name": cname, "image": "busybox", "command": ["sleep", "60"],
                "resources": resources}

    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            container("app", requests={"cpu": "100m", "memory": "32Mi"},
                      limits={"cpu": "200m", "memory": "64Mi"}),
            container("side", requests={"cpu": "50m", "memory": "16Mi"}),
        ]},
    }


async def _tasks(targets: app.EmbeddedTargets, uid: str) -> dict[str, dict[str, Any]]:
    """The master's view of the pod's tasks (operator API GET_TASKS), by container."""
    async with aiohttp.ClientSession() as http, http.post(
        targets.kernel_url + "/api/v1", json={"type": "GET_TASKS"},
        headers={"Accept": "application/json"},
    ) as r:
        reply: dict[str, Any] = await r.json()
    return {
        t["name"].rsplit("/", 1)[-1]: t
        for t in reply["get_tasks"].get("tasks") or []
        if t["task_id"]["value"].startswith(uid)
    }


async def _running(kube: Any, name: str) -> dict[str, Any] | None:
    pod: dict[str, Any] = await kube.get_pod("default", name)
    return pod if (pod.get("status") or {}).get("phase") == "Running" else None


async def _known(scheduler: Any) -> bool:
    return scheduler.master_version is not None


async def test_limits_follow_the_masters_version(embedded: app.EmbeddedTargets) -> None:
    kube = embedded.bridge.kube
    scheduler = embedded.bridge.scheduler
    # Read from the kernel's GET_VERSION when the bridge subscribed.
    await eventually(lambda: _known(scheduler), what="the master's version")
    assert scheduler.master_version == limits.parse_version(kernel_master.VERSION)
    real = scheduler.master_version
    scheduler.master_version = (1, 9)  # what a master older than limits would report
    await kube.create("/api/v1/namespaces/default/pods", _pod("old"))
    old = await eventually(lambda: _running(kube, "old"), what="pod old Running")

    async def warned() -> list[dict[str, Any]]:
        events = await kube.get("/api/v1/namespaces/default/events")
        return [e for e in events.get("items") or []
                if e["involvedObject"]["name"] == "old"
                and e["reason"] == limits.REASON_LIMITS_NOT_ENFORCED]

    (event,) = await eventually(warned, what="LimitsNotEnforced event")
    assert event["type"] == "Warning" and "app" in event["message"]
    tasks = await _tasks(embedded, old["metadata"]["uid"])
    assert sorted(tasks) == ["app", "side"]
    assert not any(t.get("limits") for t in tasks.values())

    scheduler.master_version = real
    await kube.create("/api/v1/namespaces/default/pods", _pod("new"))
    new = await eventually(lambda: _running(kube, "new"), what="pod new Running")
    tasks = await _tasks(embedded, new["metadata"]["uid"])
    assert tasks["app"]["limits"] == {"cpus": {"value": 0.2}, "mem": {"value": 64.0}}
    # Sent as the string "Infinity"; the master prints an infinite double as the bare token.
    assert tasks["side"]["limits"] == {"cpus": {"value": math.inf}, "mem": {"value": math.inf}}
    for task in tasks.values():
        assert task["container"]["linux_info"] == {"share_cgroups": False}
        assert task["state"] == "TASK_RUNNING"
