"""Pods the agent cannot run end with a clear status and event, never silently Pending."""

from __future__ import annotations

from typing import Any

from k8sbridge import app
from tests.integration.conftest import eventually


def _pod(name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": "busybox", **container}], **spec},
    }


async def _container(kube: Any, name: str) -> dict[str, Any]:
    pod = await kube.get_pod("default", name)
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


async def test_missing_config_map_key_is_create_container_config_error(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default"}, "data": {"a": "1"},
    })
    await kube.create("/api/v1/namespaces/default/pods", _pod("needs-key", {
        "command": ["sleep", "60"],
        "env": [{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "settings",
                                                                 "key": "b"}}}],
    }))

    async def waiting() -> dict[str, Any] | None:
        state = (await _container(kube, "needs-key")).get("state") or {}
        w = state.get("waiting") or {}
        return w if w.get("reason") == "CreateContainerConfigError" else None

    w = await eventually(waiting, what="CreateContainerConfigError")
    assert "couldn't find key b" in w["message"]


    async def failed_event() -> bool:  # events go out after the statuses (best-effort)
        events = await kube.get("/api/v1/namespaces/default/events")
        return any(e["reason"] == "Failed" and e["involvedObject"]["name"] == "needs-key"
                   for e in events["items"])

    await eventually(failed_event, timeout=15, what="a Failed event for needs-key")


async def test_a_command_that_does_not_exist_fails_the_pod(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", _pod(
        "no-such-binary", {"command": ["/no/such/binary"]}, restartPolicy="Never"))

    async def failed() -> dict[str, Any] | None:
        pod = await kube.get_pod("default", "no-such-binary")
        return pod if (pod.get("status") or {}).get("phase") == "Failed" else None

    pod = await eventually(failed, what="Failed")
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] != 0 and term["reason"] in ("Error", "StartError")
