"""Init containers run one at a time, each to completion, before the app containers.

The containers leave their trail on the host as a user would: through a hostPath volume (the
embedded agents give every container a root of its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k8sbridge import app
from tests.integration.conftest import eventually

_AT = "/trail"  # where the test's directory is mounted in every container


def _with_host_dir(spec: dict[str, Any], host_dir: Path) -> dict[str, Any]:
    """``spec`` with ``host_dir`` mounted at ``_AT`` (a hostPath volume) in every container."""
    spec["volumes"] = [{"name": "trail",
                        "hostPath": {"path": str(host_dir)}}]
    for c in spec.get("initContainers", []) + spec["containers"]:
        c["volumeMounts"] = [{"name": "trail", "mountPath": _AT}]
    return spec


async def test_init_containers_run_in_order_before_the_app(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    kube = embedded.bridge.kube
    trail = tmp_path / "trail"
    inner = f"{_AT}/trail"
    await kube.create(
        "/api/v1/namespaces/default/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "inits", "namespace": "default"},
            "spec": _with_host_dir({
                "terminationGracePeriodSeconds": 1,
                "initContainers": [
                    {"name": "first", "image": "busybox",
                     "command": ["sh", "-c", f"sleep 1; echo first >> {inner}"]},
                    {"name": "second", "image": "busybox",
                     "command": ["sh", "-c", f"echo second >> {inner}"]},
                ],
                "containers": [
                    {"name": "app", "image": "busybox",
                     "command": ["sh", "-c", f"echo app >> {inner}; sleep 300"]},
                ],
            }, tmp_path),
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


def _inits_then_app(name: str, *, init_command: str, host_dir: Path | None = None
                    ) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 1,
        "initContainers": [
            {"name": "prepare", "image": "busybox", "command": ["sh", "-c", init_command]},
        ],
        "containers": [
            {"name": "app", "image": "busybox", "command": ["sleep", "300"]},
        ],
    }
    if host_dir is not None:
        spec = _with_host_dir(spec, host_dir)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


async def _running_app(kube: Any, name: str) -> dict[str, Any]:
    async def running() -> dict[str, Any] | None:
        pod = await kube.get_pod("default", name)
        status = pod.get("status") or {}
        ready = [c.get("ready") for c in status.get("containerStatuses") or []]
        return pod if status.get("phase") == "Running" and ready == [True] else None

    pod: dict[str, Any] = await eventually(running, what=f"{name}'s app Running")
    return pod


async def test_an_app_container_after_init_containers_has_not_restarted(
    embedded: app.EmbeddedTargets,
) -> None:
    """restartCount counts restarts only: the app's first run after its init containers is
    run 0, not 1 (the init containers' task is not an earlier run of the app)."""
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods",
                      _inits_then_app("first-run", init_command="true"))
    pod = await _running_app(kube, "first-run")
    app_status = pod["status"]["containerStatuses"][0]
    assert app_status["restartCount"] == 0
    assert app_status["lastState"] == {}
    assert pod["status"]["initContainerStatuses"][0]["restartCount"] == 0
    await kube.delete("/api/v1/namespaces/default/pods/first-run", grace_period_seconds=0)


async def test_a_failed_init_container_is_retried_at_once_then_counts_one_restart(
    embedded: app.EmbeddedTargets, tmp_path: Path
) -> None:
    """The kubelet's crash back-off applies to init containers too: the first retry is
    immediate (not a fixed 10 s), and the retried init container shows restartCount 1."""
    kube = embedded.bridge.kube
    marker = f"{_AT}/tried"  # on the host through a hostPath: it outlives the first try
    await kube.create(
        "/api/v1/namespaces/default/pods",
        _inits_then_app(
            "retried", init_command=f"test -e {marker} && exit 0; touch {marker}; exit 3",
            host_dir=tmp_path,
        ),
    )
    pod = await _running_app(kube, "retried")
    init = pod["status"]["initContainerStatuses"][0]
    assert init["restartCount"] == 1
    assert init["lastState"]["terminated"]["exitCode"] == 3
    assert init["state"]["terminated"]["exitCode"] == 0
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    await kube.delete("/api/v1/namespaces/default/pods/retried", grace_period_seconds=0)
