"""Readiness probes (Mesos checks) drive `ready` and the pod's Ready condition.

The probes look at a file the test makes on the host, as a user would let a container see one:
through a hostPath volume (the embedded agents give every container a root of its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k8sbridge import app
from tests.integration.conftest import eventually


def _host_dir_at_probe(host_dir: Path) -> dict[str, Any]:
    """Pod spec parts mounting ``host_dir`` at ``/probe`` in the container."""
    return {"volumes": [{"name": "probe", "hostPath": {"path": str(host_dir)}}],
            "volumeMounts": [{"name": "probe", "mountPath": "/probe"}]}


async def test_a_readiness_probe_flips_ready(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = embedded.bridge.kube
    flag = tmp_path / "ready"
    host = _host_dir_at_probe(tmp_path)
    await kube.create(
        "/api/v1/namespaces/default/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "probed", "namespace": "default"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "volumes": host["volumes"],
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["sleep", "300"],
                        "volumeMounts": host["volumeMounts"],
                        "readinessProbe": {
                            "exec": {"command": ["test", "-f", "/probe/ready"]},
                            "periodSeconds": 1,
                        },
                    }
                ],
            },
        },
    )

    async def container() -> dict[str, Any]:
        pod = await kube.get_pod("default", "probed")
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        return dict(statuses[0])

    async def running_not_ready() -> bool:
        cs = await container()
        return "running" in (cs.get("state") or {}) and cs.get("ready") is False

    await eventually(running_not_ready, what="running but not ready")
    flag.write_text("ok")

    async def ready() -> bool:
        pod = await kube.get_pod("default", "probed")
        conds = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
        return conds.get("Ready") == "True" and (await container()).get("ready") is True

    await eventually(ready, what="Ready after the probe passes")
    flag.unlink()

    async def unready_again() -> bool:
        return (await container()).get("ready") is False

    await eventually(unready_again, what="not ready once the probe fails")
    await kube.delete("/api/v1/namespaces/default/pods/probed", grace_period_seconds=0)


async def test_a_failing_liveness_probe_restarts_the_container(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = embedded.bridge.kube
    alive = tmp_path / "alive"
    alive.write_text("yes")
    host = _host_dir_at_probe(tmp_path)
    await kube.create(
        "/api/v1/namespaces/default/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "liveness", "namespace": "default"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "volumes": host["volumes"],
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["sleep", "300"],
                        "volumeMounts": host["volumeMounts"],
                        "livenessProbe": {
                            "exec": {"command": ["test", "-f", "/probe/alive"]},
                            "periodSeconds": 1,
                            "failureThreshold": 2,
                        },
                    }
                ],
            },
        },
    )

    async def status() -> dict[str, Any]:
        pod = await kube.get_pod("default", "liveness")
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        return dict(statuses[0])

    async def running() -> bool:
        return "running" in ((await status()).get("state") or {})

    await eventually(running, what="running")
    alive.unlink()

    async def restarted() -> dict[str, Any] | None:
        cs = await status()
        return cs if cs.get("restartCount", 0) >= 1 else None

    cs = await eventually(restarted, timeout=40, what="a restart after the liveness failures")
    assert "terminated" in cs["lastState"]


    async def unhealthy_event() -> bool:  # events go out after the statuses (best-effort)
        events = await kube.get("/api/v1/namespaces/default/events")
        return any(e["reason"] == "Unhealthy" and e["involvedObject"]["name"] == "liveness"
                   for e in events["items"])

    await eventually(unhealthy_event, timeout=15, what="an Unhealthy event for liveness")
    await kube.delete("/api/v1/namespaces/default/pods/liveness", grace_period_seconds=0)
