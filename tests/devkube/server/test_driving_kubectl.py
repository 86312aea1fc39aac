"""Real kubectl against a devkube process (HTTPS + token, written kubeconfig, no extra flags)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
"""


class Kubectl:
    def __init__(self, *, kubeconfig: Path, cache: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(cache)}

    def run(self, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["kubectl", *args], input=stdin, capture_output=True, text=True, env=self.env,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def devkube_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("devkube")
    proc = subprocess.Popen(
        [sys.executable, "-m", "k8sbridge", "devkube", "--port", "0", "--data-dir", str(data),
         "--node-grace-seconds", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "devkube serving https://" in line, line
        yield data
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
        assert code == 0  # clean SIGTERM shutdown


@pytest.fixture(scope="module")
def kubectl(devkube_process: Path, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(kubeconfig=devkube_process / "kubeconfig",
                   cache=tmp_path_factory.mktemp("kubecache"))


def _run_pod_like_a_kubelet(kubectl: Kubectl, name: str, node: str) -> None:
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
               "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
    kubectl.run("create", "--raw", f"/api/v1/namespaces/default/pods/{name}/binding", "-f", "-",
                stdin=json.dumps(binding))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {"status": {
        "phase": "Running", "podIP": "10.0.0.9", "startTime": now,
        "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                       for t in ("Initialized", "Ready", "ContainersReady")],
        "containerStatuses": [{"name": "nginx", "ready": True, "restartCount": 0,
                               "image": "nginx:1.27", "imageID": "", "started": True,
                               "state": {"running": {"startedAt": now}}}],
    }}
    kubectl.run("patch", "pod", name, "--subresource=status", "--type=merge",
                "-p", json.dumps(status))


def test_apply_created_configured_unchanged(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    assert kubectl.run("apply", "-f", str(manifest)).stdout.strip() == (
        "deployment.apps/web created")
    assert kubectl.run("apply", "-f", str(manifest)).stdout.strip() == (
        "deployment.apps/web unchanged")
    manifest.write_text(DEPLOYMENT.replace("nginx:1.27", "nginx:1.28"))
    assert kubectl.run("apply", "-f", str(manifest)).stdout.strip() == (
        "deployment.apps/web configured")
    live = kubectl.json("get", "deployment", "web")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert live["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in live["metadata"]["annotations"]


def test_rollout_status_with_controllers(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "api.yaml"
    manifest.write_text(DEPLOYMENT.replace("web", "api"))
    kubectl.run("apply", "-f", str(manifest))
    deadline = time.monotonic() + 30
    pods: list[str] = []
    while time.monotonic() < deadline:
        pods = kubectl.run("get", "pods", "-l", "app=api", "-o", "name").stdout.split()
        if len(pods) == 2:
            break
        time.sleep(0.2)
    assert len(pods) == 2
    for i, ref in enumerate(pods):
        _run_pod_like_a_kubelet(kubectl, ref.removeprefix("pod/"), f"node-{i}")
    out = kubectl.run("rollout", "status", "deployment/api", "--timeout=30s").stdout
    assert 'deployment "api" successfully rolled out' in out
    wide = kubectl.run("get", "pods", "-l", "app=api", "-o", "wide").stdout
    header = wide.splitlines()[0].split()
    assert header[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "NODE" in header and "IP" in header
    assert "1/1" in wide and "Running" in wide and "node-0" in wide and "10.0.0.9" in wide
    kubectl.run("wait", "--for=condition=Ready", pods[0], "--timeout=10s")
    kubectl.run("wait", "--for=condition=Available", "deployment/api", "--timeout=10s")


def test_get_output_formats_and_describe(kubectl: Kubectl) -> None:
    kubectl.run("run", "solo", "--image=busybox:1.36", "--labels=app=solo")
    listing = yaml.safe_load(kubectl.run("get", "pods", "-l", "app=solo", "-o", "yaml").stdout)
    assert listing["kind"] == "List" and listing["items"][0]["metadata"]["name"] == "solo"
    got = kubectl.json("get", "pod", "solo")
    assert got["status"]["phase"] == "Pending" and got["spec"]["restartPolicy"] == "Always"
    plain = kubectl.run("get", "pod", "solo").stdout.splitlines()
    assert plain[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert plain[1].split()[:3] == ["solo", "0/1", "Pending"]
    described = kubectl.run("describe", "pod", "solo").stdout
    assert "Name:" in described and "solo" in described and "QoS Class:" in described
    assert "BestEffort" in described
    for resource in ("nodes", "namespaces", "deployments", "replicasets", "events", "leases",
                     "all"):
        kubectl.run("get", resource, "-A")
    ns = kubectl.run("get", "ns").stdout
    assert "kube-system" in ns and "Active" in ns


def test_scale_label_annotate_patch_delete(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "s.yaml"
    manifest.write_text(DEPLOYMENT.replace("web", "sc"))
    kubectl.run("apply", "-f", str(manifest))
    kubectl.run("scale", "deployment/sc", "--replicas=4")
    assert kubectl.json("get", "deployment", "sc")["spec"]["replicas"] == 4
    kubectl.run("label", "deployment", "sc", "team=a")
    kubectl.run("annotate", "deployment", "sc", "note=hello")
    kubectl.run("patch", "deployment", "sc", "-p", '{"metadata":{"labels":{"smp":"1"}}}')
    kubectl.run("patch", "deployment", "sc", "--type=merge",
                "-p", '{"metadata":{"labels":{"merge":"1"}}}')
    kubectl.run("patch", "deployment", "sc", "--type=json",
                "-p", '[{"op":"add","path":"/metadata/labels/json","value":"1"}]')
    # strategic merge keeps the other containers' fields (merge key: name)
    kubectl.run("patch", "deployment", "sc", "-p", json.dumps({"spec": {"template": {"spec": {
        "containers": [{"name": "nginx", "env": [{"name": "A", "value": "1"}]}]}}}}))
    live = kubectl.json("get", "deployment", "sc")
    labels = live["metadata"]["labels"]
    assert {"team": "a", "smp": "1", "merge": "1", "json": "1"}.items() <= labels.items()
    assert live["metadata"]["annotations"]["note"] == "hello"
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.27" and container["env"] == [{"name": "A", "value": "1"}]
    failed = kubectl.run(
        "patch", "deployment", "sc", "--type=json",
        "-p", '[{"op":"test","path":"/metadata/labels/team","value":"b"}]', check=False)
    assert failed.returncode != 0 and "test" in failed.stderr
    kubectl.run("delete", "deployment", "sc")
    gone = kubectl.run("get", "deployment", "sc", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_get_watch_prints_rows(kubectl: Kubectl) -> None:
    watcher = subprocess.Popen(
        ["kubectl", "get", "pods", "--watch", "-l", "app=watched", "--request-timeout=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=kubectl.env,
    )
    try:
        time.sleep(1.0)
        kubectl.run("run", "watched", "--image=busybox:1.36", "--labels=app=watched")
        kubectl.run("label", "pod", "watched", "seen=yes")
        time.sleep(1.0)
    finally:
        watcher.terminate()
        out, err = watcher.communicate(timeout=10)
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert lines[0][:3] == ["NAME", "READY", "STATUS"], (out, err)
    assert sum(1 for line in lines if line[0] == "watched") >= 2


def test_bad_input_is_rejected_clearly(kubectl: Kubectl, tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("apiVersion: v1\nkind: Pod\nmetadata: [oops\n")
    result = kubectl.run("apply", "-f", str(bad_yaml), check=False)
    assert result.returncode != 0 and "yaml" in result.stderr.lower()
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    result = kubectl.run("apply", "-f", str(unknown), check=False)
    assert result.returncode != 0 and "Widget" in result.stderr
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(DEPLOYMENT.replace("name: web", "name: Bad_Name", 1))
    result = kubectl.run("apply", "-f", str(invalid), check=False)
    assert result.returncode != 0 and "Invalid value" in result.stderr
    mismatch = tmp_path / "mismatch.yaml"
    mismatch.write_text(DEPLOYMENT.replace("matchLabels: {app: web}", "matchLabels: {app: x}"))
    result = kubectl.run("apply", "-f", str(mismatch), check=False)
    assert result.returncode != 0
    assert "`selector` does not match template `labels`" in result.stderr


def test_create_generators_send_protobuf(kubectl: Kubectl) -> None:
    # client-go typed clients write these as application/vnd.kubernetes.protobuf
    kubectl.run("create", "namespace", "gen")
    kubectl.run("-n", "gen", "create", "configmap", "cfg", "--from-literal=k=v")
    kubectl.run("-n", "gen", "create", "secret", "generic", "sec", "--from-literal=k=v")
    kubectl.run("-n", "gen", "create", "deployment", "dep", "--image=nginx:1.27",
                "--replicas=0", "--port=80", "--", "sleep", "10")
    kubectl.run("-n", "gen", "create", "service", "clusterip", "svc", "--tcp=80:8080")
    assert kubectl.json("-n", "gen", "get", "configmap", "cfg")["data"] == {"k": "v"}
    assert kubectl.json("-n", "gen", "get", "secret", "sec")["data"] == {"k": "dg=="}
    dep = kubectl.json("-n", "gen", "get", "deployment", "dep")
    assert dep["spec"]["replicas"] == 0  # a meaningful zero survives
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sleep", "10"]
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert "hostPort" not in container["ports"][0]  # Go zero values are omitted, as in JSON
    svc = kubectl.json("-n", "gen", "get", "service", "svc")
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
    kubectl.run("delete", "namespace", "gen")


def test_kubectl_reports_bad_input_as_the_servers_refusals(kubectl: Kubectl,
                                                            tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"metadata":{"name":"deep"},"spec":' + '{"a":' * 3000 + "1" + "}" * 3001)
    result = kubectl.run("create", "--raw", "/api/v1/namespaces/default/pods", "-f", str(deep),
                         check=False)
    assert result.returncode != 0
    assert "Error from server (BadRequest)" in result.stderr, result.stderr
    assert "exceeded max depth of 100" in result.stderr, result.stderr
    result = kubectl.run("get", "--raw", "/api/v1/namespaces/default/pods?limit=abc",
                         check=False)
    assert "Error from server (BadRequest)" in result.stderr, result.stderr
    result = kubectl.run("get", "--raw", "/api/v1/namespaces/default/pods?watch=x", check=False)
    assert 'strconv.ParseBool: parsing "x": invalid syntax' in result.stderr, result.stderr
    # the server is still there and still decodes quantities the apiserver's way
    manifest = tmp_path / "q.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: quantities}\nspec:\n  containers:\n"
        "  - name: c\n    image: busybox:1.36\n    resources:\n"
        "      limits: {cpu: '0.5', memory: 1.5Gi}\n")
    kubectl.run("apply", "-f", str(manifest))
    pod = kubectl.json("get", "pod", "quantities")
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "500m", "memory": "1536Mi"}
    assert pod["status"]["qosClass"] == "Guaranteed"
    result = kubectl.run("run", "badq", "--image=busybox:1.36", "--overrides",
                         json.dumps({"spec": {"containers": [{
                             "name": "badq", "image": "busybox:1.36",
                             "resources": {"requests": {"cpu": "1x"}}}]}}), check=False)
    assert "quantities must match the regular expression" in result.stderr, result.stderr
