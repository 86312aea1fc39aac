"""The disruption controller: keeps every PodDisruptionBudget's status current.

As kube-controller-manager's: a budget is synced when it changes and when a pod it selects
changes (the eviction subresource then reads ``disruptionsAllowed``); the scale of a pod's
controller comes from the Deployment above its ReplicaSet, the ReplicaSet, the StatefulSet or
the ReplicationController in the caches; a recorded disruption whose pod was not deleted within
two minutes is dropped at its deadline. The arithmetic is ``disruptionplan``'s.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable

from k8sbridge.devkube.controllers import base, disruptionplan, errors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import selectors as sel
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject, controller_ref, key_of
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]
PODDISRUPTIONBUDGETS = api.Resource(group_version="policy/v1", plural="poddisruptionbudgets",
                                    kind="PodDisruptionBudget")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _selects(pdb: RawObject, pod: RawObject) -> bool:
    try:
        selector = sel.parse_selector((pdb.get("spec") or {}).get("selector"))
    except sel.SelectorError:
        return False
    return selector.matches((pod.get("metadata") or {}).get("labels"))


class DisruptionController:
    def __init__(self, *, client: api.ApiClient, pdbs: Informer, pods: Informer,
                 replicasets: Informer, deployments: Informer, statefulsets: Informer,
                 replication: Informer, clock: Clock = _now) -> None:
        self.client = client
        self.pdbs = pdbs
        self.pods = pods
        self.owners = {"ReplicaSet": replicasets, "Deployment": deployments,
                       "StatefulSet": statefulsets, "ReplicationController": replication}
        self.clock = clock
        self.queue = WorkQueue(name="disruption")
        pdbs.add_handler(self._on_pdb)
        pods.add_handler(self._on_pod)

    def _on_pdb(self, old: RawObject | None, new: RawObject | None) -> None:
        if new is not None:
            self.queue.add(key_of(new))

    def _on_pod(self, old: RawObject | None, new: RawObject | None) -> None:
        for pod in (old, new):
            if pod is None:
                continue
            ns = (pod.get("metadata") or {}).get("namespace")
            for pdb in self.pdbs.items(ns):
                if _selects(pdb, pod):
                    self.queue.add(key_of(pdb))

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.pdbs, self.pods, *self.owners.values()])
        finally:
            self.queue.close()

    def _owner(self, namespace: str, ref: dict[str, object] | None) -> RawObject | None:
        if ref is None:
            return None
        informer = self.owners.get(str(ref.get("kind")))
        if informer is None:
            return None
        owner = informer.get(ObjectKey(f"{namespace}/{ref.get('name')}"))
        if owner is None or (owner.get("metadata") or {}).get("uid") != ref.get("uid"):
            return None
        return owner

    def scale_of(self, pod: RawObject) -> disruptionplan.Scale | None:
        """The pod's controller and its ``spec.replicas`` (a ReplicaSet's Deployment's)."""
        ns = str((pod.get("metadata") or {}).get("namespace", ""))
        ref = controller_ref(pod)
        owner = self._owner(ns, dict(ref) if ref is not None else None)
        if owner is None:
            return None
        above = controller_ref(owner)
        if ref is not None and ref.get("kind") == "ReplicaSet" and above is not None \
                and above.get("kind") == "Deployment":
            owner = self._owner(ns, dict(above))
            if owner is None:
                return None
        replicas = (owner.get("spec") or {}).get("replicas", 1)
        return disruptionplan.Scale(uid=str(owner["metadata"]["uid"]), replicas=int(replicas))

    async def sync(self, key: ObjectKey) -> float | None:
        pdb = self.pdbs.get(key)
        if pdb is None:
            return None
        ns = (pdb.get("metadata") or {}).get("namespace")
        pods = [p for p in self.pods.items(ns) if _selects(pdb, p)]
        result = disruptionplan.plan(pdb, pods, self.scale_of, now=self.clock())

        def mutate(obj: RawObject) -> bool:
            old = obj.get("status") or {}
            if _same(old, result.status):
                return False
            obj["status"] = result.status
            return True

        try:
            await base.update(client=self.client, resource=PODDISRUPTIONBUDGETS,
                              informer=self.pdbs, current=pdb, mutate=mutate,
                              subresource="status")
        except errors.NotFound:
            return None
        return result.recheck


def _same(old: dict[str, object], new: dict[str, object]) -> bool:
    """Equal apart from the conditions' transition times (no write for a no-op)."""
    def strip(status: dict[str, object]) -> dict[str, object]:
        conditions = status.get("conditions") or []
        assert isinstance(conditions, list)
        return {**status, "conditions": [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions]}
    return strip(old) == strip(new)
