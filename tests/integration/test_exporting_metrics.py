"""The bridge's /metrics: Prometheus' text format on the kubelet API, behind its authentication,
with figures that follow what the bridge really did (offers, launches, placement passes, pending
pods by reason, Kubernetes API calls, status latency, the Mesos subscription).

A real bridge on the embedded kernel and devkube; the scrape is parsed with prometheus-client's
own parser, as Prometheus would read it. Counters are compared before and after, since the
figures belong to the whole bridge.
"""

from __future__ import annotations

import ssl

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from k8sbridge import app
from k8sbridge import metrics as bridge_metrics
from k8sbridge.mesos import events as mesos_events
from k8sbridge.model import ids
from k8sbridge.model import tasks as model_tasks
from k8sbridge.scheduler import feasible
from tests.integration.conftest import eventually

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _client_context(embedded: app.EmbeddedTargets) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    assert embedded.api_ca_file is not None
    pki = embedded.api_ca_file.parent
    ctx.load_cert_chain(pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key")
    return ctx


async def _scrape(embedded: app.EmbeddedTargets) -> Samples:
    url = f"https://127.0.0.1:{embedded.bridge.kubelet_port}/metrics"
    async with aiohttp.ClientSession() as http, \
            http.get(url, ssl=_client_context(embedded)) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _sum(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


async def test_metrics_need_the_kubelet_apis_credentials(embedded: app.EmbeddedTargets) -> None:
    url = f"https://127.0.0.1:{embedded.bridge.kubelet_port}/metrics"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession() as http, http.get(url, ssl=ctx) as r:
        assert r.status == 401


async def test_metrics_follow_offers_launches_placement_and_status_writes(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    before = await _scrape(embedded)
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "counted"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "c", "image": "busybox", "command": ["sleep", "300"]}]},
    })

    async def running() -> bool:
        pod = await kube.get_pod("default", "counted")
        return (pod.get("status") or {}).get("phase") == "Running"

    await eventually(running, what="the pod Running")
    after = await eventually(lambda: _settled(embedded, before),
                             what="the status write counted")
    assert _value(after, "k8sbridge_launches_total") >= _value(before,
                                                               "k8sbridge_launches_total") + 1
    assert _value(after, "k8sbridge_offers_total", outcome="received") > \
        _value(before, "k8sbridge_offers_total", outcome="received")
    assert _value(after, "k8sbridge_offers_total", outcome="used") >= 1
    assert _value(after, "k8sbridge_placement_pass_duration_seconds_count") > \
        _value(before, "k8sbridge_placement_pass_duration_seconds_count")
    assert _sum(after, "k8sbridge_kube_request_duration_seconds_count", verb="PATCH") > \
        _sum(before, "k8sbridge_kube_request_duration_seconds_count", verb="PATCH")
    assert _value(after, "k8sbridge_mesos_subscriptions_total", cause="initial") >= 1
    assert _sum(after, "k8sbridge_mesos_events_total", type="UPDATE") > 0
    assert _value(after, "k8sbridge_reconciled") == 1
    assert _value(after, "k8sbridge_leader") == 1


async def _settled(embedded: app.EmbeddedTargets, before: Samples) -> Samples | None:
    now = await _scrape(embedded)
    name = "k8sbridge_task_status_to_pod_status_seconds_count"
    return now if _value(now, name) > _value(before, name) else None


async def test_pending_pods_are_counted_by_the_reason_most_nodes_gave(
    embedded: app.EmbeddedTargets,
) -> None:
    kube = embedded.bridge.kube
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
        "spec": {"nodeSelector": {"no-such": "label"}, "containers": [
            {"name": "c", "image": "busybox", "command": ["sleep", "300"]}]},
    })
    name, reason = "k8sbridge_pending_pods", feasible.REASON_NODE_AFFINITY

    async def counted(want: float) -> bool:
        return _value(await _scrape(embedded), name, reason=reason) == want

    await eventually(lambda: counted(1), what="the pending pod counted by its reason")
    await kube.delete("/api/v1/namespaces/default/pods/nowhere", grace_period_seconds=0)
    await eventually(lambda: counted(0), what="the count back to 0")


def test_launch_failures_reported_by_mesos_count_by_reason() -> None:
    metrics = bridge_metrics.BridgeMetrics()
    failed = model_tasks.TaskStatus(task_id=ids.TaskId("t"), state="TASK_FAILED",
                                    reason="REASON_CONTAINER_LAUNCH_FAILED")
    exited = model_tasks.TaskStatus(task_id=ids.TaskId("u"), state="TASK_FAILED",
                                    reason="REASON_COMMAND_EXECUTOR_FAILED")
    for status in (failed, failed, exited):
        metrics.on_mesos_event(mesos_events.Update(status=status))
    text = metrics.exposition().decode()
    assert 'k8sbridge_launch_errors_total{reason="REASON_CONTAINER_LAUNCH_FAILED"} 2.0' in text
    assert "REASON_COMMAND_EXECUTOR_FAILED" not in text  # the container's own failure
