"""A pod's volumes are really mounted in its containers (configMap with items, secret,
downwardAPI, an emptyDir shared by two containers and invisible on the host, hostPath), and
what cannot be honoured is refused with a reason naming the field (embedded kernel with
fully isolating agents + devkube + bridge)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from k8sbridge import app
from tests.integration.conftest import eventually


def _pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    for c in containers:
        c.setdefault("resources", {"requests": {"cpu": "50m", "memory": "32Mi"}})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 1, "restartPolicy": "Never",
                     "containers": containers, **spec}}


async def _phase(kube: Any, name: str, phases: tuple[str, ...]) -> dict[str, Any] | None:
    pod: dict[str, Any] = await kube.get_pod("default", name)
    return pod if (pod.get("status") or {}).get("phase") in phases else None


async def test_volumes_are_mounted_and_the_emptydir_stays_off_the_host(
    embedded: app.EmbeddedTargets, tmp_path: Path,
) -> None:
    kube = embedded.bridge.kube
    out = tmp_path / "out"
    out.mkdir()
    await kube.create("/api/v1/namespaces/default/configmaps", {
        "metadata": {"name": "cfg"}, "data": {"a.conf": "alpha", "b.conf": "beta"}})
    await kube.create("/api/v1/namespaces/default/secrets", {
        "metadata": {"name": "sec"}, "data": {"pw": base64.b64encode(b"s3cret").decode()}})
    writer = ("echo shared > /shared-k8sbridge-test/f; cat /cfg/renamed > /out/cfg; "
              "ls /cfg > /out/cfg-ls; cat /sec/pw > /out/pw; cat /info/name > /out/name; "
              "cat /info/labels > /out/labels; touch /etc/k8sbridge-x; "
              "ls /opt-missing > /out/optional 2>&1; echo ok > /out/done")
    reader = ("while [ ! -e /shared-k8sbridge-test/f ]; do sleep 0.1; done; "
              "cat /shared-k8sbridge-test/f > /out/read; "
              "if touch /shared-k8sbridge-test/g 2> /out/ro; then echo rw > /out/ro; fi")
    volumes = [
        {"name": "shared", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "cfg",
                                      "items": [{"key": "b.conf", "path": "renamed"}]}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o644}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "missing", "configMap": {"name": "nope", "optional": True}},
        {"name": "out", "hostPath": {"path": str(out)}},
    ]
    mounts = [{"name": "shared", "mountPath": "/shared-k8sbridge-test"},
              {"name": "cfg", "mountPath": "/cfg"}, {"name": "sec", "mountPath": "/sec"},
              {"name": "info", "mountPath": "/info"},
              {"name": "missing", "mountPath": "/opt-missing"},
              {"name": "out", "mountPath": "/out"}]
    await kube.create("/api/v1/namespaces/default/pods", _pod("vols", [
        {"name": "writer", "image": "busybox", "command": ["/bin/sh", "-c", writer],
         "volumeMounts": mounts},
        {"name": "reader", "image": "busybox", "command": ["/bin/sh", "-c", reader],
         "volumeMounts": [{"name": "shared", "mountPath": "/shared-k8sbridge-test",
                           "readOnly": True}, {"name": "out", "mountPath": "/out"}]},
    ], volumes=volumes))
    pod = await eventually(lambda: _phase(kube, "vols", ("Succeeded", "Failed")),
                           timeout=60, what="pod finished")
    assert pod["status"]["phase"] == "Succeeded", [
        (c["name"], c["state"].get("terminated", {}).get("message"))
        for c in pod["status"]["containerStatuses"]]
    assert (out / "cfg").read_text() == "beta"
    assert (out / "cfg-ls").read_text() == "renamed\n"
    assert (out / "pw").read_text() == "s3cret"
    assert (out / "name").read_text() == "vols"
    assert (out / "labels").read_text() == 'app="vols"'
    assert (out / "optional").read_text() == ""  # an empty directory
    assert (out / "read").read_text() == "shared\n"
    assert "Read-only file system" in (out / "ro").read_text()
    assert not Path("/shared-k8sbridge-test").exists()
    assert not Path("/etc/k8sbridge-x").exists()


async def test_a_missing_secret_or_a_pvc_stops_the_pod_with_a_reason(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", _pod("nosecret", [
        {"name": "main", "image": "busybox", "command": ["true"],
         "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
        volumes=[{"name": "s", "secret": {"secretName": "absent"}}]))
    await kube.create("/api/v1/namespaces/default/pods", _pod("claims", [
        {"name": "main", "image": "busybox", "command": ["true"],
         "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}]))

    async def waiting(name: str) -> dict[str, Any] | None:
        pod = await kube.get_pod("default", name)
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            state = (cs.get("state") or {}).get("waiting") or {}
            if state.get("reason") == "CreateContainerConfigError":
                return dict(state)
        return None

    state = await eventually(lambda: waiting("nosecret"), what="secret refusal")
    assert state["message"] == 'secret "absent" not found'
    state = await eventually(lambda: waiting("claims"), what="pvc refusal")
    assert state["message"].startswith('spec.volumes "data": persistentVolumeClaim is not '
                                       "supported")

