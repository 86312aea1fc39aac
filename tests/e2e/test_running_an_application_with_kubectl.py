"""e2e with REAL kubectl: an application manifest (ConfigMap, Secret, a Deployment whose pods
mount both and share an emptyDir, from a local image) runs as on Kubernetes (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import EXAMPLES, Target, eventually
from tests.kernel.agent import images_for_tests

pytestmark = pytest.mark.e2e


def test_an_application_gets_its_volumes_token_and_a_root_of_its_own(target: Target) -> None:
    if target.process is not None:  # `k8sbridge run`: its agents' local registry
        registry = target.kubeconfig.parent / "images"
        images_for_tests.busybox_archive(registry, tag="1.36", os_release="NAME=app-image\n")
    assert not Path("/etc/written-by-app").exists()
    target.kubectl("apply", "-f", str(EXAMPLES / "app.yaml"))
    target.kubectl("rollout", "status", "deployment/app", "--timeout=90s", timeout=120)
    pods = target.kubectl_json("get", "pods", "-l", "app=app")["items"]
    assert len(pods) == 2
    for pod in pods:
        name = pod["metadata"]["name"]
        logs = eventually(
            lambda n=name: (out := target.kubectl("logs", n, "-c", "main", check=False))
            and "sidecar=" in out and out, what=f"{name}'s logs")
        assert "greeting=hello from a ConfigMap" in logs
        assert "password=s3cret" in logs
        assert "namespace=default" in logs  # the admitted service-account volume
        assert f"hostname={name}" in logs  # the pod's own /etc/hostname
        assert "sidecar=up" in logs  # the emptyDir shared with the other container
        volumes = {v["name"] for v in pod["spec"]["volumes"]}
        assert any(v.startswith("kube-api-access-") for v in volumes)
    # each container wrote /etc/written-by-app into a root of its own, never the host's
    assert not Path("/etc/written-by-app").exists()
    target.kubectl("delete", "-f", str(EXAMPLES / "app.yaml"), "--wait=true", timeout=90)
