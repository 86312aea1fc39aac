"""SIGKILL the bridge in the middle of a rollout, restart it: every pod ends correct, no task
runs twice (kernel, devkube and bridge as three separate processes)."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from k8sbridge.kernel.agent import filesystems
from tests.conftest import free_port
from tests.e2e.conftest import EXAMPLES, REPO, eventually

pytestmark = pytest.mark.e2e


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
    env["K8SBRIDGE_MESOS_AGENT_POLL_SECONDS"] = "1"
    env["K8SBRIDGE_SCHEDULER_CYCLE_SECONDS"] = "0.05"
    # no image is sent: the agents' registry is empty, containers run on a view of the host
    env["K8SBRIDGE_SCHEDULER_IMAGE_MODE"] = "none"
    env["K8SBRIDGE_SCHEDULER_POD_NETWORK"] = ""  # the agents have no CNI network
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "k8sbridge", *argv], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_sigkill_during_a_rollout_then_restart(tmp_path: Path) -> None:
    kport, aport = free_port(), free_port()
    master = f"http://127.0.0.1:{kport}"
    kubeconfig = tmp_path / "kubeconfig"
    kernel = _spawn(["kernel", "--port", str(kport), "--work-dir", str(tmp_path / "kernel"),
                     "--agents", "1", "--agent-resources",
                     "cpus:8;mem:8192;disk:20000;ports:[31000-32000]",
                     # isolated as `k8sbridge run`'s agents: pods' token volumes need a view
                     "--agent-isolation", filesystems.FULL_ISOLATION,
                     "--agent-image-providers", "docker",
                     "--agent-docker-registry", str(tmp_path / "images")],
                    tmp_path / "kernel.log")
    devkube = _spawn(["devkube", "--port", str(aport), "--data-dir", str(tmp_path / "dk"),
                      "--kubeconfig", str(kubeconfig)], tmp_path / "devkube.log")
    bridge_argv = ["run", "--master", master, "--kubeconfig", str(kubeconfig),
                   "--kubelet-port", "0", "--scheduler-name", "default-scheduler"]
    procs = [kernel, devkube]
    try:
        def up() -> bool:
            try:
                with urllib.request.urlopen(master + "/health", timeout=2):
                    pass
            except OSError:
                return False
            return kubeconfig.exists()

        eventually(up, what="kernel and devkube up")

        def kubectl(*args: str) -> str:
            done = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout

        bridge = _spawn(bridge_argv, tmp_path / "bridge.log")
        procs.append(bridge)
        eventually(lambda: "Ready" in kubectl("get", "nodes"), what="node Ready")
        kubectl("apply", "-f", str(EXAMPLES / "deployment.yaml"))
        kubectl("scale", "deployment/web", "--replicas=10")
        time.sleep(1.0)  # mid-rollout: some pods bound/launched, others pending
        bridge.kill()
        bridge.wait(10)
        bridge = _spawn(bridge_argv, tmp_path / "bridge.log")
        procs.append(bridge)

        def pods() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = json.loads(
                kubectl("get", "pods", "-l", "app=web", "-o", "json"))["items"]
            return items

        def all_running() -> bool:
            live = [p for p in pods() if not p["metadata"].get("deletionTimestamp")]
            return len(live) == 10 and all(p["status"].get("phase") == "Running"
                                           and p["status"]["containerStatuses"][0]["ready"]
                                           for p in live)

        eventually(all_running, what="10 web pods Running after the restart", timeout=120)

        def tasks() -> collections.Counter[str]:
            with urllib.request.urlopen(master + "/state", timeout=10) as reply:
                state = json.loads(reply.read())
            live = [t for fw in state["frameworks"] if fw["name"] == "k8sbridge"
                    for t in fw["tasks"]
                    if t["state"] in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING")]
            return collections.Counter(t["id"].split(".")[0] for t in live)

        per_pod = eventually(lambda: (c if sum(c.values()) == 10 else None)
                             if (c := tasks()) else None, what="10 live tasks")
        assert all(n == 1 for n in per_pod.values()), per_pod
        assert set(per_pod) == {p["metadata"]["uid"] for p in pods()}
        frameworks = json.loads(urllib.request.urlopen(master + "/state", timeout=10).read())[
            "frameworks"]
        assert len([f for f in frameworks if f["name"] == "k8sbridge"]) == 1  # same id
    finally:
        for proc in reversed(procs):
            _stop(proc)
