"""A pod's network that could not be set up: the kubelet's failed sandbox, not a crash.

Why its own rule: a kubelet whose CNI plugin fails (or that has no network of the pod's
name) never creates the pod's containers. The pod stays ``Pending`` with its containers
``waiting: ContainerCreating``, a ``FailedCreatePodSandBox`` event carries the plugin's
message, and the kubelet tries again with back-off; no container ran, so nothing is a
restart and ``restartPolicy`` does not apply (a ``Never`` pod is retried too). On Mesos the
same failure is a ``TASK_FAILED`` of every task of the group with
``REASON_CONTAINER_LAUNCH_FAILED`` and the network/cni isolator's message (``Unknown CNI
network 'k8sbridge'``, ``Failed to execute the CNI plugin ...``); read as a container's
``StartError`` it made the pod crash-loop with restarts it never had.

Rules (``failed``, ``waiting``, ``next_back_off``): a launch failure whose message names CNI,
or the network namespace or files the isolator makes, is a sandbox failure; each container of
the group shows ``ContainerCreating`` with the message and keeps what it showed before (its
restart count, its last termination); the next launch of the group waits the back-off (0
first, then 10 s doubling to 5 min, as the crash back-off), and is not counted as a restart
when it comes.
"""

from __future__ import annotations

import dataclasses

from k8sbridge.lifecycle import restarts
from k8sbridge.lifecycle.containers import ContainerRuntime
from k8sbridge.model import tasks

__all__ = ["EVENT_REASON", "event_message", "failed", "next_back_off", "waiting"]

EVENT_REASON = "FailedCreatePodSandBox"
_LAUNCH_FAILED = "REASON_CONTAINER_LAUNCH_FAILED"
# Mesos' network/cni isolator names CNI in what it fails with ("Unknown CNI network",
# "Failed to execute the CNI plugin"), or the namespace and files it makes for the network.
_MARKS = ("CNI", "network namespace", "network files")


def failed(status: tasks.TaskStatusView) -> bool:
    """The task never started because its group's network could not be set up."""
    return (status.state in tasks.TERMINAL_STATES and status.reason == _LAUNCH_FAILED
            and any(mark in status.message for mark in _MARKS))


def event_message(status: tasks.TaskStatusView) -> str:
    return f"Failed to create pod sandbox: {status.message}"


def waiting(c: ContainerRuntime, status: tasks.TaskStatusView) -> ContainerRuntime:
    """``c`` (already moved to the failed task, ``containers.start_attempt``) as it shows
    while the sandbox is retried: waiting, the message, no task (so that the next launch is
    not counted as a restart)."""
    return dataclasses.replace(
        c, task_id=None, task_state=None, started_at=None, terminated=None,
        waiting_reason="ContainerCreating", waiting_message=status.message,
        check_passed=None, check_result=None, check_due=None, healthy=None,
        restart_at=None)


def next_back_off(back_off: float) -> tuple[float, float]:
    """``(delay, next)``: the wait before this retry, and the one remembered for the next."""
    following = restarts.INITIAL_BACKOFF if back_off == 0 else min(back_off * 2,
                                                                   restarts.MAX_BACKOFF)
    return back_off, following
