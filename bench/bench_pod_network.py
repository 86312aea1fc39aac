"""Benchmark: what pods' own network costs at startup, against host networking, in one run.

Why: every pod on the cluster network pays its executor's CNI attach (a network namespace,
``loopback`` and ``bridge``/``host-local`` ADD, ``bench_cni_attach.py`` times them alone) before
its tasks start, and a DEL after; issue 13 bounds the cost at startup to 1.5x. This starts the
embedded default as a user does (``k8sbridge run``, three agents, the cluster network made by
the command), then in that one run creates N pods (default 100) at once, alternately plain
(on the cluster network) and with ``hostNetwork: true`` (the agent's network), and measures
creation -> Running with every container ready, observed via watch (``bench_bridge``). The
ratio compares the medians of the rounds' p99s.

Why each round waits for a settled box, both kinds alike: a pod's network outlives its API
object. After a cluster-network round's pods are gone from the API, their agents still run
each executor's CNI DEL, unmount its namespace, and the kernel tears the namespace down
(``cleanup_net``, under the rtnl lock every attach needs too); a round begun meanwhile pays for
the previous one (every cluster-network round after the first was slower, 5.36 -> 7.02 -> 7.10
s p99, while host-network rounds were not). So a round starts only when (1) the pods are gone
from the API, (2) no agent of this run has a container left in its CNI root directory
(``/run/k8sbridge/<hash>/isolators/network/cni``: every DEL and unmount done), and (3) the
CPUs were at least ``--idle`` idle over one second (``/proc/stat``: the kernel's namespace
teardown, in kworkers, done). The wait for (3) gives up after ``--settle`` seconds (a box
shared with other work may never be idle) and says so; each round's line prints the idle
share and load it started at.

Run (root, with the CNI plugins in /usr/lib/cni):
``python bench/bench_pod_network.py [--pods 100] [--rounds 3] [--timeout 150]``
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
    return latencies


def _cni_containers(data_dir: Path) -> int:
    """Containers left in the CNI root directories of this run's agents (each root's
    ``work_dir`` file names its agent's work directory, under ``data_dir``)."""
    left = 0
    base = Path("/run/k8sbridge")
    for owner in base.glob("*/work_dir") if base.is_dir() else []:
        with contextlib.suppress(OSError):
            if not owner.read_text().startswith(str(data_dir.resolve())):
                continue
            root = owner.parent / "isolators" / "network" / "cni"
            left += sum(1 for p in root.iterdir() if p.is_dir()) if root.is_dir() else 0
    return left


def _cpu_times() -> tuple[int, int]:
    """(idle + iowait, total) jiffies of all CPUs, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


async def _idle_share(seconds: float = 1.0) -> float:
    idle0, total0 = _cpu_times()
    await asyncio.sleep(seconds)
    idle1, total1 = _cpu_times()
    return (idle1 - idle0) / max(1, total1 - total0)


async def _settle(data_dir: Path, *, idle: float, timeout: float) -> str:
    """Wait until the previous round's teardown is over (see the module docstring); what was
    seen, for the round's line."""
    started = time.monotonic()
    deadline = started + timeout
    while (left := _cni_containers(data_dir)) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    cni_wait = time.monotonic() - started
    share = await _idle_share()
    while share < idle and time.monotonic() < deadline:
        share = await _idle_share()
    note = "" if share >= idle and not left else (
        f"; NOT settled within {timeout:g}s: {left} CNI containers left" if left else
        f"; CPUs not {idle:.0%} idle within {timeout:g}s (other work on the box?)")
    return (f"waited {time.monotonic() - started:.1f}s (CNI roots empty after {cni_wait:.1f}s), "
            f"CPUs {share:.0%} idle, {bench_embedded._load()}{note}")


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
    parser.add_argument("--idle", type=float, default=0.8,
                        help="the CPUs' idle share (over 1 s) a round waits for")
    parser.add_argument("--settle", type=float, default=30,
                        help="the longest wait for a settled box before a round")
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
                seen = await _settle(Path(tmp) / "run", idle=args.idle, timeout=args.settle)
                print(f"round {i + 1} starts: {seen}", flush=True)
                latencies = await _round(targets, namespace=f"round-{i}", pods=args.pods,
                                         host=host, timeout=args.timeout)
                print(f"round {i + 1}, {args.pods} pods, {kind}: {_line(latencies)}",
                      flush=True)
                if latencies:
                    p99[kind].append(bench_bridge._pct(latencies, 0.99))
            run.cpu()
    net, own = (statistics.median(p99[k]) if p99[k] else float("nan")
                for k in ("cluster network", "hostNetwork"))
    print(f"\nstartup p99, median of {args.rounds} rounds: cluster network {net:.3f}s, "
          f"hostNetwork {own:.3f}s: {net / own:.2f}x (issue 13's bound: 1.5x)")


if __name__ == "__main__":
    asyncio.run(main())
