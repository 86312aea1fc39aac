"""The Deployment controller: one ReplicaSet per template version, rolled per strategy.

For each Deployment it finds (or creates) the ReplicaSet ``<name>-<pod-template-hash>`` for
the current template, scales it and the older sets against each other (RollingUpdate within
maxSurge/maxUnavailable, or Recreate: old sets to zero and their pods gone first), maintains
the revision annotations, prunes history beyond ``revisionHistoryLimit`` and writes the
status counters and the Available/Progressing conditions that ``kubectl rollout status``
waits for. The arithmetic lives in ``rollout``; this module only reads caches and writes.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from k8sbridge.devkube.controllers import base, errors, hashing, rollout, selectors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.events import EventRecorder
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import (
    ObjectKey,
    RawObject,
    controller_ref,
    copy_json,
    key_of,
    owner_key,
    uid_of,
)
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# the annotations a Deployment's ReplicaSets must not copy from it
_SKIPPED_ANNOTATIONS = {REVISION, DESIRED_REPLICAS, MAX_REPLICAS,
                        "kubectl.kubernetes.io/last-applied-configuration",
                        "deployment.kubernetes.io/revision-history"}
DEFAULT_PROGRESS_DEADLINE = 600


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _replicas(obj: RawObject) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _status_int(obj: RawObject, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def _revision(rs: RawObject) -> int:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


def _created(obj: RawObject) -> float:
    when = podfacts.parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return when.timestamp() if when else 0.0


def _annotation_int(rs: RawObject, name: str) -> int | None:
    raw = ((rs.get("metadata") or {}).get("annotations") or {}).get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _scale_info(rs: RawObject) -> rollout.ScaleInfo:
    return rollout.ScaleInfo(
        name=str((rs.get("metadata") or {}).get("name")), replicas=_replicas(rs),
        available=_status_int(rs, "availableReplicas"), created=_created(rs),
        desired_annotation=_annotation_int(rs, DESIRED_REPLICAS),
        max_annotation=_annotation_int(rs, MAX_REPLICAS))


def _counts(rs: RawObject) -> rollout.ReplicaSetCounts:
    return rollout.ReplicaSetCounts(
        name=str((rs.get("metadata") or {}).get("name")), replicas=_replicas(rs),
        available=_status_int(rs, "availableReplicas"), created=_created(rs))


class DeploymentController:
    def __init__(self, *, client: api.ApiClient, deployments: Informer,
                 replicasets: Informer, pods: Informer,
                 recorder: EventRecorder | None = None) -> None:  # None: no events
        self.client = client
        self.recorder = recorder
        self.deployments = deployments
        self.replicasets = replicasets
        self.pods = pods
        self.queue = WorkQueue(name="deployment")
        # set when a sync creates the new set; read by the status step of the same sync
        self._progress_note: dict[str, tuple[str, str]] = {}
        deployments.add_handler(self._on_deployment)
        replicasets.add_handler(self._on_replicaset)
        pods.add_handler(self._on_pod)

    # -- event handlers ------------------------------------------------------------------

    def _on_deployment(self, old: RawObject | None, new: RawObject | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _on_replicaset(self, old: RawObject | None, new: RawObject | None) -> None:
        for obj in (old, new):
            if obj is None:
                continue
            key = owner_key(obj, "Deployment")
            if key is not None:
                self.queue.add(key)
            elif obj is new:  # an orphan: a deployment may adopt it
                ns = (obj.get("metadata") or {}).get("namespace") or ""
                labels = (obj.get("metadata") or {}).get("labels") or {}
                for d in self.deployments.items(ns):
                    try:
                        sel = selectors.parse_selector((d.get("spec") or {}).get("selector"))
                    except selectors.SelectorError:
                        continue
                    if sel.matches(labels):
                        self.queue.add(key_of(d))

    def _on_pod(self, old: RawObject | None, new: RawObject | None) -> None:
        # Recreate waits for old pods to go away: a pod's changes matter to its deployment.
        if new is not None and old is not None:
            return  # only creations and deletions change "are old pods running"
        obj = new if new is not None else old
        assert obj is not None
        rs_key = owner_key(obj, "ReplicaSet")
        if rs_key is None:
            return
        rs = self.replicasets.get(rs_key)
        if rs is not None:
            key = owner_key(rs, "Deployment")
            if key is not None:
                self.queue.add(key)

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.deployments, self.replicasets, self.pods])
        finally:
            self.queue.close()

    # -- the sync ------------------------------------------------------------------------

    async def sync(self, key: ObjectKey) -> float | None:
        d = self.deployments.get(key)
        if d is None:
            return None
        spec = d.get("spec") or {}
        try:
            selector = selectors.parse_selector(spec.get("selector"))
        except selectors.SelectorError as e:
            log.warning("deployment %s has an invalid selector: %s", key, e)
            return None
        if not selector.requirements:
            log.warning("deployment %s has an empty selector; it would select every pod", key)
            return None
        all_rs = await self._claim(d, selector)
        if podfacts.is_terminating(d):
            return await self._sync_status(d, all_rs, new_rs=self._find_new(d, all_rs))
        replicas = _replicas(d)
        strategy = spec.get("strategy") or {}
        kind = strategy.get("type") or "RollingUpdate"
        try:
            if kind == "Recreate":
                surge, unavailable = 0, replicas
            else:
                ru = strategy.get("rollingUpdate") or {}
                surge, unavailable = rollout.resolve_fenceposts(
                    max_surge=ru.get("maxSurge", "25%"),
                    max_unavailable=ru.get("maxUnavailable", "25%"), replicas=replicas)
        except rollout.StrategyError as e:
            log.warning("deployment %s has an invalid strategy: %s", key, e)
            return None
        new_rs = self._find_new(d, all_rs)
        old_rs = [rs for rs in all_rs if rs is not new_rs]

        if spec.get("paused") or rollout.is_scaling_event(
                replicas=replicas, sets=[_scale_info(rs) for rs in all_rs]):
            # only sizes change: proportional scaling, no rollout step (the controller's sync)
            new_rs, old_rs = await self._proportional(d, new_rs, old_rs, replicas, surge,
                                                      rolling=kind != "Recreate")
            await self._cleanup(d, old_rs)
            return await self._sync_status(
                d, [*old_rs, *([new_rs] if new_rs else [])], new_rs,
                max_unavailable=0 if kind == "Recreate" else unavailable)

        if kind == "Recreate":
            new_rs, old_rs = await self._recreate(d, new_rs, old_rs, replicas)
        else:
            new_rs, old_rs = await self._rolling(d, new_rs, old_rs, replicas, surge, unavailable)
        await self._cleanup(d, old_rs)
        all_now = [*old_rs, *([new_rs] if new_rs is not None else [])]
        return await self._sync_status(d, all_now, new_rs,
                                       max_unavailable=0 if kind == "Recreate" else unavailable)

    async def _proportional(
            self, d: RawObject, new_rs: RawObject | None, old_rs: list[RawObject],
            replicas: int, surge: int, *,
            rolling: bool) -> tuple[RawObject | None, list[RawObject]]:
        sizes = rollout.scale(
            replicas=replicas, max_surge=surge, rolling=rolling,
            new_rs=_scale_info(new_rs) if new_rs is not None else None,
            old_rs=[_scale_info(rs) for rs in old_rs],
            current_total=_status_int(d, "replicas"))

        async def resize(rs: RawObject) -> RawObject:
            name = str((rs.get("metadata") or {}).get("name"))
            size = sizes.get(name, _replicas(rs))
            if name not in sizes and size == 0:
                return rs
            # also refreshes desired/max-replicas, which ends the scaling event
            return await self._scale(d, rs, size, surge)

        new_after = await resize(new_rs) if new_rs is not None else None
        return new_after, [await resize(rs) for rs in old_rs]

    async def _recreate(
            self, d: RawObject, new_rs: RawObject | None, old_rs: list[RawObject],
            replicas: int) -> tuple[RawObject | None, list[RawObject]]:
        scaled = []
        for rs in old_rs:
            scaled.append(await self._scale(d, rs, 0, 0) if _replicas(rs) else rs)
        old_rs = scaled
        old_running = any(
            podfacts.phase(p) not in ("Succeeded", "Failed")
            for rs in old_rs for p in self.pods.controlled_by(uid_of(rs)))
        if old_running:
            return new_rs, old_rs
        if new_rs is None:
            new_rs = await self._create_new(d, old_rs, replicas, 0)
        elif _replicas(new_rs) != replicas:
            new_rs = await self._scale(d, new_rs, replicas, 0)
        return new_rs, old_rs

    async def _rolling(
            self, d: RawObject, new_rs: RawObject | None, old_rs: list[RawObject],
            replicas: int, surge: int,
            unavailable: int) -> tuple[RawObject | None, list[RawObject]]:
        counts_old = [_counts(rs) for rs in old_rs]
        if new_rs is None:
            target = rollout.new_rs_replicas(replicas=replicas, max_surge=surge, new_rs=None,
                                             all_rs=counts_old)
            new_rs = await self._create_new(d, old_rs, target, surge)
        else:
            target = rollout.new_rs_replicas(replicas=replicas, max_surge=surge,
                                             new_rs=_counts(new_rs),
                                             all_rs=[*counts_old, _counts(new_rs)])
            if target != _replicas(new_rs) or self._annotations_stale(d, new_rs, old_rs, surge):
                new_rs = await self._scale(d, new_rs, target, surge, old_rs=old_rs)
        if new_rs is None:
            return None, old_rs
        decisions = rollout.scale_down_old(replicas=replicas, max_unavailable=unavailable,
                                           new_rs=_counts(new_rs), old_rs=counts_old)
        updated: list[RawObject] = []
        for rs in old_rs:
            name = str((rs.get("metadata") or {}).get("name"))
            if name in decisions:
                updated.append(await self._scale(d, rs, decisions[name], surge))
            else:
                updated.append(rs)
        return new_rs, updated

    # -- finding, adopting, creating and scaling replica sets -----------------------------

    async def _claim(self, d: RawObject,
                     selector: selectors.LabelSelector) -> list[RawObject]:
        uid = uid_of(d)
        ns = (d.get("metadata") or {}).get("namespace") or ""
        owned: list[RawObject] = []
        for rs in self.replicasets.items(ns):
            ref = controller_ref(rs)
            labels = (rs.get("metadata") or {}).get("labels") or {}
            if ref is not None and ref.get("uid") == uid:
                if selector.matches(labels):
                    owned.append(rs)
                else:
                    await self._set_owner(rs, d, adopt=False)
            elif ref is None and selector.matches(labels) and not podfacts.is_terminating(d) \
                    and not podfacts.is_terminating(rs):
                adopted = await self._set_owner(rs, d, adopt=True)
                if adopted is not None:
                    owned.append(adopted)
        return owned

    async def _set_owner(self, rs: RawObject, d: RawObject, *, adopt: bool) -> RawObject | None:
        m = rs.get("metadata") or {}
        patch = base.adoption_patch(rs, d, adopt=adopt, kind="Deployment")
        try:
            reply = await self.client.patch(api.REPLICASETS, namespace=m.get("namespace"),
                                            name=str(m.get("name")), body=patch)
        except (errors.NotFound, errors.Conflict):
            self.queue.add(key_of(d))
            return None
        self.replicasets.upsert(reply)
        return reply

    def _template_hash(self, d: RawObject) -> str:
        template = (d.get("spec") or {}).get("template") or {}
        collisions = (d.get("status") or {}).get("collisionCount")
        return hashing.pod_template_hash(
            template, collision_count=int(collisions) if collisions is not None else None)

    def _find_new(self, d: RawObject, all_rs: list[RawObject]) -> RawObject | None:
        """The set running the current template: same hash label, else same template."""
        wanted = self._template_hash(d)
        template = hashing.template_without_hash((d.get("spec") or {}).get("template") or {})
        same_template = None
        for rs in sorted(all_rs, key=_created):
            labels = (rs.get("metadata") or {}).get("labels") or {}
            if labels.get(hashing.TEMPLATE_HASH_LABEL) == wanted:
                return rs
            rs_template = (rs.get("spec") or {}).get("template") or {}
            if same_template is None and hashing.template_without_hash(rs_template) == template:
                same_template = rs
        return same_template

    def _annotations_for(self, d: RawObject, old_rs: list[RawObject], surge: int,
                         *, current_revision: int) -> dict[str, str]:
        max_old = max((_revision(rs) for rs in old_rs), default=0)
        revision = current_revision if current_revision > max_old else max_old + 1
        copied = {k: v for k, v in ((d.get("metadata") or {}).get("annotations") or {}).items()
                  if k not in _SKIPPED_ANNOTATIONS}
        return {**copied, REVISION: str(revision), DESIRED_REPLICAS: str(_replicas(d)),
                MAX_REPLICAS: str(rollout.max_replicas_annotation(
                    replicas=_replicas(d), max_surge=surge))}

    def _annotations_stale(self, d: RawObject, new_rs: RawObject, old_rs: list[RawObject],
                           surge: int) -> bool:
        have = (new_rs.get("metadata") or {}).get("annotations") or {}
        want = self._annotations_for(d, old_rs, surge, current_revision=_revision(new_rs))
        return any(have.get(k) != v for k, v in want.items())

    async def _create_new(self, d: RawObject, old_rs: list[RawObject], replicas: int,
                          surge: int) -> RawObject | None:
        m = d.get("metadata") or {}
        spec = d.get("spec") or {}
        h = self._template_hash(d)
        template = copy_json(spec.get("template") or {})
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), hashing.TEMPLATE_HASH_LABEL: h}
        selector = copy_json(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}),
                                   hashing.TEMPLATE_HASH_LABEL: h}
        name = f"{m.get('name')}-{h}"
        body: RawObject = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": name, "namespace": m.get("namespace"), "labels": tmeta["labels"],
                "annotations": self._annotations_for(d, old_rs, surge, current_revision=0),
                "ownerReferences": [base.owner_reference(d, api_version="apps/v1",
                                                         kind="Deployment")],
            },
            "spec": {"replicas": replicas, "minReadySeconds": spec.get("minReadySeconds") or 0,
                     "selector": selector, "template": template},
        }
        try:
            created = await self.client.create(api.REPLICASETS, body,
                                               namespace=m.get("namespace"))
        except errors.AlreadyExists:
            existing = await self.client.get(api.REPLICASETS, namespace=m.get("namespace"),
                                             name=name)
            ref = controller_ref(existing) or {}
            same = hashing.template_without_hash(
                (existing.get("spec") or {}).get("template") or {}) == \
                hashing.template_without_hash(spec.get("template") or {})
            if ref.get("uid") == uid_of(d) and same:
                existing.setdefault("kind", "ReplicaSet")
                existing.setdefault("apiVersion", "apps/v1")
                self.replicasets.upsert(existing)
                return existing
            await self._bump_collision_count(d)  # hash collision: next sync uses a new name
            return None
        created.setdefault("kind", "ReplicaSet")
        created.setdefault("apiVersion", "apps/v1")
        self.replicasets.upsert(created)
        log.info("deployment %s created replicaset %s (%d replicas)", key_of(d), name, replicas)
        self._event(d, f"Scaled up replica set {name} from 0 to {replicas}")
        self._progress_note[uid_of(d)] = ("NewReplicaSetCreated",
                                          f'Created new replica set "{name}"')
        return created

    async def _bump_collision_count(self, d: RawObject) -> None:
        def mutate(obj: RawObject) -> bool:
            status = obj.setdefault("status", {})
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            return True

        await base.update(client=self.client, resource=api.DEPLOYMENTS,
                          informer=self.deployments, current=d, mutate=mutate,
                          subresource="status")

    async def _scale(self, d: RawObject, rs: RawObject, replicas: int, surge: int, *,
                     old_rs: list[RawObject] | None = None) -> RawObject:
        """Set the set's replicas (and, for the new set, its annotations)."""
        annotations: dict[str, str] | None = None
        if old_rs is not None:
            annotations = self._annotations_for(d, old_rs, surge,
                                                current_revision=_revision(rs))
        elif replicas > 0 or _replicas(rs) > 0:
            annotations = {DESIRED_REPLICAS: str(_replicas(d)),
                           MAX_REPLICAS: str(_replicas(d) + surge)}

        def mutate(obj: RawObject) -> bool:
            spec = obj.setdefault("spec", {})
            meta = obj.setdefault("metadata", {})
            have = meta.get("annotations") or {}
            changed = _replicas(obj) != replicas or any(
                have.get(k) != v for k, v in (annotations or {}).items())
            if not changed:
                return False
            spec["replicas"] = replicas
            if annotations:
                meta["annotations"] = {**have, **annotations}
            return True

        before = _replicas(rs)
        reply = await base.update(client=self.client, resource=api.REPLICASETS,
                                  informer=self.replicasets, current=rs, mutate=mutate)
        if reply is None:
            return rs
        if before != replicas:
            rs_name = (rs.get("metadata") or {}).get("name")
            log.info("deployment %s scaled replicaset %s %d -> %d", key_of(d), rs_name, before,
                     replicas)
            self._event(d, f"Scaled {'up' if replicas > before else 'down'} replica set "
                           f"{rs_name} from {before} to {replicas}")
        return reply

    def _event(self, d: RawObject, message: str) -> None:
        if self.recorder is not None:
            d.setdefault("kind", "Deployment")
            d.setdefault("apiVersion", "apps/v1")
            self.recorder.record(d, reason="ScalingReplicaSet", message=message)

    async def _cleanup(self, d: RawObject, old_rs: list[RawObject]) -> None:
        """Delete the oldest fully scaled-down sets beyond revisionHistoryLimit."""
        limit_raw = (d.get("spec") or {}).get("revisionHistoryLimit")
        limit = 10 if limit_raw is None else int(limit_raw)
        idle = [rs for rs in old_rs if _replicas(rs) == 0 and _status_int(rs, "replicas") == 0
                and not podfacts.is_terminating(rs)]
        surplus = len(idle) - limit
        if surplus <= 0:
            return
        for rs in sorted(idle, key=lambda r: (_revision(r), _created(r)))[:surplus]:
            m = rs.get("metadata") or {}
            try:
                reply = await self.client.delete(api.REPLICASETS, namespace=m.get("namespace"),
                                                 name=str(m.get("name")), uid=str(m.get("uid")))
            except (errors.NotFound, errors.Conflict):
                reply = None  # already gone or replaced: nothing to clean up
            if reply is not None:
                self.replicasets.upsert(reply)  # held by finalizers for now
            else:
                self.replicasets.remove(rs)

    # -- status --------------------------------------------------------------------------

    async def _sync_status(self, d: RawObject, all_rs: list[RawObject],
                           new_rs: RawObject | None, *,
                           max_unavailable: int | None = None) -> float | None:
        replicas = _replicas(d)
        if max_unavailable is None:
            max_unavailable = 0
        available = sum(_status_int(rs, "availableReplicas") for rs in all_rs)
        total_spec = sum(_replicas(rs) for rs in all_rs)
        meta = d.get("metadata") or {}
        generation = int(meta.get("generation") or 0)
        counters: dict[str, int] = {
            "observedGeneration": generation,
            "replicas": sum(_status_int(rs, "replicas") for rs in all_rs),
            "updatedReplicas": _status_int(new_rs, "replicas") if new_rs is not None else 0,
            "readyReplicas": sum(_status_int(rs, "readyReplicas") for rs in all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total_spec - available),
        }
        now = _now()
        stamp = podfacts.format_time(now)
        old_status = d.get("status") or {}
        conditions = [dict(c) for c in old_status.get("conditions") or [] if isinstance(c, dict)]

        def set_condition(kind: str, status: str, reason: str, message: str, *,
                          touch: bool) -> None:
            for cond in conditions:
                if cond.get("type") == kind:
                    if cond.get("status") != status:
                        cond["lastTransitionTime"] = stamp
                    if (cond.get("status"), cond.get("reason"),
                            cond.get("message")) != (status, reason, message) or touch:
                        cond["lastUpdateTime"] = stamp
                    cond.update(status=status, reason=reason, message=message)
                    return
            conditions.append({"type": kind, "status": status, "reason": reason,
                               "message": message, "lastUpdateTime": stamp,
                               "lastTransitionTime": stamp})

        if rollout.minimum_available(replicas=replicas, max_unavailable=max_unavailable,
                                     available=available):
            set_condition("Available", "True", "MinimumReplicasAvailable",
                          "Deployment has minimum availability.", touch=False)
        else:
            set_condition("Available", "False", "MinimumReplicasUnavailable",
                          "Deployment does not have minimum availability.", touch=False)

        # a set that cannot create its pods makes the deployment report it too
        failure = next((c for rs in all_rs for c in (rs.get("status") or {}).get("conditions")
                        or [] if isinstance(c, dict) and c.get("type") == "ReplicaFailure"
                        and c.get("status") == "True"), None)
        if failure is not None:
            set_condition("ReplicaFailure", "True", str(failure.get("reason") or "FailedCreate"),
                          str(failure.get("message") or ""), touch=False)
        else:
            conditions[:] = [c for c in conditions if c.get("type") != "ReplicaFailure"]

        requeue: float | None = None
        deadline = (d.get("spec") or {}).get("progressDeadlineSeconds")
        deadline_s = DEFAULT_PROGRESS_DEADLINE if deadline is None else int(deadline)
        rs_name = str((new_rs or {}).get("metadata", {}).get("name", ""))
        note = self._progress_note.pop(uid_of(d), None)
        complete = new_rs is not None and rollout.is_complete(
            replicas=replicas, updated=counters["updatedReplicas"], total=counters["replicas"],
            available=available, generation=generation, observed_generation=generation)
        progressed = any(counters[k] != int(old_status.get(k) or 0)
                         for k in ("updatedReplicas", "readyReplicas", "availableReplicas")) or \
            counters["replicas"] < int(old_status.get("replicas") or 0)
        if complete:
            set_condition("Progressing", "True", "NewReplicaSetAvailable",
                          f'ReplicaSet "{rs_name}" has successfully progressed.', touch=False)
        elif note is not None:
            set_condition("Progressing", "True", note[0], note[1], touch=True)
        elif new_rs is not None and not podfacts.is_terminating(d) and \
                not (d.get("spec") or {}).get("paused"):
            current = next((c for c in conditions if c.get("type") == "Progressing"), None)
            last = podfacts.parse_time((current or {}).get("lastUpdateTime")) or now
            if progressed or current is None or current.get("reason") == \
                    "NewReplicaSetAvailable":
                set_condition("Progressing", "True", "ReplicaSetUpdated",
                              f'ReplicaSet "{rs_name}" is progressing.', touch=True)
                requeue = float(deadline_s) + 0.5
            elif (now - last).total_seconds() > deadline_s:
                set_condition("Progressing", "False", "ProgressDeadlineExceeded",
                              f'ReplicaSet "{rs_name}" has timed out progressing.',
                              touch=False)
            else:
                requeue = deadline_s - (now - last).total_seconds() + 0.5

        def mutate(obj: RawObject) -> bool:
            status: dict[str, Any] = obj.setdefault("status", {})
            same = all(int(status.get(k) or 0) == v for k, v in counters.items()) and \
                (status.get("conditions") or []) == conditions
            if same:
                return False
            status.update(counters)
            status["conditions"] = conditions
            return True

        reply = await base.update(client=self.client, resource=api.DEPLOYMENTS,
                                  informer=self.deployments, current=d, mutate=mutate,
                                  subresource="status")
        if new_rs is not None:
            await self._sync_revision_annotation(reply or d, new_rs)
        return requeue

    async def _sync_revision_annotation(self, d: RawObject, new_rs: RawObject) -> None:
        revision = str(_revision(new_rs))
        if revision == "0":
            return

        def mutate(obj: RawObject) -> bool:
            meta = obj.setdefault("metadata", {})
            annotations = meta.get("annotations") or {}
            if annotations.get(REVISION) == revision:
                return False
            meta["annotations"] = {**annotations, REVISION: revision}
            return True

        await base.update(client=self.client, resource=api.DEPLOYMENTS,
                          informer=self.deployments, current=d, mutate=mutate)
