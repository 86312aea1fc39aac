"""Node health and NoExecute eviction decisions, pure (the caller passes the clock).

Mirrors the node lifecycle controller: a node whose health signal (Lease renewals or Ready
heartbeats, timed on *our* clock) is older than the grace period gets its conditions set to
Unknown and the ``node.kubernetes.io/unreachable`` taints; pods on a node with NoExecute taints
are evicted once they stop tolerating them (``tolerationSeconds`` after the taint was added).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.raw import RawObject

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
NODE_STATUS_UNKNOWN = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
WATCHED_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


@dataclasses.dataclass(frozen=True, slots=True)
class Taint:
    key: str
    effect: str
    value: str = ""
    time_added: datetime.datetime | None = None


def parse_taints(node: RawObject) -> list[Taint]:
    out: list[Taint] = []
    for raw in (node.get("spec") or {}).get("taints") or []:
        if isinstance(raw, dict) and raw.get("key") and raw.get("effect"):
            out.append(Taint(key=str(raw["key"]), effect=str(raw["effect"]),
                             value=str(raw.get("value") or ""),
                             time_added=podfacts.parse_time(raw.get("timeAdded"))))
    return out


def tolerates(toleration: dict[str, Any], taint: Taint) -> bool:
    """``v1.Toleration.ToleratesTaint``."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.effect:
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return not key or key == taint.key
    if operator != "Equal":
        return False
    return key == taint.key and (toleration.get("value") or "") == taint.value


def eviction_time(
        pod: RawObject, taints: Sequence[Taint], *,
        now: datetime.datetime) -> datetime.datetime | None:
    """When ``pod`` must be evicted because of the node's NoExecute ``taints``; ``None``: never."""
    tolerations = [t for t in (pod.get("spec") or {}).get("tolerations") or []
                   if isinstance(t, dict)]
    due: datetime.datetime | None = None
    for taint in taints:
        if taint.effect != "NoExecute":
            continue
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return now  # not tolerated at all: evict now
        seconds: list[Any] = [t["tolerationSeconds"] for t in matching
                              if t.get("tolerationSeconds") is not None]
        if not seconds:
            continue  # tolerated forever
        try:
            limit = max(0.0, float(min(float(s) for s in seconds)))
        except (TypeError, ValueError):
            continue
        start = taint.time_added or now
        when = start + datetime.timedelta(seconds=limit)
        if due is None or when < due:
            due = when
    return due


@dataclasses.dataclass(frozen=True, slots=True)
class NodeVerdict:
    """What the lifecycle controller wants for one node right now."""

    stale: bool  # no health signal within the grace period
    ready_status: str  # the node's Ready condition status as posted ("True"/"False"/"Unknown")

    def wanted_taints(self) -> list[tuple[str, str]]:
        """(key, effect) pairs of the controller-managed taints the node should carry."""
        if self.stale:
            return [(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")]
        if self.ready_status == "False":
            return [(NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule")]
        return []


MANAGED_TAINT_KEYS = frozenset([UNREACHABLE, NOT_READY])


def reconcile_taints(
        node: RawObject, verdict: NodeVerdict, *, now: datetime.datetime) -> list[Any] | None:
    """The node's new ``spec.taints``, or ``None`` if they are already right."""
    current = [t for t in (node.get("spec") or {}).get("taints") or [] if isinstance(t, dict)]
    wanted = verdict.wanted_taints()
    kept = [t for t in current
            if t.get("key") not in MANAGED_TAINT_KEYS or (t.get("key"), t.get("effect")) in wanted]
    have = {(t.get("key"), t.get("effect")) for t in kept}
    # like the real controllers, only NoExecute taints carry timeAdded (evictions count from it)
    added = [{"key": k, "effect": e, **({"timeAdded": podfacts.format_time(now)}
                                        if e == "NoExecute" else {})}
             for k, e in wanted if (k, e) not in have]
    if not added and len(kept) == len(current):
        return None
    return kept + added


def ready_heartbeat(node: RawObject) -> str | None:
    """The Ready condition's ``lastHeartbeatTime`` as posted (None: no Ready condition)."""
    cond = podfacts.condition(node, "Ready")
    return None if cond is None else str(cond.get("lastHeartbeatTime") or "") or None


def reported_since(node: RawObject, heartbeat: str | None) -> bool:
    """Whether the kubelet posted status after the one whose Ready heartbeat the controller
    judged silent: then its fresh conditions must not be overwritten with Unknown."""
    return ready_heartbeat(node) != heartbeat


def mark_unknown(node: RawObject, *, now: datetime.datetime) -> list[Any] | None:
    """The node's conditions with Ready & pressure set to Unknown, or ``None`` if already so."""
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or []
                  if isinstance(c, dict)]
    stamp = podfacts.format_time(now)
    changed = False
    present = {c.get("type") for c in conditions}
    for cond in conditions:
        if cond.get("type") in WATCHED_CONDITIONS and cond.get("status") != "Unknown":
            cond.update(status="Unknown", reason=NODE_STATUS_UNKNOWN, message=UNKNOWN_MESSAGE,
                        lastTransitionTime=stamp)
            changed = True
    for kind in WATCHED_CONDITIONS:
        if kind not in present:
            conditions.append({"type": kind, "status": "Unknown", "reason": NODE_STATUS_UNKNOWN,
                               "message": "Kubelet never posted node status.",
                               "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
            changed = True
    return conditions if changed else None
