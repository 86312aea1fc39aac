"""A launch the master never took is found and run again, not waited for forever.

The bridge reaches the real embedded kernel master through ``tests.mesos.faultproxy``. The
pod's ACCEPT is answered by the proxy (202, as the master answers it) and never reaches the
master: exactly what the bridge sees when a master dies with an ACCEPT in flight. Then the
event stream is cut, the bridge subscribes again, and GET_TASKS does not list the task.
Implicit reconciliation says nothing about a task the master does not know, so before the fix
the pod waited for its task for good (the chaos bench lost up to 152 of 200 pods to a killed
kernel). Now the bridge asks about it explicitly until the master answers, and the pod runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import aiohttp

from k8sbridge import app, embedded
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.master import config as master_config
from tests.integration.conftest import eventually, fast_settings
from tests.mesos.faultproxy import Fault, FaultProxy


async def _master_tasks(master_url: str) -> list[dict[str, Any]]:
    """Every task the master lists (operator GET_TASKS, straight to the master)."""
    async with aiohttp.ClientSession() as http, http.post(
        f"{master_url}/api/v1", json={"type": "GET_TASKS"},
        headers={"Accept": "application/json"},
    ) as reply:
        reply.raise_for_status()
        body = await reply.json()
    listed = body.get("get_tasks") or {}
    return [t for key in ("tasks", "completed_tasks") for t in listed.get(key) or []]


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "300"]}],
        },
    }


async def test_a_launch_the_master_never_took_is_asked_about_and_run_again(
        tmp_path: Path,
) -> None:
    base = fast_settings(tmp_path / "run")
    agents = embedded.embedded_agent_configs(data_dir=tmp_path / "run", count=1)
    async with kernel_main.running_kernel(
        master=master_config.MasterConfig(port=0), agents=agents
    ) as kernel, devkube_main.running(
        devkube_main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig")
    ) as dk:
        proxy = FaultProxy(upstream=kernel.master_url)
        await proxy.start()
        try:
            settings = dataclasses.replace(
                base,
                mesos=dataclasses.replace(base.mesos, masters=(proxy.address,)),
                kube=dataclasses.replace(base.kube, kubeconfig=dk.kubeconfig),
                scheduler=dataclasses.replace(
                    base.scheduler, scheduler_names=("default-scheduler",), image_mode="none"
                ),
            )
            async with app.running_bridge(settings) as bridge:
                fw = bridge.framework
                proxy.inject("ACCEPT", Fault("status", status=202))
                await bridge.kube.create("/api/v1/namespaces/default/pods", _pod("lost"))

                async def swallowed() -> bool:
                    return len(proxy.requests("ACCEPT")) >= 1

                await eventually(swallowed, what="the ACCEPT answered by the proxy")
                first = [t for t, r in bridge.scheduler.tasks.items() if r.container == "main"]
                assert len(first) == 1
                assert first[0] not in [t["task_id"]["value"]
                                        for t in await _master_tasks(kernel.master_url)]

                assert proxy.cut_streams() == 1

                async def running_again() -> bool:
                    live = [t for t in await _master_tasks(kernel.master_url)
                            if t.get("state") == "TASK_RUNNING"]
                    pod = await bridge.kube.get_pod("default", "lost")
                    statuses = (pod.get("status") or {}).get("containerStatuses") or []
                    return (len(live) == 1 and live[0]["task_id"]["value"] != first[0]
                            and bool(statuses) and "running" in statuses[0]["state"])

                await eventually(running_again, what="the pod's container running again, once")
                assert fw.subscription >= 2
        finally:
            await proxy.stop()
