"""Deployment → ReplicaSet → Pods against a real devkube, driven with kubectl where users would."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml

from k8sbridge.devkube.controllers import base
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import RawObject

from .conftest import Cluster, devkube_cluster, eventually


def deployment(name: str = "web", *, replicas: int = 3, image: str = "nginx:1.27",
               strategy: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": "app", "image": image}]}},
    }
    if strategy is not None:
        spec["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


async def apply(cluster: Cluster, tmp_path: Path, manifest: dict[str, Any]) -> str:
    path = tmp_path / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return await cluster.kubectl("apply", "-f", str(path))


def live(pods: list[RawObject]) -> list[RawObject]:
    return [p for p in pods if podfacts.is_active(p)]


async def test_deployment_creates_replicaset_and_pods(cluster: Cluster, tmp_path: Path) -> None:
    out = await apply(cluster, tmp_path, deployment(replicas=3))
    assert "created" in out

    async def three_pods() -> bool:
        return len(live(await cluster.pods(selector="app=web"))) == 3

    await eventually(three_pods, what="3 pods")
    [rs] = await cluster.replicasets()
    d = await cluster.client.get(api.DEPLOYMENTS, namespace="default", name="web")
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": h}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == h
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    [ref] = rs["metadata"]["ownerReferences"]
    assert ref == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                   "uid": d["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    for pod in await cluster.pods(selector="app=web"):
        assert pod["metadata"]["name"].startswith(f"web-{h}-")
        assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
        [pref] = pod["metadata"]["ownerReferences"]
        assert (pref["kind"], pref["name"], pref["uid"], pref["controller"],
                pref["blockOwnerDeletion"]) == ("ReplicaSet", rs["metadata"]["name"],
                                                rs["metadata"]["uid"], True, True)

    # the fake kubelet makes them Ready: the counters and conditions follow
    async def available() -> bool:
        d = await cluster.client.get(api.DEPLOYMENTS, namespace="default", name="web")
        st = d.get("status") or {}
        return st.get("availableReplicas") == 3 and st.get("updatedReplicas") == 3

    await eventually(available, what="deployment available")
    d = await cluster.client.get(api.DEPLOYMENTS, namespace="default", name="web")
    st = d["status"]
    assert (st["replicas"], st["readyReplicas"], st["unavailableReplicas"],
            st["observedGeneration"]) == (3, 3, 0, d["metadata"]["generation"])
    conds = {c["type"]: c for c in st["conditions"]}
    assert (conds["Available"]["status"], conds["Available"]["reason"]) == (
        "True", "MinimumReplicasAvailable")
    assert (conds["Progressing"]["status"], conds["Progressing"]["reason"]) == (
        "True", "NewReplicaSetAvailable")
    rs = (await cluster.replicasets())[0]
    assert {k: rs["status"][k] for k in ("replicas", "fullyLabeledReplicas", "readyReplicas",
                                         "availableReplicas")} == {
        "replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}
    assert rs["status"]["observedGeneration"] == rs["metadata"]["generation"]
    out = await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    assert "successfully rolled out" in out
    table = await cluster.kubectl("get", "deployment", "web")
    assert "3/3" in table

    # what happened is told as Events, as kubectl describe shows them
    async def described() -> bool:
        d_out = await cluster.kubectl("describe", "deployment", "web")
        rs_out = await cluster.kubectl("describe", "rs", rs["metadata"]["name"])
        return f"Scaled up replica set {rs['metadata']['name']} from 0 to 3" in d_out and \
            "ScalingReplicaSet" in d_out and "SuccessfulCreate" in rs_out

    await eventually(described, what="events in kubectl describe")


async def test_scaling_up_and_down_with_kubectl(cluster: Cluster, tmp_path: Path) -> None:
    await apply(cluster, tmp_path, deployment(replicas=3))
    for replicas in (3, 10, 2):
        if replicas != 3:
            await cluster.kubectl("scale", "deployment/web", f"--replicas={replicas}")

        async def converged(n: int = replicas) -> bool:
            return len(live(await cluster.pods(selector="app=web"))) == n and \
                len(await cluster.pods(selector="app=web")) == n

        await eventually(converged, what=f"{replicas} pods")
        await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    [rs] = await cluster.replicasets()
    assert rs["spec"]["replicas"] == 2
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "2"
    # scale-down removed the newest pods first among equally ready ones: nothing stays terminating
    assert all(not podfacts.is_terminating(p) for p in await cluster.pods())


async def test_deleted_and_failed_pods_are_replaced(cluster: Cluster, tmp_path: Path) -> None:
    await apply(cluster, tmp_path, deployment(replicas=2))

    async def two_running() -> bool:
        pods = live(await cluster.pods(selector="app=web"))
        return len(pods) == 2 and all(podfacts.is_ready(p) for p in pods)

    await eventually(two_running, what="2 ready pods")
    victim = (await cluster.pods(selector="app=web"))[0]["metadata"]["name"]
    await cluster.kubectl("delete", "pod", victim, "--wait=false")

    async def replaced() -> bool:
        names = {p["metadata"]["name"] for p in live(await cluster.pods(selector="app=web"))}
        return len(names) == 2 and victim not in names

    await eventually(replaced, what="deleted pod replaced")

    await eventually(two_running, what="2 ready pods again")
    # a pod that fails (phase Failed) no longer counts: a replacement is created
    failing = live(await cluster.pods(selector="app=web"))[0]

    def fail(pod: RawObject) -> bool:
        pod["status"]["phase"] = "Failed"
        return True

    await base.update(client=cluster.client, resource=api.PODS, informer=None,
                      current=failing, mutate=fail, subresource="status")

    async def replaced_failed() -> bool:
        pods = await cluster.pods(selector="app=web")
        return len(live(pods)) == 2 and any(podfacts.phase(p) == "Failed" for p in pods)

    await eventually(replaced_failed, what="failed pod replaced")


async def _watch_rollout(cluster: Cluster, stop: asyncio.Event, samples: list[dict[str, int]],
                         ) -> None:
    """Record (live pods, ready pods, sum of RS spec.replicas) after every change."""
    pods = Informer(client=cluster.client, resource=api.PODS, namespace="default")
    sets = Informer(client=cluster.client, resource=api.REPLICASETS, namespace="default")

    def sample(_old: RawObject | None, _new: RawObject | None) -> None:
        if not (pods.synced.is_set() and sets.synced.is_set()):
            return  # still filling the caches from the initial lists
        active = [p for p in pods.items() if podfacts.is_active(p)]
        samples.append({"active": len(active),
                        "ready": sum(1 for p in active if podfacts.is_ready(p)),
                        "spec": sum(int(rs["spec"].get("replicas", 0)) for rs in sets.items())})

    pods.add_handler(sample)
    sets.add_handler(sample)
    tasks = [asyncio.create_task(pods.run(stop=stop)), asyncio.create_task(sets.run(stop=stop))]
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_rolling_update_respects_surge_and_unavailable(tmp_path: Path) -> None:
    async with devkube_cluster(tmp_path, ready_delay=0.3) as (cluster, _):
        strategy = {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}  # 4 → 1 each
        await apply(cluster, tmp_path, deployment(replicas=4, strategy=strategy))
        await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
        old_hash = (await cluster.replicasets())[0]["metadata"]["labels"]["pod-template-hash"]

        samples: list[dict[str, int]] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch_rollout(cluster, stop, samples))
        await asyncio.sleep(0.3)
        await cluster.kubectl("set", "image", "deployment/web", "app=nginx:1.28")
        out = await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
        assert "successfully rolled out" in out
        stop.set()
        await watcher

        sets = await cluster.replicasets()
        assert len(sets) == 2
        new = next(rs for rs in sets if rs["metadata"]["labels"]["pod-template-hash"] != old_hash)
        old = next(rs for rs in sets if rs is not new)
        assert (new["spec"]["replicas"], old["spec"]["replicas"]) == (4, 0)
        assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        assert new["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
        d = await cluster.client.get(api.DEPLOYMENTS, namespace="default", name="web")
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        pods = await cluster.pods(selector="app=web")
        assert len(pods) == 4
        assert all(p["spec"]["containers"][0]["image"] == "nginx:1.28" for p in pods)
        # the fenceposts held at every observed moment (after the pre-rollout steady state)
        assert samples, "the watcher saw nothing"
        assert max(s["spec"] for s in samples) <= 4 + 1, samples
        assert max(s["active"] for s in samples) <= 4 + 1, samples
        assert min(s["ready"] for s in samples) >= 4 - 1, samples
        assert max(s["spec"] for s in samples) == 5  # it did surge

        history = await cluster.kubectl("rollout", "history", "deployment/web")
        assert "1" in history and "2" in history


async def test_recreate_strategy_removes_old_pods_first(tmp_path: Path) -> None:
    async with devkube_cluster(tmp_path, ready_delay=0.2) as (cluster, _):
        await apply(cluster, tmp_path, deployment(replicas=3, strategy={"type": "Recreate"}))
        await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
        samples: list[dict[str, int]] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch_rollout(cluster, stop, samples))
        await asyncio.sleep(0.3)
        await cluster.kubectl("set", "image", "deployment/web", "app=nginx:1.28")
        await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
        stop.set()
        await watcher
        # never more than 3 pods at once, and at some point none at all
        assert max(s["active"] for s in samples) <= 3, samples
        assert min(s["active"] for s in samples) == 0, samples
        pods = await cluster.pods(selector="app=web")
        assert len(pods) == 3
        assert all(p["spec"]["containers"][0]["image"] == "nginx:1.28" for p in pods)


async def test_deleting_a_deployment_cascades(cluster: Cluster, tmp_path: Path) -> None:
    await apply(cluster, tmp_path, deployment(replicas=3))
    await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    await cluster.kubectl("delete", "deployment", "web", "--wait=false")

    async def all_gone() -> bool:
        return not await cluster.replicasets() and not await cluster.pods(selector="app=web")

    await eventually(all_gone, what="replicaset and pods garbage collected")


async def test_orphan_deletion_keeps_the_replicaset(cluster: Cluster, tmp_path: Path) -> None:
    await apply(cluster, tmp_path, deployment(replicas=2))
    await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    await cluster.kubectl("delete", "deployment", "web", "--cascade=orphan")
    await asyncio.sleep(0.5)  # give the garbage collector a chance to do the wrong thing
    [rs] = await cluster.replicasets()
    assert not rs["metadata"].get("ownerReferences")
    assert len(live(await cluster.pods(selector="app=web"))) == 2

    # re-creating the deployment adopts the orphaned set instead of making a new one
    await apply(cluster, tmp_path, deployment(replicas=2))

    async def adopted() -> bool:
        sets = await cluster.replicasets()
        refs = [r for rs in sets for r in rs["metadata"].get("ownerReferences") or []]
        return len(sets) == 1 and len(refs) == 1 and refs[0]["kind"] == "Deployment"

    await eventually(adopted, what="orphaned replicaset adopted")
    await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")


async def test_replicaset_adopts_and_releases_pods(cluster: Cluster) -> None:
    orphan = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "rs"}},
              "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}
    await cluster.client.create(api.PODS, orphan, namespace="default")
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "rs", "namespace": "default"},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "rs"}},
                   "template": {"metadata": {"labels": {"app": "rs"}},
                                "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}}}
    created = await cluster.client.create(api.REPLICASETS, rs, namespace="default")

    async def two_owned() -> bool:
        pods = live(await cluster.pods(selector="app=rs"))
        return len(pods) == 2 and all(
            (p["metadata"].get("ownerReferences") or [{}])[0].get("uid") ==
            created["metadata"]["uid"] for p in pods)

    await eventually(two_owned, what="stray pod adopted, one more created")
    names = {p["metadata"]["name"] for p in await cluster.pods(selector="app=rs")}
    assert "stray" in names
    # relabel the stray: it is released (ownerReference removed) and replaced
    await cluster.kubectl("label", "pod", "stray", "app=other", "--overwrite")

    async def released() -> bool:
        stray = await cluster.client.get(api.PODS, namespace="default", name="stray")
        return not stray["metadata"].get("ownerReferences") and \
            len(live(await cluster.pods(selector="app=rs"))) == 2

    await eventually(released, what="stray released and replaced")
    out = json.loads(await cluster.kubectl("get", "rs", "rs", "-o", "json"))
    assert out["status"]["replicas"] == 2


async def test_rollout_undo_pause_and_resume(cluster: Cluster, tmp_path: Path) -> None:
    await apply(cluster, tmp_path, deployment(replicas=2))
    await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    await cluster.kubectl("set", "image", "deployment/web", "app=nginx:1.28")
    await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    await cluster.kubectl("rollout", "undo", "deployment/web")
    await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    d = await cluster.client.get(api.DEPLOYMENTS, namespace="default", name="web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    sets = await cluster.replicasets()
    assert len(sets) == 2  # the first set was reused, not duplicated
    active = [rs for rs in sets if rs["spec"]["replicas"] > 0]
    assert len(active) == 1
    assert active[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

    # paused: template changes do not roll; resuming rolls them out
    await cluster.kubectl("rollout", "pause", "deployment/web")
    await cluster.kubectl("set", "image", "deployment/web", "app=nginx:1.29")
    await asyncio.sleep(0.5)
    assert len(await cluster.replicasets()) == 2
    await cluster.kubectl("rollout", "resume", "deployment/web")
    await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    pods = live(await cluster.pods(selector="app=web"))
    assert [p["spec"]["containers"][0]["image"] for p in pods] == ["nginx:1.29"] * 2


async def test_stuck_rollout_reports_progress_deadline(tmp_path: Path) -> None:
    async with devkube_cluster(tmp_path, kubelet=False) as (cluster, _):
        manifest = deployment(replicas=1)
        manifest["spec"]["progressDeadlineSeconds"] = 1
        await apply(cluster, tmp_path, manifest)  # no kubelet: the pod never becomes ready

        async def exceeded() -> bool:
            d = await cluster.client.get(api.DEPLOYMENTS, namespace="default", name="web")
            conds = {c["type"]: c for c in (d.get("status") or {}).get("conditions") or []}
            p = conds.get("Progressing") or {}
            return (p.get("status"), p.get("reason")) == ("False", "ProgressDeadlineExceeded")

        await eventually(exceeded, timeout=10, what="ProgressDeadlineExceeded")
        try:
            await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=10s")
        except AssertionError as e:
            assert "exceeded its progress deadline" in str(e)
        else:
            raise AssertionError("rollout status should fail on a stuck rollout")


async def test_min_ready_seconds_delays_availability(cluster: Cluster, tmp_path: Path) -> None:
    manifest = deployment(replicas=2)
    manifest["spec"]["minReadySeconds"] = 2
    await apply(cluster, tmp_path, manifest)

    async def ready_but_not_available() -> bool:
        d = await cluster.client.get(api.DEPLOYMENTS, namespace="default", name="web")
        st = d.get("status") or {}
        return st.get("readyReplicas") == 2 and not st.get("availableReplicas")

    await eventually(ready_but_not_available, what="2 ready, 0 available")
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def available() -> bool:
        d = await cluster.client.get(api.DEPLOYMENTS, namespace="default", name="web")
        return (d.get("status") or {}).get("availableReplicas") == 2

    await eventually(available, timeout=10, what="available after minReadySeconds")
    # readiness timestamps have one-second resolution: allow for the truncation
    assert loop.time() - start >= 0.8
    [rs] = await cluster.replicasets()
    assert rs["spec"]["minReadySeconds"] == 2


async def test_scaling_mid_rollout_is_proportional(tmp_path: Path) -> None:
    async with devkube_cluster(tmp_path) as (cluster, kubelet):
        assert kubelet is not None
        strategy = {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}
        await apply(cluster, tmp_path, deployment(replicas=10, strategy=strategy))
        await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
        kubelet.paused = True  # new pods never become ready: the rollout stalls at the surge
        await cluster.kubectl("set", "image", "deployment/web", "app=nginx:1.28")

        async def stalled() -> bool:
            sizes = sorted(rs["spec"]["replicas"] for rs in await cluster.replicasets())
            return sizes == [3, 10]

        await eventually(stalled, what="rollout stalled at 10 old + 3 new")
        await cluster.kubectl("scale", "deployment/web", "--replicas=20")

        async def scaled() -> bool:
            sizes = {rs["spec"]["template"]["spec"]["containers"][0]["image"]:
                     rs["spec"]["replicas"] for rs in await cluster.replicasets()}
            return sizes == {"nginx:1.27": 19, "nginx:1.28": 6}  # 10:3 of 20 + 5 surge

        await eventually(scaled, what="both sets scaled in proportion")
        kubelet.paused = False
        await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
        pods = live(await cluster.pods(selector="app=web"))
        assert len(pods) == 20
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.28"}


async def test_revision_history_limit_prunes_old_sets(cluster: Cluster, tmp_path: Path) -> None:
    manifest = deployment(replicas=1)
    manifest["spec"]["revisionHistoryLimit"] = 1
    await apply(cluster, tmp_path, manifest)
    await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    for tag in ("1.28", "1.29", "1.30"):
        await cluster.kubectl("set", "image", "deployment/web", f"app=nginx:{tag}")
        await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")

    async def pruned() -> bool:
        images = sorted(rs["spec"]["template"]["spec"]["containers"][0]["image"]
                        for rs in await cluster.replicasets())
        return images == ["nginx:1.29", "nginx:1.30"]  # current + one old revision

    await eventually(pruned, what="history pruned to one old set")
