"""Mesos delivers task updates at least once and not always in order: the lifecycle must not
care. Whatever the delivery order (with duplicates), the final status is the in-order one, and
a terminated attempt asks for at most one relaunch."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.kubelet import statusmap
from k8sbridge.lifecycle import events, intents, machine
from k8sbridge.lifecycle.record import PodRecord
from k8sbridge.model import ids, tasks
from tests.lifecycle.harness import T0


def _pod(policy: str) -> dict[str, object]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"nodeName": "h", "restartPolicy": policy,
                 "containers": [{"name": "app",
                                 "readinessProbe": {"exec": {"command": ["x"]}}}]},
    }


TASK = ids.TaskId("u.0.app")


@st.composite
def histories(draw: st.DrawFn) -> list[tasks.TaskStatusView]:
    """A plausible life of one task, in delivery order, with increasing timestamps."""
    at = 0.0
    out = []
    for state in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING"):
        if state == "TASK_RUNNING" or draw(st.booleans()):
            at += draw(st.floats(0.1, 5))
            out.append(tasks.TaskStatusView(task_id=TASK, state=state, timestamp=T0 + at))
    for _ in range(draw(st.integers(0, 4))):  # check and health updates while running
        at += draw(st.floats(0.1, 5))
        check = tasks.CheckResult(type="COMMAND", exit_code=draw(st.sampled_from([0, 1])))
        out.append(tasks.TaskStatusView(task_id=TASK, state="TASK_RUNNING", timestamp=T0 + at,
                                        check=check, healthy=draw(st.booleans())))
    if draw(st.booleans()):
        at += draw(st.floats(0.1, 5))
        out.append(tasks.TaskStatusView(task_id=TASK, state="TASK_KILLING", timestamp=T0 + at))
    if draw(st.booleans()):
        at += draw(st.floats(0.1, 5))
        state = draw(st.sampled_from(["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED"]))
        out.append(tasks.TaskStatusView(task_id=TASK, state=state, timestamp=T0 + at,
                                        message="Command exited with status 3"))
    return out


def play(
    updates: list[tasks.TaskStatusView], *, policy: str
) -> tuple[dict[str, object], int]:
    """The rendered status after ``updates`` and how many relaunches were asked for."""
    pod = _pod(policy)
    record = PodRecord.new(pod)
    relaunches = 0
    for u in updates:
        record, out = machine.apply(
            record, events.TaskUpdated(container="app", attempt=0, status=u), T0 + 50
        )
        relaunches += sum(isinstance(i, intents.Relaunch) for i in out)
    # readiness thresholds hold a changed check result back for a window counted from when
    # it arrived (``lifecycle.readiness``): the status is compared once every window closed
    record, _ = machine.apply(record, events.Tick(), T0 + 100)
    status = statusmap.pod_status(pod=pod, containers=record.runtimes, now=T0 + 100,
                                  host_ip="10.0.0.1")
    return status, relaunches


@settings(max_examples=150, deadline=None)
@given(histories(), st.data(), st.sampled_from(["Never", "Always"]))
def test_shuffled_and_duplicated_delivery_gives_the_in_order_status(
    history: list[tasks.TaskStatusView], data: st.DataObject, policy: str
) -> None:
    delivered = data.draw(st.permutations(history + data.draw(
        st.lists(st.sampled_from(history), max_size=4))))
    in_order, asked = play(history, policy=policy)
    shuffled, asked_shuffled = play(delivered, policy=policy)
    assert shuffled == in_order
    ended = history[-1].terminal
    assert asked == asked_shuffled == (1 if ended and policy == "Always" else 0)
