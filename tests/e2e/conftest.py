"""The e2e target: `k8sbridge run` (embedded default) as a real subprocess, or an external one.

With ``K8SBRIDGE_E2E_KUBECONFIG`` and ``K8SBRIDGE_E2E_MASTER`` set, the same tests run against
those (a real cluster and a Mesos master running the bridge; ``K8SBRIDGE_E2E_MASTER_AUTH``
``principal:secret`` for a master that authenticates, ``K8SBRIDGE_E2E_MASTER_CA`` the CA of an
``https://`` master; ``python -m tests.e2e.external`` sets the first three up as the kind path
does, ``scripts/e2e-kind`` with kind); otherwise the fixture starts
``python -m k8sbridge run`` on free ports and stops it with SIGINT at the end.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
T = TypeVar("T")


@dataclasses.dataclass
class Target:
    kubeconfig: Path
    master: str
    process: subprocess.Popen[str] | None
    output: list[str]
    # (principal, secret) for the kernel's HTTP APIs: `k8sbridge run` locks them by default
    auth: tuple[str, str] | None = None
    # the CA the kernel's certificate verifies with: `k8sbridge run` serves TLS by default
    ca_file: Path | None = None

    # the schedulerName pods must name on a cluster whose kube-scheduler owns the default one
    # (K8SBRIDGE_E2E_SCHEDULER_NAME; "" for `k8sbridge run`, whose bridge is the default)
    scheduler_name: str = ""

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        argv = ["kubectl", "--kubeconfig", str(self.kubeconfig), *args]
        stdin = None
        if self.scheduler_name and args[:2] == ("apply", "-f") and args[2] != "-":
            stdin = _with_scheduler_name(Path(args[2]).read_text(), self.scheduler_name)
            argv = [*argv[:5], "-", *argv[6:]]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              input=stdin)
        if check and done.returncode != 0:
            raise AssertionError(f"{argv} failed ({done.returncode}): {done.stderr}{done.stdout}")
        return done.stdout

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def state(self) -> dict[str, Any]:
        request = urllib.request.Request(self.master + "/state")
        if self.auth is not None:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        context = (ssl.create_default_context(cafile=str(self.ca_file))
                   if self.ca_file is not None else None)
        with urllib.request.urlopen(request, timeout=10, context=context) as reply:
            data: dict[str, Any] = json.loads(reply.read())
            return data

    def bridge_tasks(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for fw in self.state().get("frameworks") or []:
            if fw.get("name") == "k8sbridge":
                out.extend(fw.get("tasks") or [])
        return out


def _with_scheduler_name(manifest: str, name: str) -> str:
    """The manifest with every pod (and pod template) naming ``name`` as its scheduler, as a
    user of a cluster with its own kube-scheduler writes them for the bridge."""
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    for doc in docs:
        spec = doc.get("spec") or {}
        if doc.get("kind") == "Pod":
            spec["schedulerName"] = name
        for holder in (spec, (spec.get("jobTemplate") or {}).get("spec") or {}):
            template = holder.get("template")
            if isinstance(template, dict):
                template.setdefault("spec", {})["schedulerName"] = name
    return yaml.safe_dump_all(docs)


def eventually(probe: Callable[[], T | None], *, timeout: float = 60, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except AssertionError as e:
            last = e
        else:
            if last:
                return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    ext_kubeconfig = os.environ.get("K8SBRIDGE_E2E_KUBECONFIG")
    ext_master = os.environ.get("K8SBRIDGE_E2E_MASTER")
    if ext_kubeconfig and ext_master:
        principal, _, secret = os.environ.get("K8SBRIDGE_E2E_MASTER_AUTH", "").partition(":")
        ext_ca = os.environ.get("K8SBRIDGE_E2E_MASTER_CA")  # for an https:// master
        yield Target(kubeconfig=Path(ext_kubeconfig), master=ext_master.rstrip("/"),
                     process=None, output=[],
                     auth=(principal, secret) if principal else None,
                     scheduler_name=os.environ.get("K8SBRIDGE_E2E_SCHEDULER_NAME", ""),
                     ca_file=Path(ext_ca) if ext_ca else None)
        return
    data_dir = tmp_path_factory.mktemp("k8sbridge-run")
    kernel_port, api_port = free_port(), free_port()
    argv = [
        sys.executable, "-m", "k8sbridge", "--log-level", "INFO", "run",
        "--data-dir", str(data_dir), "--kernel-port", str(kernel_port),
        "--api-port", str(api_port), "--kubelet-port", "0",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
    env["K8SBRIDGE_MESOS_AGENT_POLL_SECONDS"] = "1"
    env["K8SBRIDGE_MESOS_REFUSE_SECONDS"] = "3"
    env["K8SBRIDGE_SCHEDULER_CYCLE_SECONDS"] = "0.05"
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            # the command's own line (after its children's, e.g. "[bridge] k8sbridge is ready")
            if line.startswith("k8sbridge is ready; Ctrl-C"):
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not ready.wait(90) or proc.poll() is not None:
            raise AssertionError("k8sbridge run did not start:\n" + "".join(output[-60:]))
        creds = json.loads((data_dir / "credentials.json").read_text())["credentials"]
        [secret] = [c["secret"] for c in creds if c["principal"] == "operator"]
        ca = data_dir / "kernel-pki" / "ca.crt"
        yield Target(kubeconfig=data_dir / "kubeconfig",
                     master=f"https://127.0.0.1:{kernel_port}", process=proc, output=output,
                     auth=("operator", secret), ca_file=ca)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()
