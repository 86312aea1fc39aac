"""Benchmark: what pods' own network costs at startup, against host networking, in one run.

Why: every pod on the cluster network pays its executor's CNI attach (a network namespace,
``loopback`` and ``bridge``/``host-local`` ADD, ``bench_cni_attach.py`` times them alone) before
its tasks start, and a DEL after; issue 13 bounds the cost at startup to 1.5x. This starts the
embedded default as a user does (``k8sbridge run``, three agents, the cluster network made by
the command), then in that one run creates N pods (default 100) at once, alternately plain
(on the cluster network) and with ``hostNetwork: true`` (the agent's network), and measures
creation -> Running with every container ready, observed via watch (``bench_bridge``). Each
round's pods are deleted and gone before the next round starts; the ratio compares the
medians of the rounds' p99s.

Run (root, with the CNI plugins in /usr/lib/cni):
``python bench/bench_pod_network.py [--pods 100] [--rounds 3] [--timeout 150]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_bridge  # noqa: E402
import bench_embedded  # noqa: E402


async def _round(targets: Any, *, namespace: str, pods: int, host: bool,
                 timeout: float) -> list[float]:
    """Creation -> Running+ready of ``pods`` pods created at once (seconds, per pod)."""
    kube = targets.bridge.kube
    seen: dict[str, float] = {}
    watcher = await bench_bridge._watching(kube, namespace, pods, seen, timeout)
    created: dict[str, float] = {}

    async def create(i: int) -> None:
        name = f"p{i}"
        spec = bench_bridge._spec("10m", "8Mi")
        if host:
            spec = {**spec, "hostNetwork": True}
        created[name] = time.monotonic()
        await kube.create(f"/api/v1/namespaces/{namespace}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec})

    await asyncio.gather(*(create(i) for i in range(pods)))
    await asyncio.wait_for(watcher, timeout + 5)
    latencies = [seen[n] - created[n] for n in seen]
    if len(latencies) < pods:
        print(f"  only {len(latencies)}/{pods} pods became ready within {timeout:g}s")
    await kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods",
                       query={"gracePeriodSeconds": "0"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # gone from the API, and their tasks with them
        if not (await kube.get(f"/api/v1/namespaces/{namespace}/pods"))["items"]:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(3.0)  # the last kills and CNI DELs settle before the next round
    return latencies


def _line(latencies: list[float]) -> str:
    if not latencies:
        return "no pod became ready"
    return (f"p50 {statistics.median(latencies):.3f}s  p90 {bench_bridge._pct(latencies, 0.9):.3f}s"
            f"  p99 {bench_bridge._pct(latencies, 0.99):.3f}s  max {max(latencies):.3f}s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="of each kind, alternating")
    parser.add_argument("--timeout", type=float, default=150, help="per round")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; {bench_embedded._load()}", flush=True)
    bench_bridge.SLEEP[0] = str(int(args.timeout * 2 * args.rounds + 300))
    p99: dict[str, list[float]] = {"cluster network": [], "hostNetwork": []}
    with tempfile.TemporaryDirectory(prefix="bench-pod-network-") as tmp:
        async with bench_embedded.running(data_dir=Path(tmp) / "run", extra=[],
                                          env={}) as (run, targets):
            out = run.out_path.read_text(errors="replace")
            if "cluster network:" not in out:
                raise SystemExit("k8sbridge run made no cluster network (root and "
                                 "/usr/lib/cni needed): nothing to compare")
            for i in range(args.rounds * 2):
                host = i % 2 == 1
                kind = "hostNetwork" if host else "cluster network"
                latencies = await _round(targets, namespace=f"round-{i}", pods=args.pods,
                                         host=host, timeout=args.timeout)
                print(f"round {i + 1}, {args.pods} pods, {kind}: {_line(latencies)}",
                      flush=True)
                if latencies:
                    p99[kind].append(bench_bridge._pct(latencies, 0.99))
            run.cpu()
    net, host = (statistics.median(p99[k]) if p99[k] else float("nan")
                 for k in ("cluster network", "hostNetwork"))
    print(f"\nstartup p99, median of {args.rounds} rounds: cluster network {net:.3f}s, "
          f"hostNetwork {host:.3f}s: {net / host:.2f}x (issue 13's bound: 1.5x)")


if __name__ == "__main__":
    asyncio.run(main())
