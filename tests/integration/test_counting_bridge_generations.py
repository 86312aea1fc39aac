"""The bridge's generation is stored (optimistic concurrency) before anything launches.

It is part of every task id (``lifecycle.taskids``), so it must never be handed out twice:
sequential starts count up, concurrent ones get distinct values, the framework id stored in the
same ConfigMap is kept, and a bridge's launches carry the generation it stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
from pathlib import Path
from typing import Any

import pytest

from k8sbridge import app, embedded
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.master import config as master_config
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import state as kube_state
from k8sbridge.lifecycle import taskids
from tests.integration.conftest import eventually, fast_settings


async def test_generations_count_up_and_never_repeat(tmp_path: Path) -> None:
    async with devkube_main.running(
        devkube_main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig")
    ) as dk:
        kube = kube_client.KubeClient.from_kubeconfig(path=dk.kubeconfig)
        try:
            bump = functools.partial(kube_state.bump_generation, kube=kube,
                                     namespace="k8sbridge", name="state")
            assert await bump() == 1  # namespace and map created
            await kube.upsert_config_map(namespace="k8sbridge", name="state",
                                         data={kube_state.FRAMEWORK_ID_KEY: "fw-9"})
            assert await bump() == 2
            racing = await asyncio.gather(*(bump() for _ in range(6)))
            assert sorted(racing) == [3, 4, 5, 6, 7, 8]
            cm = await kube.get_config_map("k8sbridge", "state")
            assert cm["data"] == {kube_state.FRAMEWORK_ID_KEY: "fw-9",
                                  kube_state.GENERATION_KEY: "8"}
            await kube.upsert_config_map(namespace="k8sbridge", name="state",
                                         data={kube_state.GENERATION_KEY: "x"})
            with pytest.raises(kube_state.GenerationError):
                await bump()
        finally:
            await kube.close()


async def test_each_bridge_start_launches_under_its_own_generation(tmp_path: Path) -> None:
    base = fast_settings(tmp_path / "run")
    agents = embedded.embedded_agent_configs(data_dir=tmp_path / "run", count=1)
    async with kernel_main.running_kernel(
        master=master_config.MasterConfig(port=0), agents=agents
    ) as kernel, devkube_main.running(
        devkube_main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig")
    ) as dk:
        settings = dataclasses.replace(
            base,
            mesos=dataclasses.replace(base.mesos, masters=(kernel.master_url,)),
            kube=dataclasses.replace(base.kube, kubeconfig=dk.kubeconfig),
            scheduler=dataclasses.replace(
                base.scheduler, scheduler_names=("default-scheduler",), image_mode="none"
            ),
        )
        seen: list[int | None] = []
        thresholds = gc.get_threshold()
        for run, name in enumerate(("one", "two"), start=1):
            async with app.running_bridge(settings) as bridge:
                assert gc.get_threshold() == app.GC_THRESHOLDS  # rare collections meanwhile
                kube = bridge.kube
                await kube.create("/api/v1/namespaces/default/pods", {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                        {"name": "main", "image": "busybox", "command": ["sleep", "300"]}]},
                })

                async def running(
                    name: str = name, kube: kube_client.KubeClient = kube
                ) -> dict[str, Any] | None:
                    pod = await kube.get_pod("default", name)
                    return pod if (pod.get("status") or {}).get("phase") == "Running" else None

                pod = await eventually(running, what=f"{name} Running")
                cid = pod["status"]["containerStatuses"][0]["containerID"]
                parsed = taskids.parse(cid.removeprefix("mesos://"))
                assert parsed is not None and parsed.container == "main"
                seen.append(parsed.generation)
                assert parsed.generation == run
        assert seen == [1, 2]
        assert gc.get_threshold() == thresholds  # put back
