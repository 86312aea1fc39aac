"""Probe and image fields are sent as Mesos' CheckInfo / HealthCheck / Image take them, or
refused naming the field (pure rendering of the LAUNCH_GROUP)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from k8sbridge.model import cluster, ids, pods
from k8sbridge.model.resources import parse_resources_flag
from k8sbridge.scheduler import launch, podenv, podfiles, stack, volumes

GET = {"httpGet": {"port": 8080, "path": "/healthz"}}


def _pod(container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "command": ["sleep", "9"], **container}],
                     **spec}}


def _render(pod: dict[str, Any], *, image_mode: str = "mesos",
            sources: volumes.Sources | None = None,
            network: podfiles.Network | None = None) -> launch.LaunchGroup:
    request = pods.parse_pod(pod)
    offer = parse_resources_flag("cpus:8;mem:8192;disk:1000").allocated_to("k8s")
    view = cluster.ClusterView(agents=(cluster.AgentView.build(
        agent_id="a1", hostname="h1",
        offers=[cluster.OfferView(id=ids.OfferId("o1"), agent_id=ids.AgentId("a1"),
                                  resources=offer, allocation_role="k8s")]),))
    assignment = stack.place(pending=[request], view=view).assignment(request.key)
    assert assignment is not None
    return launch.render_launch_group(
        pod=pod, request=request, assignment=assignment, framework_id="f", generation=1,
        env={}, image_mode=image_mode, sources=sources,
        local_images=frozenset({"busybox:latest"}), network=network)


def _task(group: launch.LaunchGroup) -> dict[str, Any]:
    task: dict[str, Any] = group.operation["launch_group"]["task_group"]["tasks"][0]
    return task


def _refused(pod: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(podenv.LaunchError) as e:
        _render(pod, **kwargs)
    assert e.value.reason == "CreateContainerConfigError"
    return str(e.value)


@pytest.mark.parametrize(("container", "spec", "message"), [
    pytest.param({"livenessProbe": {"httpGet": {"port": 80, "host": "10.1.1.1"}}}, {},
                 "spec.containers{c}.livenessProbe.httpGet.host is not supported: Mesos checks "
                 "dial the container's port on 127.0.0.1 and take no host", id="http-host"),
    pytest.param({"readinessProbe": {"httpGet": {"port": 80, "httpHeaders": [
                     {"name": "X", "value": "y"}]}}}, {},
                 "spec.containers{c}.readinessProbe.httpGet.httpHeaders is not supported: "
                 "Mesos HTTP checks send no headers", id="headers"),
    pytest.param({"livenessProbe": {"tcpSocket": {"port": 80, "host": "db"}}}, {},
                 "spec.containers{c}.livenessProbe.tcpSocket.host is not supported: Mesos "
                 "checks dial the container's port on 127.0.0.1 and take no host",
                 id="tcp-host"),
    pytest.param({"livenessProbe": {**GET, "successThreshold": 2}}, {},
                 "spec.containers{c}.livenessProbe.successThreshold must be 1: Mesos health "
                 "checks count no successes (the API server allows only 1 for liveness and "
                 "startup)", id="success"),
    pytest.param({"readinessProbe": {"httpGet": {"port": 80, "scheme": "HTTPS"}}}, {},
                 "spec.containers{c}.readinessProbe.httpGet.scheme HTTPS is not supported for "
                 "readiness: Mesos' CheckInfo.Http has no scheme (checks speak HTTP)",
                 id="readiness-https"),
    pytest.param({"livenessProbe": {**GET, "terminationGracePeriodSeconds": 5}},
                 {"terminationGracePeriodSeconds": 10},
                 "spec.containers{c}.livenessProbe.terminationGracePeriodSeconds 5 cannot be "
                 "honoured: it differs from the pod's terminationGracePeriodSeconds, and Mesos "
                 "kills a task that fails its health check with the task's kill_policy, which "
                 "is the pod's (10)", id="probe-grace"),
    pytest.param({"readinessProbe": {**GET, "terminationGracePeriodSeconds": 30}}, {},
                 "spec.containers{c}.readinessProbe.terminationGracePeriodSeconds must not be "
                 "set for readiness probes (a failed readiness check kills nothing)",
                 id="readiness-grace"),
    pytest.param({"startupProbe": GET}, {},
                 "spec.containers{c}.startupProbe is not supported without a livenessProbe: "
                 "k8sbridge gives a startupProbe as the liveness health check's grace period "
                 "(Mesos has no startup check)", id="startup-alone"),
    pytest.param({"startupProbe": {"tcpSocket": {"port": 8080}}, "livenessProbe": GET}, {},
                 "spec.containers{c}.startupProbe must use the livenessProbe's handler and "
                 "timeoutSeconds: Mesos runs one health check per task, and the startupProbe "
                 "is its grace period", id="startup-handler"),
    pytest.param({"volumeMounts": [{"name": "v", "mountPath": "/v",
                                    "bindMountOptions": ["noexec"]}]},
                 {"volumes": [{"name": "v", "emptyDir": {}}]},
                 "spec.containers{c}.volumeMounts.bindMountOptions is not supported: Mesos "
                 "bind mounts take no options", id="bind-options"),
    pytest.param({}, {"volumes": [{"name": "v", "emptyDir": {"mode": 0o700}}]},
                 'spec.volumes "v".emptyDir.mode is not supported: Mesos creates sandbox '
                 "volume directories with the agent's mode", id="emptydir-mode"),
    pytest.param({}, {"volumes": [{"name": "v", "configMap": {"name": "x", "items": [
                     {"key": "k", "path": "k", "user": 1000}]}}]},
                 'spec.volumes "v".configMap.items.user is not supported: Mesos writes SECRET '
                 "volume files as the agent's user and has no per-file owner", id="file-user"),
    pytest.param({"image": "busybox:1.36", "imagePullPolicy": "Never"}, {},
                 "spec.containers{c}.imagePullPolicy Never cannot be honoured with "
                 "scheduler.image_mode mesos: Mesos pulls an image the agent does not have "
                 "(ContainerInfo.mesos.image.cached only skips the pull of an image already "
                 "there)", id="never"),
    pytest.param({"image": "busybox", "imagePullPolicy": "Sometimes"}, {},
                 "spec.containers{c}.imagePullPolicy 'Sometimes' is not a pull policy (Always, "
                 "IfNotPresent or Never)", id="bad-policy"),
])
def test_a_field_mesos_cannot_take_is_refused(container: dict[str, Any], spec: dict[str, Any],
                                              message: str) -> None:
    assert _refused(_pod(container, **spec)) == message


def test_probes_that_mesos_can_run_are_sent() -> None:
    pod = _pod({"livenessProbe": {**GET, "successThreshold": 1, "initialDelaySeconds": 2,
                                  "terminationGracePeriodSeconds": 30,
                                  "httpGet": {"port": 8080, "path": "/h", "scheme": "HTTPS",
                                              "host": "", "httpHeaders": []}},
                "startupProbe": {"httpGet": {"port": 8080, "path": "/h", "scheme": "HTTPS",
                                             "host": "", "httpHeaders": []},
                                 "initialDelaySeconds": 4, "failureThreshold": 5,
                                 "periodSeconds": 2},
                "readinessProbe": {"httpGet": {"port": 8080, "scheme": "HTTP"}}})
    task = _task(_render(pod))
    health = task["health_check"]
    assert health["http"] == {"port": 8080, "path": "/h", "scheme": "https"}
    assert health["grace_period_seconds"] == 2 + 4 + 5 * 2
    assert task["check"]["http"] == {"port": 8080, "path": "/"}


@pytest.mark.parametrize(("image", "policy", "cached"), [
    ("busybox", None, False), ("busybox:latest", None, False), ("busybox:1.36", None, True),
    ("reg.example:5000/busybox", None, False), ("busybox@sha256:" + "a" * 64, None, True),
    ("busybox:1.36", "Always", False), ("busybox", "IfNotPresent", True),
])
def test_the_pull_policy_is_the_images_cached_flag(image: str, policy: str | None,
                                                   cached: bool) -> None:
    container: dict[str, Any] = {"image": image}
    if policy:
        container["imagePullPolicy"] = policy
    info = _task(_render(_pod(container)))["container"]["mesos"]["image"]
    assert info == {"type": "DOCKER", "docker": {"name": image}, "cached": cached}


def test_never_is_honoured_where_nothing_is_pulled() -> None:
    pod = _pod({"image": "busybox", "imagePullPolicy": "Never"})
    local = _task(_render(pod, image_mode="local"))
    assert local["container"]["mesos"]["image"]["cached"] is True
    assert "container" not in _task(_render(pod, image_mode="none"))


def _docker_secret(auths: dict[str, Any], *, legacy: bool = False) -> dict[str, Any]:
    key = ".dockercfg" if legacy else ".dockerconfigjson"
    body = auths if legacy else {"auths": auths}
    return {"data": {key: base64.b64encode(json.dumps(body).encode()).decode()}}


def test_pull_secrets_become_the_images_docker_config() -> None:
    pod = _pod({"image": "reg.example/app:1"}, imagePullSecrets=[
        {"name": "one"}, {"name": "gone"}, {"name": "two"}])
    sources = volumes.Sources(secrets={
        "one": _docker_secret({"reg.example": {"auth": "b25lOjE="}}),
        "two": _docker_secret({"reg.example": {"auth": "dHdvOjI="},
                               "other.example": {"auth": "eDp5"}}, legacy=True),
        "gone": None})
    group = _render(pod, sources=sources)
    config = _task(group)["container"]["mesos"]["image"]["docker"]["config"]
    assert config["type"] == "VALUE"
    assert json.loads(base64.b64decode(config["value"]["data"])) == {"auths": {
        "reg.example": {"auth": "b25lOjE="}, "other.example": {"auth": "eDp5"}}}
    (notice,) = group.notices
    assert notice.reason == "FailedToRetrieveImagePullSecret"
    assert notice.message == ("Unable to retrieve some image pull secrets (gone); attempting "
                              "to pull the image may not succeed.")
    # no image sent: the secrets are not needed, and nobody is told about them
    none = _render(pod, image_mode="none", sources=sources)
    assert none.notices == () and "container" not in _task(none)
    broken = volumes.Sources(secrets={"one": {"data": {".dockerconfigjson": "!!"}}})
    message = _refused(_pod({"image": "a:1"}, imagePullSecrets=[{"name": "one"}]),
                       sources=broken)
    assert message.startswith('imagePullSecrets "one": .dockerconfigjson is not a docker '
                              "config (base64 JSON)")


def test_every_container_gets_the_pod_files_as_secret_volumes() -> None:
    pod = _pod({"image": "busybox"}, hostname="h", hostAliases=[
        {"ip": "192.0.2.1", "hostnames": ["alias"]}])
    network = podfiles.Network(pod_ips=("10.0.0.7",), cluster_dns=("10.96.0.10",))
    task = _task(_render(pod, image_mode="local", network=network))
    paths = [v["container_path"] for v in task["container"]["volumes"]]
    assert paths == ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
    hosts = base64.b64decode(task["container"]["volumes"][0]["source"]["secret"]["value"]
                             ["data"]).decode()
    assert "10.0.0.7\th\n" in hosts and "192.0.2.1\talias\n" in hosts
    missing = _render(_pod({}), image_mode="none", network=podfiles.Network())
    assert [n.reason for n in missing.notices] == ["MissingClusterDNS"]
