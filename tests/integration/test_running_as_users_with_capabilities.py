"""runAsUser and capabilities reach the container (embedded kernel with fully isolating agents,
which run linux/capabilities and switch users, + devkube + bridge): a uid mapped to ``nobody``
runs as 65534, and ``drop: [ALL]`` leaves no effective capability."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge import app
from tests.integration.conftest import eventually, fast_settings


@pytest.fixture
async def isolated(tmp_path: Path) -> AsyncIterator[app.EmbeddedTargets]:
    settings = fast_settings(tmp_path / "run")
    settings = dataclasses.replace(
        settings,
        scheduler=dataclasses.replace(settings.scheduler, run_as_users=("65534=nobody",)))
    async with app.running_embedded(settings) as targets:
        yield targets


def _pod(name: str, script: str, security: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"terminationGracePeriodSeconds": 1, "restartPolicy": "Never",
                     "containers": [{"name": "main", "image": "busybox",
                                     "command": ["/bin/sh", "-c", script],
                                     "securityContext": security,
                                     "resources": {"requests": {"cpu": "50m",
                                                                "memory": "32Mi"}}}],
                     **spec}}


async def _finished(kube: Any, name: str) -> dict[str, Any] | None:
    pod: dict[str, Any] = await kube.get_pod("default", name)
    return pod if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None


async def test_a_mapped_uid_runs_as_that_user_and_drop_all_leaves_no_capability(
    isolated: app.EmbeddedTargets, tmp_path: Path,
) -> None:
    kube = isolated.bridge.kube
    out = tmp_path / "out"
    out.mkdir()
    volume = [{"name": "out", "hostPath": {"path": str(out)}}]
    mount = [{"name": "out", "mountPath": "/out"}]
    user_pod = _pod("nobody", 'test "$(id -u)" = 65534', {"runAsUser": 65534})
    caps_pod = _pod("nocaps", "grep CapEff /proc/self/status > /out/caps",
                    {"capabilities": {"drop": ["ALL"]}}, volumes=volume)
    caps_pod["spec"]["containers"][0]["volumeMounts"] = mount
    for pod in (user_pod, caps_pod):
        await kube.create("/api/v1/namespaces/default/pods", pod)
    for name in ("nobody", "nocaps"):
        async def finished(n: str = name) -> dict[str, Any] | None:
            return await _finished(kube, n)
        done = await eventually(finished, timeout=60, what=f"{name} finished")
        assert done["status"]["phase"] == "Succeeded", done["status"]
    assert (out / "caps").read_text().split() == ["CapEff:", "0000000000000000"]
