"""The ServiceAccount admission plugin at pod creation, through the official client and raw
HTTP: the exact ``kube-api-access`` volume and mounts kube-apiserver writes, the
automountServiceAccountToken rules, and its refusals with kube-apiserver's words."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from kubernetes import client, config

from k8sbridge.devkube import main
from tests.devkube.server.conftest import Api

T = TypeVar("T")
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
PODS = "/api/v1/namespaces/default/pods"


async def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


def _expected_volume(name: str) -> dict[str, Any]:
    """The volume as a real kube-apiserver shows it (kubectl get pod -o json)."""
    return {"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt",
                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}}


async def test_a_pod_gets_the_token_volume_in_every_container(devkube: main.Devkube) -> None:
    core = client.CoreV1Api(config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(devkube.kubeconfig)))
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1PodSpec(
            init_containers=[client.V1Container(name="init", image="busybox")],
            containers=[
                client.V1Container(name="app", image="busybox", volume_mounts=[
                    client.V1VolumeMount(name="data", mount_path="/data")]),
                client.V1Container(name="own", image="busybox", volume_mounts=[
                    client.V1VolumeMount(name="data", mount_path=SA_DIR)]),
            ],
            volumes=[client.V1Volume(name="data", empty_dir=client.V1EmptyDirVolumeSource())],
        ),
    )
    try:
        await _in_thread(core.create_namespaced_pod, "default", pod)
        raw: Any = await _in_thread(core.read_namespaced_pod, "web", "default",
                               _preload_content=False)
        created: dict[str, Any] = json.loads(raw.data)
    finally:
        core.api_client.close()
    spec = created["spec"]
    assert spec["serviceAccountName"] == "default" and spec["serviceAccount"] == "default"
    data, token = spec["volumes"]
    assert data == {"name": "data", "emptyDir": {}}
    name = token["name"]
    assert name.startswith("kube-api-access-") and len(name) == len("kube-api-access-") + 5
    assert set(name[-5:]) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert token == _expected_volume(name)
    mount = {"name": name, "readOnly": True, "mountPath": SA_DIR}
    assert spec["initContainers"][0]["volumeMounts"] == [mount]
    app, own = spec["containers"]
    assert app["volumeMounts"] == [{"name": "data", "mountPath": "/data"}, mount]
    assert own["volumeMounts"] == [{"name": "data", "mountPath": SA_DIR}]  # left alone
    assert "imagePullSecrets" not in spec


async def test_automount_follows_the_pod_then_the_service_account(api: Api) -> None:
    await api.request("POST", "/api/v1/namespaces/default/serviceaccounts", body={
        "metadata": {"name": "quiet"}, "automountServiceAccountToken": False,
        "imagePullSecrets": [{"name": "regcred"}]})
    cases: dict[str, tuple[dict[str, Any], bool]] = {
        "pod-off": ({"automountServiceAccountToken": False}, False),
        "sa-off": ({"serviceAccountName": "quiet"}, False),
        "pod-wins": ({"serviceAccountName": "quiet", "automountServiceAccountToken": True},
                     True),
        "legacy-field": ({"serviceAccount": "quiet"}, False),
    }
    for name, (spec, mounted) in cases.items():
        code, body = await api.request("POST", PODS, body=_pod(name, **spec))
        assert code == 201, body
        volumes = [v["name"] for v in body["spec"].get("volumes") or []]
        assert bool(volumes) is mounted, (name, volumes)
        assert bool(body["spec"]["containers"][0].get("volumeMounts")) is mounted
    code, body = await api.request("GET", f"{PODS}/sa-off")
    assert body["spec"]["serviceAccountName"] == "quiet"
    assert body["spec"]["imagePullSecrets"] == [{"name": "regcred"}]  # from the account
    # A volume the pod already names kube-api-access-* is used, not added again.
    own = _expected_volume("kube-api-access-mine1")
    code, body = await api.request("POST", PODS, body=_pod("reuse", volumes=[own]))
    assert body["spec"]["volumes"] == [own]
    assert body["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "kube-api-access-mine1", "readOnly": True, "mountPath": SA_DIR}]


async def test_a_missing_service_account_is_refused_as_kube_apiserver_does(api: Api) -> None:
    code, body = await api.request("POST", PODS, body=_pod("lost", serviceAccountName="ghost"))
    assert code == 403
    assert body["reason"] == "Forbidden"
    assert body["message"] == ('pods "lost" is forbidden: error looking up service account '
                               'default/ghost: serviceaccount "ghost" not found')
    assert body["details"] == {"name": "lost", "kind": "pods"}
    generated = _pod("", serviceAccountName="ghost")
    generated["metadata"] = {"generateName": "web-"}
    code, body = await api.request("POST", PODS, body=generated)
    assert code == 403 and body["message"].startswith('pods "web-" is forbidden: ')
    # dry-run admits (or refuses) the same way and stores nothing
    code, body = await api.request("POST", PODS, body=_pod("dry"), params={"dryRun": "All"})
    assert code == 201 and body["spec"]["volumes"][0]["name"].startswith("kube-api-access-")
    code, _ = await api.request("GET", f"{PODS}/dry")
    assert code == 404


async def test_mirror_pods_and_mountable_secrets_are_limited(api: Api) -> None:
    mirror = _pod("static", volumes=[{"name": "s", "secret": {"secretName": "x"}}])
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    code, body = await api.request("POST", PODS, body=mirror)
    assert code == 403
    assert body["message"] == 'pods "static" is forbidden: a mirror pod may not reference secrets'
    mirror = _pod("static2", serviceAccountName="default")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    code, body = await api.request("POST", PODS, body=mirror)
    assert code == 403 and body["message"].endswith(
        "a mirror pod may not reference service accounts")
    await api.request("POST", "/api/v1/namespaces/default/serviceaccounts", body={
        "metadata": {"name": "strict",
                     "annotations": {"kubernetes.io/enforce-mountable-secrets": "true"}},
        "secrets": [{"name": "allowed"}]})
    code, body = await api.request("POST", PODS, body=_pod(
        "limited", serviceAccountName="strict",
        volumes=[{"name": "s", "secret": {"secretName": "other"}}]))
    assert code == 403
    assert body["message"] == (
        'pods "limited" is forbidden: volume with secret.secretName="other" is not allowed '
        "because service account strict does not reference that secret")
    code, _ = await api.request("POST", PODS, body=_pod(
        "allowed", serviceAccountName="strict",
        volumes=[{"name": "s", "secret": {"secretName": "allowed"}}]))
    assert code == 201


async def test_a_pod_waits_briefly_for_the_default_service_account(api: Api) -> None:
    """Like the plugin, a missing ``default`` is looked up again for a while (its controller
    recreates it), so a pod created just after it was deleted is admitted."""
    code, _ = await api.request("DELETE", "/api/v1/namespaces/default/serviceaccounts/default")
    assert code == 200

    async def recreate() -> None:
        await asyncio.sleep(0.4)
        await api.request("POST", "/api/v1/namespaces/default/serviceaccounts",
                          body={"metadata": {"name": "default"}})

    maker = asyncio.create_task(recreate())
    code, body = await api.request("POST", PODS, body=_pod("patient"))
    await maker
    assert code == 201, body


async def test_the_plugin_can_be_disabled(tmp_path: Path) -> None:
    config_ = main.DevkubeConfig(port=0, controllers=False, insecure_http=True,
                                 kubeconfig=tmp_path / "kubeconfig",
                                 disable_admission_plugins=frozenset({"ServiceAccount"}))
    async with main.running(config_) as dk:
        async with aiohttp.ClientSession() as session, session.post(
                dk.url + PODS, json=_pod("plain", serviceAccountName="ghost")) as resp:
            body = await resp.json()
    assert resp.status == 201 and "volumes" not in body["spec"]
    with pytest.raises(ValueError, match="unknown admission plugins: Nope"):
        async with main.running(main.DevkubeConfig(
                port=0, controllers=False, disable_admission_plugins=frozenset({"Nope"}))):
            pass
