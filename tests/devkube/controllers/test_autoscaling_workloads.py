"""HorizontalPodAutoscalers on devkube through real kubectl and the official client: ``kubectl
autoscale`` and ``get hpa`` columns, a scale-up from cpu usage served by a kubelet's
``/stats/summary`` through metrics.k8s.io, the conditions kube reports for a missing target
(FailedGetScale) and for pods without metrics (FailedGetResourceMetric), min/max replicas
enforced through the target's ``/scale``, the autoscaling/v1 view and the apiserver's
refusals."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from kubernetes import client, config

from k8sbridge.devkube import certs
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.hpa import HPAS
from k8sbridge.devkube.controllers.raw import RawObject

from .conftest import Cluster, eventually


class StatsKubelet:
    """A kubelet's ``/stats/summary`` over TLS: every pod of the namespace at ``cpu_nanos``
    per container (what devkube's metrics.k8s.io reads)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.cpu_nanos = 0

    async def summary(self, request: web.Request) -> web.Response:
        pods = await self.cluster.pods()
        return web.json_response({"node": {"nodeName": "node-1"}, "pods": [
            {"podRef": {"name": p["metadata"]["name"], "namespace": "default",
                        "uid": p["metadata"]["uid"]},
             "containers": [{"name": c["name"], "cpu": {"usageNanoCores": self.cpu_nanos},
                             "memory": {"workingSetBytes": 1 << 20}}
                            for c in p["spec"]["containers"]]}
            for p in pods if (p.get("status") or {}).get("phase") == "Running"]})


@contextlib.asynccontextmanager
async def stats_kubelet(cluster: Cluster, tmp_path: Path) -> AsyncIterator[StatsKubelet]:
    creds = certs.ensure(directory=tmp_path / "kubelet-pki", hosts=["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(creds.cert_file), str(creds.key_file))
    kubelet = StatsKubelet(cluster)
    app = web.Application()
    app.router.add_get("/stats/summary", kubelet.summary)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    await cluster.client.patch(api.NODES, namespace=None, name="node-1", subresource="status",
                               body={"status": {
                                   "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}})
    try:
        yield kubelet
    finally:
        await runner.cleanup()


def deployment(replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                         "containers": [{"name": "c", "image": "nginx:1.27", "resources": {
                             "requests": {"cpu": "100m"}}}]}}}}


def hpa(name: str, target: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": target}, **spec}}


async def apply(cluster: Cluster, tmp_path: Path, manifest: dict[str, Any]) -> str:
    path = tmp_path / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return await cluster.kubectl("apply", "-f", str(path))


async def condition(cluster: Cluster, name: str, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def check() -> bool:
        got: RawObject = await cluster.client.get(HPAS, namespace="default", name=name)
        for c in (got.get("status") or {}).get("conditions") or []:
            if c["type"] == kind:
                found.update(c)
                return True
        return False

    await eventually(check, what=f"the {kind} condition of {name}")
    return found


async def test_autoscale_without_metrics_reports_failed_get_resource_metric(
        cluster: Cluster, tmp_path: Path) -> None:
    await apply(cluster, tmp_path, deployment(3))
    out = await cluster.kubectl("autoscale", "deployment", "web", "--min", "1", "--max", "5",
                                "--cpu-percent", "50")
    assert "horizontalpodautoscaler.autoscaling/web autoscaled" in out
    active = await condition(cluster, "web", "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "FailedGetResourceMetric")
    assert active["message"].startswith("the HPA was unable to compute the replica count: "
                                        "failed to get cpu utilization")
    able = await condition(cluster, "web", "AbleToScale")
    assert (able["status"], able["reason"]) == ("True", "SucceededGetScale")
    got = await cluster.client.get(HPAS, namespace="default", name="web")
    assert got["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
    table = (await cluster.kubectl("get", "hpa")).splitlines()
    assert table[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS",
                                "REPLICAS", "AGE"]
    assert table[1].split()[:7] == ["web", "Deployment/web", "cpu:", "<unknown>/50%", "1", "5",
                                    "3"]


async def test_a_missing_target_fails_get_scale(cluster: Cluster, tmp_path: Path) -> None:
    await apply(cluster, tmp_path, hpa("lost", "nope", maxReplicas=3))
    able = await condition(cluster, "lost", "AbleToScale")
    assert (able["status"], able["reason"], able["message"]) == (
        "False", "FailedGetScale", "the HPA controller was unable to get the target's current "
        'scale: deployments.apps "nope" not found')


async def test_replicas_outside_min_and_max_are_brought_back(cluster: Cluster,
                                                             tmp_path: Path) -> None:
    await apply(cluster, tmp_path, deployment(7))
    await apply(cluster, tmp_path, hpa("web", "web", minReplicas=2, maxReplicas=4))

    async def scaled() -> bool:
        d = await cluster.client.get(api.DEPLOYMENTS, namespace="default", name="web")
        return bool(d["spec"]["replicas"] == 4)
    await eventually(scaled, what="the deployment scaled to maxReplicas")
    limited = await condition(cluster, "web", "ScalingLimited")
    assert (limited["status"], limited["reason"]) == ("True", "TooManyReplicas")
    got = await cluster.client.get(HPAS, namespace="default", name="web")
    assert got["status"]["desiredReplicas"] == 4 and got["status"].get("lastScaleTime")


@pytest.mark.parametrize(("spec", "message"), [
    ({"maxReplicas": 0}, "spec.maxReplicas: Invalid value: 0: must be greater than 0"),
    ({"minReplicas": 0, "maxReplicas": 2},
     "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1"),
    ({"minReplicas": 5, "maxReplicas": 2},
     "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"),
])
async def test_bad_autoscalers_are_refused(cluster: Cluster, tmp_path: Path,
                                           spec: dict[str, Any], message: str) -> None:
    with pytest.raises(AssertionError) as refused:
        await apply(cluster, tmp_path, hpa("bad", "web", **spec))
    assert message in str(refused.value)


async def test_autoscaling_v1_is_a_view_of_the_v2_object(cluster: Cluster) -> None:
    v1 = api.Resource(group_version="autoscaling/v1", plural="horizontalpodautoscalers",
                      kind="HorizontalPodAutoscaler")
    created = await cluster.client.create(v1, {
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "old"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": "web"},
                 "maxReplicas": 3, "targetCPUUtilizationPercentage": 60}}, namespace="default")
    assert created["apiVersion"] == "autoscaling/v1"
    assert created["spec"] == {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                  "name": "web"},
                               "minReplicas": 1, "maxReplicas": 3,
                               "targetCPUUtilizationPercentage": 60}
    stored = await cluster.client.get(HPAS, namespace="default", name="old")
    assert stored["apiVersion"] == "autoscaling/v2"
    assert stored["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]
    listed = await cluster.client.list(v1, namespace="default")
    assert [i["spec"]["targetCPUUtilizationPercentage"] for i in listed["items"]] == [60]
    group = await cluster.client.request("GET", "/apis/autoscaling")
    assert group["preferredVersion"]["version"] == "v2"


async def test_cpu_above_the_target_scales_the_deployment_up(cluster: Cluster,
                                                             tmp_path: Path) -> None:
    async with stats_kubelet(cluster, tmp_path) as kubelet:
        kubelet.cpu_nanos = 100_000_000  # 100m of a 100m request: 100 % against 50 %
        await apply(cluster, tmp_path, deployment(2))

        async def running() -> bool:
            return sum(1 for p in await cluster.pods()
                       if (p.get("status") or {}).get("phase") == "Running") == 2
        await eventually(running, what="2 running pods")
        await apply(cluster, tmp_path, hpa("web", "web", minReplicas=1, maxReplicas=10, metrics=[
            {"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": 50}}}]))

        async def scaled() -> bool:
            d = await cluster.client.get(api.DEPLOYMENTS, namespace="default", name="web")
            return bool(d["spec"]["replicas"] == 4)
        await eventually(scaled, what="ceil(2 x 100 / 50) = 4 replicas")
        active = await condition(cluster, "web", "ScalingActive")
        assert (active["status"], active["reason"]) == ("True", "ValidMetricFound")
        got = await cluster.client.get(HPAS, namespace="default", name="web")
        assert got["status"]["desiredReplicas"] == 4
        assert got["status"]["currentMetrics"] == [{"type": "Resource", "resource": {
            "name": "cpu", "current": {"averageValue": "100m", "averageUtilization": 100}}}]
        row = (await cluster.kubectl("get", "hpa", "web", "--no-headers")).split()
        assert row[:3] == ["web", "Deployment/web", "cpu:"] and row[3] == "100%/50%"


async def test_the_official_client_reads_both_versions(cluster: Cluster, tmp_path: Path) -> None:
    await apply(cluster, tmp_path, hpa("lost", "nope", maxReplicas=3, behavior={
        "scaleDown": {"stabilizationWindowSeconds": 60}}))
    await condition(cluster, "lost", "AbleToScale")
    made: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kube.kubeconfig))
    v2: Any = await asyncio.to_thread(
        client.AutoscalingV2Api(made).read_namespaced_horizontal_pod_autoscaler, "lost",
        "default")
    assert v2.spec.behavior.scale_down.stabilization_window_seconds == 60
    assert v2.spec.behavior.scale_up.policies[0].type == "Pods"
    assert v2.status.conditions[0].reason == "FailedGetScale"
    v1: Any = await asyncio.to_thread(
        client.AutoscalingV1Api(made).read_namespaced_horizontal_pod_autoscaler, "lost",
        "default")
    assert v1.spec.max_replicas == 3 and v1.status.current_replicas == 0
