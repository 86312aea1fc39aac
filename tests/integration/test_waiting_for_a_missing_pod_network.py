"""A pod launched on agents that lack its CNI network is the kubelet's failed sandbox: it stays
Pending with its container waiting in ContainerCreating with the agent's message, a
FailedCreatePodSandBox event says why, the launch is retried with back-off and no retry
counts as a restart. Real embedded kernel (its agents run no network/cni isolator), devkube
and bridge; the bridge asks for the network ``k8sbridge``. Deleted meanwhile, it goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k8sbridge import app
from tests.integration.conftest import eventually, fast_settings


async def test_a_pod_whose_agent_lacks_the_network_waits_in_container_creating(
        tmp_path: Path) -> None:
    async with app.running_embedded(fast_settings(tmp_path / "run"),
                                    pod_network="k8sbridge") as embedded:
        kube = embedded.bridge.kube
        await kube.create("/api/v1/namespaces/default/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "netless", "namespace": "default"},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox",
                                     "command": ["sleep", "60"]}]}})

        async def sandbox_events() -> list[dict[str, Any]] | None:
            items = (await kube.get("/api/v1/namespaces/default/events"))["items"]
            found = [e for e in items if e["reason"] == "FailedCreatePodSandBox"
                     and e["involvedObject"]["name"] == "netless"]
            # two launches failed (the first retry is immediate, the next after 10 s)
            return found if sum(int(e.get("count") or 1) for e in found) >= 2 else None

        found = await eventually(sandbox_events, timeout=40, what="two sandbox failures")
        assert all(e["type"] == "Warning" and "CNI network 'k8sbridge'" in e["message"]
                   for e in found), found
        pod = await kube.get_pod("default", "netless")
        status = pod["status"]
        assert status["phase"] == "Pending", status
        [container] = status["containerStatuses"]
        waiting = container["state"]["waiting"]
        assert waiting["reason"] == "ContainerCreating", container
        assert "CNI network 'k8sbridge'" in waiting["message"]
        assert container["restartCount"] == 0 and not container.get("lastState")
        events = (await kube.get("/api/v1/namespaces/default/events"))["items"]
        assert not [e for e in events if e["involvedObject"]["name"] == "netless"
                    and e["reason"] in ("BackOff", "Failed")]
        # deleted while it waits for the next retry: it goes, and nothing is launched again
        await kube.delete("/api/v1/namespaces/default/pods/netless")

        async def gone() -> bool:
            names = [p["metadata"]["name"] for p in
                     (await kube.get("/api/v1/namespaces/default/pods"))["items"]]
            return "netless" not in names

        await eventually(gone, timeout=30, what="the pod gone")
