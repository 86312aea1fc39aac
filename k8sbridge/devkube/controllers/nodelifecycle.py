"""The node lifecycle controller: notice silent nodes and evict pods from them.

A node's health signal is a change of its Lease ``renewTime`` (namespace kube-node-lease) or
of its Ready condition's ``lastHeartbeatTime``, timed on our own monotonic clock (clocks of
kubelets need not agree with ours). Without a signal for ``grace`` seconds the node's
conditions become Unknown (``NodeStatusUnknown``), it gets the
``node.kubernetes.io/unreachable`` NoExecute + NoSchedule taints, and its pods get Ready=False;
when the lease renews again the taints are removed. Pods on a node with NoExecute taints are
deleted once they no longer tolerate them (``taints.eviction_time``).

Who owns what, as in Kubernetes: the kubelet owns the Node's conditions and its Lease; this
controller owns the ``not-ready`` / ``unreachable`` taints (kept with their ``timeAdded`` while
they apply, so an eviction timer starts once) and writes conditions only to mark a silent node
Unknown. It never overwrites a report the kubelet posted after the one it judged silent: the
write is a read-modify-write that gives up when the stored Ready heartbeat is newer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Callable

from k8sbridge.devkube.controllers import base, errors, taints
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.events import EventRecorder
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
RECHECK_SECONDS = 0.05  # after a fresh report met a stale judgment: the informer has it soon


@dataclasses.dataclass(slots=True)
class _Health:
    last_signal: float  # our monotonic clock
    lease_renew: str | None = None
    heartbeat: str | None = None


class NodeLifecycleController:
    def __init__(self, *, client: api.ApiClient, nodes: Informer, leases: Informer,
                 pods: Informer, grace_seconds: float,
                 clock: Callable[[], float] | None = None,  # None: the loop's clock
                 recorder: EventRecorder | None = None) -> None:  # None: no events
        self.client = client
        self.recorder = recorder
        self.nodes = nodes
        self.leases = leases
        self.pods = pods
        self.grace = grace_seconds
        self._clock = clock
        self._health: dict[str, _Health] = {}
        self.queue = WorkQueue(name="nodelifecycle")
        nodes.add_handler(self._on_node)
        leases.add_handler(self._on_lease)
        pods.add_handler(self._on_pod)

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    # -- signals -------------------------------------------------------------------------

    def _health_of(self, name: str) -> _Health:
        h = self._health.get(name)
        if h is None:  # first sight: the node gets a full grace period from now
            h = self._health[name] = _Health(last_signal=self._now())
        return h

    def _on_node(self, old: RawObject | None, new: RawObject | None) -> None:
        if new is None:
            if old is not None:
                self._health.pop(str((old.get("metadata") or {}).get("name")), None)
            return
        name = str((new.get("metadata") or {}).get("name"))
        h = self._health_of(name)
        beat = taints.ready_heartbeat(new)
        if beat is not None and beat != h.heartbeat:
            if h.heartbeat is not None:
                h.last_signal = self._now()
            h.heartbeat = beat
        self.queue.add(ObjectKey(name))

    def _on_lease(self, old: RawObject | None, new: RawObject | None) -> None:
        if new is None:
            return
        name = str((new.get("metadata") or {}).get("name"))
        renew = (new.get("spec") or {}).get("renewTime")
        h = self._health_of(name)
        if renew and renew != h.lease_renew:
            h.last_signal = self._now()
            h.lease_renew = str(renew)
            self.queue.add(ObjectKey(name))

    def _on_pod(self, old: RawObject | None, new: RawObject | None) -> None:
        if new is None or not podfacts.node_name(new):
            return
        if old is not None and podfacts.node_name(old) == podfacts.node_name(new):
            return  # only newly bound pods may need an eviction timer
        node = self.nodes.get(ObjectKey(podfacts.node_name(new)))
        if node is not None and any(t.effect == "NoExecute" for t in taints.parse_taints(node)):
            self.queue.add(ObjectKey(podfacts.node_name(new)))

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.nodes, self.leases, self.pods])
        finally:
            self.queue.close()

    # -- the sync of one node ------------------------------------------------------------

    async def sync(self, key: ObjectKey) -> float | None:
        node = self.nodes.get(key)
        if node is None:
            return None
        name = str(key)
        h = self._health_of(name)
        silent_for = self._now() - h.last_signal
        stale = silent_for > self.grace
        wall = datetime.datetime.now(datetime.UTC)
        if stale:
            marked = await self._mark_unknown(node, wall, heartbeat=h.heartbeat)
            if marked is None:  # the kubelet reported meanwhile: judge again with that signal
                return RECHECK_SECONDS
            node = marked
        ready = podfacts.condition(node, "Ready")
        verdict = taints.NodeVerdict(stale=stale,
                                     ready_status=str((ready or {}).get("status") or "Unknown"))
        node = await self._reconcile_taints(node, verdict, wall)
        next_check = None if stale else self.grace - silent_for + 0.05
        evict_in = await self._evict(node, wall)
        if evict_in is not None:
            next_check = evict_in if next_check is None else min(next_check, evict_in)
        if stale and next_check is None:
            next_check = max(1.0, self.grace / 2)  # keep an eye on it until it comes back
        return next_check

    async def _mark_unknown(self, node: RawObject, wall: datetime.datetime, *,
                            heartbeat: str | None) -> RawObject | None:
        """The node with its conditions set to Unknown (as stored), or None if the kubelet
        posted status after the one judged silent (``heartbeat``): the conditions belong to
        the kubelet, and a fresh report is never overwritten, not even after a 409."""
        name = (node.get("metadata") or {}).get("name")
        reported: list[str | None] = []  # the fresh heartbeat found, if any

        def mutate(obj: RawObject) -> bool:
            if taints.reported_since(obj, heartbeat):
                reported.append(taints.ready_heartbeat(obj))
                return False
            conditions = taints.mark_unknown(obj, now=wall)
            if conditions is None:
                return False
            obj.setdefault("status", {})["conditions"] = conditions
            return True

        reply = await base.update(client=self.client, resource=api.NODES, informer=self.nodes,
                                  current=node, mutate=mutate, subresource="status")
        if reported:  # a signal, as if the informer had delivered it already
            h = self._health_of(str(name))
            h.heartbeat, h.last_signal = reported[0], self._now()
            return None
        if reply is None:
            return node
        log.info("node %s stopped renewing its lease: conditions set to Unknown", name)
        if self.recorder is not None:
            reply.setdefault("kind", "Node")
            reply.setdefault("apiVersion", "v1")
            self.recorder.record(reply, reason="NodeNotReady",
                                 message=f"Node {name} status is now: NodeNotReady")
        for pod in self.pods:
            if podfacts.node_name(pod) == name and podfacts.is_active(pod):
                await self._mark_pod_not_ready(pod, wall)
        return reply

    async def _mark_pod_not_ready(self, pod: RawObject, wall: datetime.datetime) -> None:
        stamp = podfacts.format_time(wall)

        def mutate(obj: RawObject) -> bool:
            status = obj.setdefault("status", {})
            conditions = [dict(c) for c in status.get("conditions") or []
                          if isinstance(c, dict)]
            changed = False
            for cond in conditions:
                if cond.get("type") == "Ready" and cond.get("status") != "False":
                    cond.update(status="False", lastTransitionTime=stamp)
                    changed = True
            status["conditions"] = conditions
            return changed

        try:
            await base.update(client=self.client, resource=api.PODS, informer=self.pods,
                              current=pod, mutate=mutate, subresource="status")
        except errors.NotFound:
            pass  # the pod went away meanwhile: nothing to mark

    async def _reconcile_taints(self, node: RawObject, verdict: taints.NodeVerdict,
                                wall: datetime.datetime) -> RawObject:
        def mutate(obj: RawObject) -> bool:
            new = taints.reconcile_taints(obj, verdict, now=wall)
            if new is None:
                return False
            spec = obj.setdefault("spec", {})
            if new:
                spec["taints"] = new
            else:
                spec.pop("taints", None)
            return True

        reply = await base.update(client=self.client, resource=api.NODES, informer=self.nodes,
                                  current=node, mutate=mutate)
        if reply is None:
            return node
        log.info("node %s taints now %s", (node.get("metadata") or {}).get("name"),
                 [(t.get("key"), t.get("effect")) for t in
                  (reply.get("spec") or {}).get("taints") or []])
        return reply

    async def _evict(self, node: RawObject, wall: datetime.datetime) -> float | None:
        """Delete pods whose tolerations ran out; seconds until the next one is due."""
        node_taints = [t for t in taints.parse_taints(node) if t.effect == "NoExecute"]
        if not node_taints:
            return None
        name = (node.get("metadata") or {}).get("name")
        soonest: float | None = None
        for pod in self.pods:
            if podfacts.node_name(pod) != name or podfacts.is_terminating(pod):
                continue
            due = taints.eviction_time(pod, node_taints, now=wall)
            if due is None:
                continue
            wait = (due - wall).total_seconds()
            if wait > 0:
                soonest = wait if soonest is None else min(soonest, wait)
                continue
            m = pod.get("metadata") or {}
            log.info("evicting pod %s/%s from node %s (NoExecute taint not tolerated)",
                     m.get("namespace"), m.get("name"), name)
            if self.recorder is not None:
                pod.setdefault("kind", "Pod")
                pod.setdefault("apiVersion", "v1")
                self.recorder.record(pod, reason="TaintManagerEviction",
                                     message=f"Marking for deletion Pod "
                                             f"{m.get('namespace')}/{m.get('name')}")
            try:
                reply = await self.client.delete(api.PODS, namespace=m.get("namespace"),
                                                 name=str(m.get("name")), uid=str(m.get("uid")))
            except (errors.NotFound, errors.Conflict):
                self.pods.remove(pod)
                continue
            if reply is not None:
                self.pods.upsert(reply)
            else:
                self.pods.remove(pod)
        return None if soonest is None else soonest + 0.05
