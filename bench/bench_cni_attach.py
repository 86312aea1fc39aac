"""Benchmark: what the agent's ``network/cni`` isolator costs per container (task group).

Why: every pod on a CNI network pays one attach (a network namespace, ``loopback`` ADD, the
network's ``bridge``/``host-local`` ADD) before its tasks start and one detach (DEL, unmount)
after; this times both against the real reference plugins, in a cluster namespace of its own.
Wall time and CPU time (this process, which plays the agent, and its waited-for children: the
plugins) are printed apart: on a busy box the wall time mostly says how busy it is, the CPU
time what an attach costs (the kernel's share done in its own workers, such as a namespace's
teardown, is in neither).
Usage: ``python bench/bench_cni_attach.py [N]`` (root; N attach/detach pairs, default 30).
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from k8sbridge.kernel import network
from k8sbridge.kernel.agent import cni


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its waited-for children."""
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


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
        add_cpu: list[float] = []
        del_cpu: list[float] = []
        print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the start", flush=True)
        for i in range(n):
            t, c = time.perf_counter(), _cpu()
            await iso.attach(f"c{i}", networks=[iso.networks[net.network_name]],
                             network_infos=[{"name": net.network_name}], hostname=None)
            adds.append(time.perf_counter() - t)
            add_cpu.append(_cpu() - c)
            t, c = time.perf_counter(), _cpu()
            await iso.detach(f"c{i}")
            dels.append(time.perf_counter() - t)
            del_cpu.append(_cpu() - c)
        print(_line("attach (netns + lo + bridge ADD)", adds))
        print(_line("  its CPU", add_cpu))
        print(_line("detach (bridge DEL + umount)", dels))
        print(_line("  its CPU", del_cpu))
        print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    finally:
        net.remove()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
