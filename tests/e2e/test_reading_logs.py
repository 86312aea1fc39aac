"""`kubectl logs` (tail, limit, timestamps, -f, --previous) through the API server's proxy to
the bridge's kubelet API, which reads the task sandbox from the agent's files API."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.e2e.conftest import Target, eventually

pytestmark = pytest.mark.e2e

TICKER = """
apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.36
      command: ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2; \
while true; do echo tick; sleep 0.3; done"]
"""

CRASHER = """
apiVersion: v1
kind: Pod
metadata:
  name: crash-logs
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.36
      command: ["sh", "-c", "echo run started; sleep 1; exit 1"]
"""


def _apply(target: Target, text: str) -> None:
    argv = ["kubectl", "--kubeconfig", str(target.kubeconfig), "apply", "-f", "-"]
    subprocess.run(argv, input=text, text=True, check=True, capture_output=True, timeout=60)


def test_logs_tail_limit_timestamps_and_follow(target: Target) -> None:
    _apply(target, TICKER)
    target.kubectl("wait", "--for=condition=Ready", "pod/ticker", "--timeout=60s", timeout=90)
    full = eventually(lambda: (out if "tick" in (out := target.kubectl("logs", "ticker"))
                               else None), what="ticks")
    assert full.startswith("line 1\nline 2\n")
    assert "oops" in full  # stderr is part of the container log
    tail = target.kubectl("logs", "ticker", "--tail=2")
    assert len(tail.splitlines()) == 2
    assert target.kubectl("logs", "ticker", "--limit-bytes=7") == "line 1\n"
    stamped = target.kubectl("logs", "ticker", "--timestamps", "--tail=1")
    assert stamped[:4].isdigit() and "T" in stamped.split()[0]

    argv = ["kubectl", "--kubeconfig", str(target.kubeconfig), "logs", "-f", "ticker",
            "--tail=1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        started = time.monotonic()
        lines = [proc.stdout.readline() for _ in range(4)]  # streamed as they are written
        assert all(line == "tick\n" for line in lines), lines
        assert time.monotonic() - started < 20
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    target.kubectl("delete", "pod", "ticker", "--wait=true", timeout=60)


def test_logs_previous_after_a_restart(target: Target) -> None:
    _apply(target, CRASHER)

    def restarted() -> bool:
        pod = target.kubectl_json("get", "pod", "crash-logs")
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        return int(statuses[0].get("restartCount", 0)) >= 1

    eventually(restarted, what="a restart", timeout=60)
    previous = eventually(
        lambda: target.kubectl("logs", "crash-logs", "--previous", check=False) or None,
        what="previous logs",
    )
    assert "run started" in previous
    target.kubectl("delete", "pod", "crash-logs", "--wait=true", timeout=60)
