"""The HorizontalPodAutoscaler's decisions: the replica calculator and the scaling rules.

As kube-controller-manager's ``pkg/controller/podautoscaler`` (replica_calculator.go and
horizontal.go): a resource metric's usage ratio against its target (Utilization: the pods'
usage over their requests, in whole percent; AverageValue: the mean usage), a 10 % tolerance,
missing pods assumed at 100 % (scaling down) or 0 (scaling up), unready pods at 0 when scaling
up; then either the default rules (the 300 s scale-down stabilization window, scale-up bounded
to max(2 x current, 4), min/max) or ``spec.behavior`` (stabilization windows both ways, Pods and
Percent policies over ``periodSeconds`` picked by ``selectPolicy``). Pure: the controller passes
the pods, their metrics, the recorded recommendations and scale events, and the time.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Any

TOLERANCE = 0.1
DOWNSCALE_WINDOW = datetime.timedelta(seconds=300)
MAX_INT32 = 2**31 - 1

Obj = dict[str, Any]


class MetricError(Exception):
    """The replica count cannot be computed from the metrics (the condition's message)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PodSample:
    """One targeted pod: its usage (None: no metrics), request (None: a container without
    one), and whether it counts as ready / is to be ignored."""

    name: str
    usage: int | None  # millicores or bytes
    request: int | None
    ready: bool = True
    ignored: bool = False
    pending: bool = False


def _ratio_utilization(usage: dict[str, int], requests: dict[str, int],
                       target: int) -> tuple[float, int]:
    total_usage = sum(usage.values())
    total_request = sum(requests[name] for name in usage)
    if total_request == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = int(total_usage * 100 / total_request)
    return utilization / target, utilization


def _ratio_average(usage: dict[str, int], target: int) -> tuple[float, int]:
    average = int(sum(usage.values()) / len(usage))
    return sum(usage.values()) / len(usage) / target, average


def replicas_for(*, current: int, samples: list[PodSample], target: int, utilization: bool,
                 resource: str = "cpu", tolerance: float = TOLERANCE) -> tuple[int, int]:
    """(desired replicas, the current utilization in percent or average value);
    ``GetResourceReplicas`` with ``utilization``, else ``GetRawResourceReplicas``."""
    if not samples:
        raise MetricError("no pods returned by selector while calculating replica count")
    usage: dict[str, int] = {}
    missing: list[PodSample] = []
    unready: list[PodSample] = []
    ready_count = 0
    for s in samples:
        if s.ignored:
            continue
        if s.pending:
            unready.append(s)
            continue
        if s.usage is None:
            missing.append(s)
            continue
        if resource == "cpu" and not s.ready:
            unready.append(s)
            continue
        usage[s.name] = s.usage
        ready_count += 1
    if not usage:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    requests: dict[str, int] = {}
    if utilization:
        for s in samples:
            if s.request is None and not s.ignored:
                raise MetricError(f"missing request for {resource} in pod {s.name}")
            requests[s.name] = s.request or 0

    def ratio(values: dict[str, int]) -> tuple[float, int]:
        if utilization:
            return _ratio_utilization(values, requests, target)
        return _ratio_average(values, target)

    usage_ratio, shown = ratio(usage)
    scale_up_with_unready = bool(unready) and usage_ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - usage_ratio) <= tolerance:
            return current, shown
        return math.ceil(usage_ratio * ready_count), shown
    for s in missing:
        if usage_ratio < 1.0:
            usage[s.name] = (requests[s.name] * max(100, target) // 100) if utilization \
                else target
        else:
            usage[s.name] = 0
    if scale_up_with_unready:
        for s in unready:
            usage[s.name] = 0
    new_ratio, _ = ratio(usage)
    if abs(1.0 - new_ratio) <= tolerance or (usage_ratio < 1.0 < new_ratio) or (
            new_ratio < 1.0 < usage_ratio):
        return current, shown
    desired = math.ceil(new_ratio * len(usage))
    if (new_ratio < 1.0 and desired > current) or (new_ratio > 1.0 and desired < current):
        return current, shown
    return desired, shown


# --- normalization: stabilization and rate limits ------------------------------------------

@dataclasses.dataclass(slots=True)
class History:
    """What the controller remembers of one HPA between syncs (as ``recommendations``,
    ``scaleUpEvents`` and ``scaleDownEvents`` in horizontal.go)."""

    recommendations: list[tuple[datetime.datetime, int]] = dataclasses.field(
        default_factory=list)
    scale_ups: list[tuple[datetime.datetime, int]] = dataclasses.field(default_factory=list)
    scale_downs: list[tuple[datetime.datetime, int]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    replicas: int
    able_reason: str
    able_message: str
    limited: bool
    limited_reason: str
    limited_message: str


READY = ("ReadyForNewScale", "recommended size matches current size")
DOWN_STABILIZED = ("ScaleDownStabilized", "recent recommendations were higher than current one, "
                   "applying the highest recent recommendation")
UP_STABILIZED = ("ScaleUpStabilized", "recent recommendations were lower than current one, "
                 "applying the lowest recent recommendation")
WITHIN = ("DesiredWithinRange", "the desired count is within the acceptable range")
UP_LIMIT = ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum "
            "scale rate")
DOWN_LIMIT = ("ScaleDownLimit", "the desired replica count is decreasing faster than the "
              "maximum scale rate")
TOO_MANY = ("TooManyReplicas", "the desired replica count is more than the maximum replica "
            "count")
TOO_FEW = ("TooFewReplicas", "the desired replica count is less than the minimum replica count")


def default_behavior(behavior: Obj | None) -> tuple[Obj, Obj]:
    """``GenerateHPAScaleUpRules`` / ``GenerateHPAScaleDownRules``: the rules with kube's
    defaults filled in."""
    up = dict((behavior or {}).get("scaleUp") or {})
    down = dict((behavior or {}).get("scaleDown") or {})
    up.setdefault("stabilizationWindowSeconds", 0)
    up.setdefault("selectPolicy", "Max")
    up.setdefault("policies", [{"type": "Pods", "value": 4, "periodSeconds": 15},
                               {"type": "Percent", "value": 100, "periodSeconds": 15}])
    down.setdefault("stabilizationWindowSeconds", 300)
    down.setdefault("selectPolicy", "Max")
    down.setdefault("policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}])
    return up, down


def _decision(replicas: int, stabilized: int, able: tuple[str, str],
              limit: tuple[str, str]) -> Decision:
    return Decision(replicas=replicas, able_reason=able[0], able_message=able[1],
                    limited=replicas != stabilized, limited_reason=limit[0],
                    limited_message=limit[1])


def normalize(*, history: History, current: int, desired: int, min_replicas: int,
              max_replicas: int, now: datetime.datetime) -> Decision:
    """``normalizeDesiredReplicas`` (no ``behavior``): records ``desired``."""
    cutoff = now - DOWNSCALE_WINDOW
    recent = [(t, r) for t, r in history.recommendations if t >= cutoff]
    stabilized = max([desired] + [r for _, r in recent])
    history.recommendations = recent + [(now, desired)]
    able = READY if stabilized == desired else DOWN_STABILIZED
    scale_up_limit = max(2 * current, 4)
    upper, limit = (scale_up_limit, UP_LIMIT) if max_replicas > scale_up_limit else (
        max_replicas, TOO_MANY)
    if stabilized < min_replicas:
        return _decision(min_replicas, stabilized, able, TOO_FEW)
    if stabilized > upper:
        return _decision(upper, stabilized, able, limit)
    return _decision(stabilized, stabilized, able, WITHIN)


def _changed_within(events: list[tuple[datetime.datetime, int]], seconds: int,
                    now: datetime.datetime) -> int:
    cutoff = now - datetime.timedelta(seconds=seconds)
    return sum(change for t, change in events if t > cutoff)


def _limit(*, current: int, history: History, rules: Obj, up: bool,
           now: datetime.datetime) -> int:
    """``calculateScaleUpLimitWithScalingRules`` / ``calculateScaleDownLimitWithBehaviors``."""
    select = rules.get("selectPolicy", "Max")
    if select == "Disabled":
        return current
    proposals: list[int] = []
    for policy in rules.get("policies") or []:
        period = int(policy.get("periodSeconds", 15))
        start = current - _changed_within(history.scale_ups, period, now) + _changed_within(
            history.scale_downs, period, now)
        value = int(policy.get("value", 0))
        if policy.get("type") == "Pods":
            proposals.append(start + value if up else start - value)
        elif up:
            proposals.append(math.ceil(start * (1 + value / 100)))
        else:
            proposals.append(int(start * (1 - value / 100)))
    if not proposals:
        return current
    if up:
        return min(proposals) if select == "Min" else max(proposals)
    return max(proposals) if select == "Min" else min(proposals)


def normalize_with_behavior(*, history: History, behavior: Obj | None, current: int,
                            desired: int, min_replicas: int, max_replicas: int,
                            now: datetime.datetime) -> Decision:
    """``normalizeDesiredReplicasWithBehaviors``: records ``desired``."""
    up, down = default_behavior(behavior)
    up_window = int(up["stabilizationWindowSeconds"])
    down_window = int(down["stabilizationWindowSeconds"])
    if desired >= current:
        window, better, stabilized_reason = up_window, min, UP_STABILIZED
    else:
        window, better, stabilized_reason = down_window, max, DOWN_STABILIZED
    cutoff = now - datetime.timedelta(seconds=window)
    obsolete = now - datetime.timedelta(seconds=max(up_window, down_window))
    stabilized = desired
    for t, r in history.recommendations:
        if t > cutoff:
            stabilized = better(r, stabilized)
    history.recommendations = [(t, r) for t, r in history.recommendations if t >= obsolete] + [
        (now, desired)]
    able = READY if stabilized == desired else stabilized_reason
    if stabilized > current:
        scale_up_limit = max(current, _limit(current=current, history=history, rules=up,
                                             up=True, now=now))
        upper, limit = (scale_up_limit, UP_LIMIT) if max_replicas > scale_up_limit else (
            max_replicas, TOO_MANY)
        if stabilized > upper:
            return _decision(upper, stabilized, able, limit)
    elif stabilized < current:
        scale_down_limit = min(current, _limit(current=current, history=history, rules=down,
                                               up=False, now=now))
        lower, limit = (scale_down_limit, DOWN_LIMIT) if min_replicas < scale_down_limit else (
            min_replicas, TOO_FEW)
        if stabilized < lower:
            return _decision(lower, stabilized, able, limit)
    return _decision(stabilized, stabilized, able, WITHIN)


def record_scale(history: History, *, old: int, new: int, now: datetime.datetime,
                 behavior: Obj | None) -> None:
    """``storeScaleEvent``: remembered for the behavior policies' periods."""
    if behavior is None or new == old:
        return
    up, down = default_behavior(behavior)
    longest = max([int(p.get("periodSeconds", 15)) for p in
                   (up.get("policies") or []) + (down.get("policies") or [])] + [0])
    cutoff = now - datetime.timedelta(seconds=longest)
    history.scale_ups = [(t, c) for t, c in history.scale_ups if t > cutoff]
    history.scale_downs = [(t, c) for t, c in history.scale_downs if t > cutoff]
    if new > old:
        history.scale_ups.append((now, new - old))
    else:
        history.scale_downs.append((now, old - new))
