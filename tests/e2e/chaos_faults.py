"""The faults of issue 11, each done once to a fresh cluster and accounted for from the host.

Why apart from the tests: the tests (``test_surviving_chaos*.py``) do each fault once at a small
scale and assert; ``bench/chaos.py`` does the same faults several times at 200 replicas and
prints the figures of docs/reliability.md. Both must do exactly the same thing, so the fault
procedures live here and return an ``Outcome``: the recovery (``chaos.Recovery``: seconds from
the fault to a clean account that lasted, and the last account), what was left on the host
after scaling to 0 and after a clean Ctrl-C, and fault-specific figures in ``notes``.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import time
import urllib.error
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.e2e.chaos import (
    NOTHING,
    Kube,
    PodWatch,
    Recovery,
    Tally,
    TaskProcess,
    alive,
    converge,
    deployment,
    drain,
    kubectl,
    pod_views,
    processes_mentioning,
    rss_bytes,
    tally,
    task_processes,
)
from tests.e2e.chaos_clusters import Part, Separate, Supervised

__all__ = [
    "Growth",
    "Outcome",
    "configmap_updates",
    "kill_agent",
    "kill_child_in_rollout",
    "new_token",
    "rs_events",
]

APP = "chaos"
ZERO_TIMEOUT = 60.0  # scaled to 0, the task processes should be gone within this
STOP_LINGER = 3.0  # after a clean stop, processes still there this long later are left behind


@dataclasses.dataclass(slots=True)
class Outcome:
    fault: str
    replicas: int
    recovery: Recovery
    after: Recovery | None = None  # a second phase's (the agent back)
    left_after_zero: int = -1  # task processes still running ZERO_TIMEOUT after scaling to 0
    left_after_stop: int = -1  # task processes and container daemons after a clean Ctrl-C
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def final(self) -> Tally:
        """The last look of the last phase."""
        return (self.after or self.recovery).last

    def describe(self) -> str:
        seconds = self.recovery.seconds
        took = "never" if seconds is None else f"{seconds:.1f}s"
        if self.after is not None:
            again = self.after.seconds
            took += f", clean again {'never' if again is None else f'{again:.1f}s'} after " \
                    "the second phase began"
        return (f"{self.fault} ({self.replicas} replicas): recovered {took}; last look: "
                f"{self.final}; high-water duplicates {self.recovery.max_duplicates}, orphans "
                f"{self.recovery.max_orphans}, processes {self.recovery.max_processes}; left "
                f"after scaling to 0: {self.left_after_zero}; left after Ctrl-C: "
                f"{self.left_after_stop}; {self.notes}")


def new_token() -> str:
    return uuid.uuid4().hex[:16]


def _look(kube: Kube, token: str, wanted: int, *, skip: str | None = None) -> Tally:
    """The account of the chaos Deployment; processes whose sandbox is under ``skip`` (an
    agent known to be away) are left out."""
    procs = task_processes(token)
    if skip is not None:
        procs = [p for p in procs if not p.sandbox.startswith(skip)]
    return tally(wanted=wanted, pods=pod_views(kube.pods(f"app={APP}")), processes=procs)


def _lost_pods(kube: Kube, token: str, *, limit: int = 4) -> list[str]:
    """The live pods with no task process on the host, each with its status in short."""
    uids = {p.pod_uid for p in task_processes(token)}
    out: list[str] = []
    for pod in kube.pods(f"app={APP}"):
        meta, status = pod["metadata"], pod.get("status") or {}
        if meta.get("deletionTimestamp") or meta.get("uid") in uids:
            continue
        states = [(c.get("restartCount"), c.get("state"), c.get("lastState"))
                  for c in status.get("containerStatuses") or []]
        out.append(f"{meta.get('name')} on {pod['spec'].get('nodeName')}: "
                   f"{status.get('phase')} {states}"[:400])
    return out[:limit]


def rs_events(kube: Kube) -> tuple[int, int]:
    """(pods created, pods deleted) by the chaos Deployment's ReplicaSets, from their events."""
    items = kube.call("GET", "/api/v1/namespaces/default/events")["items"]
    created: set[str] = set()
    deleted: set[str] = set()
    for event in items:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") != "ReplicaSet" or not str(involved.get("name")).startswith(
                f"{APP}-"):
            continue
        if event.get("reason") == "SuccessfulCreate":
            created.add(str(event.get("message")))
        elif event.get("reason") == "SuccessfulDelete":
            deleted.add(str(event.get("message")))
    return len(created), len(deleted)


def _scale(kubeconfig: Path, replicas: int) -> None:
    kubectl(kubeconfig, "scale", f"deployment/{APP}", f"--replicas={replicas}")


def _wind_down(outcome: Outcome, *, kubeconfig: Path, token: str, timeout: float) -> None:
    _scale(kubeconfig, 0)
    left, _ = drain(lambda: len(task_processes(token)), timeout=timeout)
    outcome.left_after_zero = left


def _left_after_stop(outcome: Outcome, token: str, data_dir: Path) -> None:
    time.sleep(STOP_LINGER)
    pids = [p.pid for p in task_processes(token)] + processes_mentioning(str(data_dir))
    outcome.left_after_stop = len(pids)
    if pids:
        outcome.notes["left after Ctrl-C"] = [_cmdline(pid) for pid in pids[:5]]


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"{pid}: gone"
    return f"{pid}: " + raw.replace(b"\0", b" ").decode(errors="replace")[:160]


# Each pod's task group also holds the DEFAULT executor's 0.1 cpus and 32 MB, so the built-in
# agents (4, 2 and 8 cpus) take ~125 pods: every agent gets room for 300 here.
AGENT_RESOURCES = "cpus:40;mem:20480;disk:100000;ports:[31000-32000]"


def kill_child_in_rollout(base: Path, *, child: str, at: float, replicas: int,
                          timeout: float = 120.0, zero_timeout: float = ZERO_TIMEOUT,
                          agents: int | None = None) -> Outcome:
    """``kill -9`` the child ``child`` of ``k8sbridge run`` ``at`` seconds after ``kubectl
    scale`` 0 → ``replicas`` returned; the supervisor restarts it. Then: the recovery, scaling
    to 0, a clean Ctrl-C. Notes: the restart's time, how many pods of the Deployment ever
    existed (a watch: more than ``replicas`` means extras were made), the ReplicaSet's events
    (best effort: a killed devkube may lose the last ones), the task processes that died while
    devkube was away."""
    token = new_token()
    run = Supervised(base / "run", token=token, agents=agents, agent_resources=AGENT_RESOURCES)
    outcome = Outcome(fault=f"kill -9 {child} at {at:g}s", replicas=replicas,
                      recovery=NOTHING)
    watch: PodWatch | None = None
    try:
        run.ready()
        kubectl(run.kubeconfig, "apply", "-f", "-", stdin=deployment(APP, token=token))
        watch = PodWatch(run.kube, f"app={APP}").start()
        _scale(run.kubeconfig, replicas)
        scaled = time.monotonic()
        time.sleep(max(0.0, at - (time.monotonic() - scaled)))
        at_kill: list[TaskProcess] = task_processes(token)
        old = run.kill(child)
        killed = time.monotonic()
        outcome.notes["processes at the kill"] = len(at_kill)
        run.wait_back(child, old)
        outcome.notes["restarted after s"] = round(time.monotonic() - killed, 1)
        if child == "devkube":
            outcome.notes["died while devkube was away"] = sum(
                1 for p in at_kill if not alive(p.pid))
        outcome.recovery = converge(lambda: _look(run.kube, token, replicas), since=killed,
                                    timeout=timeout)
        if outcome.final.lost:
            outcome.notes["lost pods"] = _lost_pods(run.kube, token)
        outcome.notes["pods made"] = len(watch.stop())
        created, deleted = rs_events(run.kube)
        outcome.notes["SuccessfulCreate events"] = created
        outcome.notes["SuccessfulDelete events"] = deleted
        _wind_down(outcome, kubeconfig=run.kubeconfig, token=token, timeout=zero_timeout)
        code = run.stop()
        outcome.notes["exit code"] = code
        _left_after_stop(outcome, token, run.data_dir)
    finally:
        if watch is not None:
            watch.stop()
        swept = run.close()
        if swept:
            outcome.notes["swept"] = len(swept)
    return outcome


def _log_lines(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with path.open("rb") as f:
            total += sum(1 for _ in f)
    return total


def _taints(kube: Kube, node: str) -> tuple[str, ...]:
    try:
        doc = kube.call("GET", f"/api/v1/nodes/{node}")
    except urllib.error.HTTPError as e:
        return (f"HTTP {e.code}",)  # 404: the Node is gone
    except OSError:
        return ("?",)
    return tuple(sorted(f"{t.get('key')}:{t.get('effect')}"
                        for t in (doc.get("spec") or {}).get("taints") or []))


def kill_agent(base: Path, *, replicas: int, timeout: float = 120.0,
               zero_timeout: float = ZERO_TIMEOUT, window: float = 10.0) -> Outcome:
    """Two agent processes; ``kill -9`` the first once ``replicas`` pods run on both. Its tasks
    become unreachable (their processes keep running under its container daemon); the pods
    tolerate that 2 s and are evicted, and their replacements must run on the other agent
    (``recovery``, not counting the away agent's processes). Then ``window`` seconds with the
    agent still away: the log lines per second of the master, devkube and the bridge (a kill
    loop shows here) and the node's taint changes. Then the agent is started again on its work
    dir: what it still runs of the evicted pods must be killed (notes: ``back: ...``)."""
    token = new_token()
    # Quick: the master misses 3 pings of 1 s, devkube 6 s of a node's silence; the bridge
    # renews its nodes' leases every second (the grace must stay well above that, as the
    # node-monitor-grace-period is 4-5 lease periods in Kubernetes).
    cluster = Separate(base, token=token, agents=2, node_grace_seconds=6.0,
                       master_flags=("--agent_ping_timeout", "1secs",
                                     "--max_agent_ping_timeouts", "3"),
                       bridge_env={"K8SBRIDGE_KUBELET_LEASE_RENEW_SECONDS": "1"})
    outcome = Outcome(fault="kill -9 an agent", replicas=replicas, recovery=NOTHING)
    try:
        cluster.start()
        kube = cluster.kube
        kubectl(cluster.kubeconfig, "apply", "-f", "-",
                stdin=deployment(APP, token=token, replicas=replicas, toleration_seconds=2))
        up = converge(lambda: _look(kube, token, replicas), since=time.monotonic(),
                      timeout=timeout, stable=1.0)
        if up.seconds is None:
            raise AssertionError(f"the Deployment did not come up: {up.last}")
        away = str(base / "agent-0")
        on_away = sum(1 for p in task_processes(token) if p.sandbox.startswith(away))
        outcome.notes["processes on the killed agent"] = on_away
        cluster.agents[0].kill()
        killed = time.monotonic()
        outcome.recovery = converge(lambda: _look(kube, token, replicas, skip=away),
                                    since=killed, timeout=timeout)
        logs = [part.log for part in (cluster.master_part, cluster.devkube, cluster.bridge)]
        before = _log_lines(logs)
        start = time.monotonic()
        seen: list[tuple[str, ...]] = []
        while time.monotonic() - start < window:
            taints = _taints(kube, "127.0.0.1")
            if not seen or seen[-1] != taints:
                seen.append(taints)
            time.sleep(0.5)
        rate = (_log_lines(logs) - before) / (time.monotonic() - start)
        outcome.notes["log lines/s while away"] = round(rate, 1)
        outcome.notes["taint changes while away"] = max(0, len(seen) - 1)
        outcome.notes["taints"] = seen[-1] if seen else ()
        cluster.agents[0].start()
        cluster.agents[0].wait_ready()
        returned = time.monotonic()
        outcome.after = converge(lambda: _look(kube, token, replicas), since=returned,
                                 timeout=timeout)
        _wind_down(outcome, kubeconfig=cluster.kubeconfig, token=token, timeout=zero_timeout)
        for part in reversed(cluster.parts):
            part.stop()
        _left_after_stop(outcome, token, base)
    finally:
        swept = cluster.close()
        if swept:
            outcome.notes["swept"] = len(swept)
    return outcome


@dataclasses.dataclass(frozen=True, slots=True)
class Growth:
    """devkube's resident memory around ``updates`` updates of one ConfigMap of ``size`` bytes
    (``before``: after it was created and updated a few times; ``peak``: sampled after each
    update)."""

    updates: int
    size: int
    before: int
    after: int
    peak: int
    seconds: float

    def describe(self) -> str:
        mb = 1e6
        return (f"{self.updates} updates of a {self.size / mb:.1f} MB ConfigMap in "
                f"{self.seconds:.1f}s: devkube RSS {self.before / mb:.0f} -> "
                f"{self.after / mb:.0f} MB (+{(self.after - self.before) / mb:.0f} MB, peak "
                f"{self.peak / mb:.0f} MB)")


def configmap_updates(base: Path, *, updates: int = 100, size: int = 1_000_000) -> Growth:
    """A devkube process of its own; one ConfigMap of ``size`` bytes of data, replaced
    ``updates`` times with new content (PUT, as ``kubectl replace`` does)."""
    devkube = Part("devkube", [
        "--log-level", "INFO", "devkube", "--port", str(free_port()),
        "--data-dir", str(base / "devkube"), "--kubeconfig", str(base / "kubeconfig"),
    ], log=base / "devkube.log", ready=r"^devkube serving ")
    try:
        devkube.start()
        devkube.wait_ready()
        assert devkube.proc is not None
        pid = devkube.proc.pid
        kube = Kube(base / "kubeconfig")
        path = "/api/v1/namespaces/default/configmaps"

        def body(i: int) -> dict[str, Any]:
            blob = base64.b64encode(os.urandom(size * 3 // 4 + 3)).decode()[:size]
            return {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "big", "namespace": "default"},
                    "data": {"blob": blob, "round": str(i)}}

        kube.call("POST", path, body(0), timeout=60)
        for i in range(1, 4):  # warm up: the first few updates fill caches, not history
            kube.call("PUT", f"{path}/big", body(i), timeout=60)
        time.sleep(1)
        before = rss_bytes(pid)
        peak = before
        start = time.monotonic()
        for i in range(updates):
            kube.call("PUT", f"{path}/big", body(4 + i), timeout=60)
            peak = max(peak, rss_bytes(pid))
        seconds = time.monotonic() - start
        time.sleep(2)
        after = rss_bytes(pid)
        return Growth(updates=updates, size=size, before=before, after=after,
                      peak=max(peak, after), seconds=seconds)
    finally:
        devkube.stop()
