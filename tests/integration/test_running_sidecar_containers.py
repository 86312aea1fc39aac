"""Sidecars (Kubernetes ≥ 1.29): an init container with ``restartPolicy: Always`` starts in
order, keeps running beside the next init containers and the app, and is stopped after the
app containers are done.

The containers leave their trail on the host as a user would: through a hostPath volume at
``/trail`` (the embedded agents give every container a root of its own)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from k8sbridge import app
from k8sbridge import embedded as embedded_cfg
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.master import config as master_config
from tests.integration.conftest import eventually, fast_settings

_TRAIL = "/trail/trail"  # the host's tmp_path/trail, through the hostPath volume


def _pod(name: str, *, host_dir: Path, app_command: str, policy: str) -> dict[str, Any]:
    """The pod, ``host_dir`` mounted at ``/trail`` in every container (a hostPath volume)."""
    mounts = [{"name": "trail", "mountPath": "/trail"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": policy,
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "trail",
                         "hostPath": {"path": str(host_dir)}}],
            "initContainers": [
                {"name": "proxy", "image": "busybox", "restartPolicy": "Always",
                 "command": ["sh", "-c", f"echo proxy >> {_TRAIL}; exec sleep 300"],
                 "volumeMounts": mounts},
                {"name": "setup", "image": "busybox",
                 "command": ["sh", "-c", f"echo setup >> {_TRAIL}"], "volumeMounts": mounts},
            ],
            "containers": [
                {"name": "app", "image": "busybox", "command": ["sh", "-c", app_command],
                 "volumeMounts": mounts},
            ],
        },
    }


def _statuses(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    status = pod.get("status") or {}
    return {c["name"]: c for c in [*(status.get("initContainerStatuses") or []),
                                   *(status.get("containerStatuses") or [])]}


async def test_a_sidecar_keeps_running_beside_the_next_init_container_and_the_app(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = embedded.bridge.kube
    trail = tmp_path / "trail"
    await kube.create("/api/v1/namespaces/default/pods", _pod(
        "with-proxy", host_dir=tmp_path, app_command=f"echo app >> {_TRAIL}; exec sleep 300",
        policy="Always",
    ))

    async def running() -> dict[str, Any] | None:
        pod = await kube.get_pod("default", "with-proxy")
        statuses = _statuses(pod)
        ok = (
            (pod.get("status") or {}).get("phase") == "Running"
            and "running" in (statuses.get("app") or {}).get("state", {})
            and "running" in (statuses.get("proxy") or {}).get("state", {})
        )
        return pod if ok else None

    pod = await eventually(running, what="the app Running beside its running sidecar")
    statuses = _statuses(pod)
    assert statuses["proxy"]["started"] is True
    assert statuses["setup"]["state"]["terminated"]["exitCode"] == 0
    assert [statuses[n]["restartCount"] for n in ("proxy", "setup", "app")] == [0, 0, 0]
    conds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conds["Initialized"] == "True"

    async def lines() -> list[str] | None:
        got = trail.read_text().splitlines() if trail.exists() else []
        return got if len(got) >= 3 else None

    assert await eventually(lines, what="every container's line") == ["proxy", "setup", "app"]
    await kube.delete("/api/v1/namespaces/default/pods/with-proxy", grace_period_seconds=0)


async def test_a_sidecar_is_stopped_once_the_app_containers_completed(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", _pod(
        "job-like", host_dir=tmp_path, app_command="sleep 1", policy="Never",
    ))

    async def completed() -> dict[str, Any] | None:
        pod = await kube.get_pod("default", "job-like")
        statuses = _statuses(pod)
        ok = (
            (pod.get("status") or {}).get("phase") == "Succeeded"
            and "terminated" in (statuses.get("proxy") or {}).get("state", {})
        )
        return pod if ok else None

    pod = await eventually(completed, what="the pod Succeeded with its sidecar stopped")
    statuses = _statuses(pod)
    assert statuses["app"]["state"]["terminated"]["exitCode"] == 0
    assert statuses["proxy"]["restartCount"] == 0  # stopped, not restarted
    live = [t for t in embedded.bridge.scheduler.tasks.values()
            if t.pod_uid == pod["metadata"]["uid"] and not t.terminal]
    assert live == []


async def test_deleting_a_pod_stops_its_sidecar_after_the_app(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = embedded.bridge.kube
    trail = tmp_path / "stopped"

    def stops(name: str, *, taking: float = 0) -> str:
        # the app takes a second to stop: killed together, the sidecar would write first
        return (f"trap 'sleep {taking}; echo {name} >> /trail/stopped; exit 0' TERM; echo up; "
                "while true; do sleep 0.1; done")

    pod = _pod("stopping", host_dir=tmp_path, app_command=stops("app", taking=1),
               policy="Always")
    pod["spec"]["terminationGracePeriodSeconds"] = 5
    pod["spec"]["initContainers"][0]["command"] = ["sh", "-c", stops("proxy")]
    await kube.create("/api/v1/namespaces/default/pods", pod)

    async def running() -> dict[str, Any] | None:
        got = await kube.get_pod("default", "stopping")
        app_state = (_statuses(got).get("app") or {}).get("state", {})
        return got if "running" in app_state else None

    await eventually(running, what="the app running beside its sidecar")
    await kube.delete("/api/v1/namespaces/default/pods/stopping")

    async def gone() -> bool:
        pods = await kube.list_pods()
        return not any(p["metadata"]["name"] == "stopping" for p in pods)

    await eventually(gone, what="the pod deleted once its containers stopped")
    assert trail.read_text().splitlines() == ["app", "proxy"]


async def test_a_sidecar_that_exits_is_restarted_beside_the_running_app(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = embedded.bridge.kube
    marker = "/trail/ran-once"  # on the host: it outlives the sidecar's first run
    pod = _pod("proxy-crash", host_dir=tmp_path, app_command="exec sleep 300",
               policy="Always")
    # the first run of the sidecar exits with an error after 3 s; the second keeps running
    pod["spec"]["initContainers"][0]["command"] = [
        "sh", "-c", f"test -e {marker} && exec sleep 300; touch {marker}; sleep 3; exit 1",
    ]
    await kube.create("/api/v1/namespaces/default/pods", pod)

    async def app_running() -> str | None:
        got = await kube.get_pod("default", "proxy-crash")
        app_status = _statuses(got).get("app") or {}
        return app_status.get("containerID") if "running" in app_status.get("state", {}) \
            else None

    app_container = await eventually(app_running, what="the app running")

    async def restarted() -> dict[str, Any] | None:
        got = await kube.get_pod("default", "proxy-crash")
        proxy = _statuses(got).get("proxy") or {}
        ok = proxy.get("restartCount") == 1 and "running" in proxy.get("state", {})
        return got if ok else None

    got = await eventually(restarted, what="the sidecar restarted and running again")
    statuses = _statuses(got)
    assert statuses["proxy"]["lastState"]["terminated"]["exitCode"] == 1
    assert statuses["app"]["restartCount"] == 0  # the app kept running meanwhile
    assert statuses["app"]["containerID"] == app_container
    assert "running" in statuses["app"]["state"]
    assert got["status"]["phase"] == "Running"
    await kube.delete("/api/v1/namespaces/default/pods/proxy-crash", grace_period_seconds=0)


async def test_a_bridge_restart_adopts_a_pod_with_a_running_sidecar(tmp_path: Path) -> None:
    """After a restart the sidecar (an earlier attempt than the app) and the app are adopted:
    nothing is launched again and no restart is counted."""
    base = fast_settings(tmp_path / "run")
    agents = embedded_cfg.embedded_agent_configs(data_dir=tmp_path / "run", count=1)
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
                base.scheduler, scheduler_names=("default-scheduler",), image_mode="none",
                allow_host_path=True,  # as the embedded bridge (the trail's hostPath)
            ),
        )
        spec = _pod("adopted", host_dir=tmp_path, app_command="exec sleep 300",
                    policy="Always")

        async def both_running(kube: Any) -> dict[str, Any] | None:
            got = await kube.get_pod("default", "adopted")
            statuses = _statuses(got)
            ok = all("running" in (statuses.get(n) or {}).get("state", {})
                     for n in ("proxy", "app"))
            return got if ok else None

        async with app.running_bridge(settings) as first:
            await first.kube.create("/api/v1/namespaces/default/pods", spec)
            before = await eventually(lambda: both_running(first.kube),
                                      what="sidecar and app running")
            launched = sorted(str(t) for t in first.scheduler.tasks)
        async with app.running_bridge(settings) as second:

            async def adopted() -> bool:
                return sorted(str(t) for t in second.scheduler.tasks) == launched

            await eventually(adopted, what="the same tasks adopted, none launched")
            await asyncio.sleep(2)  # a spurious relaunch would come within a few passes
            assert await adopted()
            after = await eventually(lambda: both_running(second.kube),
                                     what="still running after the restart")
            statuses, old = _statuses(after), _statuses(before)
            for name in ("proxy", "app"):
                assert statuses[name]["restartCount"] == 0, name
                assert statuses[name]["containerID"] == old[name]["containerID"], name
            await second.kube.delete("/api/v1/namespaces/default/pods/adopted",
                                     grace_period_seconds=0)
