"""Pure facts about pods that several controllers need: active, ready, available, ranked.

``rank_for_deletion`` follows the ReplicaSet controller's ``ActivePodsWithRanks`` order: the
pods that cost least to lose come first (unscheduled before scheduled, pending before running,
not ready before ready, doubled-up on a node before alone, ready recently before ready long,
more restarts before fewer, newer before older).
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from k8sbridge.devkube.controllers.raw import RawObject

DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def parse_time(value: Any) -> datetime.datetime | None:
    """Parse an RFC 3339 timestamp (``Z`` or offset, optional fraction); ``None`` if absent/bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed


def format_time(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def phase(pod: RawObject) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_terminating(obj: RawObject) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_active(pod: RawObject) -> bool:
    """Counts towards a ReplicaSet's replicas: not finished and not being deleted."""
    return phase(pod) not in ("Succeeded", "Failed") and not is_terminating(pod)


def condition(obj: RawObject, kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def is_ready(pod: RawObject) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: RawObject) -> datetime.datetime | None:
    cond = condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime"))


def available_in(
        pod: RawObject, *, min_ready_seconds: float, now: datetime.datetime) -> float | None:
    """Seconds until ``pod`` counts as available: 0 if it is, ``None`` if it is not ready."""
    if not is_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = ready_since(pod)
    if since is None:  # ready without a transition time: trust it
        return 0.0
    return max(0.0, min_ready_seconds - (now - since).total_seconds())


def is_available(pod: RawObject, *, min_ready_seconds: float, now: datetime.datetime) -> bool:
    return available_in(pod, min_ready_seconds=min_ready_seconds, now=now) == 0.0


def restart_count(pod: RawObject) -> int:
    total = 0
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        if isinstance(st, dict):
            total += int(st.get("restartCount") or 0)
    return total


def deletion_cost(pod: RawObject) -> int:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST_ANNOTATION)
    try:
        return int(raw) if raw is not None else 0
    except (TypeError, ValueError):
        return 0


def node_name(pod: RawObject) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _sort_key(pod: RawObject, doubled_up: Counter[str]) -> tuple[Any, ...]:
    node = node_name(pod)
    ready = is_ready(pod)
    since = ready_since(pod) or _EPOCH
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or _EPOCH
    return (
        1 if node else 0,                       # unscheduled first
        _PHASE_RANK.get(phase(pod), 3),         # pending < unknown < running
        1 if ready else 0,                      # not ready first
        deletion_cost(pod),                     # lower cost first
        -(doubled_up[node] if node else 0),     # more pods on the same node first
        -since.timestamp() if ready else 0.0,   # ready more recently first
        -restart_count(pod),                    # more restarts first
        -created.timestamp(),                   # newer first
        str((pod.get("metadata") or {}).get("name", "")),  # deterministic tie-break
    )


def rank_for_deletion(
        pods: Sequence[RawObject], *, related: Iterable[RawObject] = ()) -> list[RawObject]:
    """``pods`` ordered cheapest-to-lose first; ``related`` pods count for the doubled-up rank."""
    seen: dict[str, RawObject] = {}
    for p in (*pods, *related):
        m = p.get("metadata") or {}
        seen.setdefault(str(m.get("uid") or m.get("name") or id(p)), p)
    on_node: Counter[str] = Counter(node_name(p) for p in seen.values() if node_name(p))
    return sorted(pods, key=lambda p: _sort_key(p, on_node))


def pods_to_delete(
        pods: Sequence[RawObject], count: int, *,
        related: Iterable[RawObject] = ()) -> list[RawObject]:
    if count <= 0:
        return []
    return rank_for_deletion(pods, related=related)[:count]
