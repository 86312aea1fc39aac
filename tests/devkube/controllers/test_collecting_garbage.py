"""Garbage collection through ownerReferences against a real devkube: background cascade,
dangling references, and the orphan / foregroundDeletion finalizers a server may set."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from k8sbridge.devkube import main
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import errors
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.podgc import PodGarbageCollector
from k8sbridge.devkube.controllers.raw import RawObject

from .conftest import Cluster, devkube_cluster, eventually


async def _exists(cluster: Cluster, res: api.Resource, ns: str | None, name: str) -> bool:
    try:
        await cluster.client.get(res, namespace=ns, name=name)
    except errors.NotFound:
        return False
    return True


def _ref(owner: RawObject, *, kind: str, api_version: str,
         block: bool = True) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "blockOwnerDeletion": block}


def _pod(name: str, refs: list[dict[str, Any]], labels: dict[str, str] | None = None,
         ) -> RawObject:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "ownerReferences": refs,
                         "labels": labels or {"app": "gc"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def _rs(name: str, *, replicas: int, finalizers: list[str] | None = None) -> RawObject:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


async def test_deleting_a_node_collects_its_lease(tmp_path: Path) -> None:
    async with devkube_cluster(tmp_path, kubelet=False) as (cluster, _):
        node = await cluster.client.create(api.NODES, {"apiVersion": "v1", "kind": "Node",
                                                       "metadata": {"name": "n1"}})
        await cluster.client.create(api.LEASES, {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1", "namespace": "kube-node-lease",
                         "ownerReferences": [_ref(node, kind="Node", api_version="v1")]},
            "spec": {"holderIdentity": "n1"}}, namespace="kube-node-lease")
        await cluster.kubectl("delete", "node", "n1")

        async def lease_gone() -> bool:
            return not await _exists(cluster, api.LEASES, "kube-node-lease", "n1")

        await eventually(lease_gone, what="lease of deleted node collected")


async def test_dangling_reference_is_dropped_and_last_owner_decides(tmp_path: Path) -> None:
    async with devkube_cluster(tmp_path, kubelet=False) as (cluster, _):
        a = await cluster.client.create(api.REPLICASETS, _rs("a", replicas=0),
                                        namespace="default")
        b = await cluster.client.create(api.REPLICASETS, _rs("b", replicas=0),
                                        namespace="default")
        await cluster.client.create(api.PODS, _pod("shared", [
            _ref(a, kind="ReplicaSet", api_version="apps/v1"),
            _ref(b, kind="ReplicaSet", api_version="apps/v1")]), namespace="default")
        # one of two owners goes: its reference is removed, the pod stays
        await cluster.client.delete(api.REPLICASETS, namespace="default", name="a")

        async def one_ref_left() -> bool:
            pod = await cluster.client.get(api.PODS, namespace="default", name="shared")
            return [r["name"] for r in pod["metadata"].get("ownerReferences") or []] == ["b"]

        await eventually(one_ref_left, what="dangling reference removed")
        await cluster.client.delete(api.REPLICASETS, namespace="default", name="b")

        async def pod_gone() -> bool:
            return not await _exists(cluster, api.PODS, "default", "shared")

        await eventually(pod_gone, what="pod collected after its last owner")


async def test_orphan_finalizer_strips_references_then_releases_owner(tmp_path: Path) -> None:
    async with devkube_cluster(tmp_path, kubelet=False) as (cluster, _):
        await cluster.client.create(api.REPLICASETS, _rs("keep", replicas=2,
                                                         finalizers=["orphan"]),
                                    namespace="default")

        async def two_pods() -> bool:
            return len(await cluster.pods(selector="app=keep")) == 2

        await eventually(two_pods, what="2 pods")
        await cluster.client.delete(api.REPLICASETS, namespace="default", name="keep")

        async def owner_gone_pods_kept() -> bool:
            pods = await cluster.pods(selector="app=keep")
            return not await _exists(cluster, api.REPLICASETS, "default", "keep") and \
                len(pods) == 2 and all(not p["metadata"].get("ownerReferences") for p in pods)

        await eventually(owner_gone_pods_kept, what="pods orphaned, owner released")


async def test_foreground_finalizer_deletes_dependents_first(tmp_path: Path) -> None:
    async with devkube_cluster(tmp_path, kubelet=False) as (cluster, _):
        await cluster.client.create(api.REPLICASETS, _rs("fg", replicas=2,
                                                         finalizers=["foregroundDeletion"]),
                                    namespace="default")

        async def two_pods() -> bool:
            return len(await cluster.pods(selector="app=fg")) == 2

        await eventually(two_pods, what="2 pods")
        await cluster.client.delete(api.REPLICASETS, namespace="default", name="fg")

        async def all_gone() -> bool:
            return not await cluster.pods(selector="app=fg") and \
                not await _exists(cluster, api.REPLICASETS, "default", "fg")

        await eventually(all_gone, what="dependents, then owner, deleted")


async def test_pods_of_a_deleted_node_are_force_deleted_after_quarantine(
        tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, controllers=False, kubeconfig=tmp_path / "kubeconfig")
    async with main.running(config) as kube, api.ApiClient(
            url=kube.url, token=kube.token, ca_file=kube.ca_file) as client:
        pods = Informer(client=client, resource=api.PODS)
        nodes = Informer(client=client, resource=api.NODES)
        podgc = PodGarbageCollector(client=client, pods=pods, nodes=nodes,
                                    quarantine_seconds=0.5)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(t.run(stop=stop)) for t in (pods, nodes, podgc)]
        try:
            for name in ("gone", "stays"):
                await client.create(api.NODES, {"apiVersion": "v1", "kind": "Node",
                                                 "metadata": {"name": name}})
                await client.create(api.PODS, _pod(f"on-{name}", []), namespace="default")
                await client.request("POST", api.PODS.path(
                    namespace="default", name=f"on-{name}", subresource="binding"), body={
                    "apiVersion": "v1", "kind": "Binding", "metadata": {"name": f"on-{name}"},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": name}})
            # graceful deletion leaves it Terminating: nobody on the node will finish it
            await client.delete(api.PODS, namespace="default", name="on-gone")
            await client.delete(api.NODES, namespace=None, name="gone")
            loop = asyncio.get_running_loop()
            start = loop.time()

            async def collected() -> bool:
                try:
                    await client.get(api.PODS, namespace="default", name="on-gone")
                except errors.NotFound:
                    return True
                return False

            await eventually(collected, timeout=10, what="orphaned pod force-deleted")
            assert loop.time() - start >= 0.45  # not before the quarantine
            assert (await client.get(api.PODS, namespace="default", name="on-stays"))
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_other_kinds_follow_their_owners(tmp_path: Path) -> None:
    async with devkube_cluster(tmp_path, kubelet=False) as (cluster, _):
        owner = await cluster.client.create(api.REPLICASETS, _rs("owner", replicas=0),
                                            namespace="default")
        ref = _ref(owner, kind="ReplicaSet", api_version="apps/v1")
        for res, body in (
                (api.CONFIGMAPS, {"data": {"k": "v"}}),
                (api.SECRETS, {"stringData": {"k": "v"}, "type": "Opaque"}),
                (api.SERVICES, {"spec": {"ports": [{"port": 80}]}})):
            await cluster.client.create(res, {
                "apiVersion": "v1", "kind": res.kind,
                "metadata": {"name": "dep", "namespace": "default", "ownerReferences": [ref]},
                **body}, namespace="default")
        await cluster.kubectl("delete", "rs", "owner")

        async def all_gone() -> bool:
            return not any([await _exists(cluster, res, "default", "dep")
                            for res in (api.CONFIGMAPS, api.SECRETS, api.SERVICES)])

        await eventually(all_gone, what="configmap, secret and service collected")
