"""Where the records come from: Services, EndpointSlices, Namespaces and Pods (their addresses,
for PTRs) watched through the Kubernetes API, and the Mesos master's state polled through its
operator API.

Why one owner and a short debounce: each watch event updates one dictionary and asks for a
rebuild; the rebuild (``cluster.build``, pure) runs at most once per ``DEBOUNCE_SECONDS`` in
this event loop and replaces the table the server reads whole, so a burst of 1,000 endpoint
changes costs one or two rebuilds, and a query never sees half a change.

Why poll the master: Mesos-DNS polls ``state.json`` the same way (every 60 s by default; 2 s
here). GET_STATE is one call answering agents, frameworks and tasks together; a master that
does not answer keeps the last good names (Mesos-DNS does the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any

import dns.name
import dns.rdatatype

from k8sbridge.dns import cluster, mesosnames
from k8sbridge.dns import table as dns_table
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import operator as kube_operator
from k8sbridge.mesos import errors as mesos_errors
from k8sbridge.mesos import operator as mesos_operator

__all__ = ["ClusterSource", "MesosSource", "Zones"]

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.05


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
    """Keeps ``records`` (a ``cluster.ClusterRecords``) current from watch events."""

    def __init__(self, *, domain: str) -> None:
        self.domain = domain
        self._services: dict[str, cluster.Service] = {}
        self._slices: dict[str, cluster.Slice] = {}
        self._namespaces: set[str] = set()
        self._pods: dict[str, cluster.Pod] = {}
        self._rebuild: asyncio.TimerHandle | None = None
        self._reported: set[tuple[str, str]] = set()
        self.records = cluster.build(domain=domain, services=(), slices=(), namespaces=())
        self.changed = asyncio.Event()  # set after each rebuild (tests and the bench wait)

    def on_service(self, etype: str | None, raw: dict[str, Any]) -> None:
        key, svc = _key(raw), cluster.parse_service(raw)
        if etype == "DELETED" or svc is None:
            self._services.pop(key, None)
        else:
            self._services[key] = svc
        self._soon()

    def on_slice(self, etype: str | None, raw: dict[str, Any]) -> None:
        key, found = _key(raw), cluster.parse_slice(raw)
        if etype == "DELETED" or found is None:
            self._slices.pop(key, None)
        else:
            self._slices[key] = found
        self._soon()

    def on_pod(self, etype: str | None, raw: dict[str, Any]) -> None:
        key, pod = _key(raw), cluster.parse_pod(raw)
        if etype == "DELETED" or pod is None:
            if self._pods.pop(key, None) is not None:
                self._soon()
        elif self._pods.get(key) != pod:  # most pod events change no address
            self._pods[key] = pod
            self._soon()

    def on_namespace(self, etype: str | None, raw: dict[str, Any]) -> None:
        name = (raw.get("metadata") or {}).get("name")
        if not isinstance(name, str):
            return
        if etype == "DELETED":
            self._namespaces.discard(name)
        else:
            self._namespaces.add(name)
        self._soon()

    def _soon(self) -> None:
        if self._rebuild is None:
            self._rebuild = asyncio.get_running_loop().call_later(DEBOUNCE_SECONDS, self.rebuild)

    def rebuild(self) -> None:
        self._rebuild = None
        self.records = cluster.build(domain=self.domain, services=self._services.values(),
                                     slices=self._slices.values(), namespaces=self._namespaces,
                                     pods=self._pods.values())
        for key, reason in self.records.skipped:
            if (key, reason) not in self._reported:
                self._reported.add((key, reason))
                log.warning("Service %s: %s", key, reason)
        self.changed.set()

    async def run(self, *, kube: kube_client.KubeClient, stop: asyncio.Event,
                  ready: asyncio.Event) -> None:
        await kube_operator.run(
            connection=kube.connection(),
            on_pod=self.on_pod,
            others={
                ("", "v1", "services"): self.on_service,
                ("discovery.k8s.io", "v1", "endpointslices"): self.on_slice,
                ("", "v1", "namespaces"): self.on_namespace,
            },
            stop=stop, ready=ready)


class MesosSource:
    """Keeps ``table`` (the Mesos domain) current by polling GET_STATE."""

    def __init__(self, *, operator: mesos_operator.OperatorClient, domain: str,
                 interval: float) -> None:
        self._operator = operator
        self.domain = domain
        self.interval = interval
        self.table = mesosnames.build({}, domain=domain)
        self.changed = asyncio.Event()

    async def poll_once(self) -> None:
        state = await self._operator.get_state()
        self.table = mesosnames.build(state, domain=self.domain)
        self.changed.set()

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        failing = False
        while not stop.is_set():
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
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await stop.wait()
