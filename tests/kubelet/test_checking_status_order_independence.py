"""Mesos delivers task updates at least once and not always in order: the fold must not care."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.kubelet import statusmap as sm
from k8sbridge.lifecycle import containers as lc
from k8sbridge.model import tasks

T0 = 1_800_000_000.0
POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
    "spec": {"nodeName": "h", "restartPolicy": "Never",
             "containers": [{"name": "app", "readinessProbe": {"exec": {"command": ["x"]}}}]},
}


@st.composite
def histories(draw: st.DrawFn) -> list[tasks.TaskStatusView]:
    """A plausible life of one task, in delivery order, with increasing timestamps."""
    at = 0.0
    out = []
    for state in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING"):
        if state == "TASK_RUNNING" or draw(st.booleans()):
            at += draw(st.floats(0.1, 5))
            out.append(tasks.TaskStatusView(task_id="t", state=state, timestamp=T0 + at))
    for _ in range(draw(st.integers(0, 4))):  # check and health updates while running
        at += draw(st.floats(0.1, 5))
        check = tasks.CheckResult(type="COMMAND", exit_code=draw(st.sampled_from([0, 1])))
        out.append(tasks.TaskStatusView(task_id="t", state="TASK_RUNNING", timestamp=T0 + at,
                                        check=check, healthy=draw(st.booleans())))
    if draw(st.booleans()):
        at += draw(st.floats(0.1, 5))
        out.append(tasks.TaskStatusView(task_id="t", state="TASK_KILLING", timestamp=T0 + at))
    if draw(st.booleans()):
        at += draw(st.floats(0.1, 5))
        state = draw(st.sampled_from(["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED"]))
        out.append(tasks.TaskStatusView(task_id="t", state=state, timestamp=T0 + at,
                                        message="Command exited with status 3"))
    return out


def render(updates: list[tasks.TaskStatusView]) -> dict[str, object]:
    c = lc.start_attempt(sm.ContainerRuntime(name="app"), task_id="t")
    for u in updates:
        c = lc.apply_status(c, u)
    return sm.pod_status(pod=POD, containers={"app": c}, now=T0 + 100, host_ip="10.0.0.1")


@settings(max_examples=150, deadline=None)
@given(histories(), st.data())
def test_shuffled_and_duplicated_delivery_gives_the_in_order_status(
    history: list[tasks.TaskStatusView], data: st.DataObject
) -> None:
    delivered = data.draw(st.permutations(history + data.draw(
        st.lists(st.sampled_from(history), max_size=4))))
    assert render(delivered) == render(history)
