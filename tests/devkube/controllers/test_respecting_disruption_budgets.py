"""PodDisruptionBudgets on devkube through real kubectl and the official client: the disruption
controller's status against a Deployment's scale, ``kubectl get pdb`` columns, the eviction
subresource's 429 / 500 / dry-run answers and the DisruptionTarget condition, and ``kubectl
drain`` blocked by a budget until the budget permits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.disruption import PODDISRUPTIONBUDGETS
from k8sbridge.devkube.controllers.raw import RawObject

from .conftest import Cluster, FakeKubelet, devkube_cluster, eventually

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}}


def budget(name: str = "web-pdb", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}


async def apply(cluster: Cluster, tmp_path: Path, manifest: dict[str, Any]) -> str:
    path = tmp_path / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return await cluster.kubectl("apply", "-f", str(path))


async def pdb(cluster: Cluster, name: str = "web-pdb") -> RawObject:
    return await cluster.client.get(PODDISRUPTIONBUDGETS, namespace="default", name=name)


async def wait_allowed(cluster: Cluster, allowed: int, *, healthy: int = 3,
                       name: str = "web-pdb") -> RawObject:
    found: dict[str, RawObject] = {}

    async def check() -> bool:
        found["pdb"] = got = await pdb(cluster, name)
        status = got.get("status") or {}
        return status.get("observedGeneration") == got["metadata"]["generation"] and \
            status.get("disruptionsAllowed") == allowed and \
            status.get("currentHealthy") == healthy

    await eventually(check, what=f"{allowed} disruptions allowed")
    return found["pdb"]


async def live(cluster: Cluster) -> list[RawObject]:
    return [p for p in await cluster.pods(selector="app=web") if not podfacts.is_terminating(p)]


def _core(cluster: Cluster) -> Any:
    made: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kube.kubeconfig))
    return client.CoreV1Api(made)


def _eviction(name: str, **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction",
                            "metadata": {"name": name, "namespace": "default"}}
    if options:
        body["deleteOptions"] = options
    return body


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Cluster, FakeKubelet]]:
    async with devkube_cluster(tmp_path) as (cluster, kubelet):
        assert kubelet is not None
        await apply(cluster, tmp_path, DEPLOYMENT)

        async def ready() -> bool:
            return sum(1 for p in await live(cluster) if podfacts.is_ready(p)) == 3
        await eventually(ready, what="3 ready pods")
        yield cluster, kubelet


@pytest.fixture
def web(running: tuple[Cluster, FakeKubelet]) -> Cluster:
    return running[0]


async def test_status_follows_the_deployments_scale(web: Cluster, tmp_path: Path) -> None:
    await apply(web, tmp_path, budget(maxUnavailable="34%"))
    status = (await wait_allowed(web, 2))["status"]  # ceil(34 % of 3) = 2 may go
    assert (status["expectedPods"], status["desiredHealthy"]) == (3, 1)
    [cond] = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == (
        "DisruptionAllowed", "True", "SufficientPods")
    table = (await web.kubectl("get", "pdb")).splitlines()
    assert table[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED",
                                "DISRUPTIONS", "AGE"]
    assert table[1].split()[:4] == ["web-pdb", "N/A", "34%", "2"]
    await web.kubectl("scale", "deployment/web", "--replicas=4")
    status = (await wait_allowed(web, 2, healthy=4))["status"]  # ceil(1.36) = 2 of 4
    assert (status["expectedPods"], status["desiredHealthy"]) == (4, 2)
    await apply(web, tmp_path, budget(minAvailable="100%"))
    status = (await wait_allowed(web, 0, healthy=4))["status"]
    assert status["conditions"][0]["reason"] == "InsufficientPods"


async def test_eviction_is_refused_while_the_budget_allows_none(
        running: tuple[Cluster, FakeKubelet], tmp_path: Path) -> None:
    web, kubelet = running
    await apply(web, tmp_path, budget(minAvailable=3))
    await wait_allowed(web, 0)
    victim = (await live(web))[0]["metadata"]["name"]
    core = _core(web)
    with pytest.raises(ApiException) as refused:
        await asyncio.to_thread(core.create_namespaced_pod_eviction, victim, "default",
                                _eviction(victim))
    assert refused.value.status == 429
    body = json.loads(refused.value.body or "{}")
    assert body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [{
        "reason": "DisruptionBudget",
        "message": "The disruption budget web-pdb needs 3 healthy pods and has 3 currently"}]

    await apply(web, tmp_path, budget(minAvailable=2))
    await wait_allowed(web, 1)
    await asyncio.to_thread(core.create_namespaced_pod_eviction, victim, "default",
                            _eviction(victim, dryRun=["All"]))
    assert (await pdb(web))["status"]["disruptionsAllowed"] == 1
    kubelet.paused = True  # the pod stays terminating: its condition and the charge show
    await asyncio.to_thread(core.create_namespaced_pod_eviction, victim, "default",
                            _eviction(victim))
    evicted = await web.client.get(api.PODS, namespace="default", name=victim)
    assert evicted["metadata"].get("deletionTimestamp")
    target = podfacts.condition(evicted, "DisruptionTarget")
    assert target is not None and (target["status"], target["reason"], target["message"]) == (
        "True", "EvictionByEvictionAPI", "Eviction API: evicting")
    status = (await wait_allowed(web, 0, healthy=2))["status"]
    assert status["conditions"][0]["reason"] == "InsufficientPods"
    other = next(p["metadata"]["name"] for p in await live(web)
                 if p["metadata"]["name"] != victim and podfacts.is_ready(p))
    with pytest.raises(ApiException) as again:
        await asyncio.to_thread(core.create_namespaced_pod_eviction, other, "default",
                                _eviction(other))
    assert again.value.status == 429


async def test_a_pod_under_two_budgets_cannot_be_evicted(web: Cluster, tmp_path: Path) -> None:
    await apply(web, tmp_path, budget(minAvailable=1))
    await apply(web, tmp_path, budget("second", maxUnavailable=1))
    await wait_allowed(web, 2)
    await wait_allowed(web, 1, name="second")
    victim = (await live(web))[0]["metadata"]["name"]
    with pytest.raises(ApiException) as refused:
        await asyncio.to_thread(_core(web).create_namespaced_pod_eviction, victim, "default",
                                _eviction(victim))
    assert refused.value.status == 500
    assert json.loads(refused.value.body or "{}")["message"] == (
        "Internal error occurred: This pod has more than one PodDisruptionBudget, which the "
        "eviction subresource does not support.")


async def test_drain_waits_for_the_budget(web: Cluster, tmp_path: Path) -> None:
    await apply(web, tmp_path, budget(minAvailable=3))
    await wait_allowed(web, 0)
    with pytest.raises(AssertionError) as blocked:
        await web.kubectl("drain", "node-1", "--ignore-daemonsets", "--timeout=3s")
    assert "Cannot evict pod as it would violate the pod's disruption budget." in str(
        blocked.value)
    assert len(await live(web)) == 3

    await apply(web, tmp_path, budget(minAvailable=2))
    await wait_allowed(web, 1)
    out = await web.kubectl("drain", "node-1", "--ignore-daemonsets", "--timeout=60s",
                            timeout=90)
    assert "node/node-1 drained" in out


async def test_bad_budgets_get_the_apiservers_answers(cluster: Cluster, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(budget(minAvailable=1, maxUnavailable="150%",
                                          unhealthyPodEvictionPolicy="Sometimes")))
    with pytest.raises(AssertionError) as refused:
        await cluster.kubectl("apply", "-f", str(path))
    text = str(refused.value)
    assert "minAvailable and maxUnavailable cannot be both set" in text
    assert 'spec.maxUnavailable: Invalid value: "150%": must not be greater than 100%' in text
    assert ('spec.unhealthyPodEvictionPolicy: Unsupported value: "Sometimes": supported '
            'values: "AlwaysAllow", "IfHealthyBudget"') in text
