"""``k8sbridge doctor`` as a user runs it, against a real kernel (with authentication on) and
devkube (RBAC on): everything in place says so and exits 0; a service account without the
bridge's grants, Mesos credentials the master refuses, a master nobody answers at and agents
without the pod network are each named on their line, with exit status 1; applying
manifests/deploy/rbac.yaml then satisfies the RBAC check."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8sbridge import doctor
from k8sbridge.devkube import main as devkube_main
from k8sbridge.kernel import main as kernel_main
from k8sbridge.kernel.agent import config as agent_config
from k8sbridge.kernel.master import config as master_config
from k8sbridge.kube import client as kube_client
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-of-the-bridge"


class Targets:
    def __init__(self, *, master: str, dk: devkube_main.Devkube, tmp: Path) -> None:
        self.master = master
        self.dk = dk
        self.tmp = tmp
        self.secret = tmp / "secret"
        self.secret.write_text(SECRET)

    def kubeconfig(self, token: str, name: str) -> Path:
        path = self.tmp / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "x",
            "clusters": [{"name": "x", "cluster": {"server": self.dk.url,
                                                   "certificate-authority": str(self.dk.ca_file)}}],
            "users": [{"name": "x", "user": {"token": token}}],
            "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}))
        return path

    async def doctor(self, *, kubeconfig: Path, master: str | None = None,
                     env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        # in a thread: the kernel and devkube answer from this test's event loop
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "k8sbridge", "doctor", "--master", master or self.master,
             "--kubeconfig", str(kubeconfig)],
            env={**os.environ, "PYTHONPATH": str(REPO), "K8SBRIDGE_MESOS_PRINCIPAL": "k8sbridge",
                 "K8SBRIDGE_MESOS_SECRET_FILE": str(self.secret),
                 "K8SBRIDGE_KUBELET_PORT": str(free_port()), **(env or {})},
            capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.fixture
async def targets(tmp_path: Path) -> AsyncIterator[Targets]:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"credentials": [
        {"principal": "k8sbridge", "secret": SECRET}]}))
    credentials.chmod(0o600)
    agent = agent_config.AgentConfig(
        master="127.0.0.1:0", work_dir=tmp_path / "agent", host="127.0.0.1",
        resources="cpus:2;mem:2048;disk:1024;ports:[31000-31100]")
    master = master_config.MasterConfig(
        port=0, work_dir=tmp_path / "kernel", credentials=str(credentials),
        authenticate_http_readwrite=True, authenticate_http_readonly=True)
    async with kernel_main.running_kernel(master=master, agents=[agent]) as kernel, \
            devkube_main.running(devkube_main.DevkubeConfig(
                port=0, data_dir=tmp_path / "dk", kubeconfig=tmp_path / "admin.kubeconfig",
                controllers=False)) as dk:
        yield Targets(master=kernel.master_url, dk=dk, tmp=tmp_path)


def _lines(out: str) -> dict[str, tuple[str, str]]:
    """check -> (status, detail), from the report's fixed columns."""
    found = {}
    for line in out.splitlines():
        for check in ("settings", "mesos master", "mesos credentials", "mesos agents",
                      "pod network", "kubernetes API", "kubernetes RBAC", "kubelet port"):
            head = line[6:]
            if head.startswith(check + " "):
                found[check] = (line[:4].strip(), head[len(check):].strip())
    return found


async def test_the_doctor_names_what_is_missing_and_passes_once_it_is_in_place(
    targets: Targets,
) -> None:
    assert targets.dk.token
    admin = kube_client.KubeClient.from_kubeconfig(path=targets.dk.kubeconfig)
    try:
        await admin.ensure_namespace("k8sbridge")
        await admin.create("/api/v1/namespaces/default/serviceaccounts",
                           {"apiVersion": "v1", "kind": "ServiceAccount",
                            "metadata": {"name": "nobody"}})
        nobody = await _token(admin, "default", "nobody")
        # no grants, and agents without the pod network
        run = await targets.doctor(kubeconfig=targets.kubeconfig(nobody, "nobody"))
        assert run.returncode == 1, run.stdout + run.stderr
        lines = _lines(run.stdout)
        assert lines["mesos master"][0] == "ok" and "Mesos 1." in lines["mesos master"][1]
        assert lines["mesos credentials"] == ("ok", "accepted (principal k8sbridge)")
        assert lines["kubernetes API"][0] == "ok"
        total = len(doctor.REQUIRED_ACCESS)
        status, detail = lines["kubernetes RBAC"]
        assert status == "FAIL" and detail.startswith(f"{total} of {total} permissions missing")
        assert "create core/pods/binding" in detail
        assert "get core/configmaps in k8sbridge" in detail  # the bridge's own state
        status, detail = lines["pod network"]
        assert status == "FAIL" and "127.0.0.1" in detail
        assert "problem(s)" in run.stdout

        # `kubectl apply -f manifests/deploy/rbac.yaml` (the ServiceAccount and its grants), its
        # token, no pod network
        for doc in yaml.safe_load_all((REPO / "manifests" / "deploy" / "rbac.yaml").read_text()):
            if doc:
                await admin.create(_collection(doc), doc)
        bridge = await _token(admin, "k8sbridge", "k8sbridge")
        run = await targets.doctor(kubeconfig=targets.kubeconfig(bridge, "bridge"),
                             env={"K8SBRIDGE_SCHEDULER_POD_NETWORK": ""})
        assert run.returncode == 0, run.stdout + run.stderr
        lines = _lines(run.stdout)
        assert lines["kubernetes RBAC"] == ("ok", f"all {total} permissions granted")
        assert lines["kubelet port"][0] == "ok"
        assert "pod network" not in lines
        assert run.stdout.rstrip().endswith("everything the bridge needs is in place")

        # Mesos credentials the master refuses; a master nobody answers at
        run = await targets.doctor(kubeconfig=targets.kubeconfig(bridge, "bridge"),
                             env={"K8SBRIDGE_SCHEDULER_POD_NETWORK": "",
                                  "K8SBRIDGE_MESOS_PRINCIPAL": "intruder"})
        assert run.returncode == 1
        assert _lines(run.stdout)["mesos credentials"][0] == "FAIL"
        run = await targets.doctor(kubeconfig=targets.kubeconfig(bridge, "bridge"),
                             master=f"http://127.0.0.1:{free_port()}",
                             env={"K8SBRIDGE_SCHEDULER_POD_NETWORK": ""})
        assert run.returncode == 1
        status, detail = _lines(run.stdout)["mesos master"]
        assert status == "FAIL" and "127.0.0.1" in detail
    finally:
        await admin.close()


async def _token(admin: kube_client.KubeClient, namespace: str, name: str) -> str:
    issued = await admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"expirationSeconds": 3600}})
    return str(issued["status"]["token"])


def _collection(doc: dict[str, Any]) -> str:
    group_version = doc["apiVersion"]
    base = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
    namespace = doc["metadata"].get("namespace")
    plural = doc["kind"].lower() + "s"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
