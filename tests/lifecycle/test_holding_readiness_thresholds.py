"""Readiness thresholds by time over checks that Mesos reports only when they change
(``lifecycle.readiness``): the windows, and the machine asking to be woken when one closes."""

from __future__ import annotations

from typing import Any

import pytest

from k8sbridge.lifecycle import events, intents, readiness
from k8sbridge.model import ids, tasks
from tests.lifecycle.harness import T0, UID, Harness, pod

FAIL = tasks.CheckResult(type="COMMAND", exit_code=1)
FAIL_OTHER = tasks.CheckResult(type="COMMAND", exit_code=2)
PASS = tasks.CheckResult(type="COMMAND", exit_code=0)
EMPTY = tasks.CheckResult(type="COMMAND")


def probed(**probe: Any) -> Harness:
    raw = pod()
    raw["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": ["check"]}, "periodSeconds": 2, "timeoutSeconds": 1, **probe}
    h = Harness(raw)
    h.run("app", 0, at=0)
    return h


def check(h: Harness, result: tasks.CheckResult, *, at: float,
          reason: str | None = readiness.CHECK_UPDATED) -> tuple[intents.Intent, ...]:
    status = tasks.TaskStatusView(
        task_id=ids.TaskId(f"{UID}.0.app"), state="TASK_RUNNING", timestamp=T0 + at,
        check=result, reason=reason)
    return h.feed(events.TaskUpdated(container="app", attempt=0, status=status), at=at)


def tick(h: Harness, *, at: float) -> tuple[intents.Intent, ...]:
    return h.feed(events.Tick(), at=at)


def ready(h: Harness) -> bool:
    return bool(h.container("app")["ready"])


@pytest.mark.parametrize(
    ("thresholds", "count", "window"),
    [
        pytest.param(readiness.Thresholds(), 1, 0.0, id="one result: at once"),
        pytest.param(readiness.Thresholds(), 3, 2 * 11 + readiness.MARGIN_SECONDS,
                     id="defaults: two more probes of 10 s + 1 s time-out"),
        pytest.param(readiness.Thresholds(period=2, timeout=1), 4, 9 + readiness.MARGIN_SECONDS,
                     id="three more probes"),
    ],
)
def test_a_run_of_results_takes_its_probes_periods_and_timeouts(
    thresholds: readiness.Thresholds, count: int, window: float
) -> None:
    assert thresholds.window(count) == window


def test_thresholds_come_from_the_probe_with_the_api_servers_defaults() -> None:
    assert readiness.thresholds_of({"name": "a"}) is None
    assert readiness.thresholds_of({"readinessProbe": {}}) == readiness.Thresholds(3, 1, 10, 1)
    assert readiness.thresholds_of({"readinessProbe": {
        "failureThreshold": 5, "successThreshold": 2, "periodSeconds": 3, "timeoutSeconds": 4,
    }}) == readiness.Thresholds(5, 2, 3, 4)
    assert readiness.thresholds_of({"readinessProbe": {
        "failureThreshold": 0, "successThreshold": True, "periodSeconds": "x",
    }}) == readiness.Thresholds()


def test_an_empty_check_update_is_a_failure_but_the_empty_status_before_results_is_not() -> None:
    assert readiness.result_of(None, readiness.CHECK_UPDATED) is False
    assert readiness.result_of(None, None) is None
    assert readiness.result_of(True, readiness.CHECK_UPDATED) is True


def test_a_failure_shorter_than_the_threshold_keeps_the_container_ready() -> None:
    h = probed(failureThreshold=3)
    check(h, PASS, at=1)
    assert ready(h)
    out = check(h, FAIL, at=5)
    due = T0 + 5 + 2 * 3 + readiness.MARGIN_SECONDS
    assert intents.WakeAt(due) in out
    assert ready(h)
    assert "Unhealthy" in h.events()  # every failing result is told, as the kubelet does
    check(h, PASS, at=7)  # the next probe passed: the window closes
    assert ready(h) and h.record.runtimes["app"].check_due is None
    tick(h, at=due - T0)
    assert ready(h)


def test_a_failure_lasting_the_window_makes_the_container_unready_when_it_closes() -> None:
    h = probed(failureThreshold=3)
    check(h, PASS, at=1)
    check(h, FAIL, at=5)
    out = check(h, FAIL_OTHER, at=7)  # another failing result: the run goes on
    assert not any(isinstance(i, intents.WakeAt) for i in out)
    due = 5 + 2 * 3 + readiness.MARGIN_SECONDS
    assert tick(h, at=due - 0.5) == () and ready(h)
    assert intents.WriteStatus() in tick(h, at=due)
    assert not ready(h)


def test_a_check_that_could_not_be_done_counts_as_a_failure() -> None:
    h = probed(failureThreshold=1)
    check(h, PASS, at=1)
    check(h, EMPTY, at=3)  # a time-out or a refused connection: Mesos sends an empty status
    assert not ready(h)


def test_the_empty_status_of_other_updates_changes_nothing() -> None:
    h = probed(failureThreshold=1)
    check(h, PASS, at=1)
    check(h, EMPTY, at=3, reason=None)
    assert ready(h)


def test_success_threshold_holds_readiness_back_until_the_passes_could_have_happened() -> None:
    h = probed(successThreshold=2, failureThreshold=1)
    out = check(h, PASS, at=1)  # the first pass: ready only after one more probe
    due = 1 + 3 + readiness.MARGIN_SECONDS
    assert intents.WakeAt(T0 + due) in out
    assert not ready(h)
    tick(h, at=due)
    assert ready(h)
    check(h, FAIL, at=10)  # failureThreshold 1: at once
    assert not ready(h)
    check(h, PASS, at=12)
    check(h, FAIL, at=13)  # failed inside the window: stays unready
    tick(h, at=20)
    assert not ready(h)


def test_a_first_failure_is_unready_at_once_and_a_restart_starts_anew() -> None:
    h = probed()
    check(h, FAIL, at=1)
    rt = h.record.runtimes["app"]
    assert (rt.check_passed, rt.check_due) == (False, None)
    check(h, PASS, at=2)
    assert ready(h)
    h.update("app", 0, "FAILED", at=3, code=1)
    h.run("app", 1, at=4)
    rt = h.record.runtimes["app"]
    assert (rt.check_passed, rt.check_result, rt.check_due) == (None, None, None)
