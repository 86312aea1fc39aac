"""Rollout arithmetic of the Deployment controller, pure (no I/O, no clock).

Given the Deployment's desired replicas and strategy and the replica sets' spec/status counts,
these functions decide new ``spec.replicas`` values, mirroring
``pkg/controller/deployment/{rolling,sync,recreate}.go`` and ``util/deployment_util.go``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any


class StrategyError(ValueError):
    """A maxSurge/maxUnavailable value that cannot be interpreted."""


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaSetCounts:
    """What the rollout math needs to know about one replica set."""

    name: str
    replicas: int  # spec.replicas
    available: int  # status.availableReplicas
    created: float = 0.0  # creation time (epoch seconds), for oldest-first ordering


def resolve_int_or_percent(value: Any, *, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: ``3`` → 3, ``"25%"`` of 10 → 3 (up) / 2 (down)."""
    if isinstance(value, bool):
        raise StrategyError(f"invalid value {value!r}: must be an integer or a percentage")
    if isinstance(value, int):
        if value < 0:
            raise StrategyError(f"invalid value {value}: must not be negative")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                pct = int(text[:-1])
            except ValueError as e:
                raise StrategyError(f"invalid percentage {value!r}") from e
            if pct < 0:
                raise StrategyError(f"invalid percentage {value!r}: must not be negative")
            scaled = pct * total / 100
            return math.ceil(scaled) if round_up else math.floor(scaled)
        try:
            number = int(text)
        except ValueError as e:
            raise StrategyError(
                f"invalid value {value!r}: must be an integer or a percentage") from e
        return resolve_int_or_percent(number, total=total, round_up=round_up)
    raise StrategyError(f"invalid value {value!r}: must be an integer or a percentage")


def resolve_fenceposts(
        *, max_surge: Any, max_unavailable: Any, replicas: int) -> tuple[int, int]:
    """(surge, unavailable) in pods; both zero would deadlock, so unavailable becomes 1."""
    surge = resolve_int_or_percent(max_surge, total=replicas, round_up=True)
    unavailable = resolve_int_or_percent(max_unavailable, total=replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def new_rs_replicas(
        *, replicas: int, max_surge: int, new_rs: ReplicaSetCounts | None,
        all_rs: Sequence[ReplicaSetCounts]) -> int:
    """How far the new replica set may grow now (``NewRSNewReplicas`` for RollingUpdate)."""
    current_new = new_rs.replicas if new_rs is not None else 0
    if current_new >= replicas:
        return replicas
    current_total = sum(rs.replicas for rs in all_rs)
    max_total = replicas + max_surge
    if current_total >= max_total:
        return current_new
    scale_up = min(max_total - current_total, replicas - current_new)
    return current_new + scale_up


def scale_down_old(
        *, replicas: int, max_unavailable: int, new_rs: ReplicaSetCounts | None,
        old_rs: Sequence[ReplicaSetCounts]) -> dict[str, int]:
    """New ``spec.replicas`` for the old replica sets that should shrink now (name → replicas).

    First unhealthy pods of old sets are removed (they do not count as available anyway), then
    available ones, oldest set first, never taking the total available below
    ``replicas - max_unavailable``.
    """
    if sum(rs.replicas for rs in old_rs) == 0:
        return {}
    all_rs = [*old_rs, *([new_rs] if new_rs is not None else [])]
    all_pods = sum(rs.replicas for rs in all_rs)
    min_available = replicas - max_unavailable
    new_unavailable = (new_rs.replicas - new_rs.available) if new_rs is not None else 0
    max_scaled_down = all_pods - min_available - max(0, new_unavailable)
    if max_scaled_down <= 0:
        return {}
    result: dict[str, int] = {}
    current = {rs.name: rs.replicas for rs in old_rs}
    ordered = sorted(old_rs, key=lambda rs: (rs.created, rs.name))
    # 1. clean up unhealthy replicas of old sets.
    cleaned = 0
    for rs in ordered:
        if cleaned >= max_scaled_down:
            break
        unhealthy = current[rs.name] - min(rs.available, current[rs.name])
        if current[rs.name] == 0 or unhealthy <= 0:
            continue
        step = min(max_scaled_down - cleaned, unhealthy)
        current[rs.name] -= step
        result[rs.name] = current[rs.name]
        cleaned += step
    # 2. scale down available replicas, keeping min_available.
    available_total = sum(min(rs.available, current[rs.name]) for rs in old_rs)
    if new_rs is not None:
        available_total += new_rs.available
    if available_total > min_available:
        remaining = min(available_total - min_available, max_scaled_down - cleaned)
        for rs in ordered:
            if remaining <= 0:
                break
            if current[rs.name] == 0:
                continue
            step = min(current[rs.name], remaining)
            current[rs.name] -= step
            result[rs.name] = current[rs.name]
            remaining -= step
    return result


def max_replicas_annotation(*, replicas: int, max_surge: int) -> int:
    return replicas + max_surge


def is_complete(
        *, replicas: int, updated: int, total: int, available: int,
        generation: int, observed_generation: int) -> bool:
    """The deployment controller's ``DeploymentComplete`` (also ``kubectl rollout status``)."""
    return (updated == replicas and total == replicas and available == replicas
            and observed_generation >= generation)


def minimum_available(*, replicas: int, max_unavailable: int, available: int) -> bool:
    return available >= replicas - max_unavailable


# -- scaling events (spec.replicas changed while several sets are active) --------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ScaleInfo:
    """A replica set as seen by proportional scaling."""

    name: str
    replicas: int  # spec.replicas
    available: int = 0
    created: float = 0.0
    desired_annotation: int | None = None  # deployment.kubernetes.io/desired-replicas
    max_annotation: int | None = None  # deployment.kubernetes.io/max-replicas


def is_scaling_event(*, replicas: int, sets: Sequence[ScaleInfo]) -> bool:
    """An active set was sized for another ``spec.replicas`` (``isScalingEvent``)."""
    return any(rs.desired_annotation is not None and rs.desired_annotation != replicas
               for rs in sets if rs.replicas > 0)


def _is_saturated(replicas: int, rs: ScaleInfo | None) -> bool:
    return rs is not None and rs.desired_annotation == replicas and \
        rs.replicas == replicas and rs.available == replicas


def scale(*, replicas: int, max_surge: int, rolling: bool, new_rs: ScaleInfo | None,
          old_rs: Sequence[ScaleInfo], current_total: int) -> dict[str, int]:
    """New sizes for the sets after ``spec.replicas`` changed (the controller's ``scale``).

    One active set (or none: the newest) takes the whole count; a saturated new set means the
    old ones go to zero; otherwise a rolling deployment spreads the difference over the active
    sets in proportion to their share of the previous ``max-replicas`` (larger sets first,
    leftovers to the largest). ``current_total`` stands in for a missing annotation.
    """
    if new_rs is None and not old_rs:
        return {}
    active = [rs for rs in [*old_rs, *([new_rs] if new_rs else [])] if rs.replicas > 0]
    if len(active) <= 1:
        if active:
            target = active[0]
        elif new_rs is not None:
            target = new_rs
        else:
            target = max(old_rs, key=lambda rs: (rs.created, rs.name))
        return {} if target.replicas == replicas else {target.name: replicas}
    if _is_saturated(replicas, new_rs):
        return {rs.name: 0 for rs in old_rs if rs.replicas > 0}
    if not rolling:
        return {}
    allowed = replicas + max_surge if replicas > 0 else 0
    to_add = allowed - sum(rs.replicas for rs in active)
    if to_add == 0:
        return {}
    if to_add > 0:  # larger first; among equals, newer first
        ordered = sorted(active, key=lambda rs: (-rs.replicas, -rs.created, rs.name))
    else:  # larger first; among equals, older first
        ordered = sorted(active, key=lambda rs: (-rs.replicas, rs.created, rs.name))
    added = 0
    sizes: dict[str, int] = {}
    for rs in ordered:
        proportion = 0
        if to_add != added:
            if replicas == 0:
                fraction = -rs.replicas
            else:
                before = rs.max_annotation or current_total or 1
                fraction = round(rs.replicas * allowed / before) - rs.replicas
            left = to_add - added
            proportion = min(fraction, left) if to_add > 0 else max(fraction, left)
        sizes[rs.name] = rs.replicas + proportion
        added += proportion
    largest = ordered[0].name
    sizes[largest] = max(0, sizes[largest] + to_add - added)
    return {name: size for name, size in sizes.items()
            if size != next(rs.replicas for rs in active if rs.name == name)}
