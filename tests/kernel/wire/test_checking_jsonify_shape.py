"""The jsonify checker catches each kind of difference it is there to catch."""

from __future__ import annotations

from tests.kernel.wire import jsonify

GOOD = {"type": "HEARTBEAT"}


def test_a_well_formed_event_passes() -> None:
    assert jsonify.problems(GOOD, "mesos.v1.scheduler.Event") == []
    status = {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "timestamp": 1.5,
              "uuid": "AAAA"}
    assert jsonify.problems({"type": "UPDATE", "update": {"status": status}},
                            "mesos.v1.scheduler.Event") == []


def test_each_difference_is_reported() -> None:
    cases = {
        "no such field": {"type": "HEARTBEAT", "extra": 1},
        "not a value of": {"type": "BEAT"},
        "empty repeated field printed": {"type": "OFFERS", "offers": {"offers": []}},
        "required field": {"type": "UPDATE", "update": {"status": {"state": "TASK_RUNNING"}}},
        "printed as str": {"type": "SUBSCRIBED", "subscribed": {
            "framework_id": {"value": "f"}, "heartbeat_interval_seconds": "15"}},
    }
    for expected, doc in cases.items():
        found = jsonify.problems(doc, "mesos.v1.scheduler.Event")
        assert any(expected in p for p in found), (expected, found)
    info = {"user": "u", "name": "n"}  # failover_timeout and checkpoint have defaults
    found = jsonify.problems(info, "mesos.v1.FrameworkInfo")
    assert any("failover_timeout" in p and "default" in p for p in found)
    assert not any(".role" in p for p in found)  # deprecated: jsonify skips its default
    task_limits = {"cpus": {"value": "1"}}
    assert jsonify.problems({"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                             "limits": task_limits}, "mesos.v1.TaskInfo")
