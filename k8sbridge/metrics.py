"""The bridge's Prometheus metrics: what an operator alerts on, in Prometheus' conventions.

Why a module of its own (and prometheus-client): one place names every family (``k8sbridge_``
prefix, base units, ``_total`` counters) and renders the text format Prometheus scrapes; the
loops it measures only call plain hooks (the kube client's request observer, the scheduler's
``on_pass``, the status writer's ``on_status_written``) or are wrapped (``CountingDriver``
around the Mesos calls, ``on_mesos_event`` before the scheduler's handler), so none of them
imports a metrics library. The Mesos client's own counters (events, calls, subscriptions by
cause) are read at scrape time by a collector. Every bridge has its own registry (tests run
several in one process). Served as ``/metrics`` on the kubelet API, with its authentication,
as a kubelet serves its own; docs/operations.md lists the families and alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from k8sbridge.kube import client as kube_client
from k8sbridge.mesos import events as mesos_events
from k8sbridge.mesos import metrics as mesos_metrics
from k8sbridge.mesos import raw as mesos_wire
from k8sbridge.model import ids
from k8sbridge.scheduler import plan, ports

__all__ = ["CONTENT_TYPE", "BridgeMetrics", "CountingDriver"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NO_OFFERS = "no offers held"  # the pending reason while the bridge holds no offer to place on
# TaskStatus reasons that mean the launch itself failed (not the container's own exit)
LAUNCH_FAILURES = frozenset({
    "REASON_CONTAINER_LAUNCH_FAILED", "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
    "REASON_TASK_INVALID", "REASON_TASK_GROUP_INVALID", "REASON_TASK_UNAUTHORIZED",
    "REASON_TASK_GROUP_UNAUTHORIZED", "REASON_CONTAINER_PREEMPTED",
    "REASON_RESOURCES_UNKNOWN", "REASON_INVALID_OFFERS", "REASON_AGENT_REMOVED",
})
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class BridgeMetrics:
    """The families of one bridge, and the hooks that feed them."""

    def __init__(self, *, leading: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.kube_requests = Histogram(
            "k8sbridge_kube_request_duration_seconds",
            "Kubernetes API calls by verb and HTTP status code (error: no reply)",
            ["verb", "code"], registry=r, buckets=_LATENCY)
        self.kube_queued = Histogram(
            "k8sbridge_kube_request_queued_seconds",
            "Time Kubernetes API calls waited for a free client connection", ["verb"],
            registry=r, buckets=_LATENCY)
        self.placement = Histogram(
            "k8sbridge_placement_pass_duration_seconds",
            "One placement pass over the pending pods and the held offers", registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0))
        self.pending = Gauge(
            "k8sbridge_pending_pods",
            "Pods waiting for placement after the last pass, by the reason most nodes gave",
            ["reason"], registry=r)
        self.status_latency = Histogram(
            "k8sbridge_task_status_to_pod_status_seconds",
            "From a task status update reaching the bridge to the pod status written",
            registry=r, buckets=_LATENCY)
        self.offers = Counter(
            "k8sbridge_offers", "Mesos offers by what happened to them",
            ["outcome"], registry=r)
        self.launches = Counter(
            "k8sbridge_launches", "Task groups sent to Mesos (LAUNCH_GROUP operations)",
            registry=r)
        self.launch_errors = Counter(
            "k8sbridge_launch_errors",
            "Launches that failed: the ACCEPT call's error, or a TaskStatus launch reason",
            ["reason"], registry=r)
        self.leader = Gauge(
            "k8sbridge_leader", "1 while this replica acts as the framework (leads)",
            registry=r)
        self.leader.set(1 if leading else 0)  # a standby replica serves 0 (replica.py)
        self._pending_reasons: set[str] = set()

    # -- hooks -----------------------------------------------------------------------------

    def observe_kube_request(self, timing: kube_client.RequestTiming) -> None:
        code = str(timing.status) if timing.status is not None else "error"
        self.kube_requests.labels(verb=timing.verb, code=code).observe(timing.seconds)
        self.kube_queued.labels(verb=timing.verb).observe(timing.queued)

    def on_pass(self, seconds: float | None, pending: int, result: plan.Plan | None) -> None:
        """A placement pass: its duration (None: no pass ran, no offer was held) and what
        stayed pending."""
        counts: dict[str, int] = {}
        if result is None:
            if pending:
                counts[NO_OFFERS] = pending
        else:
            for unplaced in result.unplaced:
                reason = _main_reason(unplaced.explanation)
                counts[reason] = counts.get(reason, 0) + 1
        if seconds is not None:
            self.placement.observe(seconds)
        for reason in self._pending_reasons - counts.keys():
            self.pending.labels(reason=reason).set(0)
        for reason, count in counts.items():
            self.pending.labels(reason=reason).set(count)
        self._pending_reasons |= counts.keys()

    def on_status_written(self, seconds: float) -> None:
        self.status_latency.observe(seconds)

    def on_mesos_event(self, event: Any) -> None:
        if isinstance(event, mesos_events.Offers):
            self.offers.labels(outcome="received").inc(len(event.offers))
        elif isinstance(event, mesos_events.Rescind):
            self.offers.labels(outcome="rescinded").inc()
        elif isinstance(event, mesos_events.Update):
            reason = event.status.reason
            if event.status.state in ("TASK_FAILED", "TASK_ERROR", "TASK_DROPPED") \
                    and reason in LAUNCH_FAILURES:
                self.launch_errors.labels(reason=reason).inc()

    def watch(self, *, client: mesos_metrics.Metrics, held_offers: Callable[[], int],
              reconciled: Callable[[], bool]) -> None:
        """Read the Mesos client's counters and the scheduler's state at every scrape."""
        self.registry.register(_MesosCollector(client, held_offers, reconciled))

    def watch_cache(self, *, counts: Callable[[], Mapping[str, int]],
                    synced: Callable[[], bool]) -> None:
        """The watch's caches (``kube.warm``), read at every scrape: a standby shows them
        filled before it leads."""
        self.registry.register(_WatchCacheCollector(counts, synced))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _main_reason(explanation: plan.Explanation) -> str:
    """The reason the most nodes gave (kube-scheduler's words, without counts or details)."""
    if not explanation.agents:
        return "no nodes available"
    best = max(explanation.reasons, key=lambda r: (r.count, r.reason), default=None)
    return best.reason if best is not None else "unknown"


class CountingDriver:
    """The Mesos calls the scheduler makes (``ports.Driver``), counted, then made."""

    def __init__(self, driver: ports.Driver, metrics: BridgeMetrics) -> None:
        self._driver = driver
        self._metrics = metrics

    @property
    def framework_id(self) -> ids.FrameworkId | None:
        return self._driver.framework_id

    async def accept(self, offer_ids: Sequence[ids.OfferId], operations: Sequence[Any], *,
                     refuse_seconds: float | None = None) -> None:
        launches = sum(1 for op in operations
                       if isinstance(op, Mapping) and op.get("type") == "LAUNCH_GROUP")
        try:
            await self._driver.accept(offer_ids, operations, refuse_seconds=refuse_seconds)
        except Exception as e:
            if launches:
                self._metrics.launch_errors.labels(reason=type(e).__name__).inc(launches)
            raise
        self._metrics.offers.labels(outcome="used").inc(len(offer_ids))
        self._metrics.launches.inc(launches)

    async def decline(self, offer_ids: Sequence[ids.OfferId], *,
                      refuse_seconds: float | None = None) -> None:
        await self._driver.decline(offer_ids, refuse_seconds=refuse_seconds)
        self._metrics.offers.labels(outcome="declined").inc(len(offer_ids))

    async def revive(self, roles: Sequence[str] | None = None) -> None:
        await self._driver.revive(roles)

    async def suppress(self, roles: Sequence[str] | None = None) -> None:
        await self._driver.suppress(roles)

    async def kill(self, task_id: ids.TaskId, *, agent_id: ids.AgentId | None = None,
                   grace_period_seconds: float | None = None) -> None:
        await self._driver.kill(task_id, agent_id=agent_id,
                                grace_period_seconds=grace_period_seconds)

    async def acknowledge(self, status: Any) -> None:
        await self._driver.acknowledge(status)

    async def shape_offers(
        self, *, offer_constraints: mesos_wire.RawOfferConstraints,
        min_allocatable: Mapping[str, Sequence[Mapping[str, float]]] | None,
    ) -> None:
        await self._driver.shape_offers(offer_constraints=offer_constraints,
                                        min_allocatable=min_allocatable)

    async def reconcile(
        self, tasks: Mapping[ids.TaskId, ids.AgentId | None] | None = None
    ) -> None:
        await self._driver.reconcile(tasks)


class _MesosCollector(Collector):
    """The Mesos client's counters (``mesos.metrics``: flat names such as ``events/OFFERS``)
    as families, and the scheduler's held offers and reconciliation state as gauges."""

    def __init__(self, client: mesos_metrics.Metrics, held_offers: Callable[[], int],
                 reconciled: Callable[[], bool]) -> None:
        self._client = client
        self._held = held_offers
        self._reconciled = reconciled

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily("k8sbridge_mesos_events", "Mesos scheduler API events "
                                     "received, by type", labels=["type"])
        calls = CounterMetricFamily("k8sbridge_mesos_calls", "Mesos scheduler API calls, by "
                                    "type and outcome (ok or the error)",
                                    labels=["call", "outcome"])
        subscriptions = CounterMetricFamily(
            "k8sbridge_mesos_subscriptions", "SUBSCRIBED received, by why a subscription was "
            "needed (initial, or the failure that ended the last one)", labels=["cause"])
        failures = CounterMetricFamily(
            "k8sbridge_mesos_subscribe_failures", "Subscription attempts that failed or live "
            "streams that broke, by cause", labels=["cause"])
        other = CounterMetricFamily("k8sbridge_mesos_client_errors", "Other Mesos client "
                                    "counts (decode errors, handler errors...)", labels=["kind"])
        for name, value in self._client.snapshot().items():
            parts = name.split("/")
            if parts[0] == "events" and len(parts) == 2:
                events.add_metric([parts[1]], value)
            elif parts[0] == "calls" and len(parts) == 3:
                calls.add_metric(parts[1:], value)
            elif parts[0] == "resubscriptions" and len(parts) == 2:
                subscriptions.add_metric([parts[1]], value)
            elif parts[0] == "subscribe_failures" and len(parts) == 2:
                failures.add_metric([parts[1]], value)
            elif name != "subscriptions":
                other.add_metric([name], value)
        yield from (events, calls, subscriptions, failures, other)
        yield GaugeMetricFamily("k8sbridge_offers_held", "Offers the bridge holds now",
                                value=self._held())
        yield GaugeMetricFamily("k8sbridge_reconciled", "1 once the tasks Mesos knows were "
                                "reconciled with the pods after the last subscription",
                                value=1 if self._reconciled() else 0)


class _WatchCacheCollector(Collector):
    """Objects in the watch's caches, by kind, and whether the cache holds every pod."""

    def __init__(self, counts: Callable[[], Mapping[str, int]],
                 synced: Callable[[], bool]) -> None:
        self._counts = counts
        self._synced = synced

    def collect(self) -> Iterator[Metric]:
        cached = GaugeMetricFamily("k8sbridge_watch_cached_objects", "Objects the Kubernetes "
                                   "watch holds, by kind (a standby keeps them too)",
                                   labels=["kind"])
        for kind, count in sorted(self._counts().items()):
            cached.add_metric([kind], count)
        yield cached
        yield GaugeMetricFamily("k8sbridge_watch_synced", "1 once the watch's pod cache holds "
                                "every pod the API server listed", value=1 if self._synced() else 0)
