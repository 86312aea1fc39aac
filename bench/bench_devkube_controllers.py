"""Benchmark devkube's controllers end to end over HTTPS: how long a Deployment of N replicas
takes to get all its pods, and how long a rolling update of N ready pods takes to finish.

An in-process stand-in kubelet binds every pod and reports it Running/Ready at once, so the
figures are the controllers' + API server's own latency. Bounded: a few runs, each capped.

    python bench/bench_devkube_controllers.py [--replicas 100 300] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from k8sbridge.devkube import main
from k8sbridge.devkube.controllers import base, errors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject, key_of, split_key
from k8sbridge.devkube.controllers.workqueue import WorkQueue

CAP_SECONDS = 120.0


async def kubelet(client: api.ApiClient, stop: asyncio.Event) -> None:
    """Bind pending pods to one node and mark them Ready; finish graceful deletions."""
    pods = Informer(client=client, resource=api.PODS)
    queue = WorkQueue(name="bench-kubelet")
    pods.add_handler(lambda old, new: queue.add(key_of(new)) if new is not None else None)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    async def sync(key: ObjectKey) -> float | None:
        pod = pods.get(key)
        if pod is None:
            return None
        ns, name = split_key(key)
        if podfacts.is_terminating(pod):
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await client.delete(api.PODS, namespace=ns, name=name,
                                    uid=pod["metadata"]["uid"], grace_seconds=0)
        elif not podfacts.node_name(pod):
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await client.request("POST", api.PODS.path(
                    namespace=ns, name=name, subresource="binding"), body={
                    "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": "bench-node"}})
        elif podfacts.phase(pod) == "Pending":
            def ready(obj: RawObject) -> bool:
                obj["status"].update(phase="Running", conditions=[
                    {"type": "Ready", "status": "True", "lastTransitionTime": stamp}])
                return True

            with contextlib.suppress(errors.NotFound):
                await base.update(client=client, resource=api.PODS, informer=None,
                                  current=pod, mutate=ready, subresource="status")
        return None

    task = asyncio.create_task(pods.run(stop=stop))
    try:
        await base.work(queue=queue, sync=sync, stop=stop)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def deployment(name: str, replicas: int, image: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


async def wait_until(check: Any, what: str) -> None:
    deadline = time.monotonic() + CAP_SECONDS
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench capped: {what} not reached in {CAP_SECONDS}s")
        await asyncio.sleep(0.01)


async def one_run(replicas: int, run: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        config = main.DevkubeConfig(port=0, kubeconfig=Path(tmp) / "kubeconfig")
        async with main.running(config) as kube, api.ApiClient(
                url=kube.url, token=kube.token, ca_file=kube.ca_file) as client:
            stop = asyncio.Event()
            await client.create(api.NODES, {"apiVersion": "v1", "kind": "Node",
                                            "metadata": {"name": "bench-node"}})
            k = asyncio.create_task(kubelet(client, stop))
            name = f"bench{run}"

            async def rolled_out(image: str) -> bool:
                d = await client.get(api.DEPLOYMENTS, namespace="default", name=name)
                st = d.get("status") or {}
                return (st.get("observedGeneration") == d["metadata"]["generation"]
                        and st.get("updatedReplicas") == replicas
                        and st.get("replicas") == replicas
                        and st.get("availableReplicas") == replicas
                        and d["spec"]["template"]["spec"]["containers"][0]["image"] == image)

            t0 = time.perf_counter()
            await client.create(api.DEPLOYMENTS, deployment(name, replicas, "img:1"),
                                namespace="default")
            await wait_until(lambda: rolled_out("img:1"), "initial rollout")
            create_s = time.perf_counter() - t0

            t1 = time.perf_counter()
            await client.patch(api.DEPLOYMENTS, namespace="default", name=name, body={
                "spec": {"template": {"spec": {"containers": [{"name": "c",
                                                                "image": "img:2"}]}}}})
            await wait_until(lambda: rolled_out("img:2"), "rolling update")
            update_s = time.perf_counter() - t1
            stop.set()
            k.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await k
            return create_s, update_s


async def amain(args: argparse.Namespace) -> None:
    print(f"machine: {os.cpu_count()} cores; devkube over HTTPS, controllers in-process, "
          f"stand-in kubelet readying pods instantly; {args.runs} runs each")
    for replicas in args.replicas:
        creates, updates = [], []
        for run in range(args.runs):
            c, u = await one_run(replicas, run)
            creates.append(c)
            updates.append(u)
        c_med, u_med = statistics.median(creates), statistics.median(updates)
        print(f"replicas={replicas:5d}  create->all available: median {c_med:.2f}s "
              f"({replicas / c_med:.0f} pods/s)   rolling update (25%/25%): "
              f"median {u_med:.2f}s")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    cli()
