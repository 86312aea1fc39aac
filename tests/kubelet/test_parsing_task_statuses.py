"""TaskStatusView from Mesos v1 TaskStatus JSON (the shapes the master and agents send)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.kubelet import statusmap as sm
from k8sbridge.lifecycle import containers as lc
from k8sbridge.model import tasks

RAW = {
    "task_id": {"value": "pod-uid.app.0"},
    "state": "TASK_RUNNING",
    "source": "SOURCE_EXECUTOR",
    "reason": "REASON_TASK_CHECK_STATUS_UPDATED",
    "message": "",
    "agent_id": {"value": "agent-1"},
    "executor_id": {"value": "exec-1"},
    "timestamp": 1800000000.25,
    "uuid": "AAECAwQFBgcICQoLDA0ODw==",
    "healthy": True,
    "check_status": {"type": "HTTP", "http": {"status_code": 204}},
    "container_status": {
        "container_id": {"value": "c-1"},
        "network_infos": [{"ip_addresses": [{"ip_address": "172.17.0.9", "protocol": "IPv4"}]}],
    },
}


def test_a_full_status_is_parsed() -> None:
    v = tasks.TaskStatusView.from_raw(RAW)
    assert (v.task_id, v.state, v.timestamp) == ("pod-uid.app.0", "TASK_RUNNING", 1800000000.25)
    assert v.healthy is True and v.check is not None and v.check.passed is True
    assert v.ip_addresses == ("172.17.0.9",)
    assert v.container_id == "c-1" and v.agent_id == "agent-1" and v.executor_id == "exec-1"
    assert v.uuid == "AAECAwQFBgcICQoLDA0ODw==" and not v.terminal


def test_a_master_reconciliation_reply_is_minimal() -> None:
    v = tasks.TaskStatusView.from_raw({"task_id": {"value": "t"}, "state": "TASK_LOST",
                                       "source": "SOURCE_MASTER",
                                       "reason": "REASON_RECONCILIATION"})
    assert v.uuid is None and v.terminal and v.check is None and v.healthy is None
    c = lc.start_attempt(sm.ContainerRuntime(name="app"), task_id="t")
    assert lc.apply_status(c, v).terminated is not None


def test_an_empty_check_result_has_no_verdict() -> None:
    v = tasks.TaskStatusView.from_raw({**RAW, "check_status": {"type": "COMMAND",
                                                               "command": {}}})
    assert v.check is not None and v.check.passed is None


@pytest.mark.parametrize(
    "raw",
    [{}, {"task_id": {"value": "t"}}, {"state": "TASK_RUNNING"},
     {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "timestamp": float("nan")},
     {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "timestamp": 1e300},
     {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "timestamp": "soon"},
     {"task_id": {"value": "t"}, "state": "TASK_SLEEPING"}, {"task_id": "t", "state": "x"}],
)
def test_malformed_statuses_raise(raw: dict[str, object]) -> None:
    with pytest.raises(tasks.TaskStatusError):
        tasks.TaskStatusView.from_raw(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["value", "type", "exit_code", "status_code", "succeeded",
                                       "ip_address", "ip_addresses", "network_infos",
                                       "container_id", "command", "http", "tcp"]),
                      children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries(
    {"task_id": st.just({"value": "t"}) | json_values,
     "state": st.sampled_from(["TASK_RUNNING", "TASK_FAILED"]) | json_values},
    optional={k: json_values for k in ("timestamp", "check_status", "container_status",
                                       "agent_id", "executor_id", "healthy", "reason",
                                       "message", "uuid", "source")},
))
def test_any_json_parses_or_raises_task_status_error(raw: dict[str, object]) -> None:
    try:
        view = tasks.TaskStatusView.from_raw(raw)
    except tasks.TaskStatusError:
        return
    c = lc.start_attempt(sm.ContainerRuntime(name="app"), task_id=view.task_id)
    sm.pod_status(pod={"spec": {"nodeName": "n", "containers": [{"name": "app"}]}},
                  containers={"app": lc.apply_status(c, view)}, now=0)
