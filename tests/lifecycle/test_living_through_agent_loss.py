"""Partition-aware states as the pod sees them: TASK_UNREACHABLE leaves the pod as it is (its
containers not ready, nothing restarted, however often it is repeated); TASK_GONE and
TASK_GONE_BY_OPERATOR end the container (the agent, and so the task, is gone for good), and
restartPolicy decides what follows."""

from __future__ import annotations

import pytest

from tests.lifecycle import harness


def test_unreachable_keeps_the_pod_not_ready_and_restarts_nothing() -> None:
    h = harness.Harness(harness.pod(policy="Always"))
    h.run("app", 0, at=1)
    assert h.container("app")["ready"] is True
    for k in range(50):  # the master repeats it (reconciliation, kills)
        h.update("app", 0, "UNREACHABLE", at=2 + k)
    c = h.container("app")
    assert c["ready"] is False and "running" in c["state"] and c["restartCount"] == 0
    assert h.relaunches() == [] and h.kills() == []
    assert h.status()["phase"] == "Running"
    h.update("app", 0, "RUNNING", at=60)  # its agent is back (reconciled)
    assert h.container("app")["ready"] is True and h.relaunches() == []


@pytest.mark.parametrize("state", ["GONE", "GONE_BY_OPERATOR"])
@pytest.mark.parametrize(("policy", "relaunched", "phase"), [
    ("Always", True, "Running"), ("OnFailure", True, "Running"), ("Never", False, "Failed"),
])
def test_gone_ends_the_container_and_restart_policy_decides(
    state: str, policy: str, relaunched: bool, phase: str,
) -> None:
    h = harness.Harness(harness.pod(policy=policy))
    h.run("app", 0, at=1)
    h.update("app", 0, "UNREACHABLE", at=2)
    h.update("app", 0, state, at=3)
    assert bool(h.relaunches()) is relaunched
    assert len(h.relaunches()) <= 1  # once, not per repeated update
    h.update("app", 0, state, at=4)
    assert len(h.relaunches()) <= 1
    c = h.container("app")
    term = c["state"].get("terminated") or c["lastState"].get("terminated")
    assert term is not None and term["reason"] == "ContainerStatusUnknown"
    assert h.status()["phase"] == phase
