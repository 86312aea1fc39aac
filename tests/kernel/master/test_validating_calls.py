"""Table tests of the master's pure call, framework and task validation (Mesos' messages)."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from k8sbridge.kernel import resources as res
from k8sbridge.kernel.master import calls, launching, transport
from k8sbridge.kernel.master.errors import CallError, TaskInvalid

FW = {"user": "u", "name": "n"}
UUID = base64.b64encode(uuid.uuid4().bytes).decode()


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 400),
        ("application/x-protobuf", 415),
        ("text/plain", 415),
        ("application/json", None),
        ("application/json; charset=utf-8", 415),  # exact match, as Mesos
    ],
)
def test_content_type(content_type: str | None, status: int | None) -> None:
    if status is None:
        transport.check_content_type(content_type)
    else:
        with pytest.raises(CallError) as e:
            transport.check_content_type(content_type)
        assert e.value.status == status


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Failed to parse body into JSON"),
        (b"[1]", "Expecting a JSON object"),
    ],
)
def test_malformed_bodies(body: bytes, message: str) -> None:
    with pytest.raises(CallError) as e:
        transport.parse_body(body)
    assert e.value.status == 400 and message in e.value.message


CASES: list[tuple[dict[str, Any], str | None]] = [
    ({"type": "SUBSCRIBE", "subscribe": {"framework_info": FW}}, None),
    ({"subscribe": {"framework_info": FW}}, "Expecting 'type' to be present"),
    ({"type": "NOT_A_CALL", "framework_id": {"value": "f"}}, "Expecting 'type' to be present"),
    ({"type": "SUBSCRIBE"}, "Expecting 'subscribe' to be present"),
    ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "n"}}},
     "Missing required fields: subscribe.framework_info.user"),
    ({"type": "SUBSCRIBE", "framework_id": {"value": "a"},
      "subscribe": {"framework_info": FW}},
     "'framework_id' differs from 'subscribe.framework_info.id'"),
    ({"type": "TEARDOWN"}, "Expecting 'framework_id' to be present"),
    ({"type": "ACCEPT", "framework_id": {"value": "f"}}, "Expecting 'accept' to be present"),
    ({"type": "DECLINE", "framework_id": {"value": "f"}}, "Expecting 'decline' to be present"),
    ({"type": "KILL", "framework_id": {"value": "f"}, "kill": {}},
     "Missing required fields: kill.task_id"),
    ({"type": "ACKNOWLEDGE", "framework_id": {"value": "f"},
      "acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "AAAA"}},
     "Not a valid UUID"),
    ({"type": "ACKNOWLEDGE", "framework_id": {"value": "f"},
      "acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": UUID}},
     None),
    ({"type": "REVIVE", "framework_id": {"value": "f"}}, None),
    ({"type": "UPDATE_FRAMEWORK", "framework_id": {"value": "f"},
      "update_framework": {"framework_info": {**FW, "id": {"value": "g"}}}},
     "'framework_id' differs from 'update_framework.framework_info.id'"),
    ({"type": "SHUTDOWN", "framework_id": {"value": "f"},
      "shutdown": {"executor_id": {"value": "e"}}}, "Missing required fields: shutdown.agent_id"),
]


@pytest.mark.parametrize(("call", "error"), CASES)
def test_call_validation(call: dict[str, Any], error: str | None) -> None:
    if error is None:
        calls.validate_call(calls.normalize_call(call))
        return
    with pytest.raises(CallError) as e:
        calls.validate_call(calls.normalize_call(call))
    assert e.value.status == 400
    assert error in e.value.message


@pytest.mark.parametrize(
    ("info", "error"),
    [
        (FW, None),
        ({**FW, "roles": ["a"]}, "must not be set when the framework is not MULTI_ROLE"),
        ({**FW, "capabilities": [{"type": "MULTI_ROLE"}], "role": "a"},
         "'FrameworkInfo.role' must not be set"),
        ({**FW, "capabilities": [{"type": "MULTI_ROLE"}], "roles": ["a", "a"]},
         "contains duplicate items"),
        ({**FW, "capabilities": [{"type": "MULTI_ROLE"}], "roles": ["a b"]}, "invalid role"),
        ({**FW, "role": ".."}, "is not a valid role"),
        ({**FW, "failover_timeout": -1}, "failover_timeout (-1) is invalid"),
        ({**FW, "id": {"value": "a/b"}}, "invalid characters"),
        ({**FW, "capabilities": [{"type": "MULTI_ROLE"}], "roles": ["eng/prod", "web"]}, None),
    ],
)
def test_framework_info(info: dict[str, Any], error: str | None) -> None:
    found = calls.validate_framework_info(info)
    if error is None:
        assert found is None
    else:
        assert found is not None and error in found


def test_framework_update_rules() -> None:
    assert calls.validate_update(FW, {**FW, "name": "x"}) is None
    assert "principal" in (calls.validate_update(FW, {**FW, "principal": "p"}) or "")
    assert "checkpoint" in (calls.validate_update(FW, {**FW, "checkpoint": True}) or "")
    assert "user" in (calls.validate_update(FW, {**FW, "user": "v"}) or "")


def test_framework_output_defaults() -> None:
    out = calls.with_framework_defaults({**FW, "capabilities": [{"type": "BOGUS"}]})
    assert out["failover_timeout"] == 0.0 and out["checkpoint"] is False
    assert out["capabilities"] == []
    assert "role" not in out  # deprecated fields get no default


@pytest.mark.parametrize(
    ("filters", "expected"),
    [(None, 5.0), ({}, 5.0), ({"refuse_seconds": 0}, 0.0), ({"refuse_seconds": -3}, 5.0),
     ({"refuse_seconds": 1e12}, calls.MAX_REFUSE_SECONDS), ({"refuse_seconds": "7"}, 7.0)],
)
def test_refuse_seconds(filters: Any, expected: float) -> None:
    assert calls.refuse_seconds(filters, default=5.0) == expected


OFFERS = {"o1": ("f", "a1", "*"), "o2": ("f", "a2", "*"), "o3": ("g", "a1", "*"),
          "o4": ("f", "a1", "web")}


@pytest.mark.parametrize(
    ("ids", "error"),
    [
        (["o1"], None),
        ([], "No offers specified"),
        (["o1", "o1"], "Duplicate offer o1"),
        (["zz"], "Offer zz is no longer valid"),
        (["o3"], "has invalid framework g"),
        (["o1", "o4"], "must be allocated to the same role"),
        (["o1", "o2"], "must belong to one single agent"),
    ],
)
def test_offer_ids(ids: list[str], error: str | None) -> None:
    if error is None:
        calls.validate_offer_ids(ids, offers=OFFERS, framework_id="f")
    else:
        with pytest.raises(ValueError, match=error):
            calls.validate_offer_ids(ids, offers=OFFERS, framework_id="f")


OFFERED = res.parse_resources_flag("cpus:1;mem:256;disk:100").allocated_to("*")


def _task(**extra: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
        "command": {"value": "true"},
    }
    task.update(extra)
    return task


@pytest.mark.parametrize(
    ("task", "known", "error"),
    [
        (_task(), set(), None),
        (_task(), {"t1"}, "Task has duplicate ID: t1"),
        (_task(resources=[]), set(), "Task uses no resources"),
        (_task(resources=[{"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}}]), set(),
         "is more than available"),
        (_task(agent_id={"value": "other"}), set(), "Task uses invalid agent other"),
        (_task(executor={"executor_id": {"value": "e"}}), set(), "(but not both)"),
        (_task(kill_policy={"grace_period": {"nanoseconds": -1}}), set(), "non-negative"),
        (_task(resources=[{"name": "cpus", "type": "BOGUS"}]), set(), "invalid resources"),
        (_task(task_id={"value": "a/b"}), set(), "Task ID is invalid"),
    ],
)
def test_launch_task(task: dict[str, Any], known: set[str], error: str | None) -> None:
    def run() -> Any:
        return launching.validate_launch_task(
            task, framework_id="f", agent_id="a1", role="*", known_task_ids=known,
            known_executors={}, offered=OFFERED,
        )

    if error is None:
        tid, used, eid, _ = run()
        assert tid == "t1" and eid is None and used.scalar("cpus") == 0.5
        assert all(r.allocation_role == "*" for r in used)
    else:
        with pytest.raises(TaskInvalid, match=error.replace("(", r"\(").replace(")", r"\)")):
            run()


EXECUTOR = {
    "type": "DEFAULT", "executor_id": {"value": "e"}, "framework_id": {"value": "f"},
    "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
        {"name": "disk", "type": "SCALAR", "scalar": {"value": 10}},
    ],
}


@pytest.mark.parametrize(
    ("executor", "tasks", "error"),
    [
        (EXECUTOR, [_task(command=None)], None),
        ({**EXECUTOR, "type": None}, [_task()], "'ExecutorInfo.type' must be set"),
        ({k: v for k, v in EXECUTOR.items() if k != "framework_id"}, [_task()],
         "'ExecutorInfo.framework_id' must be set"),
        ({**EXECUTOR, "resources": EXECUTOR["resources"][1:]}, [_task()], "uses less CPUs"),
        ({**EXECUTOR, "resources": EXECUTOR["resources"][:2]}, [_task()], "uses no disk"),
        (EXECUTOR, [_task(), _task()], "Task has duplicate ID"),
        (EXECUTOR, [], "Task group is empty"),
        # Mesos' general task validation (validateContainerInfo) runs before the task
        # group's own: a DOCKER ContainerInfo without DockerInfo fails there first
        (EXECUTOR, [_task(container={"type": "DOCKER"})],
         "DockerInfo 'docker' is not set for DOCKER typed ContainerInfo"),
        (EXECUTOR, [_task(container={"type": "DOCKER", "docker": {"image": "busybox"}})],
         "Docker ContainerInfo is not supported on the task"),
    ],
)
def test_task_group(executor: dict[str, Any], tasks: list[Any], error: str | None) -> None:
    executor = {k: v for k, v in executor.items() if v is not None}

    def run() -> Any:
        return launching.validate_task_group(
            executor, tasks, framework_id="f", agent_id="a1", role="*", known_task_ids=set(),
            known_executors={}, offered=OFFERED,
        )

    if error is None:
        eid, parsed, exec_res = run()
        assert eid == "e" and [t for t, _ in parsed] == ["t1"]
        assert exec_res.scalar("mem") == 32
    else:
        with pytest.raises(TaskInvalid, match=error):
            run()


def test_uuid_rules() -> None:
    assert calls.decode_uuid(UUID) == base64.b64decode(UUID)
    no_version = base64.b64encode(bytes(16)).decode()  # 16 bytes, version nibble 0
    assert len(base64.b64decode(no_version)) == 16
    for bad in ("", "AAAA", "not base64!", 5, no_version):
        with pytest.raises(ValueError, match="Not a valid UUID"):
            calls.decode_uuid(bad)


def test_reserve_parsing() -> None:
    raw = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
            "reservations": [{"type": "DYNAMIC", "role": "web", "principal": "p"}]}]
    consumed, converted = launching.parse_reserve(raw, roles=["web"], principal=None)
    assert consumed == res.Resources.from_scalars({"cpus": 1})
    assert converted.reserved("web").scalar("cpus") == 1
    with pytest.raises(ValueError, match="not subscribed to"):
        launching.parse_reserve(raw, roles=["other"], principal=None)
    with pytest.raises(ValueError, match="not dynamically reserved"):
        launching.parse_reserve([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
                            roles=None, principal=None)
    back, plain = launching.parse_unreserve(raw)
    assert plain == consumed and back == converted
