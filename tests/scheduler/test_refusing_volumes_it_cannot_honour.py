"""Bad or unhonourable volumes stop the pod with a reason naming the field (pure rendering)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from k8sbridge.scheduler import podenv, podfields, volumes


def _pod(vols: list[dict[str, Any]], mounts: list[dict[str, Any]],
         **container: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"volumes": vols, "containers": [
                {"name": "c", "volumeMounts": mounts, **container}]}}


def _render(pod: dict[str, Any], sources: volumes.Sources | None = None,
            allow_host_path: bool = True) -> list[dict[str, Any]]:
    volumes.check_pod(pod, allow_host_path=allow_host_path)
    podfields.check_pod(pod)
    return volumes.container_volumes(pod=pod, container=pod["spec"]["containers"][0],
                                     sources=sources or volumes.Sources(), node_name="n",
                                     host_ip="127.0.0.1")


CM = volumes.Sources(config_maps={"cm": {"data": {"k": "v", "bad key": "x"}}})
BIG = volumes.Sources(secrets={"s": {"data": {
    "k": base64.b64encode(b"x" * (volumes.MAX_SECRET_BYTES + 1)).decode()}}})


@pytest.mark.parametrize(("pod", "sources", "message"), [
    pytest.param(_pod([{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}], []),
                 None, 'spec.volumes: the name "a" is used by two volumes', id="collision"),
    pytest.param(_pod([{"name": "a", "emptyDir": {}}], [{"name": "a", "mountPath": "rel"}]),
                 None, "spec.containers{c}.volumeMounts[a].mountPath 'rel' must be an "
                 "absolute path", id="relative"),
    pytest.param(_pod([{"name": "a", "emptyDir": {}}], [{"name": "a", "mountPath": "/x/../y"}]),
                 None, "spec.containers{c}.volumeMounts[a].mountPath '/x/../y' must not "
                 "contain '..'", id="dotdot"),
    pytest.param(_pod([{"name": "a", "configMap": {"name": "cm"}}],
                      [{"name": "a", "mountPath": "/a"}]), CM,
                 "configmap \"cm\": the key 'bad key' is not a valid file name", id="key"),
    pytest.param(_pod([{"name": "a", "secret": {"secretName": "s"}}],
                      [{"name": "a", "mountPath": "/a"}]), BIG,
                 'secret "s" is over 1 MiB', id="big-secret"),
    pytest.param(_pod([{"name": "a", "configMap": {"name": "cm", "defaultMode": 0o755}}],
                      [{"name": "a", "mountPath": "/a"}]), CM,
                 'spec.volumes "a".configMap.defaultMode 0o755 cannot be honoured: Mesos '
                 "writes SECRET volume files 0644 and has no per-file mode", id="mode"),
    pytest.param(_pod([{"name": "a", "emptyDir": {}}],
                      [{"name": "a", "mountPath": "/a", "subPath": "x"}]), None,
                 "spec.containers{c}.volumeMounts[a].subPath is not supported: Mesos volumes "
                 "mount a whole source", id="subpath"),
    pytest.param(_pod([{"name": "a", "emptyDir": {"medium": "Memory"}}], []), None,
                 "spec.volumes \"a\".emptyDir.medium 'Memory' is not supported: Mesos' "
                 "sandbox volumes are on the agent's disk", id="memory"),
    pytest.param(_pod([], [], securityContext={"runAsUser": 1000}), None,
                 "spec.containers{c}.securityContext.runAsUser 1000 has no user on the agents: "
                 "Mesos runs tasks as a user name; map the uid to one in the setting "
                 "scheduler.run_as_users (uid=name)",
                 id="run-as-user"),
])
def test_a_bad_volume_is_refused(pod: dict[str, Any], sources: volumes.Sources | None,
                                 message: str) -> None:
    with pytest.raises(podenv.LaunchError) as e:
        _render(pod, sources)
    assert str(e.value) == message and e.value.reason == "CreateContainerConfigError"


def test_host_paths_need_the_setting() -> None:
    pod = _pod([{"name": "h", "hostPath": {"path": "/srv"}}], [{"name": "h", "mountPath": "/h"}])
    with pytest.raises(podenv.LaunchError, match="scheduler.allow_host_path"):
        _render(pod, allow_host_path=False)
    assert _render(pod) == [{"container_path": "/h", "mode": "RW", "source": {
        "type": "HOST_PATH", "host_path": {"path": "/srv"}}}]


def test_a_projected_volume_writes_one_secret_file_per_key() -> None:
    pod = _pod([{"name": "p", "projected": {"defaultMode": 420, "sources": [
        {"configMap": {"name": "cm", "items": [{"key": "k", "path": "sub/k"}]}},
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {
            "fieldPath": "metadata.namespace"}}]}}]}}],
        [{"name": "p", "mountPath": "/var/run/x", "readOnly": True}])
    want = volumes.TokenWant(service_account="default", audience="", expiration_seconds=3607)
    assert volumes.wanted(pod) == ({"cm"}, set(), {want})
    sources = volumes.Sources(config_maps=CM.config_maps, tokens={want: "tok"})
    rendered = _render(pod, sources)
    assert [(v["container_path"], base64.b64decode(v["source"]["secret"]["value"]["data"]))
            for v in rendered] == [("/var/run/x/ns", b"ns"), ("/var/run/x/sub/k", b"v"),
                                   ("/var/run/x/token", b"tok")]
    assert {v["mode"] for v in rendered} == {"RO"}
