"""Every parsed type renders to wire JSON and parses back to the same value."""

from __future__ import annotations

import pytest

from k8sbridge.mesos import errors, types
from k8sbridge.model import resources as res
from k8sbridge.model.ids import AgentId, ExecutorId, FrameworkId, TaskId

RES = res.Resources.from_scalars({"cpus": 0.5, "mem": 128}).allocated_to("k8s")

COMMANDS = [
    types.CommandInfo(value="echo hi"),
    types.CommandInfo(
        value="/bin/server",
        shell=False,
        arguments=("/bin/server", "--port", "8080"),
        environment=(("A", "1"), ("B", "")),
        uris=("http://example.com/app.tgz",),
        user="nobody",
    ),
]

CONTAINERS = [
    types.ContainerInfo(),
    types.ContainerInfo(
        image="alpine:3",
        volumes=(
            types.Volume(container_path="/data", host_path="/srv/data", mode="RO"),
            types.Volume(container_path="/scratch", sandbox_path="scratch"),
        ),
        networks=("cni-a", "cni-b"),
        hostname="web-0",
    ),
]

CHECKS = [
    types.HealthCheck(type="COMMAND", command=COMMANDS[0], consecutive_failures=5),
    types.HealthCheck(type="HTTP", port=8080, path="/healthz", scheme="https"),
    types.HealthCheck(type="TCP", port=9000, delay_seconds=1, interval_seconds=2,
                      timeout_seconds=3, grace_period_seconds=4),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("health", CHECKS)
def test_task_info_round_trips(
        command: types.CommandInfo, container: types.ContainerInfo, health: types.HealthCheck
) -> None:
    task = types.TaskInfo(
        name="web",
        task_id=TaskId("pod.web"),
        agent_id=AgentId("a-S0"),
        resources=RES,
        command=command,
        container=container,
        health_check=health,
        check=types.CheckInfo(type="COMMAND", command=command),
        kill_policy=types.KillPolicy(2.5),
        labels=(("k", "v"),),
        data=b"\x00\xff",
        limits={"cpus": 2.0, "mem": float("inf")},
        max_completion_seconds=60.0,
    )
    assert types.TaskInfo.parse(task.to_raw()) == task


def test_executor_and_task_group_round_trip() -> None:
    executor = types.ExecutorInfo(
        executor_id=ExecutorId("pod"),
        framework_id=FrameworkId("f-0000"),
        resources=RES,
        command=COMMANDS[1],
        container=CONTAINERS[1],
        name="pod executor",
        labels=(("pod", "ns/name"),),
        shutdown_grace_period_seconds=7.0,
    )
    assert types.ExecutorInfo.parse(executor.to_raw()) == executor
    group = types.TaskGroupInfo(
        tasks=tuple(
            types.TaskInfo(name=f"c{i}", task_id=TaskId(f"pod.c{i}"), agent_id=AgentId("a"),
                           resources=RES, executor=executor)
            for i in range(3)
        )
    )
    assert types.TaskGroupInfo.parse(group.to_raw()) == group


def test_framework_info_without_multi_role_uses_the_legacy_role_field() -> None:
    info = types.FrameworkInfo(name="old", user="u", roles=("web",), capabilities=())
    raw = info.to_raw()
    assert raw["role"] == "web" and "roles" not in raw
    assert types.FrameworkInfo.parse(raw) == info


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"task_id": {"value": "t"}, "agent_id": {"value": "a"}}, id="no-name"),
        pytest.param({"name": "x", "agent_id": {"value": "a"}}, id="no-task-id"),
        pytest.param({"name": "x", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                      "data": "!!"}, id="bad-data"),
        pytest.param({"name": "x", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                      "resources": [{"name": "cpus", "type": "SCALAR",
                                     "scalar": {"value": -1}}]}, id="negative"),
        pytest.param({"name": "x", "task_id": {"value": "t"}, "agent_id": "a"}, id="id-string"),
    ],
)
def test_bad_task_infos_are_protocol_errors(raw: dict[str, object]) -> None:
    with pytest.raises(errors.ProtocolError):
        types.TaskInfo.parse(raw)
