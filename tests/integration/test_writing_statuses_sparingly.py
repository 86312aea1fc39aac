"""The status writer spends few API writes per pod, against a real devkube.

A just-bound pod is not written (the binding already shows it scheduled) unless its launch is
slow: then it shows ContainerCreating. A task update is acknowledged only after its status is
in the API server. Events are best-effort: beyond the queue's limit they are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge.devkube import main as devkube_main
from k8sbridge.kube import client as kube_client
from k8sbridge.kubelet import pods as kubelet_pods
from k8sbridge.mesos import types as mesos_types
from k8sbridge.model import ids
from tests.integration.conftest import eventually

NODE = "127.0.0.1"


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[kube_client.KubeClient]:
    async with devkube_main.running(
        devkube_main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig")
    ) as dk:
        client = kube_client.KubeClient.from_kubeconfig(path=dk.kubeconfig)
        try:
            yield client
        finally:
            await client.close()


async def _bound_pod(kube: kube_client.KubeClient, name: str) -> dict[str, Any]:
    pod = await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    })
    await kube.bind_pod(namespace="default", name=name, uid=pod["metadata"]["uid"], node=NODE)
    return pod


async def _container_waiting(kube: kube_client.KubeClient, name: str) -> str | None:
    got = await kube.get_pod("default", name)
    for cs in (got.get("status") or {}).get("containerStatuses") or []:
        return str(((cs.get("state") or {}).get("waiting") or {}).get("reason") or "") or None
    return None


def _starting(uid: str, *, state: str = "TASK_STARTING", made: float = 100.0,
              uuid: str | None = None) -> mesos_types.TaskStatus:
    """Container ``c``'s update (``state``, made by the agent at ``made``)."""
    return mesos_types.TaskStatus(
        task_id=ids.TaskId(f"{uid}.0.c"), state=state, timestamp=made, uuid=uuid,
        source="SOURCE_EXECUTOR",
    )


@contextlib.asynccontextmanager
async def _running(writer: kubelet_pods.PodStatusWriter) -> AsyncIterator[None]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(writer.run(stop=stop, ready=ready))
    await ready.wait()
    try:
        yield
    finally:
        stop.set()
        await task


async def test_a_slow_launch_still_shows_container_creating(
    kube: kube_client.KubeClient,
) -> None:
    writer = kubelet_pods.PodStatusWriter(kube=kube, creating_after=0.3)
    async with _running(writer):
        pod = await _bound_pod(kube, "slow")
        writer.scheduled(pod=pod, node_name=NODE)
        assert await _container_waiting(kube, "slow") is None  # not written at once
        reason = await eventually(
            lambda: _container_waiting(kube, "slow"), what="ContainerCreating written"
        )
        assert reason == "ContainerCreating"
        assert writer.writes == {"creating": 1}


async def test_a_container_creating_write_does_not_wait_behind_best_effort_calls(
    kube: kube_client.KubeClient,
) -> None:
    """It holds its pod (a task update's write waits for it), so it is not best-effort."""
    blocker = asyncio.create_task(kube.request(  # holds the best-effort calls' connections
        "GET", "/api/v1/pods", priority=kube_client.BACKGROUND,
        query={"watch": "true", "timeoutSeconds": "5"}))
    held = [asyncio.create_task(kube.request(
        "GET", "/api/v1/pods", priority=kube_client.BACKGROUND,
        query={"watch": "true", "timeoutSeconds": "5"})) for _ in range(3)]
    writer = kubelet_pods.PodStatusWriter(kube=kube, creating_after=0.1)
    try:
        async with _running(writer):
            pod = await _bound_pod(kube, "behind")
            writer.scheduled(pod=pod, node_name=NODE)
            reason = await eventually(
                lambda: _container_waiting(kube, "behind"), what="ContainerCreating written",
                timeout=3.0)
            assert reason == "ContainerCreating" and not blocker.done()
    finally:
        for call in [blocker, *held]:
            call.cancel()
        await asyncio.gather(blocker, *held, return_exceptions=True)


async def test_a_prompt_task_update_is_the_first_write_and_is_acked_after_it(
    kube: kube_client.KubeClient,
) -> None:
    writer = kubelet_pods.PodStatusWriter(kube=kube, creating_after=0.3)
    async with _running(writer):
        pod = await _bound_pod(kube, "prompt")
        uid = pod["metadata"]["uid"]
        writer.scheduled(pod=pod, node_name=NODE)
        seen_at_ack: list[str | None] = []

        async def ack() -> None:
            seen_at_ack.append(await _container_waiting(kube, "prompt"))

        writer.task_status(pod=pod, status=_starting(uid), container="c", attempt=0,
                           agent=None, ack=ack)
        await eventually(lambda: asyncio.sleep(0, seen_at_ack), what="the acknowledgement")
        # the status was in the API server when the update was acknowledged
        assert seen_at_ack == ["ContainerCreating"]
        await asyncio.sleep(0.8)  # past the ContainerCreating window: nothing more to write
        assert writer.writes == {"acknowledged": 1}


async def test_acknowledged_writes_go_oldest_update_first(kube: kube_client.KubeClient) -> None:
    """A RUNNING made before the STARTING updates queued meanwhile is written before them."""
    writer = kubelet_pods.PodStatusWriter(kube=kube, workers=1)
    acked: list[str] = []
    for name, state, made in [("b", "TASK_STARTING", 200.0), ("c", "TASK_STARTING", 300.0),
                              ("a", "TASK_RUNNING", 100.0)]:  # in the order they arrive
        pod = await _bound_pod(kube, name)

        async def ack(name: str = name) -> None:
            acked.append(name)

        writer.task_status(pod=pod, status=_starting(pod["metadata"]["uid"], state=state,
                                                     made=made),
                           container="c", attempt=0, agent=None, ack=ack)
    async with _running(writer):
        await eventually(lambda: asyncio.sleep(0, len(acked) == 3), what="the acknowledgements")
    assert acked == ["a", "b", "c"]
    assert writer.writes == {"acknowledged": 3}


async def test_a_resent_update_still_queued_is_acknowledged_once(
    kube: kube_client.KubeClient,
) -> None:
    """The agent re-sent STARTING before its write went out: one ACKNOWLEDGE covers both
    copies; a later update (another uuid) is acknowledged on its own."""
    writer = kubelet_pods.PodStatusWriter(kube=kube)
    pod = await _bound_pod(kube, "resent")
    uid = pod["metadata"]["uid"]
    acked: list[str] = []
    for state, uuid in [("TASK_STARTING", "AAAA"), ("TASK_STARTING", "AAAA"),
                        ("TASK_RUNNING", "BBBB")]:
        async def ack(uuid: str = uuid) -> None:
            acked.append(uuid)

        writer.task_status(pod=pod, status=_starting(uid, state=state, uuid=uuid),
                           container="c", attempt=0, agent=None, ack=ack)
    async with _running(writer):
        await eventually(lambda: asyncio.sleep(0, len(acked) >= 2), what="the acknowledgements")
        await asyncio.sleep(0.2)
    assert acked == ["AAAA", "BBBB"]


async def test_events_beyond_the_queue_limit_are_dropped_and_the_rest_posted(
    kube: kube_client.KubeClient,
) -> None:
    writer = kubelet_pods.PodStatusWriter(kube=kube, event_queue_limit=2)
    names = ["e1", "e2", "e3"]
    for name in names:  # three pods, each refused: one status write and a Failed event each
        pod = await _bound_pod(kube, name)
        writer.launch_failed(pod=pod, reason="CreateContainerConfigError",
                             message=f"configmap for {name} not found")
    for uid in list(writer._state):  # the writes happen before any event poster runs
        await writer._write_one(uid, priority=kubelet_pods._STATUS)
    assert writer.events_dropped == 1
    async with _running(writer):
        async def failed_events() -> list[str]:
            items = (await kube.get("/api/v1/namespaces/default/events"))["items"]
            found = sorted(e["involvedObject"]["name"] for e in items if e["reason"] == "Failed")
            return found if len(found) >= 2 else []

        assert await eventually(failed_events, what="the queued events") == ["e1", "e2"]
        for name in names:  # every status was written all the same
            assert await _container_waiting(kube, name) == "CreateContainerConfigError"


async def test_a_pod_asked_for_during_its_own_write_is_written_again_after_it(
    kube: kube_client.KubeClient,
) -> None:
    writer = kubelet_pods.PodStatusWriter(kube=kube)
    pod = await _bound_pod(kube, "twice")
    uid = pod["metadata"]["uid"]
    writer.launch_failed(pod=pod, reason="CreateContainerConfigError", message="first")
    first = asyncio.create_task(writer._write_one(uid, priority=kubelet_pods._STATUS))
    await asyncio.sleep(0)  # the first write is in flight
    writer.launch_failed(pod=pod, reason="CreateContainerConfigError", message="second")
    await writer._write_one(uid, priority=kubelet_pods._STATUS)  # not concurrently: deferred
    assert writer.writes["status"] == 0
    await first
    assert writer.writes["status"] == 1
    assert uid in writer._queued  # queued again for the state that came meanwhile


async def test_the_written_status_is_let_go_once_the_pod_shows_it(
    kube: kube_client.KubeClient,
) -> None:
    writer = kubelet_pods.PodStatusWriter(kube=kube)
    pod = await _bound_pod(kube, "kept")
    uid = pod["metadata"]["uid"]
    writer.task_status(pod=pod, status=_starting(uid), container="c", attempt=0, agent=None,
                       ack=None)
    await writer._write_one(uid, priority=kubelet_pods._STATUS)
    state = writer._state[uid]
    assert state.written is not None
    writer.observe(pod)  # an older version (no status yet): the written copy is still needed
    assert state.written is not None
    shown = await kube.get_pod("default", "kept")
    writer.observe(shown)
    assert state.written is None and state.pod is shown
    scheduled_at = {c["type"]: c["lastTransitionTime"] for c in shown["status"]["conditions"]}
    running = mesos_types.TaskStatus(
        task_id=ids.TaskId(f"{uid}.0.c"), state="TASK_RUNNING", timestamp=101.0,
        source="SOURCE_EXECUTOR",
    )
    writer.task_status(pod=shown, status=running, container="c", attempt=0, agent=None,
                       ack=None)
    await writer._write_one(uid, priority=kubelet_pods._STATUS)
    got = await kube.get_pod("default", "kept")
    assert got["status"]["phase"] == "Running"
    conditions = {c["type"]: c for c in got["status"]["conditions"]}
    # transition times still come from what was written before
    assert conditions["PodScheduled"]["lastTransitionTime"] == scheduled_at["PodScheduled"]
    assert writer.writes == {"status": 2}


async def test_events_deferred_by_a_steady_stream_of_status_writes_are_late_not_starved(
    kube: kube_client.KubeClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deferral counts from when an event was queued: a backlog under steady status
    writes drains once its events are EVENT_DEFER_SECONDS old, instead of each event waiting
    its own full deferral (20 events, 2 posters: 10 s that way)."""
    monkeypatch.setattr(kubelet_pods, "QUIET_SECONDS", 60.0)  # always "busy" once written
    monkeypatch.setattr(kubelet_pods, "EVENT_DEFER_SECONDS", 1.0)
    writer = kubelet_pods.PodStatusWriter(kube=kube)
    names = [f"b{i}" for i in range(20)]
    for name in names:
        pod = await _bound_pod(kube, name)
        writer.launch_failed(pod=pod, reason="CreateContainerConfigError",
                             message=f"configmap for {name} not found")
    async with _running(writer):
        started = asyncio.get_running_loop().time()

        async def all_posted() -> bool:
            items = (await kube.get("/api/v1/namespaces/default/events"))["items"]
            return len({e["involvedObject"]["name"] for e in items
                        if e["reason"] == "Failed"}) == len(names)

        await eventually(all_posted, timeout=30, what="every deferred event")
        assert asyncio.get_running_loop().time() - started < 5.0


async def test_a_pods_events_list_in_the_order_they_happened(
    kube: kube_client.KubeClient,
) -> None:
    """Events are named as client-go names them (<pod>.<hex nanoseconds of when they
    happened>), so the API lists a pod's events in order however the two posters race, and
    `kubectl describe` (which keeps list order within a second) shows Scheduled, Created,
    Started (no Pulled: Mesos reports no pull)."""
    writer = kubelet_pods.PodStatusWriter(kube=kube)
    async with _running(writer):
        for n in range(3):
            name = f"ordered{n}"
            pod = await _bound_pod(kube, name)
            uid = pod["metadata"]["uid"]
            writer.scheduled(pod=pod, node_name=NODE)

            async def ack() -> None:
                return None

            writer.task_status(pod=pod, status=_starting(uid), container="c", attempt=0,
                               agent=None, ack=ack)
            writer.task_status(
                pod=pod,
                status=mesos_types.TaskStatus(
                    task_id=ids.TaskId(f"{uid}.0.c"), state="TASK_RUNNING", timestamp=101.0,
                    source="SOURCE_EXECUTOR",
                ),
                container="c", attempt=0, agent=None, ack=ack,
            )

        async def listed() -> dict[str, list[str]]:
            items = (await kube.get("/api/v1/namespaces/default/events"))["items"]
            by_pod: dict[str, list[str]] = {}
            for e in items:
                by_pod.setdefault(e["involvedObject"]["name"], []).append(e["reason"])
            done = all(len(by_pod.get(f"ordered{n}", [])) >= 3 for n in range(3))
            return by_pod if done else {}

        by_pod = await eventually(listed, what="every pod's three events")
        for n in range(3):
            assert by_pod[f"ordered{n}"] == ["Scheduled", "Created", "Started"]
