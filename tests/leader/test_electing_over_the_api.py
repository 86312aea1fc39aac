"""Two electors against a real API server (devkube): the Lease's optimistic concurrency, one
leader at a time, release, a stolen or hand-edited Lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from k8sbridge.devkube import main as devkube_main
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors
from k8sbridge.leader import election, elector, lease

FAST = elector.ElectionTiming(lease_seconds=3, renew_deadline=2.0, retry_period=0.3)


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[kube_client.KubeClient]:
    config = devkube_main.DevkubeConfig(
        port=0, kubeconfig=tmp_path / "kubeconfig", controllers=False
    )
    async with devkube_main.running(config) as dk:
        client = kube_client.KubeClient.from_kubeconfig(path=dk.kubeconfig, connections=4)
        try:
            yield client
        finally:
            await client.close()


def _elector(kube: kube_client.KubeClient, identity: str) -> elector.LeaderElector:
    lock = lease.LeaseLock(kube=kube, namespace="k8sbridge", name="leader")
    return elector.LeaderElector(lock=lock, identity=identity, timing=FAST)


async def test_a_write_from_a_stale_read_is_a_conflict(kube: kube_client.KubeClient) -> None:
    lock = lease.LeaseLock(kube=kube, namespace="k8sbridge", name="leader")
    mine = election.LeaseRecord(holder="a", duration_seconds=15, acquire_time=None,
                                renew_time=None, transitions=0)
    await lock.create(mine)
    with pytest.raises(kube_errors.Conflict):  # AlreadyExists
        await lock.create(mine)
    first = await lock.read()
    second = await lock.read()
    await lock.write(first, election.LeaseRecord(holder="b", duration_seconds=15,
                                                 acquire_time=None, renew_time=None,
                                                 transitions=1))
    with pytest.raises(kube_errors.Conflict):
        await lock.write(second, mine)
    assert (await lock.read()).record == election.LeaseRecord(
        holder="b", duration_seconds=15, acquire_time=None, renew_time=None, transitions=1)


async def test_one_leads_the_other_waits_then_takes_a_released_lease(
    kube: kube_client.KubeClient,
) -> None:
    a, b = _elector(kube, "a"), _elector(kube, "b")
    stop = asyncio.Event()
    assert await a.acquire(stop)
    holding = asyncio.create_task(a.hold())
    waiting = asyncio.create_task(b.acquire(stop))
    await asyncio.sleep(FAST.lease_seconds + 1.0)  # a renews: b never gets it
    assert not waiting.done()
    raw = await kube.get(kube_client.lease_path("leader", "k8sbridge"))
    assert raw["spec"]["holderIdentity"] == "a" and raw["spec"]["leaseTransitions"] == 0
    holding.cancel()
    assert await a.release()
    async with asyncio.timeout(2 * FAST.retry_period * 2.2 + 1):
        assert await waiting  # released: taken at b's next try, not after the duration
    raw = await kube.get(kube_client.lease_path("leader", "k8sbridge"))
    spec = raw["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"], spec["leaseDurationSeconds"]) == \
        ("b", 1, FAST.lease_seconds)
    assert spec["acquireTime"] == spec["renewTime"]


async def test_a_leader_whose_lease_was_taken_steps_down(kube: kube_client.KubeClient) -> None:
    a = _elector(kube, "a")
    assert await a.acquire(asyncio.Event())
    holding = asyncio.create_task(a.hold())
    path = kube_client.lease_path("leader", "k8sbridge")
    raw = await kube.get(path)
    raw["spec"]["holderIdentity"] = "someone-by-hand"
    await kube.replace(path, raw)
    async with asyncio.timeout(FAST.renew_deadline):
        await holding  # returns: leadership lost, before the renew deadline
    assert not a.leading
    assert not await a.release()  # not ours any more: left alone
    assert (await kube.get(path))["spec"]["holderIdentity"] == "someone-by-hand"


async def test_a_lease_edited_without_a_duration_is_taken_after_ours(
    kube: kube_client.KubeClient,
) -> None:
    path = "/apis/coordination.k8s.io/v1/namespaces/k8sbridge/leases"
    await kube.ensure_namespace("k8sbridge")
    await kube.create(path, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                             "metadata": {"name": "leader", "namespace": "k8sbridge"},
                             "spec": {"holderIdentity": "ghost"}})
    b = _elector(kube, "b")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await b.acquire(asyncio.Event())
    assert loop.time() - started >= FAST.lease_seconds


async def test_a_replica_of_another_framework_is_refused_with_a_clear_error(
    kube: kube_client.KubeClient,
) -> None:
    lock = lease.LeaseLock(kube=kube, namespace="k8sbridge", name="leader")
    a = elector.LeaderElector(lock=lock, identity="a", timing=FAST, framework="k8sbridge")
    assert await a.acquire(asyncio.Event())
    raw = await kube.get(kube_client.lease_path("leader", "k8sbridge"))
    assert raw["metadata"]["annotations"] == {lease.FRAMEWORK_ANNOTATION: "k8sbridge"}
    b = elector.LeaderElector(lock=lock, identity="b", timing=FAST, framework="other")
    with pytest.raises(elector.ElectionError, match="share mesos.framework_name"):
        await b.acquire(asyncio.Event())
    assert await a.release()  # a release keeps the framework's name on the Lease
    with pytest.raises(elector.ElectionError):
        await b.acquire(asyncio.Event())
