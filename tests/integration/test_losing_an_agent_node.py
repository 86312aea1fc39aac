"""An agent process dies: its Node gets one set of condition taints, kept with one ``timeAdded``,
its pods go after their ``tolerationSeconds``, and the taints go when the agent comes back.

Issue 11: the bridge posted ``Ready=False`` for an agent the master reported gone, while
devkube's node lifecycle controller judged the Node by its Lease: the two swapped the Node's
taint between ``not-ready`` and ``unreachable`` every status report (and the bridge's spec patch
dropped the controller's taints), so the eviction timer started over each time and pods were
never evicted. Now the bridge goes silent for the agent as a partitioned kubelet would, and the
controller alone taints it. Status reports come every second here, so a swap would show within
the few controller periods the taints are watched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from pathlib import Path
from typing import Any

from k8sbridge import app, embedded
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.master import config as master_config
from k8sbridge.kube import errors as kube_errors
from tests.integration.conftest import eventually, fast_settings

GRACE = 2.0  # devkube's node grace period; stale nodes are looked at every max(1, GRACE / 2) s
TOLERATION = 6  # seconds the pod tolerates the unreachable taint
UNREACHABLE = "node.kubernetes.io/unreachable"
PROVIDER = {"key": "virtual-kubelet.io/provider", "value": "mesos", "effect": "NoSchedule"}
NODE = "127.0.0.1"


def _parse(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _taints(node: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((t["key"], t["effect"], t.get("timeAdded") or "")
                  for t in (node.get("spec") or {}).get("taints") or [])


def _ready(node: dict[str, Any]) -> str:
    conds = {str(c["type"]): str(c["status"])
             for c in (node.get("status") or {}).get("conditions") or []}
    return conds.get("Ready", "")


async def test_a_dead_agent_is_tainted_once_its_pods_evicted_and_untainted_on_return(
    tmp_path: Path,
) -> None:
    base = fast_settings(tmp_path / "run")
    kubelet = dataclasses.replace(base.kubelet, lease_renew_seconds=0.5,
                                  status_report_seconds=1.0)
    (agent_cfg,) = embedded.embedded_agent_configs(data_dir=tmp_path / "run", count=1)
    # the master marks a silent agent unreachable within a second: it then leaves GET_AGENTS
    master = master_config.MasterConfig(port=0, agent_ping_interval=0.3, max_missed_pings=2)
    async with kernel_main.running_kernel(master=master) as kernel, \
            devkube_main.running(devkube_main.DevkubeConfig(
                port=0, kubeconfig=tmp_path / "kubeconfig", node_grace_seconds=GRACE)) as dk:
        await kernel.add_agent(agent_cfg, _keep_tasks=True)
        settings = dataclasses.replace(
            base, kubelet=kubelet,
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
                "metadata": {"name": "tolerant", "namespace": "default"},
                "spec": {"terminationGracePeriodSeconds": 1,
                         "tolerations": [{"key": UNREACHABLE, "operator": "Exists",
                                          "effect": "NoExecute",
                                          "tolerationSeconds": TOLERATION}],
                         "containers": [{"name": "main", "image": "busybox",
                                         "command": ["sleep", "300"]}]},
            })

            async def running() -> bool:
                pod = await kube.get_pod("default", "tolerant")
                return (pod.get("status") or {}).get("phase") == "Running"

            await eventually(running, what="pod Running")
            node = await kube.get(f"/api/v1/nodes/{NODE}")
            assert _ready(node) == "True" and node["spec"]["taints"] == [PROVIDER]

            await kernel.stop_agent(0)

            async def tainted() -> dict[str, Any] | None:
                n = await kube.get(f"/api/v1/nodes/{NODE}")
                keys = {t[:2] for t in _taints(n)}
                return n if (UNREACHABLE, "NoExecute") in keys else None

            first = await eventually(tainted, timeout=20, what="the unreachable taint")
            loop = asyncio.get_running_loop()
            seen_at = loop.time()
            expected = _taints(first)
            [added] = [t[2] for t in expected if t[:2] == (UNREACHABLE, "NoExecute")]
            assert expected == sorted([(PROVIDER["key"], "NoSchedule", ""),
                                       (UNREACHABLE, "NoExecute", added),
                                       (UNREACHABLE, "NoSchedule", "")])

            # Over more than two controller periods and three status-report periods: the same
            # taints, the same timeAdded, Ready Unknown; the pod stays until its toleration ends.
            evicted_at: float | None = None
            while loop.time() - seen_at < 4.0 or evicted_at is None:
                assert loop.time() - seen_at < 20, "the pod was not evicted"
                n = await kube.get(f"/api/v1/nodes/{NODE}")
                assert _taints(n) == expected, (_taints(n), expected)
                assert _ready(n) == "Unknown"
                try:
                    pod = await kube.get_pod("default", "tolerant")
                except kube_errors.NotFound:
                    pod = {"metadata": {"deletionTimestamp": "gone"}}
                if evicted_at is None and pod["metadata"].get("deletionTimestamp"):
                    evicted_at = loop.time()
                    wall = datetime.datetime.now(datetime.UTC)
                    waited = (wall - _parse(added)).total_seconds()
                    # timeAdded has second precision: the eviction is due within [5, 6] s of
                    # the moment it names, plus the controller's reaction
                    assert TOLERATION - 1 <= waited <= TOLERATION + 3, waited
                await asyncio.sleep(0.2)

            # The agent comes back: the bridge reports the node again, the controller lifts
            # its taints; the bridge's own taint stays.
            await kernel.add_agent(agent_cfg, _keep_tasks=True)

            async def healthy() -> dict[str, Any] | None:
                n = await kube.get(f"/api/v1/nodes/{NODE}")
                return n if _ready(n) == "True" and n["spec"].get("taints") == [PROVIDER] \
                    else None

            back = await eventually(healthy, timeout=20, what="the node Ready, untainted")
            ready = next(c for c in back["status"]["conditions"] if c["type"] == "Ready")
            assert ready["reason"] == "KubeletReady"
            assert _parse(ready["lastTransitionTime"]) >= _parse(added)
            try:
                await kube.delete("/api/v1/namespaces/default/pods/tolerant",
                                  grace_period_seconds=0)
            except kube_errors.NotFound:
                pass
