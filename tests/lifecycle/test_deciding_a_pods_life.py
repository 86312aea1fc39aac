"""The lifecycle's rules, table-driven: a pod, what happens to its tasks, what must follow.

Each case feeds task updates through the harness and checks the relaunches (which containers,
how long after the last update), the kills, every container's restartCount and the phase.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from k8sbridge.kubelet import statusmap
from k8sbridge.lifecycle import events, intents
from k8sbridge.model import ids, tasks
from tests.lifecycle import harness
from tests.lifecycle.harness import Harness, pod

# steps: ("run", container, attempt, at) | ("end", container, attempt, STATE, at, exit code)
Step = tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class Case:
    pod: dict[str, Any]
    steps: tuple[Step, ...]
    relaunches: tuple[tuple[tuple[str, ...], float], ...] = ()  # (containers, delay)
    kills: tuple[str, ...] = ()
    restarts: tuple[tuple[str, int], ...] = ()
    phase: str | None = None


def _task(container: str, attempt: int) -> str:
    return f"{harness.UID}.{attempt}.{container}"


CASES = [
    pytest.param(Case(
        pod=pod(),
        steps=(("run", "app", 0, 1), ("end", "app", 0, "FAILED", 2, 1)),
        relaunches=((("app",), 0.0),),  # the first restart is immediate
        restarts=(("app", 0),),
        phase="Running",
    ), id="a-crash-restarts-at-once"),
    pytest.param(Case(
        pod=pod(),
        steps=(("run", "app", 0, 1), ("end", "app", 0, "FAILED", 2, 1),
               ("run", "app", 1, 3), ("end", "app", 1, "FAILED", 4, 1),
               ("run", "app", 2, 15), ("end", "app", 2, "FAILED", 16, 1)),
        relaunches=((("app",), 0.0), (("app",), 10.0), (("app",), 20.0)),
        restarts=(("app", 2),),
    ), id="back-off-doubles-from-10s"),
    pytest.param(Case(
        pod=pod(),
        steps=(("run", "app", 0, 1), ("end", "app", 0, "FAILED", 2, 1),
               ("run", "app", 1, 3), ("end", "app", 1, "FAILED", 4, 1),
               ("run", "app", 2, 15), ("end", "app", 2, "FAILED", 15 + 600, 1)),
        relaunches=((("app",), 0.0), (("app",), 10.0), (("app",), 0.0)),
        restarts=(("app", 2),),
    ), id="back-off-resets-after-10min-running"),
    pytest.param(Case(
        pod=pod(policy="Never"),
        steps=(("run", "app", 0, 1), ("end", "app", 0, "FAILED", 2, 1)),
        phase="Failed",
    ), id="never-does-not-restart"),
    pytest.param(Case(
        pod=pod(policy="OnFailure"),
        steps=(("run", "app", 0, 1), ("end", "app", 0, "FINISHED", 2, 0)),
        phase="Succeeded",
    ), id="on-failure-completes"),
    pytest.param(Case(
        pod=pod(policy="OnFailure", apps=("a", "b")),
        steps=(("run", "a", 0, 1), ("run", "b", 0, 1), ("end", "a", 0, "FAILED", 2, 1)),
        phase="Running",
    ), id="the-group-restarts-only-when-every-app-container-ended"),
    pytest.param(Case(
        pod=pod(inits=("init",)),
        steps=(("run", "init", 0, 1), ("end", "init", 0, "FINISHED", 2, 0),
               ("run", "app", 1, 3)),
        restarts=(("init", 0), ("app", 0)),
        phase="Running",
    ), id="the-app-after-an-init-container-has-not-restarted"),
    pytest.param(Case(
        pod=pod(inits=("init",)),
        steps=(("run", "init", 0, 1), ("end", "init", 0, "FAILED", 2, 1),
               ("run", "init", 1, 3), ("end", "init", 1, "FAILED", 4, 1)),
        relaunches=((("init",), 0.0), (("init",), 10.0)),
        restarts=(("init", 1),),
        phase="Pending",
    ), id="a-failed-init-container-retries-with-back-off"),
    pytest.param(Case(
        pod=pod(inits=("init",), policy="Never"),
        steps=(("run", "init", 0, 1), ("end", "init", 0, "FAILED", 2, 1)),
        phase="Failed",
    ), id="a-failed-init-container-fails-a-never-pod"),
    pytest.param(Case(
        pod=pod(inits=("proxy",), sidecars=("proxy",), policy="Never"),
        steps=(("run", "proxy", 0, 1), ("run", "app", 1, 2),
               ("end", "app", 1, "FINISHED", 3, 0)),
        kills=(_task("proxy", 0),),
        restarts=(("proxy", 0), ("app", 0)),
        phase="Succeeded",
    ), id="a-sidecar-stops-after-the-app"),
    pytest.param(Case(
        pod=pod(inits=("log", "proxy"), sidecars=("log", "proxy"), policy="OnFailure"),
        steps=(("run", "log", 0, 1), ("run", "proxy", 0, 1), ("run", "app", 1, 2),
               ("end", "app", 1, "FINISHED", 3, 0)),
        kills=(_task("proxy", 0), _task("log", 0)),  # reverse order
        phase="Succeeded",
    ), id="sidecars-stop-in-reverse-order"),
    pytest.param(Case(
        pod=pod(inits=("proxy",), sidecars=("proxy",), policy="Never"),
        steps=(("run", "proxy", 0, 1), ("run", "app", 1, 2),
               ("end", "proxy", 0, "FINISHED", 3, 0)),
        relaunches=((("proxy",), 0.0),),  # whatever the pod's policy, even after success
        phase="Running",
    ), id="a-sidecar-restarts-when-it-exits"),
    pytest.param(Case(
        pod=pod(inits=("proxy",), sidecars=("proxy",), policy="Never"),
        steps=(("run", "proxy", 0, 1), ("run", "app", 1, 2),
               ("end", "app", 1, "FINISHED", 3, 0), ("end", "proxy", 0, "KILLED", 4, 143)),
        kills=(_task("proxy", 0),),
        phase="Succeeded",
    ), id="a-stopped-sidecar-stays-stopped"),
    pytest.param(Case(
        pod=pod(deleting=True),
        steps=(("run", "app", 0, 1), ("end", "app", 0, "KILLED", 2, 143)),
    ), id="a-pod-being-deleted-restarts-nothing"),
    pytest.param(Case(
        pod=pod(),
        steps=(("run", "app", 0, 1), ("end", "app", 0, "FAILED", 2, 1),
               ("end", "app", 0, "FAILED", 2, 1), ("run", "app", 1, 3),
               ("end", "app", 0, "FAILED", 2, 1)),
        relaunches=((("app",), 0.0),),  # duplicates and late updates ask nothing more
        restarts=(("app", 1),),
        phase="Running",
    ), id="duplicates-relaunch-once"),
    pytest.param(Case(
        pod=pod(status={"containerStatuses": [{"name": "app", "restartCount": 4}]}),
        steps=(("run", "app", 5, 1),),
        restarts=(("app", 4),),
    ), id="restart-counts-carry-over-a-bridge-restart"),
]


@pytest.mark.parametrize("case", CASES)
def test_deciding(case: Case) -> None:
    h = Harness(case.pod)
    expected_at: list[tuple[tuple[str, ...], float]] = []
    for step in case.steps:
        before = len(h.relaunches())
        if step[0] == "run":
            h.run(step[1], step[2], at=step[3])
        else:
            h.update(step[1], step[2], step[3], at=step[4], code=step[5])
        expected_at += [(r.containers, r.at - h.now) for r in h.relaunches()[before:]]
    assert tuple(expected_at) == case.relaunches
    assert tuple(h.kills()) == case.kills
    for name, count in case.restarts:
        assert h.container(name)["restartCount"] == count, name
    if case.phase is not None:
        assert h.status()["phase"] == case.phase


def test_an_update_is_written_before_it_is_acknowledged() -> None:
    h = Harness(pod())
    out = h.update("app", 0, "RUNNING", at=1, needs_ack=True)
    assert out[-2:] == (intents.WriteStatus(), intents.Acknowledge())


def test_an_older_attempts_update_changes_nothing_but_is_acknowledged() -> None:
    h = Harness(pod())
    h.run("app", 0, at=1)
    h.update("app", 0, "FAILED", at=2, code=1)
    h.run("app", 1, at=3)
    record = h.record
    out = h.update("app", 0, "KILLED", at=4, needs_ack=True)
    assert h.record.runtimes == record.runtimes
    assert out == (intents.WriteStatus(), intents.Acknowledge())


def test_crash_loop_back_off_shows_until_the_restart() -> None:
    h = Harness(pod())
    h.run("app", 0, at=1)
    h.update("app", 0, "FAILED", at=2, code=1)
    h.run("app", 1, at=3)
    h.update("app", 1, "FAILED", at=4, code=1)
    app = h.container("app")
    assert app["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert app["lastState"]["terminated"]["exitCode"] == 1
    assert "BackOff" in h.events()


def test_scheduling_outcomes_are_events_and_statuses() -> None:
    h = Harness(pod())
    out = h.feed(events.Unschedulable(message="0/2 nodes are available"))
    assert out == (
        intents.RecordEvent("Warning", "FailedScheduling", "0/2 nodes are available"),
        intents.WriteStatus(),
    )
    assert h.record.unschedulable == "0/2 nodes are available"
    out = h.feed(events.Scheduled(node_name="node-1"))
    assert h.record.unschedulable is None and h.record.node_name == "node-1"
    assert out == (intents.RecordEvent(
        "Normal", "Scheduled", "Successfully assigned ns/p to node-1"),)


def test_a_refused_launch_shows_why_on_every_app_container() -> None:
    h = Harness(pod(apps=("a", "b")))
    h.feed(events.LaunchRefused(reason="CreateContainerConfigError",
                                message='configmap "cfg" not found'))
    for name in ("a", "b"):
        waiting = h.container(name)["state"]["waiting"]
        assert waiting == {"reason": "CreateContainerConfigError",
                           "message": 'configmap "cfg" not found'}
    assert h.record.failure is not None
    h.run("a", 0, at=1)  # a later launch clears it
    assert h.record.failure is None


def test_a_deletion_seen_later_stops_restarts() -> None:
    h = Harness(pod())
    h.run("app", 0, at=1)
    h.feed(events.PodChanged(pod=pod(deleting=True)))
    h.update("app", 0, "KILLED", at=2)
    assert h.relaunches() == []


def _with_deadline(seconds: int, **kwargs: Any) -> dict[str, Any]:
    raw = pod(**kwargs)
    raw["spec"]["activeDeadlineSeconds"] = seconds
    return raw


def test_an_active_deadline_wakes_the_machine_then_fails_the_pod() -> None:
    h = Harness(_with_deadline(60, inits=("proxy",), sidecars=("proxy",)))
    out = h.update("proxy", 0, "RUNNING", at=1)
    assert intents.WakeAt(harness.T0 + 1 + 60) in out  # counted from the first update
    h.run("app", 1, at=2)
    assert [i for i in h.intents if isinstance(i, intents.WakeAt)] == [
        intents.WakeAt(harness.T0 + 61)]  # asked once
    assert h.feed(events.Tick(), at=30) == ()  # early: nothing
    out = h.feed(events.Tick(), at=61)
    assert out == (
        intents.RecordEvent("Warning", "DeadlineExceeded",
                            "Pod was active on the node longer than the specified deadline"),
        intents.Kill(ids.TaskId(_task("proxy", 0))),
        intents.Kill(ids.TaskId(_task("app", 1))),
        intents.WriteStatus(),
    )
    h.update("app", 1, "KILLED", at=62, code=143)
    assert h.relaunches() == []  # a failed pod restarts nothing
    assert h.feed(events.Tick(), at=70) == ()


def test_the_deadline_counts_from_the_pods_start_time_and_follows_changes() -> None:
    began = {"startTime": statusmap.rfc3339(harness.T0 - 50)}  # (a bridge restart since)
    h = Harness(_with_deadline(100, status=began))
    out = h.update("app", 0, "RUNNING", at=1)
    assert intents.WakeAt(harness.T0 + 50) in out
    out = h.feed(events.PodChanged(pod=_with_deadline(10, status=began)), at=2)
    assert intents.RecordEvent(
        "Warning", "DeadlineExceeded",
        "Pod was active on the node longer than the specified deadline") in out
    assert h.status()["phase"] == "Running"  # the record decides; the writer renders it:
    failed = statusmap.pod_status(pod=h.pod, containers=h.record.runtimes, now=h.now,
                                  failed=("DeadlineExceeded", "past it"))
    assert (failed["phase"], failed["reason"]) == ("Failed", "DeadlineExceeded")


def test_a_completed_pod_has_no_deadline() -> None:
    h = Harness(_with_deadline(5, policy="Never"))
    h.run("app", 0, at=1)
    h.update("app", 0, "FINISHED", at=2)
    assert h.feed(events.Tick(), at=10) == ()
    assert h.status()["phase"] == "Succeeded"


@pytest.mark.parametrize("state", ["TASK_DROPPED", "TASK_LOST", "TASK_ERROR"])
def test_a_launch_refused_for_invalid_offers_goes_again_and_shows_nothing(state: str) -> None:
    h = Harness(pod(apps=("a", "b")))
    refused = tasks.TaskStatusView(task_id=ids.TaskId(_task("a", 0)), state=state,
                                   reason="REASON_INVALID_OFFERS", timestamp=harness.T0 + 1)
    out = h.feed(events.TaskUpdated(container="a", attempt=0, status=refused, needs_ack=True),
                 at=1)
    assert out == (intents.Relaunch(at=harness.T0 + 1, containers=("a", "b")),
                   intents.WriteStatus(), intents.Acknowledge())
    assert h.record.runtimes == {}
    h.run("a", 1, at=2)
    h.run("b", 1, at=2)
    assert h.container("a")["restartCount"] == 0  # the refused launch never ran


def test_an_init_container_refused_for_invalid_offers_goes_again_alone() -> None:
    h = Harness(pod(inits=("init",)))
    refused = tasks.TaskStatusView(task_id=ids.TaskId(_task("init", 0)), state="TASK_DROPPED",
                                   reason="REASON_INVALID_OFFERS", timestamp=harness.T0 + 1)
    out = h.feed(events.TaskUpdated(container="init", attempt=0, status=refused), at=1)
    assert intents.Relaunch(at=harness.T0 + 1, containers=("init",)) in out
    deleting = Harness(pod(deleting=True))
    out = deleting.feed(events.TaskUpdated(container="app", attempt=0, status=dataclasses.replace(
        refused, task_id=ids.TaskId(_task("app", 0)))), at=1)
    assert not any(isinstance(i, intents.Relaunch) for i in out)


def test_a_container_ending_past_the_deadline_is_not_restarted() -> None:
    h = Harness(_with_deadline(20, inits=("init",)))
    h.update("init", 0, "STARTING", at=1)
    h.update("init", 0, "FAILED", at=30, code=1)  # the first event past the deadline
    assert h.relaunches() == []
    assert "DeadlineExceeded" in h.events()


def test_a_sidecar_counts_toward_readiness() -> None:
    h = Harness(pod(inits=("proxy",), sidecars=("proxy",)))
    h.run("proxy", 0, at=1)
    h.run("app", 1, at=2)
    ready = {c["type"]: c for c in h.status()["conditions"]}["Ready"]
    assert ready["status"] == "True"
    h.update("proxy", 0, "FAILED", at=3, code=1)  # exited: restarting, not ready
    ready = {c["type"]: c for c in h.status()["conditions"]}["Ready"]
    assert ready["status"] == "False"
    assert ready["message"] == "containers with unready status: [proxy]"
