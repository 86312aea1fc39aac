"""Every kind devkube serves reads into the official ``kubernetes`` client's typed models (issue
17: "every served kind round-trips through the official client's models without validation
errors"): for each kind its List and every item — samples created here and what the
controllers made of them (pods, ReplicaSets, ControllerRevisions, EndpointSlices, events) —
go through ``ApiClient.deserialize`` (the models check required fields and strict types), and
no field is one the model does not know (the models drop those silently)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes import client

from k8sbridge.devkube import kinds, main

from .conftest import Api

POD_SPEC: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox:1.36",
                                             "command": ["sleep", "60"]}]}
POD_TEMPLATE: dict[str, Any] = {"metadata": {"labels": {"app": "m"}}, "spec": POD_SPEC}
SELECTOR = {"matchLabels": {"app": "m"}}
NOW = "2026-01-01T00:00:00Z"

SAMPLES: dict[str, tuple[str, dict[str, Any]]] = {  # plural -> (collection path, body)
    "namespaces": ("/api/v1/namespaces", {"metadata": {"name": "models"}}),
    "pods": ("/api/v1/namespaces/default/pods", {
        "metadata": {"name": "p", "labels": {"app": "m"}}, "spec": POD_SPEC}),
    "nodes": ("/api/v1/nodes", {"metadata": {"name": "n1"}, "spec": {"taints": [
        {"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
    "events": ("/api/v1/namespaces/default/events", {
        "metadata": {"name": "p.1"}, "reason": "Started", "message": "m", "type": "Normal",
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "source": {"component": "kubelet"}, "firstTimestamp": NOW, "lastTimestamp": NOW,
        "count": 2}),
    "configmaps": ("/api/v1/namespaces/default/configmaps",
                   {"metadata": {"name": "cm"}, "data": {"a": "b"}}),
    "secrets": ("/api/v1/namespaces/default/secrets",
                {"metadata": {"name": "s"}, "data": {"a": "Yg=="}, "type": "Opaque"}),
    "services": ("/api/v1/namespaces/default/services", {
        "metadata": {"name": "svc"}, "spec": {"selector": {"app": "m"},
                                              "ports": [{"port": 80, "targetPort": 8080}]}}),
    "serviceaccounts": ("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "sa"}}),
    "endpoints": ("/api/v1/namespaces/default/endpoints", {
        "metadata": {"name": "manual"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
    "deployments": ("/apis/apps/v1/namespaces/default/deployments", {
        "metadata": {"name": "d"}, "spec": {"replicas": 1, "selector": SELECTOR,
                                            "template": POD_TEMPLATE}}),
    "statefulsets": ("/apis/apps/v1/namespaces/default/statefulsets", {
        "metadata": {"name": "sts"}, "spec": {"replicas": 1, "serviceName": "svc",
                                              "selector": SELECTOR, "template": POD_TEMPLATE}}),
    "daemonsets": ("/apis/apps/v1/namespaces/default/daemonsets", {
        "metadata": {"name": "ds"}, "spec": {"selector": SELECTOR, "template": POD_TEMPLATE}}),
    "replicationcontrollers": ("/api/v1/namespaces/default/replicationcontrollers", {
        "metadata": {"name": "rc"}, "spec": {"replicas": 1, "selector": {"app": "m"},
                                             "template": POD_TEMPLATE}}),
    "jobs": ("/apis/batch/v1/namespaces/default/jobs", {
        "metadata": {"name": "j"}, "spec": {"template": {"spec": {
            **POD_SPEC, "restartPolicy": "Never"}}}}),
    "cronjobs": ("/apis/batch/v1/namespaces/default/cronjobs", {
        "metadata": {"name": "cj"}, "spec": {"schedule": "@hourly", "jobTemplate": {"spec": {
            "template": {"spec": {**POD_SPEC, "restartPolicy": "OnFailure"}}}}}}),
    "poddisruptionbudgets": ("/apis/policy/v1/namespaces/default/poddisruptionbudgets", {
        "metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": SELECTOR}}),
    "horizontalpodautoscalers": (
        "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers", {
            "metadata": {"name": "hpa"}, "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                "minReplicas": 1, "maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization",
                                              "averageUtilization": 80}}}]}}),
    "leases": ("/apis/coordination.k8s.io/v1/namespaces/default/leases", {
        "metadata": {"name": "l"}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15,
                                            "renewTime": "2026-01-01T00:00:00.000000Z"}}),
    "roles": ("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", {
        "metadata": {"name": "r"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    "rolebindings": ("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", {
        "metadata": {"name": "rb"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]}),
}


# Groups devkube serves as if their CustomResourceDefinition were installed (scheduler-plugins'
# PodGroup): no kube-apiserver serves them built in, so the official client has no models.
CUSTOM_GROUPS = frozenset({"scheduling.x-k8s.io"})


def model_name(kind: kinds.Kind) -> str:
    """The official client's model class of a kind (``V1Pod``, ``V2HorizontalPodAutoscaler``,
    ``CoreV1Event`` / ``EventsV1Event`` for the two Events)."""
    version = kind.version[0].upper() + kind.version[1:]
    if kind.kind == "Event":
        return f"{'Events' if kind.group else 'Core'}{version}{kind.kind}"
    return f"{version}{kind.kind}"


def unknown_fields(value: Any, type_name: str, path: str = "") -> list[str]:
    """Paths in ``value`` that the model ``type_name`` (an openapi_types string) has no field
    for; the models would drop them without a word."""
    if value is None:
        return []
    nested = re.fullmatch(r"(?:Optional|List)\[(.*)\]", type_name)
    if nested:
        items = value if type_name.startswith("List[") else [value]
        return [p for i, v in enumerate(items)
                for p in unknown_fields(v, nested[1], f"{path}[{i}]" if len(items) > 1 or
                                        type_name.startswith("List[") else path)]
    mapping = re.fullmatch(r"Dict\[[^,]*, (.*)\]", type_name)
    if mapping:
        return [p for k, v in value.items()
                for p in unknown_fields(v, mapping[1], f"{path}.{k}")]
    model = getattr(client, type_name, None)
    if model is None or not hasattr(model, "attribute_map"):
        return []  # a scalar, datetime or free object
    wire_to_attr = {wire: attr for attr, wire in model.attribute_map.items()}
    out: list[str] = []
    for key, v in value.items():
        attr = wire_to_attr.get(key)
        if attr is None:
            out.append(f"{path}.{key}")
            continue
        out += unknown_fields(v, model.openapi_types[attr], f"{path}.{key}")
    return out


@pytest.fixture
async def with_controllers(tmp_path: Path) -> AsyncIterator[main.Devkube]:
    config = main.DevkubeConfig(port=0, controllers=True, kubeconfig=tmp_path / "kubeconfig")
    async with main.running(config) as dk:
        yield dk


async def test_every_kind_reads_into_the_official_models(with_controllers: main.Devkube) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(devkube=with_controllers, session=session)
        for plural, (path, body) in SAMPLES.items():
            status, reply = await api.request("POST", path, body=body)
            assert status == 201, (plural, reply)
        await api.request("POST", "/api/v1/namespaces/default/pods/p/binding", body={
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}})

        # what the controllers make of the samples: ReplicaSets, their pods, revisions, slices
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            made = {plural: (await api.request("GET", f"{prefix}/{plural}"))[1]["items"]
                    for prefix, plural in (("/apis/apps/v1", "replicasets"),
                                           ("/apis/apps/v1", "controllerrevisions"),
                                           ("/apis/discovery.k8s.io/v1", "endpointslices"))}
            if all(made.values()):
                break
            await asyncio.sleep(0.2)
        assert all(made.values()), {k: len(v) for k, v in made.items()}

        decoder = client.ApiClient()
        checked: dict[str, int] = {}
        for kind in kinds.KINDS:
            if kind.group in CUSTOM_GROUPS:
                continue  # a CRD on real clusters: the official client has no model for it
            prefix = f"/apis/{kind.group_version}" if kind.group else "/api/v1"
            status, text = await _raw(api, f"{prefix}/{kind.plural}")
            assert status == 200, (kind.key, text)
            name = model_name(kind)
            listed = decoder.deserialize(text, f"{name}List", "application/json")
            assert listed is not None, name
            document = json.loads(text)
            problems = unknown_fields(document, f"{name}List")
            assert not problems, (name, problems)
            for item in document["items"]:
                one = await _raw(api, f"{prefix}/"
                                 + (f"namespaces/{item['metadata']['namespace']}/"
                                    if kind.namespaced else "")
                                 + f"{kind.plural}/{item['metadata']['name']}")
                assert one[0] == 200, one
                decoded = decoder.deserialize(one[1], name, "application/json")
                assert decoded.metadata.name == item["metadata"]["name"]
                assert not unknown_fields(json.loads(one[1]), name), (name, one[1])
            checked[name] = len(document["items"])
        decoder.close()  # type: ignore[no-untyped-call]
    sampled = {model_name(k) for k in kinds.KINDS
               if k.plural in SAMPLES and k.group not in CUSTOM_GROUPS}
    empty = sorted(n for n, count in checked.items() if n in sampled and count == 0)
    assert not empty, f"no object of {empty} was read"


async def _raw(api: Api, path: str) -> tuple[int, str]:
    async with api.session.get(api.devkube.url + path, headers=api.headers,
                               ssl=api.ssl) as resp:
        return resp.status, await resp.text()
