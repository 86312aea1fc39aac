"""TaskStatusView from Mesos v1 TaskStatus JSON (the shapes the master and agents send)."""

from __future__ import annotations

import pytest

from k8sbridge.kubelet import statusmap as sm
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
    c = sm.start_attempt(sm.ContainerRuntime(name="app"), task_id="t")
    assert sm.apply_status(c, v).terminated is not None


def test_an_empty_check_result_has_no_verdict() -> None:
    v = tasks.TaskStatusView.from_raw({**RAW, "check_status": {"type": "COMMAND",
                                                               "command": {}}})
    assert v.check is not None and v.check.passed is None


@pytest.mark.parametrize(
    "raw",
    [{}, {"task_id": {"value": "t"}}, {"state": "TASK_RUNNING"},
     {"task_id": {"value": "t"}, "state": "TASK_SLEEPING"}, {"task_id": "t", "state": "x"}],
)
def test_malformed_statuses_raise(raw: dict[str, object]) -> None:
    with pytest.raises(tasks.TaskStatusError):
        tasks.TaskStatusView.from_raw(raw)
