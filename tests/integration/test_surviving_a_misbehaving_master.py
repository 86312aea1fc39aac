"""The whole bridge keeps serving pods while the master in front of it misbehaves.

The bridge reaches the REAL embedded kernel master only through ``tests.mesos.faultproxy`` (a
fault-injecting HTTP proxy): SUBSCRIBE answers 502 and resets before the first subscription, and
later the live event stream is reset and the re-SUBSCRIBE answers 504. The bridge must start
anyway, never stop, and run pods before and after; nodes (GET_AGENTS on the same transport)
stay registered throughout.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from k8sbridge import app, embedded
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.master import config as master_config
from k8sbridge.kube import client as kube_client
from tests.integration.conftest import eventually, fast_settings
from tests.mesos.faultproxy import Fault, FaultProxy


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


async def _run_pod(kube: kube_client.KubeClient, name: str) -> None:
    await kube.create("/api/v1/namespaces/default/pods", _pod(name))

    async def running() -> bool:
        pod = await kube.get_pod("default", name)
        return (pod.get("status") or {}).get("phase") == "Running"

    await eventually(running, what=f"{name} Running")


async def test_the_bridge_serves_pods_through_failed_subscribes_and_a_cut_stream(
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
            proxy.inject("SUBSCRIBE", Fault("status", status=502, times=2))
            proxy.inject("SUBSCRIBE", Fault("reset"))
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
                assert fw.metrics.get("subscribe_failures/ServerError") == 2
                assert fw.metrics.get("subscribe_failures/ConnectionLost") == 1
                assert fw.metrics.get("resubscriptions/ConnectionLost") == 1
                await _run_pod(bridge.kube, "before")

                proxy.inject("SUBSCRIBE", Fault("status", status=504, times=2))
                assert proxy.cut_streams() == 1

                async def resubscribed() -> bool:
                    return fw.subscription >= 2 and fw.subscribed

                await eventually(resubscribed, what="a new subscription")
                assert fw.metrics.get("subscribe_failures/ServerError") == 4
                await _run_pod(bridge.kube, "after")
                node = await bridge.kube.get("/api/v1/nodes/127.0.0.1")
                ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
                assert ready["Ready"] == "True"
                assert proxy.requests("GET_AGENTS")  # nodes are read through the same proxy
        finally:
            await proxy.stop()
