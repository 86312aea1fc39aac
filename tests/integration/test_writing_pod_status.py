"""The status writer against a real devkube: what a just-bound pod's first write says."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from k8sbridge.devkube import main as devkube_main
from k8sbridge.kube import client as kube_client
from k8sbridge.kubelet import pods as kubelet_pods
from tests.integration.conftest import eventually


async def test_a_pod_bound_before_its_watch_event_is_never_written_unscheduled(
    tmp_path: Path,
) -> None:
    async with devkube_main.running(
        devkube_main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig")
    ) as dk:
        kube = kube_client.KubeClient.from_kubeconfig(path=dk.kubeconfig)
        writer = kubelet_pods.PodStatusWriter(kube=kube)
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(writer.run(stop=stop, ready=ready))
        try:
            await ready.wait()
            pod = await kube.create("/api/v1/namespaces/default/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            })
            # the scheduler hands over the pod as it knew it: not yet showing spec.nodeName
            writer.scheduled(pod=pod, node_name="127.0.0.1")

            async def condition() -> dict[str, Any] | None:
                got = await kube.get_pod("default", "p")
                for cond in (got.get("status") or {}).get("conditions") or []:
                    if cond.get("type") == "PodScheduled":
                        return dict(cond)
                return None

            cond = await eventually(condition, what="PodScheduled written")
            assert cond["status"] == "True", cond
        finally:
            stop.set()
            await task
            await kube.close()
