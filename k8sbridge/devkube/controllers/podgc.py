"""The pod garbage collector: pods bound to a Node that no longer exists are force-deleted.

No kubelet will ever finish such pods (a removed Mesos agent's Node, say), so without this
they would stay Terminating or Running forever. Like kube-controller-manager's PodGC, a pod
is only collected after its node has been missing for a quarantine period (40 s) and a live
GET confirms the node is gone, so a pod bound just before its Node object is seen is safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from k8sbridge.devkube.controllers import base, errors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject, key_of
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)

QUARANTINE_SECONDS = 40.0


class PodGarbageCollector:
    def __init__(self, *, client: api.ApiClient, pods: Informer, nodes: Informer,
                 quarantine_seconds: float = QUARANTINE_SECONDS,
                 clock: Callable[[], float] | None = None) -> None:  # None: the loop's clock
        self.client = client
        self.pods = pods
        self.nodes = nodes
        self.quarantine = quarantine_seconds
        self._clock = clock
        self._missing_since: dict[str, float] = {}  # node name → when we noticed
        self.queue = WorkQueue(name="podgc")
        pods.add_handler(self._on_pod)
        nodes.add_handler(self._on_node)

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _on_pod(self, old: RawObject | None, new: RawObject | None) -> None:
        if new is None or not podfacts.node_name(new):
            return
        if self.nodes.synced.is_set() and \
                self.nodes.get(ObjectKey(podfacts.node_name(new))) is None:
            self.queue.add(key_of(new))

    def _on_node(self, old: RawObject | None, new: RawObject | None) -> None:
        if new is not None:
            self._missing_since.pop(str((new.get("metadata") or {}).get("name")), None)
            return
        assert old is not None
        name = str((old.get("metadata") or {}).get("name"))
        for pod in self.pods:
            if podfacts.node_name(pod) == name:
                self.queue.add(key_of(pod))

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.pods, self.nodes])
        finally:
            self.queue.close()

    async def sync(self, key: ObjectKey) -> float | None:
        pod = self.pods.get(key)
        if pod is None:
            return None
        node = podfacts.node_name(pod)
        if not node or self.nodes.get(ObjectKey(node)) is not None:
            return None
        since = self._missing_since.setdefault(node, self._now())
        left = self.quarantine - (self._now() - since)
        if left > 0:
            return left + 0.05
        try:
            await self.client.get(api.NODES, namespace=None, name=node)
        except errors.NotFound:
            pass
        else:
            self._missing_since.pop(node, None)  # it exists after all: our cache lagged
            return None
        m = pod.get("metadata") or {}
        log.info("force-deleting pod %s bound to missing node %s", key, node)
        try:
            await self.client.delete(api.PODS, namespace=m.get("namespace"),
                                     name=str(m.get("name")), uid=str(m.get("uid")),
                                     grace_seconds=0)
        except (errors.NotFound, errors.Conflict):
            pass  # gone already, or replaced by a new pod of that name
        self.pods.remove(pod)
        return None
