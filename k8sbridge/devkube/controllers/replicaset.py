"""The ReplicaSet controller: keep ``spec.replicas`` active pods matching the template.

Pods are created from the template with ``generateName: <rs>-`` and a controller
ownerReference; surplus pods are deleted cheapest-first (``pods.rank_for_deletion``); finished
(Succeeded/Failed) and terminating pods no longer count, so they get replacements. Orphan pods
that match the selector are adopted, owned pods that stop matching are released. The status
counters are written through the status subresource.

Syncs come once per burst of pod changes, and a set may own thousands of pods, so the
controller keeps, per controlling set, a count of its pods by the few facts a sync reads
(active, terminating, ready, labels) — updated from the informer's notifications. A sync then
costs O(distinct fact combinations) instead of O(pods); only scale-down, releasing pods that
stopped matching, and ``minReadySeconds`` (time-dependent availability) walk the pods.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import logging
from typing import Any

from k8sbridge.devkube.controllers import base, errors, selectors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.events import EventRecorder
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import (
    ObjectKey,
    ObjectUid,
    RawObject,
    controller_ref,
    copy_json,
    key_of,
    owner_key,
    split_key,
    uid_of,
)
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)

BURST = 500  # at most this many creations/deletions per sync, like the real controller
STATUS_FIELDS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                 "observedGeneration")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class PodFacts:
    """What a ReplicaSet sync reads of one pod (equal facts are counted, not stored, per set)."""

    active: bool
    terminating: bool
    ready: bool
    labels: tuple[tuple[str, str], ...]

    @staticmethod
    def of(pod: RawObject) -> PodFacts:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        return PodFacts(active=podfacts.is_active(pod), terminating=podfacts.is_terminating(pod),
                        ready=podfacts.is_ready(pod), labels=tuple(sorted(labels.items())))


class PodIndex:
    """Per controller uid: how many of its pods share each ``PodFacts`` (fed by notifications)."""

    def __init__(self) -> None:
        self._entries: dict[ObjectKey, tuple[ObjectUid, PodFacts]] = {}
        self._counts: dict[ObjectUid, collections.Counter[PodFacts]] = {}

    def update(self, old: RawObject | None, new: RawObject | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        key = key_of(obj)
        previous = self._entries.pop(key, None)
        if previous is not None:
            uid, facts = previous
            counts = self._counts[uid]
            counts[facts] -= 1
            if counts[facts] <= 0:
                del counts[facts]
                if not counts:
                    del self._counts[uid]
        if new is None:
            return
        ref = controller_ref(new)
        if ref is None:
            return
        uid = ObjectUid(str(ref.get("uid", "")))
        facts = PodFacts.of(new)
        self._entries[key] = (uid, facts)
        self._counts.setdefault(uid, collections.Counter())[facts] += 1

    def counts(self, uid: ObjectUid) -> list[tuple[PodFacts, int]]:
        """(facts, number of pods) of the pods whose controller is ``uid``."""
        return list(self._counts.get(uid, {}).items())


class ReplicaSetController:
    def __init__(self, *, client: api.ApiClient, pods: Informer, replicasets: Informer,
                 recorder: EventRecorder | None = None,  # None: no events
                 resource: api.Resource = api.REPLICASETS) -> None:
        """``resource``: REPLICASETS, or REPLICATIONCONTROLLERS for the replication manager
        (the same logic over v1 ReplicationControllers and their equality selectors)."""
        self.client = client
        self.resource = resource
        self.kind = resource.kind
        self.recorder = recorder
        self.pods = pods
        self.replicasets = replicasets
        self.queue = WorkQueue(name="replicaset" if resource is api.REPLICASETS
                               else "replicationmanager")
        self.index = PodIndex()
        pods.add_handler(self.index.update)  # before _on_pod: syncs must see the new counts
        pods.add_handler(self._on_pod)
        replicasets.add_handler(self._on_replicaset)

    # -- event handlers: map changes to keys ---------------------------------------------

    def _on_replicaset(self, old: RawObject | None, new: RawObject | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _on_pod(self, old: RawObject | None, new: RawObject | None) -> None:
        for obj in (old, new):
            if obj is None:
                continue
            ns = (obj.get("metadata") or {}).get("namespace") or ""
            key = owner_key(obj, self.kind)
            if key is not None:
                self.queue.add(key)
            elif obj is new and controller_ref(obj) is None and not podfacts.is_terminating(obj):
                labels = (obj.get("metadata") or {}).get("labels") or {}
                for rs in self.replicasets.items(ns):
                    try:
                        sel = self._selector(rs.get("spec") or {})
                    except selectors.SelectorError:
                        continue
                    if sel.matches(labels):
                        self.queue.add(key_of(rs))

    def _selector(self, spec: dict[str, Any]) -> selectors.LabelSelector:
        raw = spec.get("selector")
        if self.resource is api.REPLICATIONCONTROLLERS:  # an equality map
            raw = {"matchLabels": raw} if isinstance(raw, dict) and raw else None
        return selectors.parse_selector(raw)

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.pods, self.replicasets])
        finally:
            self.queue.close()

    # -- the sync ------------------------------------------------------------------------

    async def sync(self, key: ObjectKey) -> float | None:
        rs = self.replicasets.get(key)
        if rs is None:
            return None
        ns, name = split_key(key)
        spec = rs.get("spec") or {}
        try:
            selector = self._selector(spec)
        except selectors.SelectorError as e:
            log.warning("replicaset %s has an invalid selector: %s", key, e)
            return None
        await self._claim(rs, selector)
        uid = uid_of(rs)
        active_count = sum(n for facts, n in self.index.counts(uid)
                           if facts.active and selector.matches(dict(facts.labels)))
        replicas = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        failure: errors.ControllerError | None = None
        if not podfacts.is_terminating(rs):
            diff = active_count - replicas
            if diff < 0:
                try:
                    await self._create(rs, min(-diff, BURST))
                except errors.ControllerError as e:
                    failure = e  # reported in status (ReplicaFailure), then retried
            elif diff > 0:
                active = [p for p in self.pods.controlled_by(uid) if podfacts.is_active(p)
                          and selector.matches((p.get("metadata") or {}).get("labels") or {})]
                for pod in podfacts.pods_to_delete(active, min(diff, BURST)):
                    await self._delete(pod)
        again = await self._update_status(rs, name, failure=failure)
        if failure is not None:
            raise failure
        return again

    async def _claim(self, rs: RawObject, selector: selectors.LabelSelector) -> None:
        """Adopt matching orphans and release controlled pods that stopped matching."""
        uid = uid_of(rs)
        ns = (rs.get("metadata") or {}).get("namespace") or ""
        if any(not facts.terminating and not selector.matches(dict(facts.labels))
               for facts, _ in self.index.counts(uid)):
            for pod in self.pods.controlled_by(uid):
                labels = (pod.get("metadata") or {}).get("labels") or {}
                if not selector.matches(labels) and not podfacts.is_terminating(pod):
                    await self._set_owner(pod, rs, adopt=False)
        if podfacts.is_terminating(rs):
            return
        for pod in self.pods.uncontrolled(ns):
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if selector.matches(labels) and not podfacts.is_terminating(pod):
                await self._set_owner(pod, rs, adopt=True)

    async def _set_owner(self, pod: RawObject, rs: RawObject, *, adopt: bool) -> RawObject | None:
        m = pod.get("metadata") or {}
        patch = base.adoption_patch(pod, rs, adopt=adopt, kind=self.kind,
                                    api_version=self.resource.group_version)
        try:
            reply = await self.client.patch(api.PODS, namespace=m.get("namespace"),
                                            name=str(m.get("name")), body=patch)
        except (errors.NotFound, errors.Conflict):
            self.queue.add(key_of(rs))  # re-evaluate with fresh state
            return None
        self.pods.upsert(reply)
        log.info("replicaset %s %s pod %s", key_of(rs), "adopted" if adopt else "released",
                 m.get("name"))
        return reply

    def _pod_from_template(self, rs: RawObject) -> RawObject:
        m = rs.get("metadata") or {}
        template = copy_json((rs.get("spec") or {}).get("template") or {})
        tmeta = template.get("metadata") or {}
        meta: dict[str, Any] = {
            "generateName": f"{m.get('name')}-",
            "namespace": m.get("namespace"),
            "ownerReferences": [base.owner_reference(
                rs, api_version=self.resource.group_version, kind=self.kind)],
        }
        for field in ("labels", "annotations", "finalizers"):
            if tmeta.get(field):
                meta[field] = tmeta[field]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                "spec": template.get("spec") or {}}

    async def _create(self, rs: RawObject, count: int) -> None:
        """Create ``count`` pods in slow-start batches (1, 2, 4, ...) that stop on errors."""
        ns = (rs.get("metadata") or {}).get("namespace")
        batch = 1
        remaining = count
        while remaining > 0:
            size = min(batch, remaining)
            results = await asyncio.gather(
                *(self.client.create(api.PODS, self._pod_from_template(rs), namespace=ns)
                  for _ in range(size)), return_exceptions=True)
            failure: BaseException | None = None
            for result in results:
                if isinstance(result, BaseException):
                    failure = failure or result
                else:
                    result.setdefault("kind", "Pod")
                    result.setdefault("apiVersion", "v1")
                    self.pods.upsert(result)
                    self._event(rs, "SuccessfulCreate",
                                f"Created pod: {result['metadata'].get('name')}")
            if failure is not None:
                self._event(rs, "FailedCreate", f"Error creating: {failure}", warning=True)
                if isinstance(failure, errors.ControllerError):
                    raise failure
                raise errors.ControllerError(f"creating pods: {failure!r}") from failure
            remaining -= size
            batch *= 2

    async def _delete(self, pod: RawObject) -> None:
        m = pod.get("metadata") or {}
        try:
            reply = await self.client.delete(api.PODS, namespace=m.get("namespace"),
                                             name=str(m.get("name")), uid=str(m.get("uid")))
        except errors.NotFound:
            self.pods.remove(pod)
            return
        except errors.Conflict:  # UID precondition: the pod was replaced meanwhile
            return
        owner = self.replicasets.get(ObjectKey(
            f"{m.get('namespace')}/{(controller_ref(pod) or {}).get('name')}"))
        if owner is not None:
            self._event(owner, "SuccessfulDelete", f"Deleted pod: {m.get('name')}")
        if reply is not None:
            self.pods.upsert(reply)
        else:
            self.pods.remove(pod)

    def _event(self, rs: RawObject, reason: str, message: str, *,
               warning: bool = False) -> None:
        if self.recorder is not None:
            rs.setdefault("kind", self.kind)
            rs.setdefault("apiVersion", self.resource.group_version)
            self.recorder.record(rs, reason=reason, message=message,
                                 type_="Warning" if warning else "Normal")

    async def _update_status(self, rs: RawObject, name: str, *,
                             failure: errors.ControllerError | None) -> float | None:
        """Write the counters; return seconds until a pod becomes available, if one will."""
        spec = rs.get("spec") or {}
        min_ready = float(spec.get("minReadySeconds") or 0)
        now = _now()
        selector_ok = True
        try:
            selector = self._selector(spec)
        except selectors.SelectorError:
            selector_ok = False
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        replicas = ready = available = fully_labeled = 0
        wait: float | None = None
        if min_ready <= 0:  # availability is readiness: count the facts, not the pods
            for facts, n in self.index.counts(uid_of(rs)):
                labels = dict(facts.labels)
                if not facts.active or (selector_ok and not selector.matches(labels)):
                    continue
                replicas += n
                if all(labels.get(k) == v for k, v in template_labels.items()):
                    fully_labeled += n
                if facts.ready:
                    ready += n
                    available += n
        else:
            active = [p for p in self.pods.controlled_by(uid_of(rs)) if podfacts.is_active(p)
                      and (not selector_ok or selector.matches(
                          (p.get("metadata") or {}).get("labels") or {}))]
            replicas = len(active)
            for pod in active:
                labels = (pod.get("metadata") or {}).get("labels") or {}
                if all(labels.get(k) == v for k, v in template_labels.items()):
                    fully_labeled += 1
                if podfacts.is_ready(pod):
                    ready += 1
                left = podfacts.available_in(pod, min_ready_seconds=min_ready, now=now)
                if left == 0.0:
                    available += 1
                elif left is not None:
                    wait = left if wait is None else min(wait, left)
        wanted = {"replicas": replicas, "fullyLabeledReplicas": fully_labeled,
                  "readyReplicas": ready, "availableReplicas": available,
                  "observedGeneration": int((rs.get("metadata") or {}).get("generation") or 0)}

        def mutate(obj: RawObject) -> bool:
            status = obj.setdefault("status", {})
            conditions = _with_failure(status.get("conditions") or [], failure, now=now)
            if all(int(status.get(k) or 0) == v for k, v in wanted.items()) and \
                    conditions == (status.get("conditions") or []):
                return False
            status.update(wanted)
            if conditions:
                status["conditions"] = conditions
            else:
                status.pop("conditions", None)
            return True

        try:
            await base.update(client=self.client, resource=self.resource,
                              informer=self.replicasets, current=rs, mutate=mutate,
                              subresource="status")
        except errors.NotFound:
            log.debug("replicaset %s vanished before its status update", name)
        return None if wait is None else wait + 0.05


def _with_failure(conditions: list[Any], failure: errors.ControllerError | None, *,
                  now: datetime.datetime) -> list[Any]:
    """``conditions`` with ReplicaFailure set (pod creation failed) or removed (it worked)."""
    others = [c for c in conditions if isinstance(c, dict) and c.get("type") != "ReplicaFailure"]
    if failure is None:
        return others
    message = failure.message if isinstance(failure, errors.ApiError) else str(failure)
    previous = next((c for c in conditions if isinstance(c, dict)
                     and c.get("type") == "ReplicaFailure"), None)
    if previous is not None and previous.get("message") == message:
        return [*others, previous]
    return [*others, {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                      "message": message[:1024],
                      "lastTransitionTime": podfacts.format_time(now)}]
