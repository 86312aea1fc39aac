"""A template the server refuses to turn into pods: the ReplicaSet reports ReplicaFailure and a
FailedCreate event, keeps running, and recovers once the template is fixed."""

from __future__ import annotations

from k8sbridge.devkube.controllers import base
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.raw import RawObject

from .conftest import Cluster, eventually


async def test_failed_pod_creation_is_reported_and_recovers(cluster: Cluster) -> None:
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "broken", "namespace": "default"},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "broken"}},
                   # the server checks pod annotations (strings only) but not a template's
                   "template": {"metadata": {"labels": {"app": "broken"},
                                             "annotations": {"replicas": 2}},
                                "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}}}
    await cluster.client.create(api.REPLICASETS, rs, namespace="default")

    async def failure_reported() -> bool:
        got = await cluster.client.get(api.REPLICASETS, namespace="default", name="broken")
        conds = {c["type"]: c for c in (got.get("status") or {}).get("conditions") or []}
        c = conds.get("ReplicaFailure") or {}
        return (c.get("status"), c.get("reason")) == ("True", "FailedCreate") and \
            "annotations" in c.get("message", "")

    await eventually(failure_reported, what="ReplicaFailure condition")

    async def event_recorded() -> bool:
        out = await cluster.kubectl("get", "events", "--field-selector",
                                    "involvedObject.name=broken")
        return "FailedCreate" in out

    await eventually(event_recorded, what="FailedCreate event")
    assert not await cluster.pods(selector="app=broken")

    current = await cluster.client.get(api.REPLICASETS, namespace="default", name="broken")

    def fix(obj: RawObject) -> bool:
        obj["spec"]["template"]["metadata"]["annotations"] = {"replicas": "2"}
        return True

    await base.update(client=cluster.client, resource=api.REPLICASETS, informer=None,
                      current=current, mutate=fix)

    async def recovered() -> bool:
        got = await cluster.client.get(api.REPLICASETS, namespace="default", name="broken")
        st = got.get("status") or {}
        return st.get("replicas") == 2 and not any(
            c.get("type") == "ReplicaFailure" for c in st.get("conditions") or [])

    await eventually(recovered, what="pods created, condition cleared")


async def test_deployment_surfaces_its_replica_failure(cluster: Cluster) -> None:
    d = {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "bad", "namespace": "default"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "bad"}},
                  "template": {"metadata": {"labels": {"app": "bad"},
                                            "annotations": {"n": 1}},
                               "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}
    await cluster.client.create(api.DEPLOYMENTS, d, namespace="default")

    async def reported() -> bool:
        got = await cluster.client.get(api.DEPLOYMENTS, namespace="default", name="bad")
        conds = {c["type"]: c for c in (got.get("status") or {}).get("conditions") or []}
        return (conds.get("ReplicaFailure") or {}).get("reason") == "FailedCreate"

    await eventually(reported, what="ReplicaFailure on the deployment")
