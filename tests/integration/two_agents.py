"""A cluster for agent-loss tests: the real embedded master with two agents that can be
stopped and started again (their tasks outlive a stopped agent, as processes outlive a killed
mesos-agent), devkube and the whole bridge. The master marks a silent agent unreachable after
~0.5 s without pongs (Mesos' defaults: 15 s x 5)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from k8sbridge import app, embedded
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.master import config as master_config
from k8sbridge.kube import client as kube_client
from tests.integration.conftest import fast_settings


@dataclasses.dataclass
class Cluster:
    kernel: Any
    agents: list[Any]
    bridge: app.Bridge

    @property
    def kube(self) -> kube_client.KubeClient:
        return self.bridge.kube


@contextlib.asynccontextmanager
async def running(tmp_path: Path, *, node_grace_seconds: float | None = None,
                  lease_renew_seconds: float | None = None,
                  status_report_seconds: float | None = None) -> AsyncIterator[Cluster]:
    base = fast_settings(tmp_path / "run")
    agent_cfgs = embedded.embedded_agent_configs(data_dir=tmp_path / "run", count=2)
    master = master_config.MasterConfig(port=0, agent_ping_interval=0.2, max_missed_pings=2)
    devkube = devkube_main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig")
    if node_grace_seconds is not None:
        devkube = dataclasses.replace(devkube, node_grace_seconds=node_grace_seconds)
    kubelet = base.kubelet
    if lease_renew_seconds is not None:
        kubelet = dataclasses.replace(kubelet, lease_renew_seconds=lease_renew_seconds)
    if status_report_seconds is not None:
        kubelet = dataclasses.replace(kubelet, status_report_seconds=status_report_seconds)
    async with kernel_main.running_kernel(master=master) as kernel, \
            devkube_main.running(devkube) as dk:
        for cfg in agent_cfgs:
            await kernel.add_agent(cfg, _keep_tasks=True)  # (tasks outlive a stopped agent)
        settings = dataclasses.replace(
            base,
            mesos=dataclasses.replace(base.mesos, masters=(kernel.master_url,)),
            kube=dataclasses.replace(base.kube, kubeconfig=dk.kubeconfig),
            kubelet=kubelet,
            scheduler=dataclasses.replace(
                base.scheduler, scheduler_names=("default-scheduler",), image_mode="none"
            ),
        )
        async with app.running_bridge(settings) as bridge:
            yield Cluster(kernel=kernel, agents=agent_cfgs, bridge=bridge)


LIVE = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_UNREACHABLE")


async def bridge_tasks(master_url: str) -> list[dict[str, Any]]:
    """Every task of the bridge's framework the master's /state lists (live, unreachable,
    completed)."""
    async with aiohttp.ClientSession() as http, http.get(master_url + "/state") as r:
        state = await r.json()
    return [t for fw in state["frameworks"] if fw["name"] == "k8sbridge"
            for key in ("tasks", "unreachable_tasks", "completed_tasks") for t in fw[key]]


async def web_pods(kube: kube_client.KubeClient) -> list[dict[str, Any]]:
    """The pods labelled app=web in namespace default."""
    listed = await kube.get("/api/v1/namespaces/default/pods", labelSelector="app=web")
    return list(listed["items"])


async def one_running_web_pod(kube: kube_client.KubeClient) -> dict[str, Any] | None:
    """The one app=web pod that is Running and not being deleted, else None."""
    running = [p for p in await web_pods(kube) if (p.get("status") or {}).get("phase")
               == "Running" and not p["metadata"].get("deletionTimestamp")]
    return running[0] if len(running) == 1 else None
