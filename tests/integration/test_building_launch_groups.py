"""Pod → LAUNCH_GROUP: argv (no string-built shell), env sources, resources as placed."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest

from k8sbridge.model import cluster, ids
from k8sbridge.model import pods as model_pods
from k8sbridge.model.resources import Resources, parse_resources_flag
from k8sbridge.scheduler import launch, plan, stack


def _pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "busybox:1.36",
                "command": ["echo"],
                "args": ["hello $(WHO)", "; rm -rf /"],
                "env": [{"name": "WHO", "value": "world"}],
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                              "limits": {"cpu": "500m", "memory": "128Mi"}},
                "ports": [{"containerPort": 8080, "hostPort": 31005}],
            }
        ],
        "terminationGracePeriodSeconds": 7,
    }
    base.update(spec)
    return {
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-123",
                     "labels": {"app": "web"}},
        "spec": base,
    }


OFFER = parse_resources_flag("cpus:2;mem:1024;disk:100;ports:[31000-32000]").allocated_to(
    "kubernetes"
)


def _place(
    request: model_pods.PodRequest, offer: Resources = OFFER
) -> plan.Assignment | None:
    agent = cluster.AgentView.build(
        agent_id="ag-1", hostname="h1",
        offers=[cluster.OfferView(id=ids.OfferId("o1"), agent_id=ids.AgentId("ag-1"),
                                  resources=offer, allocation_role="kubernetes")],
    )
    settings = stack.StackSettings(executor_overhead=(("cpus", 0.1), ("mem", 32.0)))
    result = stack.place(pending=[request], view=cluster.ClusterView(agents=(agent,)),
                         settings=settings)
    return result.assignment(request.key)


def _build(pod: dict[str, Any], *, image_mode: str = "mesos", env: Any = None) -> Any:
    request = model_pods.parse_pod(pod)
    assignment = _place(request)
    assert assignment is not None
    return launch.render_launch_group(
        pod=pod,
        request=request,
        assignment=assignment,
        framework_id="fw-1",
        generation=7,
        env=env or {"main": [("WHO", "world")]},
        image_mode=image_mode,
        master_version=(1, 11),
        agent_version=(1, 11),
    )


def test_launch_group_has_deterministic_ids_labels_kill_policy_and_limits() -> None:
    group = _build(_pod())
    op = group.operation
    assert op["type"] == "LAUNCH_GROUP"
    executor = op["launch_group"]["executor"]
    assert executor["type"] == "DEFAULT"
    assert executor["framework_id"] == {"value": "fw-1"}
    assert group.executor_id == "k8sbridge.u-123.0.7"
    (task,) = op["launch_group"]["task_group"]["tasks"]
    assert task["task_id"] == {"value": "u-123.0.7.main"}
    assert launch.parse_task_id("u-123.0.7.main") == ("u-123", 0, "main")
    assert launch.parse_task_id("u-123.0.main") == ("u-123", 0, "main")  # before generations
    assert launch.parse_task_id("someone-elses-task") is None
    labels = {lbl["key"]: lbl["value"] for lbl in task["labels"]["labels"]}
    assert labels[launch.LABEL_NAMESPACE] == "shop"
    assert labels[launch.LABEL_NAME] == "web"
    assert labels[launch.LABEL_UID] == "u-123"
    assert task["kill_policy"] == {"grace_period": {"nanoseconds": 7_000_000_000}}
    assert task["limits"] == {"cpus": {"value": 0.5}, "mem": {"value": 128.0}}
    assert task["container"]["linux_info"] == {"share_cgroups": False}
    assert task["container"]["mesos"]["image"]["docker"]["name"] == "busybox:1.36"
    res = Resources.parse(task["resources"])
    assert res.scalar("cpus") == 0.25 and res.scalar("mem") == 64
    assert res.ranges("ports") == ((31005, 31005),)
    assert all(r.allocation_role == "kubernetes" for r in res)
    assert OFFER.contains(group.used)


def test_argv_is_never_a_shell_line_and_env_is_expanded() -> None:
    group = _build(_pod())
    (task,) = group.operation["launch_group"]["task_group"]["tasks"]
    command = task["command"]
    assert command["shell"] is False
    assert command["arguments"] == ["echo", "hello world", "; rm -rf /"]
    assert command["value"] == "echo"
    assert {"name": "WHO", "value": "world", "type": "VALUE"} in command["environment"][
        "variables"
    ]


def test_working_dir_uses_a_constant_script_with_positional_arguments(tmp_path: Path) -> None:
    weird = tmp_path / "dir with 'quotes' and $(x)"
    weird.mkdir()
    pod = _pod()
    pod["spec"]["containers"][0].update(
        {"workingDir": str(weird), "command": ["pwd"], "args": []}
    )
    group = _build(pod, image_mode="none")
    (task,) = group.operation["launch_group"]["task_group"]["tasks"]
    argv = task["command"]["arguments"]
    assert argv[:3] == ["/bin/sh", "-c", launch.WORKDIR_SCRIPT]
    assert "mesos" not in task["container"]  # image_mode none: runs on the host (no image)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10)
    assert out.stdout.strip() == str(weird)


def test_no_command_without_images_is_a_clear_error() -> None:
    pod = _pod()
    del pod["spec"]["containers"][0]["command"]
    del pod["spec"]["containers"][0]["args"]
    with pytest.raises(launch.LaunchError, match="no command"):
        _build(pod, image_mode="none")


def test_the_operation_is_the_assignment_rendered() -> None:
    """Nothing is carved at launch: the executor's share and each task's resources are the
    placement's pieces (reservations first), and an assignment of another pod is refused."""
    offer = parse_resources_flag(
        "cpus(kubernetes):0.2;cpus:4;mem:512;ports:[31000-32000]"
    ).allocated_to("kubernetes")
    pod = _pod()
    request = model_pods.parse_pod(pod)
    assignment = _place(request, offer)
    assert assignment is not None and assignment.sources == ("o1",)
    group = launch.render_launch_group(
        pod=pod, request=request, assignment=assignment, framework_id="fw-1",
        generation=7, env={"main": []},
    )
    executor = group.operation["launch_group"]["executor"]
    assert Resources.parse(executor["resources"]) == assignment.executor
    assert assignment.executor.reserved("kubernetes").scalar("cpus") == 0.1
    (task,) = group.operation["launch_group"]["task_group"]["tasks"]
    assert Resources.parse(task["resources"]) == assignment.containers[0].resources
    assert group.used == assignment.executor + assignment.containers[0].resources
    assert offer.contains(group.used)
    other = model_pods.parse_pod({**pod, "spec": {**pod["spec"], "containers": [
        {**pod["spec"]["containers"][0], "name": "renamed"}]}})
    with pytest.raises(launch.LaunchError) as err:
        launch.render_launch_group(
            pod=pod, request=other, assignment=assignment, framework_id="fw-1", generation=7,
            env={},
        )
    assert err.value.reason == launch.REASON_STALE
    assert str(err.value) == launch.COMMIT_STALE


def test_an_init_phase_runs_one_init_container_in_the_pods_share() -> None:
    pod = _pod(initContainers=[{"name": "setup", "command": ["true"],
                                "resources": {"requests": {"cpu": "1", "memory": "256Mi"}}}])
    request = model_pods.parse_pod(pod)
    assignment = _place(request)
    assert assignment is not None
    group = launch.render_launch_group(
        pod=pod, request=request, assignment=assignment, framework_id="fw-1",
        generation=7, env={}, init_phase=0,
    )
    assert group.executor_id == "k8sbridge.u-123.0.7.init.setup"
    (task,) = group.operation["launch_group"]["task_group"]["tasks"]
    assert task["task_id"] == {"value": "u-123.0.7.setup"}
    res = Resources.parse(task["resources"])
    assert res.scalar("cpus") == 1 and res.scalar("mem") == 256
    assert OFFER.contains(group.used) and assignment.total.contains(group.used)


async def test_env_sources_are_resolved_in_kubernetes_order() -> None:
    pod = _pod()
    container = {
        "name": "main",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                               "divisor": "1Mi"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "zz",
                                                              "optional": True}}},
            {"name": "BOTH", "value": "$(A)-$(POD)-$$(A)"},
        ],
        "resources": {"limits": {"memory": "128Mi"}},
    }

    async def config_map(ns: str, name: str) -> dict[str, Any] | None:
        assert ns == "shop"
        return {"data": {"a": "1", "b": "2"}} if name == "cm" else None

    async def secret(ns: str, name: str) -> dict[str, Any] | None:
        return {"data": {"pw": base64.b64encode(b"s3cret").decode()}} if name == "sec" else None

    env = dict(
        await launch.resolve_env(
            pod=pod, container=container, node_name="agent-1", host_ip="10.0.0.1",
            config_map=config_map, secret=secret,
        )
    )
    assert env == {
        "CM_a": "1", "CM_b": "2", "A": "1", "S": "s3cret", "POD": "web", "APP": "web",
        "NODE": "agent-1", "LIM": "128", "BOTH": "1-web-$(A)",
    }
    container["env"] = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm",
                                                                        "key": "nope"}}}]
    with pytest.raises(launch.LaunchError, match="couldn't find key nope") as err:
        await launch.resolve_env(
            pod=pod, container=container, node_name="n", host_ip="h",
            config_map=config_map, secret=secret,
        )
    assert err.value.reason == "CreateContainerConfigError"


def test_probes_become_mesos_checks_and_health_checks() -> None:
    container = {
        "name": "web",
        "ports": [{"name": "http", "containerPort": 8080, "hostPort": 31080}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"},
                           "periodSeconds": 2, "initialDelaySeconds": 1},
        "livenessProbe": {"exec": {"command": ["test", "-f", "/tmp/alive"]},
                          "failureThreshold": 2, "periodSeconds": 3},
        "startupProbe": {"tcpSocket": {"port": 31080}, "failureThreshold": 5,
                         "periodSeconds": 2},
    }
    out = launch.probes(container)
    assert out["check"] == {
        "type": "HTTP", "delay_seconds": 1.0, "interval_seconds": 2.0,
        "timeout_seconds": 1.0, "http": {"port": 31080, "path": "/ready"},
    }
    health = out["health_check"]
    assert health["type"] == "COMMAND"
    assert health["command"]["arguments"] == ["test", "-f", "/tmp/alive"]
    assert health["consecutive_failures"] == 2 and health["interval_seconds"] == 3.0
    assert health["grace_period_seconds"] == 10.0  # the startup probe's budget
    with pytest.raises(launch.LaunchError, match="names no container port"):
        launch.probes({"readinessProbe": {"tcpSocket": {"port": "nope"}}})
    # grpc probes run grpc_probe.py as a COMMAND check (tests/integration/test_probing_grpc_*)
    grpc = launch.probes({"readinessProbe": {"grpc": {"port": 9000}}})
    assert grpc["check"]["type"] == "COMMAND"
