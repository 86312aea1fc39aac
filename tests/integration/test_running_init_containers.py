"""Init containers run one at a time, each to completion, before the app containers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k8sbridge import app
from tests.integration.conftest import eventually


async def test_init_containers_run_in_order_before_the_app(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = embedded.bridge.kube
    trail = tmp_path / "trail"
    await kube.create(
        "/api/v1/namespaces/default/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "inits", "namespace": "default"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "initContainers": [
                    {"name": "first", "image": "busybox",
                     "command": ["sh", "-c", f"sleep 1; echo first >> {trail}"]},
                    {"name": "second", "image": "busybox",
                     "command": ["sh", "-c", f"echo second >> {trail}"]},
                ],
                "containers": [
                    {"name": "app", "image": "busybox",
                     "command": ["sh", "-c", f"echo app >> {trail}; sleep 300"]},
                ],
            },
        },
    )

    async def running() -> dict[str, Any] | None:
        pod = await kube.get_pod("default", "inits")
        status = pod.get("status") or {}
        ready = [c.get("ready") for c in status.get("containerStatuses") or []]
        return pod if status.get("phase") == "Running" and ready == [True] else None

    pod = await eventually(running, what="app Running after the init containers")

    async def app_wrote() -> list[str] | None:
        # RUNNING means the app's shell was started; its echo may come a moment later
        lines = trail.read_text().splitlines()
        return lines if len(lines) >= 3 else None

    assert await eventually(app_wrote, what="the app's line") == ["first", "second", "app"]
    inits = {c["name"]: c for c in pod["status"]["initContainerStatuses"]}
    assert inits["first"]["state"]["terminated"]["reason"] == "Completed"
    assert inits["second"]["state"]["terminated"]["exitCode"] == 0
    conds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conds["Initialized"] == "True"
    await kube.delete("/api/v1/namespaces/default/pods/inits", grace_period_seconds=0)
