"""The kube/ seam against a real API server (devkube): raw-JSON writes, errors, watch, state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge.devkube import main as devkube_main
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors
from k8sbridge.kube import operator as kube_operator
from k8sbridge.kube import state as kube_state


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


def _pod(name: str, *, scheduler: str = "k8sbridge") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedulerName": scheduler,
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"]}],
        },
    }


async def test_framework_id_is_persisted_in_a_configmap_and_read_back(
    kube: kube_client.KubeClient,
) -> None:
    store = await kube_state.ConfigMapFrameworkIdStore.open(
        kube=kube, namespace="k8sbridge", name="k8sbridge-state"
    )
    assert store.load() is None
    store.save("abc-0001")  # type: ignore[arg-type]
    await store.flush()
    cm = await kube.get_config_map("k8sbridge", "k8sbridge-state")
    assert cm["data"] == {kube_state.FRAMEWORK_ID_KEY: "abc-0001"}
    again = await kube_state.ConfigMapFrameworkIdStore.open(
        kube=kube, namespace="k8sbridge", name="k8sbridge-state"
    )
    assert again.load() == "abc-0001"
    # An update keeps other keys of the ConfigMap.
    await kube.upsert_config_map(namespace="k8sbridge", name="k8sbridge-state",
                                 data={"other": "x"})
    again.save("abc-0002")  # type: ignore[arg-type]
    await again.flush()
    cm = await kube.get_config_map("k8sbridge", "k8sbridge-state")
    assert cm["data"] == {kube_state.FRAMEWORK_ID_KEY: "abc-0002", "other": "x"}


async def test_binding_status_and_final_delete_use_the_wire_shapes(
    kube: kube_client.KubeClient,
) -> None:
    await kube.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                        "metadata": {"name": "agent-1"}})
    created = await kube.create("/api/v1/namespaces/default/pods", _pod("p1"))
    uid = created["metadata"]["uid"]
    await kube.bind_pod(namespace="default", name="p1", uid=uid, node="agent-1")
    with pytest.raises(kube_errors.Conflict):
        await kube.bind_pod(namespace="default", name="p1", uid=uid, node="agent-1")
    pod = await kube.get_pod("default", "p1")
    assert pod["spec"]["nodeName"] == "agent-1"
    await kube.patch_pod_status(namespace="default", name="p1", uid=uid,
                                status={"phase": "Running", "podIP": "127.0.0.1"})
    pod = await kube.get_pod("default", "p1")
    assert pod["status"]["phase"] == "Running"
    with pytest.raises(kube_errors.Conflict):
        await kube.patch_pod_status(namespace="default", name="p1", uid="not-the-uid",
                                    status={"phase": "Failed"})
    with pytest.raises(kube_errors.NotFound):
        await kube.get_pod("default", "nope")
    await kube.delete_pod_now(namespace="default", name="p1", uid="another-uid")  # 409: kept
    assert (await kube.get_pod("default", "p1"))["metadata"]["uid"] == uid
    await kube.delete_pod_now(namespace="default", name="p1", uid=uid)
    with pytest.raises(kube_errors.NotFound):
        await kube.get_pod("default", "p1")
    await kube.delete_pod_now(namespace="default", name="p1", uid=uid)  # gone: fine


async def test_invalid_objects_raise_invalid_with_causes(kube: kube_client.KubeClient) -> None:
    bad = _pod("Not_A_Valid_Name")
    with pytest.raises(kube_errors.Invalid) as err:
        await kube.create("/api/v1/namespaces/default/pods", bad)
    assert err.value.status == 422


async def test_unreachable_server_is_a_transport_error(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: x, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: x, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: x, user: x}}]\n"
    )
    client = kube_client.KubeClient.from_kubeconfig(path=kubeconfig, connections=1,
                                                    timeout=2.0)
    try:
        with pytest.raises(kube_errors.TransportError):
            await client.get("/api/v1/pods")
    finally:
        await client.close()
    with pytest.raises(kube_errors.ConfigError):
        kube_client.KubeClient.from_kubeconfig(path=tmp_path / "missing", connections=1)


async def test_embedded_kopf_feeds_pod_events_without_touching_pods(
    kube: kube_client.KubeClient,
) -> None:
    seen: list[tuple[str | None, str]] = []
    got = asyncio.Event()

    def on_pod(etype: str | None, raw: dict[str, Any]) -> None:
        seen.append((etype, raw["metadata"]["name"]))
        if etype == "DELETED":
            got.set()

    await kube.create("/api/v1/namespaces/default/pods", _pod("before"))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kube_operator.run(connection=kube.connection(), on_pod=on_pod, stop=stop, ready=ready)
    )
    try:
        async with asyncio.timeout(20):
            await ready.wait()
        await kube.create("/api/v1/namespaces/default/pods", _pod("after"))
        await asyncio.sleep(0.5)
        await kube.delete("/api/v1/namespaces/default/pods/after", grace_period_seconds=0)
        async with asyncio.timeout(20):
            await got.wait()
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task
    names = {name for _, name in seen}
    assert {"before", "after"} <= names
    assert ("DELETED", "after") in seen
    pod = await kube.get_pod("default", "before")
    annotations = pod["metadata"].get("annotations") or {}
    assert not any("kopf" in key for key in annotations), annotations
    assert not pod["metadata"].get("finalizers")


async def test_best_effort_calls_hold_at_most_a_quarter_of_the_connections(
        tmp_path: Path) -> None:
    """Four connections: one BACKGROUND call at a time, while a NORMAL call finds a free one."""
    config = devkube_main.DevkubeConfig(
        port=0, kubeconfig=tmp_path / "kubeconfig", controllers=False
    )
    async with devkube_main.running(config) as dk:
        kube = kube_client.KubeClient.from_kubeconfig(path=dk.kubeconfig, connections=4)
        ended: dict[str, float] = {}
        loop = asyncio.get_running_loop()

        async def watch(name: str, priority: int) -> None:
            # a watch the server ends after a second holds its connection that long
            await kube.request("GET", "/api/v1/pods", priority=priority,
                               query={"watch": "true", "timeoutSeconds": "1"})
            ended[name] = loop.time()

        try:
            start = loop.time()
            best_effort = [asyncio.create_task(watch(f"background {i}", kube_client.BACKGROUND))
                           for i in range(2)]
            await asyncio.sleep(0.2)
            await kube.request("GET", "/api/v1/namespaces/default/pods")  # not held up
            assert loop.time() - start < 0.9 and not ended
            async with asyncio.timeout(10):
                await asyncio.gather(*best_effort)
            # the second waited for the first's connection although three were free
            assert ended["background 1"] - ended["background 0"] >= 0.8
        finally:
            await kube.close()


async def test_the_most_urgent_waiting_call_gets_the_next_free_connection(tmp_path: Path) -> None:
    config = devkube_main.DevkubeConfig(
        port=0, kubeconfig=tmp_path / "kubeconfig", controllers=False
    )
    async with devkube_main.running(config) as dk:
        kube = kube_client.KubeClient.from_kubeconfig(path=dk.kubeconfig, connections=1)
        try:
            # the one connection is held by a watch that the server ends after a second
            blocker = asyncio.create_task(kube.request(
                "GET", "/api/v1/pods", query={"watch": "true", "timeoutSeconds": "1"}
            ))
            await asyncio.sleep(0.2)
            order: list[str] = []

            async def call(name: str, priority: int) -> None:
                await kube.request("GET", "/api/v1/namespaces/default/pods", priority=priority)
                order.append(name)

            calls = [asyncio.create_task(call("background", kube_client.BACKGROUND)),
                     asyncio.create_task(call("normal", kube_client.NORMAL))]
            await asyncio.sleep(0.05)
            calls.append(asyncio.create_task(call("urgent", kube_client.URGENT)))
            await asyncio.sleep(0.05)
            assert order == [] and not blocker.done()  # all three wait for the connection
            async with asyncio.timeout(10):
                await asyncio.gather(blocker, *calls)
            assert order == ["urgent", "normal", "background"]
            # a cancelled waiter gives up its turn: the next call still gets the thread
            holder = asyncio.create_task(kube.request(
                "GET", "/api/v1/pods", query={"watch": "true", "timeoutSeconds": "1"}
            ))
            await asyncio.sleep(0.2)
            gone = asyncio.create_task(call("gone", kube_client.URGENT))
            await asyncio.sleep(0.05)
            gone.cancel()
            async with asyncio.timeout(10):
                await asyncio.gather(holder, call("after", kube_client.NORMAL))
            assert order[-1] == "after" and "gone" not in order
        finally:
            await kube.close()
