"""The official ``kubernetes`` Python client against devkube: list/watch resume, 410, conflicts,
and pod binding (including the client's known problem decoding the binding reply)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config, watch

from k8sbridge.devkube import main

T = TypeVar("T")


@pytest.fixture
async def small_history(tmp_path: Path) -> AsyncIterator[main.Devkube]:
    cfg = main.DevkubeConfig(port=0, controllers=False, history_size=20,
                             kubeconfig=tmp_path / "kubeconfig")
    async with main.running(cfg) as dk:
        yield dk


def _core(dk: main.Devkube) -> client.CoreV1Api:
    api_client = config.new_client_from_config(config_file=str(dk.kubeconfig))
    return client.CoreV1Api(api_client)


def _pod(name: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": "c"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="busybox")]),
    )


async def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    # The client is synchronous; devkube runs on this event loop.
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_list_then_watch_and_resume(small_history: main.Devkube) -> None:
    core = _core(small_history)
    try:
        await _in_thread(core.create_namespaced_pod, "default", _pod("a"))
        listed = await _in_thread(core.list_namespaced_pod, "default")
        assert [p.metadata.name for p in listed.items] == ["a"]
        rv = listed.metadata.resource_version
        await _in_thread(core.create_namespaced_pod, "default", _pod("b"))
        await _in_thread(core.create_namespaced_pod, "default", _pod("c"))

        def first_event(since: str) -> tuple[str, str, str]:
            w = watch.Watch()
            stream = w.stream(core.list_namespaced_pod, "default", resource_version=since,
                              timeout_seconds=5)
            try:
                for event in stream:
                    return (event["type"], event["object"].metadata.name,
                            event["object"].metadata.resource_version)
            finally:
                stream.close()  # releases the HTTP connection now, not at garbage collection
            raise AssertionError("no event")

        kind, name, next_rv = await _in_thread(first_event, rv)
        assert (kind, name) == ("ADDED", "b")
        kind, name, _ = await _in_thread(first_event, next_rv)  # resume after "b"
        assert (kind, name) == ("ADDED", "c")
    finally:
        core.api_client.close()


async def test_too_old_resource_version_then_relist(small_history: main.Devkube) -> None:
    core = _core(small_history)
    try:
        first = await _in_thread(core.create_namespaced_pod, "default", _pod("old"))
        for i in range(25):
            await _in_thread(core.create_namespaced_pod, "default", _pod(f"n{i}"))

        def watch_from(since: str) -> int:
            w = watch.Watch()
            try:
                for _ in w.stream(core.list_namespaced_pod, "default", resource_version=since,
                                  timeout_seconds=5):
                    pass
            except client.exceptions.ApiException as e:
                return int(e.status)
            return 0

        assert await _in_thread(watch_from, first.metadata.resource_version) == 410
        relisted = await _in_thread(core.list_namespaced_pod, "default")
        assert len(relisted.items) == 26
    finally:
        core.api_client.close()


async def test_conflicts(small_history: main.Devkube) -> None:
    core = _core(small_history)
    try:
        created = await _in_thread(core.create_namespaced_pod, "default", _pod("x"))
        created.metadata.labels = {"v": "1"}
        await _in_thread(core.replace_namespaced_pod, "x", "default", created)
        created.metadata.labels = {"v": "2"}  # still carries the old resourceVersion
        with pytest.raises(client.exceptions.ApiException) as err:
            await _in_thread(core.replace_namespaced_pod, "x", "default", created)
        assert err.value.status == 409
        with pytest.raises(client.exceptions.ApiException) as err:
            await _in_thread(core.create_namespaced_pod, "default", _pod("x"))
        assert err.value.status == 409 and "AlreadyExists" in str(err.value.body)
    finally:
        core.api_client.close()


async def test_binding_and_its_reply(small_history: main.Devkube) -> None:
    core = _core(small_history)
    try:
        await _in_thread(core.create_namespaced_pod, "default", _pod("b1"))
        await _in_thread(core.create_namespaced_pod, "default", _pod("b2"))

        def binding(name: str) -> client.V1Binding:
            return client.V1Binding(
                metadata=client.V1ObjectMeta(name=name),
                target=client.V1ObjectReference(api_version="v1", kind="Node", name="n1"))

        # The reply is a Status, not a Binding: the generated client fails to decode it
        # (kubernetes-client/python #547, #825), after the server did the work.
        with pytest.raises(ValueError, match="target"):
            await _in_thread(core.create_namespaced_pod_binding, "b1", "default", binding("b1"))
        response = await _in_thread(core.create_namespaced_pod_binding, "b2", "default",
                                    binding("b2"), _preload_content=False)
        assert response.status == 201
        assert b'"status":"Success"' in response.data  # reading it returns the connection
        response.release_conn()
        for name in ("b1", "b2"):
            pod = await _in_thread(core.read_namespaced_pod, name, "default")
            assert pod.spec.node_name == "n1"
            scheduled = [c for c in pod.status.conditions if c.type == "PodScheduled"]
            assert scheduled and scheduled[0].status == "True"
        with pytest.raises(client.exceptions.ApiException) as err:
            await _in_thread(core.create_namespaced_pod_binding, "b2", "default", binding("b2"),
                             _preload_content=False)
        assert err.value.status == 409 and "already assigned" in str(err.value.body)
    finally:
        core.api_client.close()
