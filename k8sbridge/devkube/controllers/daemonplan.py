"""What a DaemonSet sync does next, pure (the caller passes nodes, pods and the clock).

Mirrors pkg/controller/daemon: a node should run the daemon pod when the pod's ``nodeName`` (if
set), ``nodeSelector`` and required node affinity match it and the node's NoSchedule/NoExecute
taints are tolerated — counting the tolerations the controller adds to every daemon pod
(not-ready, unreachable, the pressure taints, unschedulable). A pod is pinned to its node by a
required node affinity on ``metadata.name`` (the scheduler places it). Extra, failed and
misplaced pods are deleted; a RollingUpdate replaces pods not at the current hash on at most
``maxUnavailable`` nodes at once (or surges up to ``maxSurge`` new pods next to old ones).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers import revisions, rollout, taints
from k8sbridge.devkube.controllers.raw import RawObject

GENERATION_LABEL = "pod-template-generation"
DAEMON_TOLERATIONS: tuple[dict[str, str], ...] = (
    {"key": taints.NOT_READY, "operator": "Exists", "effect": "NoExecute"},
    {"key": taints.UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
NETWORK_UNAVAILABLE = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                       "effect": "NoSchedule"}


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    create: tuple[str, ...] = ()  # node names that get a new pod
    delete: tuple[str, ...] = ()  # pod names


def name_of(obj: RawObject) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def with_daemon_tolerations(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod's tolerations plus those every daemon pod gets (AddOrUpdateDaemonPodTolerations)."""
    out = [dict(t) for t in pod_spec.get("tolerations") or [] if isinstance(t, dict)]
    wanted = list(DAEMON_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        wanted.append(NETWORK_UNAVAILABLE)
    for toleration in wanted:
        if not any(t.get("key") == toleration["key"] and t.get("effect") == toleration["effect"]
                   for t in out):
            out.append(dict(toleration))
    return out


def _requirement_matches(req: dict[str, Any], values: dict[str, str]) -> bool:
    key, op = str(req.get("key", "")), req.get("operator")
    wanted = [str(v) for v in req.get("values") or []]
    if op == "In":
        return key in values and values[key] in wanted
    if op == "NotIn":
        return key not in values or values[key] not in wanted
    if op == "Exists":
        return key in values
    if op == "DoesNotExist":
        return key not in values
    if op in ("Gt", "Lt") and key in values and len(wanted) == 1:
        try:
            have, limit = int(values[key]), int(wanted[0])
        except ValueError:
            return False
        return have > limit if op == "Gt" else have < limit
    return False


def _term_matches(term: dict[str, Any], node: RawObject) -> bool:
    labels = {str(k): str(v) for k, v in
              ((node.get("metadata") or {}).get("labels") or {}).items()}
    fields = {"metadata.name": name_of(node)}
    expressions = term.get("matchExpressions") or []
    match_fields = term.get("matchFields") or []
    if not expressions and not match_fields:
        return False  # an empty term matches nothing
    return (all(_requirement_matches(r, labels) for r in expressions)
            and all(_requirement_matches(r, fields) for r in match_fields))


def fits(pod_spec: dict[str, Any], node: RawObject) -> bool:
    """nodeName, nodeSelector and required node affinity (not taints)."""
    if pod_spec.get("nodeName") and pod_spec["nodeName"] != name_of(node):
        return False
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    return not terms or any(_term_matches(t, node) for t in terms if isinstance(t, dict))


def should_run(pod_spec: dict[str, Any], node: RawObject) -> tuple[bool, bool]:
    """(should run a new pod, may keep running an existing one) on ``node``."""
    if not fits(pod_spec, node):
        return False, False
    tolerations = with_daemon_tolerations(pod_spec)
    run = keep = True
    for taint in taints.parse_taints(node):
        if taint.effect not in ("NoSchedule", "NoExecute"):
            continue
        if not any(taints.tolerates(t, taint) for t in tolerations):
            run = False
            if taint.effect == "NoExecute":
                keep = False
    return run, keep


def target_node(pod: RawObject) -> str:
    """The node a daemon pod runs on or is pinned to (``GetTargetNodeName``)."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for req in (term or {}).get("matchFields") or []:
            if req.get("key") == "metadata.name" and req.get("operator") == "In" and \
                    len(req.get("values") or []) == 1:
                return str(req["values"][0])
    return ""


def pin(pod_spec: dict[str, Any], node: str) -> None:
    """Replace the required node affinity by ``metadata.name In [node]`` (the controller checked
    the template's own terms already); preferred terms stay."""
    affinity = pod_spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    pod_spec["tolerations"] = with_daemon_tolerations(pod_spec)


def is_updated(pod: RawObject, hash_: str) -> bool:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(
        revisions.REVISION_LABEL) == hash_


def _available(pod: RawObject, min_ready: float, now: datetime.datetime) -> bool:
    return not podfacts.is_terminating(pod) and podfacts.is_available(
        pod, min_ready_seconds=min_ready, now=now)


def by_node(pods: Sequence[RawObject]) -> dict[str, list[RawObject]]:
    out: dict[str, list[RawObject]] = {}
    for pod in pods:
        node = target_node(pod)
        if node:
            out.setdefault(node, []).append(pod)
    return out


def _oldest_first(pods: list[RawObject]) -> list[RawObject]:
    return sorted(pods, key=lambda p: (podfacts.phase(p) != "Running",
                                       str((p.get("metadata") or {}).get("creationTimestamp")),
                                       name_of(p)))


def plan(ds: RawObject, nodes: Sequence[RawObject], pods: Sequence[RawObject], *,
         hash_: str, now: datetime.datetime) -> Plan:
    spec = ds.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    min_ready = float(spec.get("minReadySeconds") or 0)
    placed = by_node(pods)
    create: list[str] = []
    delete: list[str] = []
    wanted: list[str] = []
    for node in nodes:
        node_name = name_of(node)
        run, keep = should_run(template, node)
        live = [p for p in placed.get(node_name, []) if not podfacts.is_terminating(p)]
        failed = [p for p in live if podfacts.phase(p) in ("Failed", "Succeeded")]
        delete += [name_of(p) for p in failed]
        live = [p for p in live if p not in failed]
        if run and not live:
            if not any(podfacts.is_terminating(p) for p in placed.get(node_name, [])) \
                    or failed:
                create.append(node_name)
        elif not keep:
            delete += [name_of(p) for p in live]
        elif len(live) > 1:
            ordered = _oldest_first(live)
            new = [p for p in ordered if is_updated(p, hash_)]
            keeper = ordered[0] if not new else new[0]
            surge_pair = bool(new) and len(live) == 2 and not _available(new[0], min_ready, now)
            if not surge_pair:
                delete += [name_of(p) for p in live if p is not keeper]
        if run or (keep and live):
            wanted.append(node_name)
    known = {name_of(n) for n in nodes}
    for node_name, stray in placed.items():  # pinned to a node that is gone
        if node_name not in known:
            delete += [name_of(p) for p in stray if not podfacts.is_terminating(p)]
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate" and not create:
        more_create, more_delete = _rolling(ds, wanted, placed, hash_, set(delete),
                                            min_ready=min_ready, now=now)
        create += more_create
        delete += more_delete
    return Plan(create=tuple(create), delete=tuple(dict.fromkeys(delete)))


def _rolling(ds: RawObject, wanted: list[str], placed: dict[str, list[RawObject]], hash_: str,
             deleting: set[str], *, min_ready: float,
             now: datetime.datetime) -> tuple[list[str], list[str]]:
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    total = len(wanted)
    try:
        surge = rollout.resolve_int_or_percent(rolling.get("maxSurge", 0), total=total,
                                               round_up=True)
        budget = rollout.resolve_int_or_percent(rolling.get("maxUnavailable", 1), total=total,
                                                round_up=True)
    except rollout.StrategyError:
        surge, budget = 0, 1
    if surge == 0 and budget == 0:
        budget = 1
    create: list[str] = []
    delete: list[str] = []
    unavailable = 0
    candidates: list[tuple[str, RawObject]] = []
    surging = 0
    for node in wanted:
        live = [p for p in placed.get(node, []) if not podfacts.is_terminating(p)
                and name_of(p) not in deleting]
        new = [p for p in live if is_updated(p, hash_)]
        old = [p for p in live if not is_updated(p, hash_)]
        if not live or not any(_available(p, min_ready, now) for p in live):
            unavailable += 1
        if not old:
            continue
        if new:
            surging += 1
            if any(_available(p, min_ready, now) for p in new):
                delete += [name_of(p) for p in old]
            continue
        if not _available(old[0], min_ready, now):
            delete.append(name_of(old[0]))  # already unavailable: replace it for free
            continue
        candidates.append((node, old[0]))
    for node, pod in candidates:
        if surge > 0:
            if surging >= surge:
                break
            create.append(node)
            surging += 1
        else:
            if unavailable >= budget:
                break
            delete.append(name_of(pod))
            unavailable += 1
    return create, delete


def status(ds: RawObject, nodes: Sequence[RawObject], pods: Sequence[RawObject], *,
           hash_: str, now: datetime.datetime) -> dict[str, Any]:
    spec = ds.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    min_ready = float(spec.get("minReadySeconds") or 0)
    placed = by_node([p for p in pods if not podfacts.is_terminating(p)])
    desired = current = misscheduled = ready = available = updated = 0
    for node in nodes:
        run, _ = should_run(template, node)
        here = placed.get(name_of(node), [])
        if run:
            desired += 1
            if here:
                current += 1
                if any(podfacts.is_ready(p) for p in here):
                    ready += 1
                if any(_available(p, min_ready, now) for p in here):
                    available += 1
                if any(is_updated(p, hash_) for p in here):
                    updated += 1
        elif here:
            misscheduled += 1
    out: dict[str, Any] = {
        "observedGeneration": (ds.get("metadata") or {}).get("generation"),
        "desiredNumberScheduled": desired, "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled, "numberReady": ready,
        "numberAvailable": available, "updatedNumberScheduled": updated,
        "numberUnavailable": desired - available,
    }
    return {k: v for k, v in out.items()
            if v or k in ("desiredNumberScheduled", "currentNumberScheduled",
                          "numberMisscheduled", "numberReady")}
