"""v1 ReplicationControllers on devkube: the ReplicaSet logic over an equality selector, the
selector and labels defaulted from the template, ``kubectl scale`` and ``get rc`` columns, the
official client's models, the refusals and garbage collection of the pods."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts

from .conftest import Cluster, eventually

RC: dict[str, Any] = {
    "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "legacy"},
    "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "legacy"}},
                                         "spec": {"containers": [
                                             {"name": "c", "image": "nginx:1.27"}]}}}}


async def live(cluster: Cluster) -> list[str]:
    return sorted(p["metadata"]["name"] for p in await cluster.pods(selector="app=legacy")
                  if podfacts.is_active(p))


def _core(cluster: Cluster) -> Any:
    """The official CoreV1Api, untyped: these tests pass dicts where its stubs want models."""
    made: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kube.kubeconfig))
    return client.CoreV1Api(made)


async def test_a_replication_controller_keeps_its_replicas(cluster: Cluster,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "rc.yaml"
    path.write_text(yaml.safe_dump(RC))
    assert "replicationcontroller/legacy created" in await cluster.kubectl("apply", "-f",
                                                                          str(path))

    async def count(n: int) -> None:
        async def check() -> bool:
            rc = await cluster.client.get(api.REPLICATIONCONTROLLERS, namespace="default",
                                          name="legacy")
            return len(await live(cluster)) == n and (rc.get("status") or {}).get(
                "readyReplicas", 0) == n
        await eventually(check, what=f"{n} ready pods")

    await count(2)
    rc = await asyncio.to_thread(_core(cluster).read_namespaced_replication_controller,
                                 "legacy", "default")
    assert rc.spec.selector == {"app": "legacy"} and rc.metadata.labels == {"app": "legacy"}
    pod = (await cluster.pods(selector="app=legacy"))[0]
    [ref] = pod["metadata"]["ownerReferences"]
    assert (ref["apiVersion"], ref["kind"], ref["controller"]) == (
        "v1", "ReplicationController", True)
    await cluster.kubectl("scale", "rc/legacy", "--replicas=4")
    await count(4)
    table = (await cluster.kubectl("get", "rc", "-o", "wide")).split("\n")
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS",
                                "IMAGES", "SELECTOR"]
    cells = table[1].split()
    assert cells[:4] == ["legacy", "4", "4", "4"] and cells[-1] == "app=legacy"
    await cluster.kubectl("scale", "rc/legacy", "--replicas=1")
    await count(1)
    await cluster.kubectl("delete", "rc", "legacy", "--wait=false")

    async def collected() -> bool:
        return await live(cluster) == []

    await eventually(collected, what="the pods of the deleted controller collected")


async def test_refusals(cluster: Cluster) -> None:
    core = _core(cluster)
    bad = {**RC, "metadata": {"name": "bad"},
           "spec": {**RC["spec"], "selector": {"app": "other"}}}
    with pytest.raises(client.exceptions.ApiException) as refused:
        await asyncio.to_thread(core.create_namespaced_replication_controller, "default", bad)
    assert refused.value.status == 422
    assert 'ReplicationController "bad" is invalid: spec.template.metadata.labels: Invalid ' \
        'value: map[string]string{"app":"legacy"}: `selector` does not match template ' \
        "`labels`" in json.loads(refused.value.body or "{}")["message"]
    negative = {**RC, "metadata": {"name": "negative"}, "spec": {**RC["spec"], "replicas": -1}}
    with pytest.raises(client.exceptions.ApiException) as refused:
        await asyncio.to_thread(core.create_namespaced_replication_controller, "default",
                                negative)
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in json.loads(
        refused.value.body or "{}")["message"]


async def test_discovery_names_and_get_all(cluster: Cluster, tmp_path: Path) -> None:
    resources = await cluster.kubectl("api-resources", "-o", "wide")
    rows = {line.split()[0]: line.split() for line in resources.split("\n")[1:] if line}
    assert rows["statefulsets"][1:5] == ["sts", "apps/v1", "true", "StatefulSet"]
    assert rows["daemonsets"][1:5] == ["ds", "apps/v1", "true", "DaemonSet"]
    assert rows["replicationcontrollers"][1:5] == ["rc", "v1", "true",
                                                   "ReplicationController"]
    assert rows["controllerrevisions"][1:4] == ["apps/v1", "true", "ControllerRevision"]
    for name in ("statefulsets", "daemonsets", "replicationcontrollers"):
        assert rows[name][-1] == "all", rows[name]
    path = tmp_path / "rc.yaml"
    path.write_text(yaml.safe_dump(RC))
    await cluster.kubectl("apply", "-f", str(path))
    everything = await cluster.kubectl("get", "all")
    assert "replicationcontroller/legacy" in everything, everything
