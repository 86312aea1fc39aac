"""A bridge restart keeps its framework id, adopts running tasks and never runs a pod twice."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Any

import aiohttp

from k8sbridge import app, embedded
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.master import config as master_config
from k8sbridge.kube import errors as kube_errors
from tests.integration.conftest import eventually, fast_settings


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


async def _tasks(master_url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(master_url + "/state") as r:
        state = await r.json()
    return [t for fw in state["frameworks"] if fw["name"] == "k8sbridge" for t in fw["tasks"]]


async def test_changes_while_down_are_reconciled(tmp_path: Path) -> None:
    base = fast_settings(tmp_path / "run")
    agents = embedded.embedded_agent_configs(data_dir=tmp_path / "run", count=3)
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
        async with app.running_bridge(settings) as first:
            kube = first.kube
            for name in ("keep", "doomed"):
                await kube.create("/api/v1/namespaces/default/pods", _pod(name))

            async def running(name: str) -> bool:
                pod = await kube.get_pod("default", name)
                return (pod.get("status") or {}).get("phase") == "Running"

            await eventually(lambda: running("keep"), what="keep Running")
            await eventually(lambda: running("doomed"), what="doomed Running")
            fid = first.framework.framework_id
            keep_uid = (await kube.get_pod("default", "keep"))["metadata"]["uid"]

        # While the bridge is down: a graceful delete waits for the kubelet, a new pod is
        # created, and a pod is bound to a node with no task (a crash between bind and ACCEPT).
        from k8sbridge.kube import client as kube_client

        kube = kube_client.KubeClient.from_kubeconfig(path=dk.kubeconfig)
        try:
            await kube.delete("/api/v1/namespaces/default/pods/doomed", grace_period_seconds=30)
            await kube.create("/api/v1/namespaces/default/pods", _pod("fresh"))
            created = await kube.create("/api/v1/namespaces/default/pods", _pod("bound"))
            await kube.bind_pod(namespace="default", name="bound",
                                uid=created["metadata"]["uid"], node="127.0.0.2")
        finally:
            await kube.close()

        async with app.running_bridge(settings) as second:
            assert second.framework.framework_id == fid  # the ConfigMap kept it
            kube = second.kube

            async def doomed_gone() -> bool:
                try:
                    await kube.get_pod("default", "doomed")
                except kube_errors.NotFound:
                    return True
                return False

            await eventually(doomed_gone, what="doomed deleted after its task was killed")
            await eventually(lambda: running("fresh"), what="fresh Running")
            await eventually(lambda: running("bound"), what="bound Running")
            bound = await kube.get_pod("default", "bound")
            assert bound["spec"]["nodeName"] == "127.0.0.2"
            tasks = await _tasks(kernel.master_url)
            live = [t for t in tasks if t["state"] in ("TASK_RUNNING", "TASK_STAGING",
                                                       "TASK_STARTING")]
            per_pod = collections.Counter(t["id"].split(".")[0] for t in live)
            assert all(n == 1 for n in per_pod.values()), per_pod  # nothing runs twice
            assert per_pod[keep_uid] == 1
            assert len(per_pod) == 3  # keep, fresh, bound
            keep = await kube.get_pod("default", "keep")
            assert keep["status"]["phase"] == "Running"
