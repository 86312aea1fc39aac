"""Fixtures for the controller tests: a real devkube (HTTPS + token) with the controllers
running, a fake kubelet that binds, starts and finishes pods through the API, and kubectl."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from k8sbridge.devkube import main
from k8sbridge.devkube.controllers import base, errors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject, key_of, split_key
from k8sbridge.devkube.controllers.workqueue import WorkQueue

KUBECTL = shutil.which("kubectl")


class Cluster:
    def __init__(self, *, kube: main.Devkube, client: api.ApiClient, cache_dir: Path) -> None:
        self.kube = kube
        self.client = client
        self.cache_dir = cache_dir

    async def kubectl(self, *args: str, timeout: float = 60.0) -> str:
        assert KUBECTL is not None, "kubectl must be on PATH"
        argv = [KUBECTL, "--kubeconfig", str(self.kube.kubeconfig), "--cache-dir",
                str(self.cache_dir), *args]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"})
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): "
                                 f"{err.decode()}{out.decode()}")
        return out.decode()

    async def pods(self, namespace: str = "default", *,
                   selector: str | None = None) -> list[RawObject]:
        params = {"labelSelector": selector} if selector else None
        reply = await self.client.list(api.PODS, namespace=namespace, params=params)
        return list(reply.get("items") or [])

    async def replicasets(self, namespace: str = "default") -> list[RawObject]:
        return list((await self.client.list(api.REPLICASETS, namespace=namespace)).get(
            "items") or [])


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0,
                     what: str = "condition") -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


class FakeKubelet:
    """Plays scheduler + kubelet for one node over the API: binds pending pods to the node,
    reports them Running/Ready (after ``ready_delay``), and finishes graceful deletions."""

    def __init__(self, *, client: api.ApiClient, node: str, ready_delay: float = 0.0) -> None:
        self.client = client
        self.node = node
        self.ready_delay = ready_delay
        self.paused = False
        self.pods = Informer(client=client, resource=api.PODS)
        self.queue = WorkQueue(name=f"kubelet-{node}")
        self.pods.add_handler(self._on_pod)

    def _on_pod(self, old: RawObject | None, new: RawObject | None) -> None:
        if new is not None:
            self.queue.add(key_of(new))

    async def sync(self, key: ObjectKey) -> float | None:
        if self.paused:
            return 0.1
        pod = self.pods.get(key)
        if pod is None:
            return None
        ns, name = split_key(key)
        m = pod["metadata"]
        if podfacts.is_terminating(pod):
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await self.client.delete(api.PODS, namespace=ns, name=name, uid=m["uid"],
                                         grace_seconds=0)
            return None
        if not podfacts.node_name(pod):
            binding = {"apiVersion": "v1", "kind": "Binding",
                       "metadata": {"name": name, "namespace": ns},
                       "target": {"apiVersion": "v1", "kind": "Node", "name": self.node}}
            with contextlib.suppress(errors.Conflict, errors.NotFound):
                await self.client.request("POST", api.PODS.path(
                    namespace=ns, name=name, subresource="binding"), body=binding)
            return None
        if podfacts.node_name(pod) != self.node or podfacts.phase(pod) != "Pending":
            return None
        created = podfacts.parse_time(m.get("creationTimestamp"))
        age = time.time() - created.timestamp() if created else self.ready_delay
        if age < self.ready_delay:
            return self.ready_delay - age
        await self.set_running(pod)
        return None

    async def set_running(self, pod: RawObject) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

        def mutate(obj: RawObject) -> bool:
            status: dict[str, Any] = obj.setdefault("status", {})
            if status.get("phase") == "Running":
                return False
            status.update(
                phase="Running", startTime=stamp, podIP="10.0.0.1", hostIP="127.0.0.1",
                conditions=[{"type": t, "status": "True", "lastTransitionTime": stamp}
                            for t in ("PodScheduled", "Initialized", "ContainersReady",
                                      "Ready")],
                containerStatuses=[{"name": c["name"], "ready": True, "restartCount": 0,
                                    "image": c.get("image", ""), "started": True,
                                    "state": {"running": {"startedAt": stamp}}}
                                   for c in obj["spec"]["containers"]])
            return True

        with contextlib.suppress(errors.NotFound):
            await base.update(client=self.client, resource=api.PODS, informer=None,
                              current=pod, mutate=mutate, subresource="status")

    async def run(self, *, stop: asyncio.Event) -> None:
        await self.client.request("POST", api.NODES.path(), body={
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.node, "labels": {"kubernetes.io/hostname": self.node}},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady"}]}})
        inf = asyncio.create_task(self.pods.run(stop=stop))
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop, informers=[self.pods])
        finally:
            inf.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await inf
            self.queue.close()


@contextlib.asynccontextmanager
async def devkube_cluster(tmp_path: Path, *, node_grace_seconds: float = 50.0,
                          kubelet: bool = True,
                          ready_delay: float = 0.0) -> AsyncIterator[tuple[Cluster,
                                                                           FakeKubelet | None]]:
    config = main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig",
                                node_grace_seconds=node_grace_seconds, controllers=True)
    async with main.running(config) as kube, api.ApiClient(
            url=kube.url, token=kube.token, ca_file=kube.ca_file) as client:
        cluster = Cluster(kube=kube, client=client, cache_dir=tmp_path / "kubectl-cache")
        stop = asyncio.Event()
        fake = FakeKubelet(client=client, node="node-1", ready_delay=ready_delay) \
            if kubelet else None
        task = asyncio.create_task(fake.run(stop=stop)) if fake is not None else None
        try:
            yield cluster, fake
        finally:
            stop.set()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with devkube_cluster(tmp_path) as (c, _):
        yield c
