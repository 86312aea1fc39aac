"""StatefulSets on devkube through real kubectl and the official client: ordered creation that
waits for readiness, scale-down from the highest ordinal, a partitioned rolling update, Parallel
pod management, the ``kubectl get`` columns and the apiserver's refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.raw import RawObject

from .conftest import Cluster, FakeKubelet, devkube_cluster, eventually


def statefulset(name: str = "web", *, replicas: int = 3, image: str = "nginx:1.27",
                **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "serviceName": name,
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}},
                     **spec}}


@pytest.fixture
async def paused(tmp_path: Path) -> AsyncIterator[tuple[Cluster, FakeKubelet]]:
    async with devkube_cluster(tmp_path) as (cluster, kubelet):
        assert kubelet is not None
        yield cluster, kubelet


async def apply(cluster: Cluster, tmp_path: Path, manifest: dict[str, Any]) -> str:
    path = tmp_path / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return await cluster.kubectl("apply", "-f", str(path))


async def names(cluster: Cluster, selector: str = "app=web", *,
                live: bool = True) -> list[str]:
    return sorted(p["metadata"]["name"] for p in await cluster.pods(selector=selector)
                  if not live or not podfacts.is_terminating(p))


async def sts(cluster: Cluster, name: str = "web") -> RawObject:
    return await cluster.client.get(api.STATEFULSETS, namespace="default", name=name)


async def test_ordered_ready_creates_one_ready_pod_after_another(
        paused: tuple[Cluster, FakeKubelet], tmp_path: Path) -> None:
    cluster, kubelet = paused
    kubelet.paused = True
    assert "created" in await apply(cluster, tmp_path, statefulset(replicas=3))

    async def first() -> bool:
        return await names(cluster) == ["web-0"]

    await eventually(first, what="web-0")
    await asyncio.sleep(0.5)
    assert await names(cluster) == ["web-0"], "web-1 must wait for web-0 to be Ready"
    kubelet.paused = False
    out = await cluster.kubectl("rollout", "status", "statefulset/web", "--timeout=20s")
    assert "3 pods at revision" in out or "roll out complete" in out, out
    pods = {p["metadata"]["name"]: p for p in await cluster.pods(selector="app=web")}
    assert sorted(pods) == ["web-0", "web-1", "web-2"]
    started = sorted(pods, key=lambda n: pods[n]["status"]["startTime"])
    assert started[0] == "web-0"
    status = (await sts(cluster))["status"]
    for ordinal, (name, pod) in enumerate(sorted(pods.items())):
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == name
        assert labels["apps.kubernetes.io/pod-index"] == str(ordinal)
        assert labels["controller-revision-hash"] == status["updateRevision"]
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "web"
        [ref] = pod["metadata"]["ownerReferences"]
        assert ref["kind"] == "StatefulSet" and ref["controller"] is True
    assert status["readyReplicas"] == 3 and status["currentReplicas"] == 3
    assert status["currentRevision"] == status["updateRevision"]
    table = await cluster.kubectl("get", "sts", "web")
    assert table.split("\n")[0].split() == ["NAME", "READY", "AGE"]
    assert table.split("\n")[1].split()[:2] == ["web", "3/3"]
    described = await cluster.kubectl("describe", "sts", "web")
    assert "Pods Status:    3 Running / 0 Waiting / 0 Succeeded / 0 Failed" in described, \
        described
    revisions = await cluster.kubectl("get", "controllerrevisions")
    assert f"{status['updateRevision']}   statefulset.apps/web   1" in revisions, revisions


async def test_scaling_down_removes_the_highest_ordinal_first(
        paused: tuple[Cluster, FakeKubelet], tmp_path: Path) -> None:
    cluster, kubelet = paused
    await apply(cluster, tmp_path, statefulset(replicas=3))
    await cluster.kubectl("rollout", "status", "statefulset/web", "--timeout=20s")
    kubelet.paused = True  # graceful deletions stay pending
    await cluster.kubectl("scale", "statefulset/web", "--replicas=1")

    async def web2_terminating() -> bool:
        return await names(cluster) == ["web-0", "web-1"] and \
            await names(cluster, live=False) == ["web-0", "web-1", "web-2"]

    await eventually(web2_terminating, what="web-2 terminating first")
    await asyncio.sleep(0.5)
    assert await names(cluster) == ["web-0", "web-1"], "web-1 waits for web-2 to be gone"
    kubelet.paused = False

    async def one() -> bool:
        return await names(cluster, live=False) == ["web-0"]

    await eventually(one, what="only web-0")
    scale = await cluster.kubectl("get", "sts", "web", "-o", "jsonpath={.spec.replicas}")
    assert scale == "1"
    await cluster.kubectl("delete", "statefulset", "web", "--wait=false")

    async def collected() -> bool:  # the garbage collector follows the ownerReferences
        revisions = await cluster.client.list(api.CONTROLLERREVISIONS, namespace="default")
        return await names(cluster, live=False) == [] and not revisions.get("items")

    await eventually(collected, what="the pods and revisions of a deleted set collected")


async def test_a_partitioned_rolling_update(cluster: Cluster, tmp_path: Path) -> None:
    manifest = statefulset(replicas=3, updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    await apply(cluster, tmp_path, manifest)
    await cluster.kubectl("rollout", "status", "statefulset/web", "--timeout=20s")
    first = (await sts(cluster))["status"]["updateRevision"]
    await cluster.kubectl("set", "image", "statefulset/web", "app=nginx:1.28")

    async def only_web2_updated() -> bool:
        status = (await sts(cluster)).get("status") or {}
        return status.get("updatedReplicas") == 1 and status.get("readyReplicas") == 3

    await eventually(only_web2_updated, what="web-2 updated")
    status = (await sts(cluster))["status"]
    assert status["currentRevision"] == first != status["updateRevision"]
    images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
              for p in await cluster.pods(selector="app=web") if podfacts.is_active(p)}
    assert images == {"web-0": "nginx:1.27", "web-1": "nginx:1.27", "web-2": "nginx:1.28"}
    out = await cluster.kubectl("rollout", "status", "statefulset/web", "--timeout=20s")
    assert "partitioned roll out complete" in out, out
    await cluster.kubectl("patch", "statefulset/web", "-p",
                          '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
    await cluster.kubectl("rollout", "status", "statefulset/web", "--timeout=30s")
    status = (await sts(cluster))["status"]
    assert status["currentRevision"] == status["updateRevision"]
    assert status["updatedReplicas"] == 3
    images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
              for p in await cluster.pods(selector="app=web") if podfacts.is_active(p)}
    assert set(images.values()) == {"nginx:1.28"}


async def test_parallel_creates_every_pod_at_once(
        paused: tuple[Cluster, FakeKubelet], tmp_path: Path) -> None:
    cluster, kubelet = paused
    kubelet.paused = True
    await apply(cluster, tmp_path, statefulset(replicas=3, podManagementPolicy="Parallel",
                                               ordinals={"start": 5}))

    async def three() -> bool:
        return await names(cluster) == ["web-5", "web-6", "web-7"]

    await eventually(three, what="three pods without readiness")
    kubelet.paused = False
    await cluster.kubectl("rollout", "status", "statefulset/web", "--timeout=20s")


async def test_rollout_history_and_undo(cluster: Cluster, tmp_path: Path) -> None:
    await apply(cluster, tmp_path, statefulset(replicas=2))
    await cluster.kubectl("rollout", "status", "statefulset/web", "--timeout=20s")
    await cluster.kubectl("set", "image", "statefulset/web", "app=nginx:1.28")
    await cluster.kubectl("rollout", "status", "statefulset/web", "--timeout=20s")
    history = await cluster.kubectl("rollout", "history", "statefulset/web")
    assert [line.split()[0] for line in history.strip().split("\n")[2:]] == ["1", "2"], history
    await cluster.kubectl("rollout", "undo", "statefulset/web")
    await cluster.kubectl("rollout", "status", "statefulset/web", "--timeout=30s")

    async def back() -> bool:
        images = {p["spec"]["containers"][0]["image"]
                  for p in await cluster.pods(selector="app=web") if podfacts.is_active(p)}
        return images == {"nginx:1.27"}

    await eventually(back, what="the pods back at the first template")
    history = await cluster.kubectl("rollout", "history", "statefulset/web")
    assert [line.split()[0] for line in history.strip().split("\n")[2:]] == ["2", "3"], history


def _apps(cluster: Cluster) -> Any:
    """The official AppsV1Api, untyped: these tests pass dicts where its stubs want models."""
    made: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kube.kubeconfig))
    return client.AppsV1Api(made)


async def test_refusals_in_the_apiservers_words(cluster: Cluster) -> None:
    apps = _apps(cluster)
    claims = statefulset("db", volumeClaimTemplates=[{
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}}])
    with pytest.raises(client.exceptions.ApiException) as refused:
        await asyncio.to_thread(apps.create_namespaced_stateful_set, "default", claims)
    assert refused.value.status == 422
    body = json.loads(refused.value.body or "{}")
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.volumeClaimTemplates"
    assert body["message"].startswith(
        'StatefulSet.apps "db" is invalid: spec.volumeClaimTemplates: Forbidden: devkube has '
        "no storage")
    bad = statefulset("bad", podManagementPolicy="Sometimes")
    with pytest.raises(client.exceptions.ApiException) as refused:
        await asyncio.to_thread(apps.create_namespaced_stateful_set, "default", bad)
    assert "spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' " \
        "or 'Parallel'" in json.loads(refused.value.body or "{}")["message"]
    dotted = statefulset("web.v1")
    with pytest.raises(client.exceptions.ApiException) as refused:
        await asyncio.to_thread(apps.create_namespaced_stateful_set, "default", dotted)
    assert 'metadata.name: Invalid value: "web.v1": a lowercase RFC 1123 label must consist' \
        in json.loads(refused.value.body or "{}")["message"]
    zero = statefulset("zero", updateStrategy={"type": "RollingUpdate",
                                               "rollingUpdate": {"maxUnavailable": 0}})
    with pytest.raises(client.exceptions.ApiException) as refused:
        await asyncio.to_thread(apps.create_namespaced_stateful_set, "default", zero)
    assert "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: cannot be 0" \
        in json.loads(refused.value.body or "{}")["message"]
    kept = statefulset("kept", replicas=0, persistentVolumeClaimRetentionPolicy={
        "whenDeleted": "Delete", "whenScaled": "Retain"})
    made = await asyncio.to_thread(apps.create_namespaced_stateful_set, "default", kept)
    assert made.spec.persistent_volume_claim_retention_policy.when_deleted == "Delete"
    assert made.spec.update_strategy.rolling_update.partition == 0
    assert made.spec.pod_management_policy == "OrderedReady"
    with pytest.raises(client.exceptions.ApiException) as refused:
        await asyncio.to_thread(apps.patch_namespaced_stateful_set, "kept", "default",
                                {"spec": {"serviceName": "other"}})
    assert "spec: Forbidden: updates to statefulset spec for fields other than 'replicas'" in \
        json.loads(refused.value.body or "{}")["message"]
    scale = await asyncio.to_thread(apps.patch_namespaced_stateful_set_scale, "kept",
                                    "default", {"spec": {"replicas": 2}})
    assert scale.spec.replicas == 2 and scale.status.selector == "app=kept"

    async def one_revision() -> bool:
        listed = await asyncio.to_thread(apps.list_namespaced_controller_revision, "default")
        return [r.metadata.name.startswith("kept-") for r in listed.items] == [True]

    await eventually(one_revision, what="the revision of kept")
