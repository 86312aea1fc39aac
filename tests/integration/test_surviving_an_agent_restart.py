"""An agent goes away and comes back (tasks kept, as with checkpointing): its Node goes
NotReady (Unknown: the bridge stops reporting it, the node lifecycle controller notices) and
Ready again, and the pod keeps running on the same task."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from k8sbridge import app, embedded
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.master import config as master_config
from tests.integration.conftest import eventually, fast_settings


async def test_node_flaps_and_the_pod_survives(tmp_path: Path) -> None:
    base = fast_settings(tmp_path / "run")
    # a node grace period of 2 s (devkube's) needs leases renewed well within it
    base = dataclasses.replace(base, kubelet=dataclasses.replace(base.kubelet,
                                                                 lease_renew_seconds=0.5))
    (agent_cfg,) = embedded.embedded_agent_configs(data_dir=tmp_path / "run", count=1)
    async with kernel_main.running_kernel(master=master_config.MasterConfig(port=0)) as kernel, \
            devkube_main.running(devkube_main.DevkubeConfig(
                port=0, kubeconfig=tmp_path / "kubeconfig", node_grace_seconds=2.0)) as dk:
        await kernel.add_agent(agent_cfg, _keep_tasks=True)
        settings = dataclasses.replace(
            base,
            mesos=dataclasses.replace(base.mesos, masters=(kernel.master_url,)),
            kube=dataclasses.replace(base.kube, kubeconfig=dk.kubeconfig),
            scheduler=dataclasses.replace(
                base.scheduler, scheduler_names=("default-scheduler",), image_mode="none"
            ),
        )
        async with app.running_bridge(settings) as bridge:
            kube = bridge.kube
            await kube.create("/api/v1/namespaces/default/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "survivor", "namespace": "default"},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                    {"name": "main", "image": "busybox", "command": ["sleep", "300"]}]},
            })

            async def running() -> dict[str, Any] | None:
                pod = await kube.get_pod("default", "survivor")
                return pod if (pod.get("status") or {}).get("phase") == "Running" else None

            before = await eventually(running, what="Running")
            container_id = before["status"]["containerStatuses"][0]["containerID"]

            async def ready(want: str) -> bool:
                node = await kube.get("/api/v1/nodes/127.0.0.1")
                conds = {c["type"]: c["status"] for c in node["status"]["conditions"]}
                return conds.get("Ready") == want

            await kernel.stop_agent(0)
            await eventually(lambda: ready("Unknown"), what="node NotReady")
            await kernel.add_agent(agent_cfg, _keep_tasks=True)
            await eventually(lambda: ready("True"), what="node Ready again")
            after = await eventually(running, what="still Running")
            assert after["status"]["containerStatuses"][0]["containerID"] == container_id
            assert after["status"]["containerStatuses"][0]["restartCount"] == 0
            await kube.delete("/api/v1/namespaces/default/pods/survivor",
                              grace_period_seconds=0)
