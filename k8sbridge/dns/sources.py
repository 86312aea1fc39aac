"""Where the records come from: Services, EndpointSlices, Namespaces and Pods (their addresses,
for PTRs) listed and watched through the Kubernetes API, and the Mesos master's state followed
through its operator API's event stream.

Why a plain list+watch (``kube.listwatch``) and not kopf: DNS only reads, and kopf's
per-event machinery (per-object workers, causes, handler bookkeeping) was over half of this
process' CPU in a burst of 1,000 pod starts; a relist also replaces what it holds, so an
object deleted while the watch was down does not linger.

Why one owner, a debounce and pods apart: a Service, EndpointSlice or Namespace event updates
one dictionary and asks for a rebuild; the rebuild (``cluster.build``, pure) runs after
``DEBOUNCE_SECONDS``, and never sooner than ``REBUILD_PAUSE`` times the last rebuild's duration
after it, in this event loop, and replaces the table the server reads whole: a burst of 1,000
endpoint changes costs a bounded share of the CPU, and a query never sees half a change. A pod
event changes its own PTR only (``cluster.PodNames``), without a rebuild.

Why the event stream: SUBSCRIBE gives the master's state once and then each change, where
polling GET_STATE made the master serialise (and this process parse) every task every few
seconds. A master that is away keeps the last good names (Mesos-DNS does the same) until a
new subscription's state replaces them; one that refuses SUBSCRIBE is polled as Mesos-DNS
polls ``state.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import dns.name
import dns.rdatatype

from k8sbridge.dns import cluster, mesoszone
from k8sbridge.dns import table as dns_table
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import listwatch
from k8sbridge.mesos import errors as mesos_errors
from k8sbridge.mesos import operator as mesos_operator

__all__ = ["ClusterSource", "MesosSource", "Zones"]

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.05
REBUILD_PAUSE = 4.0  # a rebuild waits this many times the last one's duration: <= 1/5 of the CPU
# a master that answers SUBSCRIBE with one of these does not offer it: poll GET_STATE
REFUSED = (mesos_errors.BadRequest, mesos_errors.UnsupportedCall, mesos_errors.Forbidden)
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)  # pauses before resubscribing, growing
FIRST_EVENT_SECONDS = 30.0  # SUBSCRIBED carries the whole state: give it time
DEFAULT_HEARTBEAT_SECONDS = 15.0  # the master's default for operator subscribers
MIN_SILENCE_SECONDS = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class Zones:
    """What the server answers from: the cluster domain (with reverse names) and the Mesos
    domain; either may be absent."""

    cluster: cluster.ClusterRecords | None = None
    mesos: dns_table.Table | None = None

    def lookup(self, name: dns.name.Name,
               rdtype: dns.rdatatype.RdataType) -> dns_table.Answer | None:
        if self.cluster is not None:
            found = self.cluster.lookup(name, rdtype)
            if found is not None:
                return found
        if self.mesos is not None and self.mesos.covers(dns_table.key_of(name)):
            return self.mesos.lookup(name, rdtype)
        return None


def _key(raw: dict[str, Any]) -> str:
    meta = raw.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


class ClusterSource:
    """Keeps ``records`` (a ``cluster.ClusterRecords``) current from list+watch events."""

    def __init__(self, *, domain: str) -> None:
        self.domain = domain
        self._services: dict[str, cluster.Service] = {}
        self._slices: dict[str, cluster.Slice] = {}
        self._namespaces: set[str] = set()
        self._pods: dict[str, cluster.Pod] = {}
        self._pod_names = cluster.PodNames(domain=domain)
        self._rebuild: asyncio.TimerHandle | None = None
        self._last_end = 0.0  # loop time the last rebuild ended
        self._last_took = 0.0  # seconds it took
        self._reported: set[tuple[str, str]] = set()
        self.rebuilds = 0
        self.records = cluster.build(domain=domain, services=(), slices=(), namespaces=(),
                                     pods=self._pod_names)
        self.changed = asyncio.Event()  # set after each change (tests and the bench wait)

    # -- watch events --------------------------------------------------------------------

    def on_service(self, etype: str | None, raw: dict[str, Any]) -> None:
        key, svc = _key(raw), cluster.parse_service(raw)
        if etype == "DELETED" or svc is None:
            if self._services.pop(key, None) is not None:
                self._soon()
        elif self._services.get(key) != svc:
            self._services[key] = svc
            self._soon()

    def on_slice(self, etype: str | None, raw: dict[str, Any]) -> None:
        key, found = _key(raw), cluster.parse_slice(raw)
        if etype == "DELETED" or found is None:
            if self._slices.pop(key, None) is not None:
                self._soon()
        elif self._slices.get(key) != found:
            self._slices[key] = found
            self._soon()

    def on_pod(self, etype: str | None, raw: dict[str, Any]) -> None:
        """A pod only changes its own PTR: no rebuild, a new ``records`` object (the
        server's answer cache ends with the old one)."""
        pod = cluster.parse_pod(raw)
        self._set_pod(_key(raw), None if etype == "DELETED" else pod)

    def _set_pod(self, key: str, pod: cluster.Pod | None) -> None:
        if pod is None:
            if self._pods.pop(key, None) is None:
                return
        elif self._pods.get(key) != pod:  # most pod events change no address
            self._pods[key] = pod
        else:
            return
        self._pod_names.put(key, pod)
        self.records = dataclasses.replace(self.records)
        self.changed.set()

    def on_namespace(self, etype: str | None, raw: dict[str, Any]) -> None:
        name = (raw.get("metadata") or {}).get("name")
        if not isinstance(name, str):
            return
        if etype == "DELETED" and name in self._namespaces:
            self._namespaces.discard(name)
            self._soon()
        elif etype != "DELETED" and name not in self._namespaces:
            self._namespaces.add(name)
            self._soon()

    # -- relists: the whole set replaces what was there (deletions missed included) ------

    def replace_services(self, items: list[dict[str, Any]]) -> None:
        self._services.clear()
        for raw in items:
            self.on_service("ADDED", raw)
        self._soon()

    def replace_slices(self, items: list[dict[str, Any]]) -> None:
        self._slices.clear()
        for raw in items:
            self.on_slice("ADDED", raw)
        self._soon()

    def replace_namespaces(self, items: list[dict[str, Any]]) -> None:
        self._namespaces.clear()
        for raw in items:
            self.on_namespace("ADDED", raw)
        self._soon()

    def replace_pods(self, items: list[dict[str, Any]]) -> None:
        listed = {_key(raw) for raw in items}
        for key in [k for k in self._pods if k not in listed]:
            self._set_pod(key, None)
        for raw in items:
            self.on_pod("ADDED", raw)

    # -- rebuilding the Services' records ------------------------------------------------

    def _soon(self) -> None:
        """A rebuild after ``DEBOUNCE_SECONDS``, and no sooner than ``REBUILD_PAUSE`` times the
        last rebuild's duration after it ended: rebuilds take a bounded share of the CPU
        however fast the events come, and a lone change on a quiet cluster shows at once."""
        if self._rebuild is None:
            loop = asyncio.get_running_loop()
            earliest = self._last_end + REBUILD_PAUSE * self._last_took
            self._rebuild = loop.call_later(max(DEBOUNCE_SECONDS, earliest - loop.time()),
                                            self.rebuild)

    def rebuild(self) -> None:
        if self._rebuild is not None:
            self._rebuild.cancel()
        self._rebuild = None
        loop = asyncio.get_running_loop()
        began = loop.time()
        self.records = cluster.build(domain=self.domain, services=self._services.values(),
                                     slices=self._slices.values(), namespaces=self._namespaces,
                                     pods=self._pod_names)
        self._last_end = loop.time()
        self._last_took = self._last_end - began
        self.rebuilds += 1
        for key, reason in self.records.skipped:
            if (key, reason) not in self._reported:
                self._reported.add((key, reason))
                log.warning("Service %s: %s", key, reason)
        self.changed.set()

    async def run(self, *, kube: kube_client.KubeClient, stop: asyncio.Event,
                  ready: asyncio.Event) -> None:
        """List and watch the four collections until ``stop``; ``ready`` once all four are
        listed and their records built."""
        collections = (
            ("/api/v1/namespaces", self.replace_namespaces, self.on_namespace),
            ("/api/v1/services", self.replace_services, self.on_service),
            ("/apis/discovery.k8s.io/v1/endpointslices", self.replace_slices, self.on_slice),
            ("/api/v1/pods", self.replace_pods, self.on_pod),
        )
        listed: set[str] = set()

        def lister(path: str, replace: Callable[[list[dict[str, Any]]], None]) -> Callable[
                [list[dict[str, Any]]], None]:
            def done(items: list[dict[str, Any]]) -> None:
                replace(items)
                if path not in listed:
                    listed.add(path)
                    if len(listed) == len(collections):
                        self.rebuild()
                        ready.set()
            return done

        watches = [asyncio.create_task(listwatch.run(kube, path, replace=lister(path, replace),
                                                     update=update, stop=stop))
                   for path, replace, update in collections]
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([stopping, *watches], return_when=asyncio.FIRST_COMPLETED)
            for w in watches:  # a list+watch returns only once stopped: anything else is a bug
                if w.done() and not w.cancelled() and w.exception() is not None:
                    raise w.exception()  # type: ignore[misc]
        finally:
            stopping.cancel()
            for w in watches:
                w.cancel()
            await asyncio.gather(*watches, return_exceptions=True)


def _refused(e: mesos_errors.OperatorError) -> bool:
    """A master that answered SUBSCRIBE with a refusal (it predates the call, or forbids it),
    rather than one that could not be reached."""
    return isinstance(e.__cause__, REFUSED)


class MesosSource:
    """Keeps ``table`` (the Mesos domain) current from the master's operator event stream;
    polls GET_STATE every ``interval`` seconds instead when the master refuses SUBSCRIBE.

    While the master is away the last names stay; the stream is opened again with a growing
    pause (``BACKOFF_SECONDS``), and its SUBSCRIBED event replaces the names whole."""

    def __init__(self, *, operator: mesos_operator.OperatorClient, domain: str,
                 interval: float) -> None:
        self._operator = operator
        self.domain = domain
        self.interval = interval
        self.zone = mesoszone.MesosZone(domain=domain)
        self.changed = asyncio.Event()  # set after each change of the names (tests wait)
        self.subscriptions = 0  # SUBSCRIBED events taken (tests)
        self.polling = False  # True once SUBSCRIBE was refused
        self._failures = 0

    @property
    def table(self) -> dns_table.Table:
        return self.zone.table()

    async def poll_once(self) -> None:
        state = await self._operator.get_state()
        self.zone = mesoszone.MesosZone.from_state(state, domain=self.domain)
        self.changed.set()

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                work = asyncio.ensure_future(
                    self._poll(ready=ready) if self.polling else self._follow(ready=ready))
                await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not work.done():
                    work.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await work
                    return
                error = work.exception()
                if not isinstance(error, mesos_errors.OperatorError):
                    raise error if error is not None else RuntimeError("the stream ended")
                if _refused(error):
                    log.warning("the Mesos master refuses SUBSCRIBE (%s): polling GET_STATE "
                                "every %gs instead", error, self.interval)
                    self.polling = True
                    continue
                if self._failures == 0:
                    log.warning("the Mesos master's event stream is gone (keeping the last "
                                "Mesos names): %s", error)
                self._failures += 1
                pause = BACKOFF_SECONDS[min(self._failures, len(BACKOFF_SECONDS)) - 1]
                await asyncio.wait({stopping}, timeout=pause)
        finally:
            stopping.cancel()

    async def _follow(self, *, ready: asyncio.Event) -> None:
        """Subscribe and apply events until the stream fails (an ``OperatorError``)."""
        stream = await self._operator.subscribe()
        try:
            first = await stream.next_event(timeout=FIRST_EVENT_SECONDS)
            if first.get("type") != "SUBSCRIBED":
                raise mesos_errors.OperatorError(
                    f"SUBSCRIBE: the first event is {first.get('type')!r}, not SUBSCRIBED")
            silence = self._subscribed(first)
            if self._failures:
                log.warning("the Mesos master's event stream is back")
            self._failures = 0
            ready.set()
            while True:
                event = await stream.next_event(timeout=silence)
                kind = event.get("type")
                if kind == "HEARTBEAT":
                    continue
                if kind == "SUBSCRIBED":
                    silence = self._subscribed(event)
                    continue
                before = self.zone.table()
                self.zone.apply(event)
                if self.zone.table() is not before:
                    self.changed.set()
        finally:
            stream.close()

    def _subscribed(self, event: dict[str, Any]) -> float:
        """Take SUBSCRIBED's state; how long the stream may be silent (5 heartbeats, as
        master.proto advises, and never under ``MIN_SILENCE_SECONDS``)."""
        found = event.get("subscribed")
        body: dict[str, Any] = found if isinstance(found, dict) else {}
        state = body.get("get_state")
        self.zone = mesoszone.MesosZone.from_state(state if isinstance(state, dict) else {},
                                                   domain=self.domain)
        self.subscriptions += 1
        self.changed.set()
        heartbeat = body.get("heartbeat_interval_seconds")
        interval = float(heartbeat) if isinstance(heartbeat, int | float) and heartbeat > 0 \
            else DEFAULT_HEARTBEAT_SECONDS
        return max(5 * interval, MIN_SILENCE_SECONDS)

    async def _poll(self, *, ready: asyncio.Event) -> None:
        """GET_STATE every ``interval`` seconds (a master without SUBSCRIBE); a failed poll
        keeps the last good names."""
        failing = False
        while True:
            try:
                await self.poll_once()
                if failing:
                    log.warning("the Mesos master answers GET_STATE again")
                failing = False
                ready.set()
            except mesos_errors.OperatorError as e:
                if not failing:
                    log.warning("GET_STATE failed (keeping the last Mesos names): %s", e)
                failing = True
            await asyncio.sleep(self.interval)
