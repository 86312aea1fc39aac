"""The HorizontalPodAutoscaler's replica calculator and scaling rules against kube's documented
behaviour, table-driven with a fake clock: desiredReplicas = ceil(current x usage / target),
the 10 % tolerance, missing and unready pods, the default scale-down stabilization (300 s) and
scale-up bound, and ``behavior`` policies (Pods, Percent, periodSeconds, selectPolicy)."""

from __future__ import annotations

import datetime

import pytest

from k8sbridge.devkube.controllers import hpaplan as plan

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def pods(*usages: int | None, request: int = 100, ready: bool = True) -> list[plan.PodSample]:
    return [plan.PodSample(name=f"p{i}", usage=u, request=request, ready=ready)
            for i, u in enumerate(usages)]


@pytest.mark.parametrize(("usages", "target", "expected"), [
    ((100, 100), 50, (4, 100)),      # 100 % of a 50 % target: twice the pods
    ((25, 25, 25, 25), 50, (2, 25)),  # half the target: half the pods
    ((54, 54), 50, (2, 54)),          # within the 10 % tolerance: unchanged
    ((56, 56), 50, (3, 56)),          # just outside it: ceil(2 x 1.12)
    ((10,), 50, (1, 10)),             # ceil(0.2)
])
def test_utilization(usages: tuple[int, ...], target: int, expected: tuple[int, int]) -> None:
    assert plan.replicas_for(current=len(usages), samples=pods(*usages), target=target,
                             utilization=True) == expected


def test_average_value() -> None:
    assert plan.replicas_for(current=2, samples=pods(300, 100), target=100,
                             utilization=False) == (4, 200)


def test_missing_pods_are_assumed_at_the_request_when_scaling_down() -> None:
    # ready pods at 20 %: the missing one counts as 100 %: (20+20+100)/300 = 46 % of 50
    assert plan.replicas_for(current=3, samples=pods(20, 20, None), target=50,
                             utilization=True) == (3, 20)
    # and at 0 when scaling up: (100+100+0)/300 = 66 % of 50 % -> ceil(1.33 x 3) = 4
    assert plan.replicas_for(current=3, samples=pods(100, 100, None), target=50,
                             utilization=True) == (4, 100)


def test_unready_pods_count_as_zero_when_scaling_up() -> None:
    samples = pods(100, 100) + [plan.PodSample(name="u", usage=100, request=100, ready=False)]
    assert plan.replicas_for(current=3, samples=samples, target=50, utilization=True) == (4, 100)


@pytest.mark.parametrize(("samples", "message"), [
    ([], "no pods returned by selector while calculating replica count"),
    (pods(None, None), "did not receive metrics for targeted pods (pods might be unready)"),
    ([plan.PodSample(name="p0", usage=5, request=None)], "missing request for cpu in pod p0"),
])
def test_metric_errors(samples: list[plan.PodSample], message: str) -> None:
    with pytest.raises(plan.MetricError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan.replicas_for(current=1, samples=samples, target=50, utilization=True)


def test_scale_down_waits_for_the_stabilization_window() -> None:
    history = plan.History()
    first = plan.normalize(history=history, current=5, desired=5, min_replicas=1,
                           max_replicas=10, now=at(0))
    assert (first.replicas, first.able_reason) == (5, "ReadyForNewScale")
    low = plan.normalize(history=history, current=5, desired=2, min_replicas=1, max_replicas=10,
                         now=at(60))
    assert (low.replicas, low.able_reason) == (5, "ScaleDownStabilized")
    later = plan.normalize(history=history, current=5, desired=2, min_replicas=1,
                           max_replicas=10, now=at(301))
    assert (later.replicas, later.able_reason, later.limited) == (2, "ReadyForNewScale", False)


@pytest.mark.parametrize(("current", "desired", "low", "high", "expected"), [
    (2, 20, 1, 50, (4, True, "ScaleUpLimit")),     # max(2 x 2, 4)
    (10, 30, 1, 15, (15, True, "TooManyReplicas")),
    (3, 0, 2, 10, (2, True, "TooFewReplicas")),
    (3, 5, 1, 10, (5, False, "DesiredWithinRange")),
])
def test_default_rules_bound_the_change(current: int, desired: int, low: int, high: int,
                                        expected: tuple[int, bool, str]) -> None:
    d = plan.normalize(history=plan.History(), current=current, desired=desired,
                       min_replicas=low, max_replicas=high, now=T0)
    assert (d.replicas, d.limited, d.limited_reason) == expected


@pytest.mark.parametrize(("behavior", "current", "desired", "expected"), [
    # defaults: up by max(4 pods, 100 %) per 15 s
    ({}, 2, 20, (6, "ScaleUpLimit")),
    ({}, 10, 40, (20, "ScaleUpLimit")),
    ({"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}},
     3, 10, (4, "ScaleUpLimit")),
    ({"scaleUp": {"selectPolicy": "Min", "policies": [
        {"type": "Pods", "value": 5, "periodSeconds": 60},
        {"type": "Percent", "value": 50, "periodSeconds": 60}]}}, 4, 20, (6, "ScaleUpLimit")),
    ({"scaleUp": {"selectPolicy": "Disabled"}}, 4, 20, (4, "ScaleUpLimit")),
    ({"scaleDown": {"stabilizationWindowSeconds": 0, "policies": [
        {"type": "Percent", "value": 10, "periodSeconds": 60}]}}, 10, 1, (9, "ScaleDownLimit")),
    ({"scaleDown": {"stabilizationWindowSeconds": 0}}, 10, 1, (1, "DesiredWithinRange")),
])
def test_behavior_policies(behavior: dict[str, object], current: int, desired: int,
                           expected: tuple[int, str]) -> None:
    d = plan.normalize_with_behavior(history=plan.History(), behavior=behavior, current=current,
                                     desired=desired, min_replicas=1, max_replicas=100, now=T0)
    assert (d.replicas, d.limited_reason) == expected


def test_policies_count_the_changes_of_their_period() -> None:
    behavior = {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}}
    history = plan.History()
    d = plan.normalize_with_behavior(history=history, behavior=behavior, current=2, desired=10,
                                     min_replicas=1, max_replicas=100, now=at(0))
    assert d.replicas == 4
    plan.record_scale(history, old=2, new=4, now=at(0), behavior=behavior)
    d = plan.normalize_with_behavior(history=history, behavior=behavior, current=4, desired=10,
                                     min_replicas=1, max_replicas=100, now=at(30))
    assert d.replicas == 4  # the period's 2 pods are spent
    d = plan.normalize_with_behavior(history=history, behavior=behavior, current=4, desired=10,
                                     min_replicas=1, max_replicas=100, now=at(61))
    assert d.replicas == 6


def test_scale_up_stabilization_takes_the_lowest_recent_recommendation() -> None:
    behavior = {"scaleUp": {"stabilizationWindowSeconds": 60}}
    history = plan.History()
    plan.normalize_with_behavior(history=history, behavior=behavior, current=2, desired=3,
                                 min_replicas=1, max_replicas=100, now=at(0))
    d = plan.normalize_with_behavior(history=history, behavior=behavior, current=2, desired=8,
                                     min_replicas=1, max_replicas=100, now=at(30))
    assert (d.replicas, d.able_reason) == (3, "ScaleUpStabilized")
