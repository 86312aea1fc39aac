"""A group whose network could not be set up (the CNI isolator failed) is the kubelet's failed
sandbox: its containers wait in ContainerCreating with the message, a FailedCreatePodSandBox
event says it, the group is launched again with back-off whatever the restart policy, and no
retry counts as a restart (pure: updates in, intents and the rendered status out)."""

from __future__ import annotations

import pytest

from k8sbridge.lifecycle import events, intents, restarts, sandbox
from k8sbridge.model import ids, tasks
from tests.lifecycle.harness import T0, UID, Harness, pod

UNKNOWN = "Failed to launch container: Unknown CNI network 'k8sbridge'"


def _failed(h: Harness, container: str, attempt: int, *, at: float,
            message: str = UNKNOWN) -> tuple[intents.Intent, ...]:
    status = tasks.TaskStatusView(
        task_id=ids.TaskId(f"{UID}.{attempt}.{container}"), state="TASK_FAILED",
        timestamp=T0 + at, message=message, reason="REASON_CONTAINER_LAUNCH_FAILED")
    return h.feed(events.TaskUpdated(container=container, attempt=attempt, status=status,
                                     needs_ack=True), at=at)


@pytest.mark.parametrize("policy", ["Always", "Never"])
def test_a_group_without_its_network_waits_and_is_retried_with_back_off(policy: str) -> None:
    h = Harness(pod(apps=("web", "log"), policy=policy))
    out = _failed(h, "web", 0, at=1)
    _failed(h, "log", 0, at=1)  # every task of the group fails alike: one retry
    assert [i for i in h.intents if isinstance(i, intents.RecordEvent)] == [
        intents.RecordEvent("Warning", sandbox.EVENT_REASON,
                            f"Failed to create pod sandbox: {UNKNOWN}")]
    assert isinstance(out[-1], intents.Acknowledge)
    assert h.relaunches() == [intents.Relaunch(at=T0 + 1, containers=("web", "log"))]
    status = h.status()
    assert status["phase"] == "Pending"
    for name in ("web", "log"):
        c = h.container(name)
        assert c["state"] == {"waiting": {"reason": "ContainerCreating", "message": UNKNOWN}}
        assert c["restartCount"] == 0 and c["lastState"] == {} and not c["ready"]
    # the retries back off (10 s, then 20 s), none is a restart
    _failed(h, "web", 1, at=2)
    _failed(h, "log", 1, at=2)
    _failed(h, "web", 2, at=13)
    assert [r.at - T0 for r in h.relaunches()] == [1, 2 + restarts.INITIAL_BACKOFF, 13 + 20]
    assert h.events().count(sandbox.EVENT_REASON) == 3
    # once the network is there, the containers run; still no restart counted
    h.run("web", 3, at=40)
    h.run("log", 3, at=40)
    assert h.status()["phase"] == "Running"
    assert [h.container(n)["restartCount"] for n in ("web", "log")] == [0, 0]
    assert "CrashLoopBackOff" not in str(h.status()) and "StartError" not in str(h.status())


def test_an_init_container_without_its_network_waits_and_the_apps_wait_behind_it() -> None:
    h = Harness(pod(apps=("app",), inits=("setup",)))
    _failed(h, "setup", 0, at=1,
            message="Failed to launch container: Failed to execute the CNI plugin 'bridge'")
    assert h.relaunches() == [intents.Relaunch(at=T0 + 1, containers=("setup",))]
    # a kubelet shows PodInitializing for every container of a pod with init containers
    assert h.container("setup")["state"] == {"waiting": {
        "reason": "PodInitializing",
        "message": "Failed to launch container: Failed to execute the CNI plugin 'bridge'"}}
    assert h.container("app")["state"]["waiting"]["reason"] == "PodInitializing"
    assert h.status()["phase"] == "Pending"
    _failed(h, "setup", 1, at=2)
    assert h.relaunches()[-1] == intents.Relaunch(at=T0 + 12, containers=("setup",))
    h.run("setup", 2, at=20)
    h.update("setup", 2, "FINISHED", at=21)
    assert h.container("setup")["restartCount"] == 0


def test_a_deleted_pod_without_its_network_is_not_retried() -> None:
    h = Harness(pod(deleting=True))
    _failed(h, "app", 0, at=1)
    assert h.relaunches() == [] and sandbox.EVENT_REASON in h.events()


@pytest.mark.parametrize("message", [
    UNKNOWN,
    "Failed to launch container: The CNI plugin 'bridge' failed to attach container c1 to "
    "CNI network 'k8sbridge' (exit status 1): stdout='', stderr='no IP addresses available'",
    "Failed to launch container: Failed to create the network namespace: timed out",
    "Failed to setup hostname and network files: cannot write /etc/hosts",
])
def test_what_the_network_cni_isolator_fails_with_is_a_sandbox_failure(message: str) -> None:
    status = tasks.TaskStatusView(
        task_id=ids.TaskId(f"{UID}.0.app"), state="TASK_FAILED", timestamp=T0,
        message=message, reason="REASON_CONTAINER_LAUNCH_FAILED")
    assert sandbox.failed(status)
    assert not sandbox.failed(tasks.TaskStatusView(
        task_id=status.task_id, state="TASK_FAILED", timestamp=T0, message=message,
        reason="REASON_COMMAND_EXECUTOR_FAILED"))


def test_a_launch_failure_of_another_kind_stays_a_start_error() -> None:
    h = Harness(pod(policy="Never"))
    _failed(h, "app", 0, at=1, message="Failed to launch container: no such image")
    assert h.container("app")["state"]["terminated"]["reason"] == "StartError"
    assert sandbox.EVENT_REASON not in h.events() and h.relaunches() == []
