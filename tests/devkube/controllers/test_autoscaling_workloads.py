"""HorizontalPodAutoscalers on devkube through real kubectl: ``kubectl autoscale`` and ``get
hpa`` columns, the conditions kube reports for a missing target (FailedGetScale) and for pods
without metrics (FailedGetResourceMetric), min/max replicas enforced through the target's
``/scale``, and the apiserver's refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.hpa import HPAS
from k8sbridge.devkube.controllers.raw import RawObject

from .conftest import Cluster, eventually


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
