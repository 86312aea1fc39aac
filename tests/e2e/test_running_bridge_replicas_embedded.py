"""``k8sbridge run --bridge-replicas 2``: a ``kill -9`` of the leading bridge child is answered
by the standby taking over; the supervisor restarts the killed one, which comes back as the
standby, and pods keep being placed.

Why: with one bridge child a kill means an outage until the supervisor's restart; with two,
the embedded default behaves as a deployment of 2 replicas does (issue 18).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.chaos import (
    deployment,
    kubectl,
    pod_views,
    processes_mentioning,
    task_processes,
)
from tests.e2e.chaos_clusters import Supervised
from tests.e2e.chaos_faults import new_token

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

LEADS = "k8sbridge is ready (leader): framework "
STANDBY = "k8sbridge is a standby until it holds the leader Lease"


def _life(log: Path) -> str:
    """The log of the child's current life (after the supervisor's last ``====`` line)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return text.rsplit("\n==== ", 1)[-1]


def _eventually(probe: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _running(run: Supervised, count: int) -> bool:
    views = [v for v in pod_views(run.kube.pods("app=chaos")) if v.live]
    return len(views) == count and all(v.ready for v in views)


@pytest.mark.timeout(300)
def test_the_standby_child_takes_over_when_the_leading_bridge_is_killed(
    tmp_path: Path,
) -> None:
    token = new_token()
    run = Supervised(tmp_path / "run", token=token, agents=1, env={
        "K8SBRIDGE_EMBEDDED_BRIDGE_REPLICAS": "2",
        "K8SBRIDGE_LEADER_LEASE_DURATION_SECONDS": "6",
        "K8SBRIDGE_LEADER_RENEW_DEADLINE_SECONDS": "4",
        "K8SBRIDGE_LEADER_RETRY_PERIOD_SECONDS": "1",
    })
    try:
        run.ready()
        logs = {name: run.log(name) for name in ("bridge", "bridge-2")}
        leaders = [n for n, log in logs.items() if LEADS in _life(log)]
        assert len(leaders) == 1, run.output[-3000:]
        [leader] = leaders
        [standby] = [n for n in logs if n != leader]
        assert STANDBY in _life(logs[standby])
        kubectl(run.kubeconfig, "apply", "-f", "-",
                stdin=deployment("chaos", token=token, replicas=3))
        _eventually(lambda: _running(run, 3), timeout=90, what="3 pods Running")
        [pid] = _pids(run, leader)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        _eventually(lambda: LEADS in _life(logs[standby]), timeout=30,
                    what=f"{standby} to take over")
        takeover = time.monotonic() - killed
        assert takeover <= 6 + 8, takeover
        run.wait_for(rf"{leader} is back \(pid (?!{pid}\b)\d+", timeout=60)
        assert STANDBY in _life(logs[leader]) and LEADS not in _life(logs[leader])
        kubectl(run.kubeconfig, "scale", "deployment/chaos", "--replicas=5")
        _eventually(lambda: _running(run, 5), timeout=90, what="5 pods Running after takeover")
        # The Nodes name the new leader's kubelet API (its port is kubelet.port + 1 or, here,
        # a free one): the API server reaches it for logs.
        pod = pod_views(run.kube.pods("app=chaos"))[0].name
        _eventually(lambda: _logs_work(run, pod), timeout=30, what="kubectl logs, new leader")
        kubectl(run.kubeconfig, "scale", "deployment/chaos", "--replicas=0")
        _eventually(lambda: not task_processes(token), timeout=60, what="the tasks to end")
        assert run.stop() == 0, run.output[-3000:]
        time.sleep(3)
        left = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:300]
                for pid in processes_mentioning(str(run.data_dir))]
        assert left == [], left
    finally:
        swept = run.close()
    assert swept == [], "task processes or daemons were left behind"


def _logs_work(run: Supervised, pod: str) -> bool:
    try:
        kubectl(run.kubeconfig, "logs", pod, timeout=20)
    except AssertionError:
        return False
    return True


def _pids(run: Supervised, name: str) -> list[int]:
    """The pid of the supervisor's child ``name`` (its ``--config DATA/<name>-settings``)."""
    out: list[int] = []
    needle = f"{name}-settings.yaml".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == run.proc.pid and any(
                a.endswith(b"/" + needle) for a in argv):
            out.append(int(entry.name))
    return out
