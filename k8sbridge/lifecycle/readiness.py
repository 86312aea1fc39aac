"""Readiness probe thresholds over Mesos checks, decided by time (pure).

Why by time: the kubelet counts probes (``failureThreshold`` failures in a row make a
container unready, ``successThreshold`` passes in a row make it ready again), but a Mesos
checker sends a check's status only when it differs from the previous one
(``src/checks/checker.cpp``, ``Checker::processCheckResult``), so the bridge sees the first
result of a run and never the ones repeating it. What it does know is the checker's rhythm:
the next probe starts ``interval_seconds`` after the previous one *ended*
(``checker_process.cpp``: ``scheduleNext(checkInterval)`` after each result), and a probe
ends at the latest after ``timeout_seconds``. So a run of n equal results has certainly
happened once (n − 1) × (periodSeconds + timeoutSeconds) have passed since its first result
with no update that broke it. The container record keeps the latest result as Mesos sent it
(``check_result``) and the one that drives ``ready`` (``check_passed``):

* a result equal to ``check_passed`` cancels a pending change;
* a failing result while ready makes the container unready at ``window(failureThreshold)``
  after it arrived unless a passing result arrives first (``failureThreshold`` 1: at once);
* a passing result while unready (or before any result) makes it ready at
  ``window(successThreshold)`` unless a failure arrives first; a first failing result makes
  it unready at once (the kubelet starts out unready).

``MARGIN_SECONDS`` is added to every window that is not zero: the result of the probe that
closes the window travels executor → agent → master → bridge, and the agent forwards a
task's next update only after the bridge acknowledged the previous one (which it does after
writing the pod's status). One second covers those hops and one status write on a healthy
cluster; a late pass costs at most that second of unreadiness, never a flap. Times are the
bridge's clock (when updates arrived), never the agent's: the clocks need not agree.

Mesos sends an *empty* check status (no exit code, no HTTP status) when a probe could not be
done: it timed out, or curl could not connect (``processCheckResult`` turns the ``Error`` into
``createEmptyCheckStatusInfo``). Such an update (reason ``REASON_TASK_CHECK_STATUS_UPDATED``) is
a failure, as the kubelet counts time-outs and refused connections; the empty status every
update carries before the first result is not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CHECK_UPDATED",
    "MARGIN_SECONDS",
    "Thresholds",
    "follow",
    "result_of",
    "settle",
    "thresholds_of",
]

MARGIN_SECONDS = 1.0
CHECK_UPDATED = "REASON_TASK_CHECK_STATUS_UPDATED"


@dataclasses.dataclass(frozen=True, slots=True)
class Thresholds:
    """A readiness probe's thresholds and timing (the API server's defaults)."""

    failure: int = 3
    success: int = 1
    period: float = 10.0
    timeout: float = 1.0

    def window(self, count: int) -> float:
        """How long a run of ``count`` equal results certainly takes after its first."""
        if count <= 1:
            return 0.0
        return (count - 1) * (self.period + self.timeout) + MARGIN_SECONDS


def _count(raw: Any, default: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        return default
    return raw


def _seconds(raw: Any, default: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw < 1e9:
        return default
    return float(raw)


def thresholds_of(container: Mapping[str, Any]) -> Thresholds | None:
    """The thresholds of a raw container's readinessProbe (None: no probe)."""
    probe = container.get("readinessProbe")
    if not isinstance(probe, Mapping):
        return None
    return Thresholds(
        failure=_count(probe.get("failureThreshold"), 3),
        success=_count(probe.get("successThreshold"), 1),
        period=_seconds(probe.get("periodSeconds"), 10.0),
        timeout=_seconds(probe.get("timeoutSeconds"), 1.0),
    )


def result_of(passed: bool | None, reason: str | None) -> bool | None:
    """The outcome of one check status: ``passed`` (Kubernetes' rules), or a failure when
    Mesos reports a probe it could not do (an empty status on a check update)."""
    if passed is None and reason == CHECK_UPDATED:
        return False
    return passed


@dataclasses.dataclass(frozen=True, slots=True)
class Readiness:
    """What ``follow``/``settle`` decide: the effective result and when the latest one
    takes effect (None: nothing pending)."""

    passed: bool | None
    due: float | None


def follow(
    *, effective: bool | None, due: float | None, result: bool | None, changed: bool,
    now: float, thresholds: Thresholds | None,
) -> Readiness:
    """The effective readiness after the latest result (``changed``: it differs from the
    one before), with the thresholds of the probe (None: take results at once)."""
    if not changed or result is None:
        return Readiness(effective, due)
    if result == effective:
        return Readiness(effective, None)  # back to what shows: nothing changes
    if effective is None and result is False:
        return Readiness(False, None)  # unready from the start, as the kubelet
    wait = 0.0
    if thresholds is not None:
        wait = thresholds.window(thresholds.success if result else thresholds.failure)
    if wait <= 0:
        return Readiness(result, None)
    return Readiness(effective, now + wait)


def settle(*, effective: bool | None, due: float | None, result: bool | None,
           now: float) -> Readiness:
    """A pending result takes effect once its time has come."""
    if due is not None and now >= due:
        return Readiness(result, None)
    return Readiness(effective, due)
