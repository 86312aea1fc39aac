"""The disruption controller's arithmetic: a PodDisruptionBudget's status from its pods.

As kube-controller-manager's ``pkg/controller/disruption``: ``minAvailable`` as a number counts
the selected pods; a percentage, or any ``maxUnavailable``, is scaled against the replicas of
the pods' controllers (Deployment, ReplicaSet, StatefulSet, ReplicationController), rounding up;
pods without a controller are left out; a pod whose controller cannot be found fails the sync
(``SyncFailed``). Healthy means Ready and not being deleted, and not evicted in the last two
minutes (``disruptedPods``). Pure: the controller passes pods, the controllers' scales and the
time.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Callable
from typing import Any

from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.raw import RawObject

DELETION_TIMEOUT = datetime.timedelta(minutes=2)  # an eviction not followed by a deletion


class SyncFailed(Exception):
    """The budget's status cannot be computed (the condition's message)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Scale:
    """The controller owning a pod, by uid, and its desired replicas."""

    uid: str
    replicas: int


ScaleOf = Callable[[RawObject], Scale | None]  # None: the pod's controller is unknown


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    status: dict[str, Any]
    recheck: float | None  # seconds until a recorded disruption expires


def scaled(value: Any, total: int) -> int:
    """``intstr.GetScaledValueFromIntOrPercent`` rounding up."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def expected_scale(pods: list[RawObject], scale_of: ScaleOf) -> int:
    seen: dict[str, int] = {}
    for pod in pods:
        refs = (pod.get("metadata") or {}).get("ownerReferences") or []
        if not any(r.get("controller") for r in refs):
            continue  # unmanaged: ignored (kube records an UnmanagedPods event)
        scale = scale_of(pod)
        if scale is None:
            name = (pod.get("metadata") or {}).get("name")
            raise SyncFailed(f'found no controllers for pod "{name}"')
        seen[scale.uid] = scale.replicas
    return sum(seen.values())


def expected_and_desired(pdb: RawObject, pods: list[RawObject],
                         scale_of: ScaleOf) -> tuple[int, int]:
    spec = pdb.get("spec") or {}
    max_unavailable = spec.get("maxUnavailable")
    min_available = spec.get("minAvailable")
    if max_unavailable is not None:
        expected = expected_scale(pods, scale_of)
        return expected, max(0, expected - scaled(max_unavailable, expected))
    if isinstance(min_available, int):
        return len(pods), min_available
    if min_available is not None:
        expected = expected_scale(pods, scale_of)
        return expected, scaled(min_available, expected)
    return len(pods), 0


def disrupted_pods(pdb: RawObject, pods: list[RawObject], *,
                   now: datetime.datetime) -> tuple[dict[str, str], float | None]:
    """The entries still awaiting their pod's deletion, and when the first one expires."""
    recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
    kept: dict[str, str] = {}
    recheck: float | None = None
    for pod in pods:
        name = str((pod.get("metadata") or {}).get("name"))
        if podfacts.is_terminating(pod) or name not in recorded:
            continue
        since = podfacts.parse_time(recorded[name])
        if since is None or since + DELETION_TIMEOUT < now:
            continue
        kept[name] = recorded[name]
        left = (since + DELETION_TIMEOUT - now).total_seconds()
        recheck = left if recheck is None else min(recheck, left)
    return kept, recheck


def healthy(pods: list[RawObject], disrupted: dict[str, str]) -> int:
    return sum(1 for p in pods if not podfacts.is_terminating(p)
               and str((p.get("metadata") or {}).get("name")) not in disrupted
               and podfacts.is_ready(p))


def set_condition(conditions: list[dict[str, Any]], *, allowed: bool, reason: str, stamp: str,
                  message: str = "") -> list[dict[str, Any]]:
    """``DisruptionAllowed`` as ``meta.SetStatusCondition`` sets it."""
    wanted = "True" if allowed else "False"
    old = next((c for c in conditions if c.get("type") == "DisruptionAllowed"), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == wanted else stamp
    new = {"type": "DisruptionAllowed", "status": wanted, "lastTransitionTime": since,
           "reason": reason, "message": message}
    return [c for c in conditions if c.get("type") != "DisruptionAllowed"] + [new]


def plan(pdb: RawObject, pods: list[RawObject], scale_of: ScaleOf, *,
         now: datetime.datetime) -> Plan:
    """The status the budget should have (``SyncFailed``'s fail-safe status on errors)."""
    status = dict(pdb.get("status") or {})
    stamp = podfacts.format_time(now)
    try:
        expected, desired = expected_and_desired(pdb, pods, scale_of)
    except SyncFailed as e:
        status["disruptionsAllowed"] = 0
        status["conditions"] = set_condition(status.get("conditions") or [], allowed=False,
                                             reason="SyncFailed", stamp=stamp, message=str(e))
        return Plan(status=status, recheck=None)
    disrupted, recheck = disrupted_pods(pdb, pods, now=now)
    current = healthy(pods, disrupted)
    allowed = current - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    new: dict[str, Any] = {
        "observedGeneration": int((pdb.get("metadata") or {}).get("generation", 0)),
        "disruptionsAllowed": allowed, "currentHealthy": current, "desiredHealthy": desired,
        "expectedPods": expected}
    if disrupted:
        new["disruptedPods"] = disrupted
    new["conditions"] = set_condition(
        status.get("conditions") or [], allowed=allowed > 0,
        reason="SufficientPods" if allowed > 0 else "InsufficientPods", stamp=stamp)
    return Plan(status=new, recheck=recheck)
