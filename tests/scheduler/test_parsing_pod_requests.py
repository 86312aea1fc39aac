"""PodRequest parsing: quantities, defaults, effective requests, constraints, clear errors."""

from __future__ import annotations

from typing import Any

import pytest

from k8sbridge.model import pods


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {"containers": list(containers), **spec},
    }


def container(name: str = "app", **resources: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "resources": resources}


@pytest.mark.parametrize(
    ("text", "cores"),
    [("500m", 0.5), ("1", 1.0), (2, 2.0), ("0.25", 0.25), ("1500m", 1.5), ("1e3", 1000.0),
     ("0.0001", 0.001), (0.5, 0.5), ("2k", 2000.0)],
)
def test_cpu_quantities_become_cores(text: object, cores: float) -> None:
    assert pods.parse_cpu(text) == cores


@pytest.mark.parametrize(
    ("text", "mib"),
    [("1Gi", 1024.0), ("512Mi", 512.0), ("1G", 953.675), ("1048576", 1.0), ("128M", 122.071),
     ("1Ki", 0.001), ("64e6", 61.036)],
)
def test_memory_quantities_become_mib_rounded_up(text: str, mib: float) -> None:
    assert pods.parse_memory_mib(text) == mib


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "5 Gi", "1Gb", "1e3m", "-1", True, None, [1]])
def test_malformed_quantities_are_rejected_with_the_field_named(bad: object) -> None:
    with pytest.raises(pods.QuantityError, match="resources.requests.cpu"):
        pods.parse_pod(pod(container(requests={"cpu": bad})))


def test_requests_limits_and_gpus_map_to_mesos_scalars() -> None:
    req = pods.parse_pod(
        pod(
            container(
                requests={"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "1Gi"},
                limits={"cpu": "1", "memory": "512Mi", "nvidia.com/gpu": 1},
            )
        )
    )
    c = req.containers[0]
    assert c.requests_dict == {"cpus": 0.25, "mem": 256.0, "disk": 1024.0, "gpus": 1.0}
    assert c.limits_dict == {"cpus": 1.0, "mem": 512.0, "gpus": 1.0}
    assert dict(req.scalars) == {"cpus": 0.25, "mem": 256.0, "disk": 1024.0, "gpus": 1.0}
    assert req.qos_class == "Burstable"


def test_fractional_gpu_is_rejected() -> None:
    with pytest.raises(pods.QuantityError, match="whole number"):
        pods.parse_pod(pod(container(limits={"nvidia.com/gpu": "0.5"})))


def test_request_above_limit_is_rejected() -> None:
    with pytest.raises(pods.PodSpecError, match="exceeds its limit"):
        pods.parse_pod(pod(container(requests={"cpu": "2"}, limits={"cpu": "1"})))


def test_container_without_requests_gets_documented_defaults_and_is_best_effort() -> None:
    req = pods.parse_pod(pod(container()))
    assert req.containers[0].requests_dict == {"cpus": 0.1, "mem": 64.0}
    assert req.qos_class == "BestEffort"
    custom = pods.parse_pod(pod(container()), defaults=pods.ContainerDefaults(cpus=0.5, mem=16))
    assert dict(custom.scalars) == {"cpus": 0.5, "mem": 16.0}


def test_limit_without_request_requests_the_limit_guaranteed() -> None:
    req = pods.parse_pod(pod(container(limits={"cpu": "2", "memory": "1Gi"})))
    assert req.containers[0].requests_dict == {"cpus": 2.0, "mem": 1024.0}
    assert req.qos_class == "Guaranteed"


def test_effective_request_is_max_of_app_sum_and_init_peak_with_sidecars() -> None:
    raw = pod(
        container("a", requests={"cpu": "1", "memory": "100Mi"}),
        container("b", requests={"cpu": "1", "memory": "100Mi"}),
        initContainers=[
            container("migrate", requests={"cpu": "3", "memory": "50Mi"}),
            {**container("proxy", requests={"cpu": "500m", "memory": "10Mi"}),
             "restartPolicy": "Always"},
            container("late", requests={"cpu": "1", "memory": "500Mi"}),
        ],
    )
    req = pods.parse_pod(raw)
    # cpu: app 2 + sidecar 0.5 = 2.5 < init peak 3 ; mem: init "late" 500 + sidecar 10 = 510
    assert dict(req.scalars) == {"cpus": 3.0, "mem": 510.0}
    assert [c.sidecar for c in req.init_containers] == [False, True, False]


def test_host_ports_constraints_and_defaults_are_parsed() -> None:
    raw = pod(
        {**container(), "ports": [{"containerPort": 80, "hostPort": 8080},
                                  {"containerPort": 9090}]},
        nodeSelector={"rack": "r1"},
        tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        affinity={
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "level", "operator": "Gt", "values": ["5"]}]}]}},
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}},
                 "topologyKey": "kubernetes.io/hostname"}]},
        },
    )
    req = pods.parse_pod(raw)
    assert req.key == "ns/web" and req.uid == "u-1"
    assert [(p.container_port, p.host_port) for p in req.host_ports] == [(80, 8080)]
    assert req.node_selector == (("rack", "r1"),)
    assert req.tolerations[0].operator == "Exists"
    assert str(req.required_node_affinity[0].requirements[0]) == "level Gt [5]"
    assert req.anti_affinity[0].namespaces == ("ns",)
    assert req.restart_policy == "Always"
    assert req.termination_grace_period_seconds == 30
    assert req.scheduler_name == "default-scheduler"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"metadata": {"name": "x"}, "spec": {"containers": []}}, "at least one container"),
        ({"metadata": {}, "spec": {"containers": [{"name": "a"}]}}, "metadata.name"),
        (pod({"image": "x"}), r"containers\[0\].name"),
        (pod(container(), container()), "used twice"),
        (pod(container(), restartPolicy="Sometimes"), "restartPolicy"),
        (pod({**container(), "ports": [{"containerPort": "80"}]}), "containerPort"),
        (pod({**container(), "ports": [{"containerPort": 80, "hostPort": 70000}]}),
         "out of range"),
        (pod(container(), affinity={"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "a", "operator": "Like"}]}]}}}), "operator"),
        (pod(container(), affinity={"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["x"]}]}]}}}),
         "integer"),
        (pod(container(), tolerations=[{"key": "a", "operator": "Maybe"}]), "Equal or Exists"),
        (pod(container(), terminationGracePeriodSeconds=-1), "terminationGracePeriodSeconds"),
        ("not a pod", "JSON object"),
    ],
)
def test_malformed_specs_raise_pod_spec_error_naming_the_field(raw: Any, message: str) -> None:
    with pytest.raises(pods.PodSpecError, match=message):
        pods.parse_pod(raw)


def test_deployment_replicas_share_a_placement_signature() -> None:
    a = pods.parse_pod(pod(container(requests={"cpu": "1"})))
    b_raw = pod(container(requests={"cpu": "1"}))
    b_raw["metadata"] = {"name": "other", "namespace": "ns", "uid": "u-2"}
    b = pods.parse_pod(b_raw)
    c = pods.parse_pod(pod(container(requests={"cpu": "2"})))
    assert a.placement_signature == b.placement_signature
    assert a.placement_signature != c.placement_signature
