"""Two bridge replicas (real processes) elect a leader with a Lease: kill -9 the leader and
the standby takes over the same framework (its tasks keep running, none launched twice); the
standby's watch caches are filled before it leads (its /metrics) and the new leader starts
from them; a graceful stop releases the Lease; a leader cut off from the API server stops
acting before its Lease expires."""

from __future__ import annotations

import datetime
import json
import signal
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from k8sbridge import replica
from tests.e2e import replicas
from tests.e2e.replicas import EXAMPLES, eventually_

pytestmark = pytest.mark.e2e

# lease duration, renew deadline, retry period: shorter than the defaults (15, 10, 2) so the
# tests wait less; bench/bench_failover.py measures the defaults
TIMING = (6, 4.0, 1.0)
MARGIN = 20.0  # the new leader's start: pod list, subscription, reconciliation


def test_the_standby_takes_over_when_the_leader_is_killed(tmp_path: Path) -> None:
    with replicas.cluster(tmp_path) as c:
        a = c.start_replica("a", timing=TIMING)
        eventually_(a.leads, what="a leads", timeout=60)
        b = c.start_replica("b", timing=TIMING)
        eventually_(lambda: "standby" in b.output(), what="b is a standby")
        c.kubectl("apply", "-f", str(EXAMPLES / "deployment.yaml"))
        eventually_(lambda: c.running(3), what="3 web pods Running", timeout=90)
        assert c.holder() == "a" and not b.leads()
        name = c.pods()[0]["metadata"]["name"]
        logs = f"/containerLogs/default/{name}/web"
        # a standby's kubelet API is up but does not know where pods run
        assert b.kubelet_get(logs)[0] == 503
        assert a.kubelet_get(logs)[0] == 200
        assert _leader_gauge(a) == 1.0 and _leader_gauge(b) == 0.0  # /metrics: k8sbridge_leader
        # b is warm: its watch saw the pods created after it started (and the node), and
        # says its cache holds every pod the API server lists; it wrote nothing (a leads)
        every_pod = len(json.loads(c.kubectl("get", "pods", "-A", "-o", "json"))["items"])
        cached, synced = eventually_(
            lambda: (w if (w := _watch_cache(b))[0].get("pods") == every_pod else None),
            what="b's watch cache holds every pod")
        assert synced == 1.0 and cached.get("nodes", 0) >= 1, (cached, synced)
        assert "watch cache filled" in b.output()
        (framework,) = c.frameworks()
        before = eventually_(lambda: (t if len(t) == 3 else None) if (t := c.live_tasks())
                             else None, what="3 live tasks")

        a.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        a.proc.wait(10)
        eventually_(b.leads, what="b leads", timeout=TIMING[0] + MARGIN)
        took = time.monotonic() - killed
        assert took < TIMING[0] + MARGIN, took
        assert c.holder() == "b"
        # b led from its warm caches: no pod list of its own, the watch it kept
        assert f"leads: starting the bridge (watch cache filled: {every_pod} pods" in b.output()
        eventually_(lambda: f"the pod list comes from the warm watch ({every_pod} pods)"
                    in b.output(), what="b's first pod list from its cache")
        # the same framework (failed over, not registered anew), the same tasks
        eventually_(lambda: [f["id"] for f in c.frameworks() if f.get("active")]
                    == [framework["id"]], what="the framework re-subscribed by b")
        assert c.live_tasks() == before
        assert c.running(3)
        # the Nodes name the new leader's kubelet API, which serves the old tasks' logs
        eventually_(lambda: {n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
                             for n in json.loads(c.kubectl("get", "nodes", "-o", "json"))
                             ["items"]} == {b.kubelet_port()}, what="nodes point at b")
        eventually_(lambda: b.kubelet_get(logs)[0] == 200, what="logs from b")
        assert _leader_gauge(b) == 1.0

        c.kubectl("scale", "deployment/web", "--replicas=5")
        eventually_(lambda: c.running(5), what="5 web pods Running (b placed 2)", timeout=90)
        per_pod = eventually_(lambda: (n if sum(n.values()) == 5 else None)
                              if (n := c.tasks_per_pod()) else None, what="5 live tasks")
        assert all(count == 1 for count in per_pod.values()), per_pod  # never twice
        assert set(per_pod) == {p["metadata"]["uid"] for p in c.pods()}
        assert set(before) <= set(c.live_tasks())  # the old tasks were never relaunched
        assert len(c.frameworks()) == 1

        # a graceful stop releases the Lease: a new standby takes over at its next retry
        a2 = c.start_replica("a2", timing=TIMING)
        eventually_(lambda: "standby" in a2.output(), what="a2 is a standby")
        time.sleep(TIMING[2] * 2)  # a2 observed b's Lease: only a release lets it in early
        stopping = time.monotonic()
        assert replicas.stop(b.proc, signal.SIGTERM) == 0
        released = time.monotonic()
        eventually_(a2.leads, what="a2 leads", timeout=MARGIN)
        assert c.holder() == "a2"
        assert "leader Lease released" in b.output()
        assert time.monotonic() - released < TIMING[0] + MARGIN
        assert released - stopping < 30
        assert c.running(5) and len(c.live_tasks()) == 5


def test_a_leader_cut_off_from_the_api_server_stops_before_its_lease_expires(
    tmp_path: Path,
) -> None:
    with replicas.cluster(tmp_path) as c:
        proxy = replicas.BlackholeProxy(upstream_port=c.api_port)
        try:
            through = replicas.proxied_kubeconfig(c.kubeconfig, api_port=c.api_port,
                                                  proxy_port=proxy.port,
                                                  into=tmp_path / "kubeconfig-a")
            a = c.start_replica("a", timing=TIMING, kubeconfig=through)
            eventually_(a.leads, what="a leads", timeout=60)
            b = c.start_replica("b", timing=TIMING)
            eventually_(lambda: "standby" in b.output(), what="b is a standby")
            c.kubectl("apply", "-f", str(EXAMPLES / "deployment.yaml"))
            eventually_(lambda: c.running(3), what="3 web pods Running", timeout=90)
            before = c.live_tasks()

            proxy.block()
            blocked = time.monotonic()
            # a renewed at most a retry period before the block; b may take the Lease a lease
            # duration after it saw the last renewal: a must be gone before that
            a.proc.wait(TIMING[0] + 5)
            stopped = time.monotonic() - blocked
            gone_at = time.time()  # Popen.wait polls: within 50 ms of the exit
            assert a.proc.returncode == replica.FENCED_EXIT, a.output()[-2000:]
            assert stopped < TIMING[0], stopped
            assert "stepping down" in a.output()
            eventually_(b.leads, what="b leads", timeout=TIMING[0] + MARGIN)
            lease = c.lease()
            assert lease["holderIdentity"] == "b" and lease["leaseTransitions"] == 1
            acquired = datetime.datetime.fromisoformat(lease["acquireTime"]).timestamp()
            assert acquired > gone_at - 0.1, (acquired, gone_at)  # a stopped first
            assert len(c.frameworks()) == 1
            eventually_(lambda: c.live_tasks() == before, what="the same 3 tasks")
            assert c.running(3)
        finally:
            proxy.close()


def test_two_replicas_that_both_lead_never_both_act(tmp_path: Path) -> None:
    """Forced split brain (two Lease names): the master lets one subscription per framework id
    act; the replica failed over stops with status 1 and no pod runs twice."""
    with replicas.cluster(tmp_path) as c:
        a = c.start_replica("a", timing=TIMING, lease_name="one")
        eventually_(a.leads, what="a leads", timeout=60)
        c.kubectl("apply", "-f", str(EXAMPLES / "deployment.yaml"))
        eventually_(lambda: c.running(3), what="3 web pods Running", timeout=90)
        before = c.live_tasks()
        b = c.start_replica("b", timing=TIMING, lease_name="two")
        eventually_(b.leads, what="b leads too", timeout=60)
        assert a.proc.wait(30) == 1, a.output()[-2000:]
        assert "failed over" in a.output()
        c.kubectl("scale", "deployment/web", "--replicas=5")
        eventually_(lambda: c.running(5), what="5 web pods Running", timeout=90)
        per_pod = eventually_(lambda: (n if sum(n.values()) == 5 else None)
                              if (n := c.tasks_per_pod()) else None, what="5 live tasks")
        assert all(count == 1 for count in per_pod.values()), per_pod
        assert set(before) <= set(c.live_tasks())
        assert len(c.frameworks()) == 1


def _leader_gauge(replica: replicas.Replica) -> float:
    status, text = replica.kubelet_get("/metrics")
    assert status == 200, text
    for family in text_string_to_metric_families(text):
        if family.name == "k8sbridge_leader":
            return float(family.samples[0].value)
    raise AssertionError("no k8sbridge_leader in /metrics")


def _watch_cache(replica: replicas.Replica) -> tuple[dict[str, float], float]:
    """The replica's watch caches by kind (``k8sbridge_watch_cached_objects``) and
    ``k8sbridge_watch_synced``."""
    status, text = replica.kubelet_get("/metrics")
    assert status == 200, text
    cached: dict[str, float] = {}
    synced = -1.0
    for family in text_string_to_metric_families(text):
        if family.name == "k8sbridge_watch_cached_objects":
            cached = {s.labels["kind"]: float(s.value) for s in family.samples}
        elif family.name == "k8sbridge_watch_synced":
            synced = float(family.samples[0].value)
    return cached, synced
