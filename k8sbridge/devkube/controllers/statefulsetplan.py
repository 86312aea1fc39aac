"""What a StatefulSet sync does next, pure (the caller passes the pods, revisions and clock).

Mirrors pkg/controller/statefulset's ``updateStatefulSet``: pods are ``<set>-<ordinal>`` for
ordinals ``start .. start+replicas-1``; pods outside that range are condemned and removed
highest ordinal first; failed pods are deleted to be recreated. With ``OrderedReady`` one step is
taken at a time and only once every lower ordinal is Running and Ready (and available after
``minReadySeconds``); ``Parallel`` creates and deletes without waiting. A RollingUpdate then
replaces pods not at the update revision from the highest ordinal down to ``partition``, at most
``maxUnavailable`` unavailable at once; OnDelete leaves that to the user.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Sequence
from typing import Any

from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers import revisions, rollout
from k8sbridge.devkube.controllers.raw import RawObject

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    create: tuple[int, ...] = ()  # ordinals to create (in this order)
    delete: tuple[str, ...] = ()  # pod names to delete (in this order)
    # ordinals created at the current revision (the others get the update revision)
    at_current: frozenset[int] = frozenset()


def ordinal_of(set_name: str, pod: RawObject) -> int | None:
    name = str((pod.get("metadata") or {}).get("name") or "")
    match = re.fullmatch(re.escape(set_name) + r"-(\d+)", name)
    return int(match.group(1)) if match else None


def revision_of(pod: RawObject) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(
        revisions.REVISION_LABEL, ""))


def _spec(sts: RawObject) -> dict[str, Any]:
    return dict(sts.get("spec") or {})


def start_ordinal(sts: RawObject) -> int:
    return int((_spec(sts).get("ordinals") or {}).get("start") or 0)


def replicas_of(sts: RawObject) -> int:
    value = _spec(sts).get("replicas")
    return 1 if value is None else int(value)


def partition_of(sts: RawObject) -> int:
    rolling = (_spec(sts).get("updateStrategy") or {}).get("rollingUpdate") or {}
    return int(rolling.get("partition") or 0)


def _healthy(pod: RawObject, min_ready: float, now: datetime.datetime) -> bool:
    return (podfacts.phase(pod) == "Running" and not podfacts.is_terminating(pod)
            and podfacts.is_available(pod, min_ready_seconds=min_ready, now=now))


def _failed(pod: RawObject) -> bool:
    return podfacts.phase(pod) in ("Failed", "Succeeded") and not podfacts.is_terminating(pod)


def plan(sts: RawObject, pods: Sequence[RawObject], *, update_revision: str,
         now: datetime.datetime) -> Plan:
    """The next creations and deletions for ``sts`` given its ``pods``."""
    spec = _spec(sts)
    name = str((sts.get("metadata") or {}).get("name"))
    start, count = start_ordinal(sts), replicas_of(sts)
    ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    min_ready = float(spec.get("minReadySeconds") or 0)
    by_ordinal: dict[int, RawObject] = {}
    for member in pods:
        ordinal = ordinal_of(name, member)
        if ordinal is not None:
            by_ordinal[ordinal] = member
    wanted = range(start, start + count)
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
    at_current = frozenset(o for o in wanted if rolling and o - start < partition_of(sts))
    create: list[int] = []
    delete: list[str] = []
    for ordinal in wanted:
        pod = by_ordinal.get(ordinal)
        if pod is not None and _failed(pod):
            delete.append(str(pod["metadata"]["name"]))  # recreated on the next sync
            if ordered:
                return Plan(delete=tuple(delete))
            continue
        if pod is None:
            create.append(ordinal)
            if ordered:
                return Plan(create=tuple(create), delete=tuple(delete), at_current=at_current)
            continue
        if ordered and not _healthy(pod, min_ready, now):
            return Plan(delete=tuple(delete))
    condemned = sorted((o for o in by_ordinal if o not in wanted), reverse=True)
    for ordinal in condemned:
        pod = by_ordinal[ordinal]
        if podfacts.is_terminating(pod):
            if ordered:
                return Plan(create=tuple(create), delete=tuple(delete), at_current=at_current)
            continue
        delete.append(str(pod["metadata"]["name"]))
        if ordered:
            return Plan(create=tuple(create), delete=tuple(delete), at_current=at_current)
    if create or delete or not rolling:
        return Plan(create=tuple(create), delete=tuple(delete), at_current=at_current)
    return Plan(delete=tuple(_rolling_deletions(sts, by_ordinal, update_revision,
                                                min_ready=min_ready, now=now)))


def _rolling_deletions(sts: RawObject, by_ordinal: dict[int, RawObject], update_revision: str,
                       *, min_ready: float, now: datetime.datetime) -> list[str]:
    start, count = start_ordinal(sts), replicas_of(sts)
    rolling = (_spec(sts).get("updateStrategy") or {}).get("rollingUpdate") or {}
    try:
        budget = max(1, rollout.resolve_int_or_percent(
            rolling.get("maxUnavailable", 1), total=count, round_up=False))
    except rollout.StrategyError:
        budget = 1
    floor = start + min(partition_of(sts), count)
    targets = range(start + count - 1, floor - 1, -1)
    unavailable = sum(1 for o in targets
                      if o not in by_ordinal or not _healthy(by_ordinal[o], min_ready, now))
    out: list[str] = []
    for ordinal in targets:
        pod = by_ordinal.get(ordinal)
        if pod is None or podfacts.is_terminating(pod):
            continue
        if revision_of(pod) != update_revision:
            if unavailable >= budget and _healthy(pod, min_ready, now):
                break
            out.append(str(pod["metadata"]["name"]))
            if _healthy(pod, min_ready, now):
                unavailable += 1
    return out


def pod_for(sts: RawObject, ordinal: int, *, revision: str,
            template: dict[str, Any]) -> RawObject:
    """``newStatefulSetPod`` from ``template`` (the revision's): identity and labels set."""
    meta = sts.get("metadata") or {}
    spec = _spec(sts)
    name = f"{meta.get('name')}-{ordinal}"
    tmeta = dict(template.get("metadata") or {})
    labels = dict(tmeta.get("labels") or {})
    labels.update({POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
                   revisions.REVISION_LABEL: revision})
    pod_meta: dict[str, Any] = {
        "name": name, "namespace": meta.get("namespace"), "labels": labels,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                             "name": meta.get("name"), "uid": meta.get("uid"),
                             "controller": True, "blockOwnerDeletion": True}],
    }
    for field in ("annotations", "finalizers"):
        if tmeta.get(field):
            pod_meta[field] = tmeta[field]
    pod_spec = dict(template.get("spec") or {})
    pod_spec["hostname"] = name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}


def status(sts: RawObject, pods: Sequence[RawObject], *, current_revision: str,
           update_revision: str, now: datetime.datetime) -> dict[str, Any]:
    """The status counters; the current revision advances once a RollingUpdate is complete."""
    spec = _spec(sts)
    min_ready = float(spec.get("minReadySeconds") or 0)
    live = [p for p in pods if not podfacts.is_terminating(p)]
    ready = sum(1 for p in live if podfacts.phase(p) == "Running" and podfacts.is_ready(p))
    available = sum(1 for p in live if _healthy(p, min_ready, now))
    current = sum(1 for p in live if revision_of(p) == current_revision)
    updated = sum(1 for p in live if revision_of(p) == update_revision)
    rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if rolling and updated == len(live) and ready == len(live):
        current_revision, current = update_revision, updated
    old = sts.get("status") or {}
    return {
        "observedGeneration": (sts.get("metadata") or {}).get("generation"),
        "replicas": len(live), "readyReplicas": ready, "currentReplicas": current,
        "updatedReplicas": updated, "availableReplicas": available,
        "currentRevision": current_revision, "updateRevision": update_revision,
        "collisionCount": int(old.get("collisionCount") or 0),
    }


def next_wake(sts: RawObject, pods: Sequence[RawObject], *,
              now: datetime.datetime) -> float | None:
    """Seconds until a ready pod becomes available (minReadySeconds), if one will."""
    min_ready = float(_spec(sts).get("minReadySeconds") or 0)
    if min_ready <= 0:
        return None
    waits = [w for p in pods if (w := podfacts.available_in(
        p, min_ready_seconds=min_ready, now=now)) is not None and w > 0]
    return min(waits) + 0.05 if waits else None
