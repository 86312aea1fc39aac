"""Graceful deletion: KILL with the pod's grace period lets a SIGTERM handler finish; then the
final DELETE. A force delete (grace 0) kills at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k8sbridge import app
from k8sbridge.kube import errors as kube_errors
from tests.integration.conftest import eventually


def _pod(name: str, script: str, grace: int, *, host_dir: Path | None = None
         ) -> dict[str, Any]:
    """The pod; with ``host_dir`` mounted at ``/out`` (a hostPath volume: the embedded agents
    give every container a root of its own, so this is how it writes onto the host)."""
    container: dict[str, Any] = {"name": "main", "image": "busybox",
                                 "command": ["sh", "-c", script]}
    spec: dict[str, Any] = {"terminationGracePeriodSeconds": grace, "containers": [container]}
    if host_dir is not None:
        spec["volumes"] = [{"name": "out",
                            "hostPath": {"path": str(host_dir)}}]
        container["volumeMounts"] = [{"name": "out", "mountPath": "/out"}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


async def test_sigterm_handler_finishes_within_the_grace_period(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = embedded.bridge.kube
    marker = tmp_path / "term.log"
    script = (
        "trap 'echo got TERM >> /out/term.log; sleep 1; echo bye >> /out/term.log; exit 0' "
        "TERM; while true; do sleep 0.1; done"
    )
    await kube.create("/api/v1/namespaces/default/pods",
                      _pod("graceful", script, 5, host_dir=tmp_path))

    async def running() -> bool:
        pod = await kube.get_pod("default", "graceful")
        return (pod.get("status") or {}).get("phase") == "Running"

    await eventually(running, what="Running")
    await kube.delete("/api/v1/namespaces/default/pods/graceful")  # the pod's own grace: 5 s

    async def gone() -> bool:
        try:
            await kube.get_pod("default", "graceful")
        except kube_errors.NotFound:
            return True
        return False

    await eventually(gone, what="pod removed after the task ended")
    assert marker.read_text().splitlines() == ["got TERM", "bye"]


async def test_force_delete_kills_at_once(embedded: app.EmbeddedTargets) -> None:
    kube = embedded.bridge.kube
    await kube.create(
        "/api/v1/namespaces/default/pods",
        _pod("stubborn", "trap '' TERM; while true; do sleep 0.1; done", 30),
    )

    async def running() -> dict[str, Any] | None:
        pod = await kube.get_pod("default", "stubborn")
        return pod if (pod.get("status") or {}).get("phase") == "Running" else None

    pod = await eventually(running, what="Running")
    uid = pod["metadata"]["uid"]
    await kube.delete("/api/v1/namespaces/default/pods/stubborn", grace_period_seconds=0)

    async def killed() -> bool:
        tasks = [t for t in embedded.bridge.scheduler.tasks.values() if t.pod_uid == uid]
        return bool(tasks) and all(t.terminal for t in tasks)

    await eventually(killed, timeout=15, what="task killed without waiting 30 s")
