"""A pod whose task vanished while the bridge was away follows its restartPolicy.

Issue 6: "a pod bound to a node whose task vanished is relaunched or failed according to its
restart policy". The state the bridge finds after a restart is built for real: pods bound to
an agent's Node whose written status says their container runs as Mesos task
``<uid>.0.main``, a task the (real, running) master has never heard of — exactly what a bridge
sees when the task was lost while it was down. ``Never`` must end Failed (never run twice);
``Always`` is relaunched on the same node with restartCount and lastState carried over.
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
from k8sbridge.kube import client as kube_client
from tests.integration.conftest import eventually, fast_settings

NODE = "127.0.0.2"


def _pod(name: str, policy: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": policy,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "300"],
                            "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}}}],
        },
    }


def _ran(uid: str, *, restarts: int) -> dict[str, Any]:
    """The status a bridge wrote while the task ran (before it went away)."""
    return {
        "phase": "Running",
        "hostIP": NODE,
        "podIP": NODE,
        "startTime": "2026-11-25T23:00:00Z",
        "containerStatuses": [{
            "name": "main", "image": "docker.io/library/busybox:latest", "imageID": "",
            "ready": True, "started": True, "restartCount": restarts,
            "containerID": f"mesos://{uid}.0.main",
            "state": {"running": {"startedAt": "2026-11-25T23:00:01Z"}}, "lastState": {},
        }],
    }


async def _tasks(master_url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(master_url + "/state") as r:
        state = await r.json()
    return [t for fw in state["frameworks"] + state.get("completed_frameworks", [])
            for t in fw.get("tasks", []) + fw.get("completed_tasks", [])]


async def test_never_fails_and_always_relaunches_with_its_counters(tmp_path: Path) -> None:
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
        kube = kube_client.KubeClient.from_kubeconfig(path=dk.kubeconfig)
        uids: dict[str, str] = {}
        try:
            for name, policy, restarts in (("lost-never", "Never", 0),
                                           ("lost-always", "Always", 2)):
                created = await kube.create("/api/v1/namespaces/default/pods",
                                            _pod(name, policy))
                uid = uids[name] = created["metadata"]["uid"]
                await kube.bind_pod(namespace="default", name=name, uid=uid, node=NODE)
                await kube.patch_pod_status(namespace="default", name=name, uid=uid,
                                            status=_ran(uid, restarts=restarts))
        finally:
            await kube.close()

        async with app.running_bridge(settings) as bridge:
            kube = bridge.kube

            async def phase(name: str, want: str) -> dict[str, Any] | None:
                pod = await kube.get_pod("default", name)
                return pod if (pod.get("status") or {}).get("phase") == want else None

            never = await eventually(lambda: phase("lost-never", "Failed"),
                                     what="lost-never Failed")
            cs = never["status"]["containerStatuses"][0]
            term = cs["state"]["terminated"]
            assert term["reason"] == "ContainerStatusUnknown" and term["exitCode"] == 137
            assert "vanished while the bridge was away" in term["message"]
            assert cs["restartCount"] == 0

            async def relaunched() -> dict[str, Any] | None:
                pod = await phase("lost-always", "Running")
                if pod is None:
                    return None
                c = pod["status"]["containerStatuses"][0]
                return pod if c.get("restartCount") == 3 and c.get("ready") else None

            always = await eventually(relaunched, what="lost-always relaunched and Running")
            cs = always["status"]["containerStatuses"][0]
            assert cs["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
            # attempt 1, launched by the bridge's first generation
            assert cs["containerID"] == f"mesos://{uids['lost-always']}.1.1.main"
            assert always["spec"]["nodeName"] == NODE

            async def failed_event() -> bool:
                events = await kube.get("/api/v1/namespaces/default/events")
                return any(e["reason"] == "Failed"
                           and e["involvedObject"]["name"] == "lost-never"
                           and "vanished" in e["message"] for e in events["items"])

            await eventually(failed_event, what="a Failed event for lost-never")
            tasks = await _tasks(kernel.master_url)
            assert not [t for t in tasks if t["id"].startswith(uids["lost-never"])]
            always_tasks = [t for t in tasks if t["id"].startswith(uids["lost-always"])]
            assert [t["id"] for t in always_tasks] == [f"{uids['lost-always']}.1.1.main"]


async def test_a_never_pod_that_finished_while_away_succeeds_and_is_not_run_again(
    tmp_path: Path,
) -> None:
    """The real sequence: the task runs under a first bridge, ends while no bridge runs (the
    master keeps it as completed, its terminal update unacknowledged), a second bridge comes."""
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
        pod = _pod("short", "Never")
        pod["spec"]["containers"][0]["command"] = ["sleep", "3"]
        async with app.running_bridge(settings) as first:
            created = await first.kube.create("/api/v1/namespaces/default/pods", pod)
            uid = created["metadata"]["uid"]

            async def running() -> bool:
                got = await first.kube.get_pod("default", "short")
                return (got.get("status") or {}).get("phase") == "Running"

            await eventually(running, what="short Running")

        async def finished() -> bool:
            return any(t["id"] == f"{uid}.0.1.main" and t["state"] == "TASK_FINISHED"
                       for t in await _tasks(kernel.master_url))

        await eventually(finished, what="the task finished while no bridge ran")
        async with app.running_bridge(settings) as second:
            async def succeeded() -> dict[str, Any] | None:
                got = await second.kube.get_pod("default", "short")
                return got if (got.get("status") or {}).get("phase") == "Succeeded" else None

            done = await eventually(succeeded, what="short Succeeded")
            term = done["status"]["containerStatuses"][0]["state"]["terminated"]
            assert term["exitCode"] == 0 and term["reason"] == "Completed"
            ids_ = [t["id"] for t in await _tasks(kernel.master_url) if t["id"].startswith(uid)]
            assert ids_ == [f"{uid}.0.1.main"]  # never launched a second time
