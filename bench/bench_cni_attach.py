"""Benchmark: what the agent's ``network/cni`` isolator costs per container (task group).

Why: every pod on a CNI network pays one attach (a network namespace, ``loopback`` ADD, the
network's ``bridge``/``host-local`` ADD) before its tasks start and one detach (DEL, unmount)
after; this times both against the real reference plugins, in a cluster namespace of its own.
Usage: ``python bench/bench_cni_attach.py [N]`` (root; N attach/detach pairs, default 30).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from k8sbridge.kernel import network
from k8sbridge.kernel.agent import cni


def _line(name: str, xs: list[float]) -> str:
    xs = sorted(xs)
    return (f"{name}: median {statistics.median(xs) * 1000:.1f} ms, "
            f"p90 {xs[int(len(xs) * 0.9)] * 1000:.1f} ms, n={len(xs)}")


async def main(n: int) -> None:
    net = network.ClusterNetwork()
    net.create()
    try:
        work = Path(tempfile.mkdtemp(prefix="bench-cni-"))
        flags = net.agent_flags(0, work_dir=work)
        iso = cni.Isolator.load(
            config_dir=flags["network_cni_config_dir"],
            plugins_dir=flags["network_cni_plugins_dir"], root=work / "cni",
            plugins_netns=flags["network_cni_plugins_netns"], timeout=30)
        adds: list[float] = []
        dels: list[float] = []
        for i in range(n):
            t = time.perf_counter()
            await iso.attach(f"c{i}", networks=[iso.networks[net.network_name]],
                             network_infos=[{"name": net.network_name}], hostname=None)
            adds.append(time.perf_counter() - t)
            t = time.perf_counter()
            await iso.detach(f"c{i}")
            dels.append(time.perf_counter() - t)
        print(_line("attach (netns + lo + bridge ADD)", adds))
        print(_line("detach (bridge DEL + umount)", dels))
    finally:
        net.remove()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
