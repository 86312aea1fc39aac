"""Benchmark: what the agent's ``network/cni`` isolator costs per container (task group).

Why: every pod on a CNI network pays one attach (a network namespace with its ``lo`` up, the
network's ``bridge``/``host-local`` ADD) before its tasks start and one detach (DEL, unmount)
after; this times both against the real reference plugins, in a cluster namespace of its own.
Wall time and CPU time (this process, which plays the agent, and its waited-for children: the
plugins) are printed apart: on a busy box the wall time mostly says how busy it is, the CPU
time what an attach costs (the kernel's share done in its own workers, such as a namespace's
teardown, is in neither).

``--burst N`` plays issue 13's startup instead: N containers attached at once, spread over
three isolators (the embedded default's three agents, each with its own bridge and subnet),
then detached at once. It prints when the attaches ended (median, p99, last: the critical
path of a pod startup burst) and the CPU the whole box spent (``/proc/stat``: the plugins,
this process and the kernel's workers, such as namespace teardown), per container.
The isolators keep their roots and leases where the agent does (under ``/run/k8sbridge``, a
tmpfs). Usage: ``python bench/bench_cni_attach.py [N]`` (root; N attach/detach pairs, default 30),
``python bench/bench_cni_attach.py --burst 100 [--rounds 3]``; ``--lo [N]`` times only a
namespace's ``lo`` coming up, by the agent's ioctl and by ``ip``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from k8sbridge.kernel import network
from k8sbridge.kernel.agent import cni, mounting

_AGENTS = 3  # the embedded default's


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its waited-for children."""
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _box_busy() -> float:
    """CPU seconds the whole box was busy (not idle, not waiting for I/O), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def _line(name: str, xs: list[float]) -> str:
    return (f"{name}: median {statistics.median(xs) * 1000:.1f} ms, "
            f"p90 {_pct(xs, 0.9) * 1000:.1f} ms, n={len(xs)}")


def _isolator(net: network.ClusterNetwork, index: int, work: Path) -> cni.Isolator:
    """Agent ``index``'s isolator as the agent makes it: its root and IPAM leases in its
    runtime directory under ``cni.RUN_BASE`` (a tmpfs, ``cni.make_run_base``)."""
    work_dir = (work / f"agent-{index}").resolve()
    flags = net.agent_flags(index, work_dir=work_dir)
    cni.make_run_base()
    return cni.Isolator.load(
        config_dir=flags["network_cni_config_dir"], plugins_dir=flags["network_cni_plugins_dir"],
        root=cni.root_dir(work_dir=work_dir, persist=False),
        plugins_netns=flags["network_cni_plugins_netns"], timeout=30)


async def _attach(iso: cni.Isolator, net: network.ClusterNetwork, container_id: str) -> None:
    await iso.attach(container_id, networks=[iso.networks[net.network_name]],
                     network_infos=[{"name": net.network_name}], hostname=None)


async def pairs(net: network.ClusterNetwork, work: Path, n: int) -> None:
    iso = _isolator(net, 0, work)
    adds: list[float] = []
    dels: list[float] = []
    add_cpu: list[float] = []
    del_cpu: list[float] = []
    for i in range(n):
        t, c = time.perf_counter(), _cpu()
        await _attach(iso, net, f"c{i}")
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


def _ip_lo_up() -> None:
    subprocess.run(["ip", "link", "set", "dev", "lo", "up"], check=True, capture_output=True)


def lo_up(n: int) -> None:
    """``lo`` brought up in a fresh namespace ``n`` times each way: the agent's ioctl
    (``cni._loopback_up``) and ``ip link set dev lo up`` (what Mesos spawns, and what the
    agent ran until the twelfth session); the CPU of this process and its children."""
    ioctl: list[float] = []
    ip: list[float] = []
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for _ in range(n):
            for times, up in ((ioctl, cni._loopback_up), (ip, _ip_lo_up)):
                mounting.unshare(mounting.CLONE_NEWNET)
                try:
                    c = _cpu()
                    up()
                    times.append(_cpu() - c)
                finally:
                    mounting.setns(home, mounting.CLONE_NEWNET)
    finally:
        os.close(home)
    print(_line("lo up by the agent's ioctl, CPU", ioctl))
    print(_line("lo up by `ip link set dev lo up`, CPU", ip))


async def _timed(iso: cni.Isolator, net: network.ClusterNetwork, container_id: str,
                 since: float) -> float:
    await _attach(iso, net, container_id)
    return time.perf_counter() - since


async def burst(net: network.ClusterNetwork, work: Path, n: int, rounds: int) -> None:
    isolators = [_isolator(net, i, work) for i in range(_AGENTS)]
    for r in range(rounds):
        t, box = time.perf_counter(), _box_busy()
        ended = await asyncio.gather(*(_timed(isolators[i % _AGENTS], net, f"r{r}c{i}", t)
                                       for i in range(n)))
        add_box = _box_busy() - box
        t, box = time.perf_counter(), _box_busy()
        await asyncio.gather(*(isolators[i % _AGENTS].detach(f"r{r}c{i}") for i in range(n)))
        del_wall = time.perf_counter() - t
        await asyncio.sleep(3)  # the kernel's namespace teardown (cleanup_net) runs after
        del_box = _box_busy() - box
        print(f"round {r + 1}: {n} attaches at once ended: median "
              f"{statistics.median(ended):.3f}s, p99 {_pct(ended, 0.99):.3f}s, last "
              f"{max(ended):.3f}s; box CPU {add_box / n * 1000:.1f} ms per attach. "
              f"Detaches at once: {del_wall:.3f}s, box CPU {del_box / n * 1000:.1f} ms per "
              f"detach (with 3 s of teardown after)", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, nargs="?", default=30, help="attach/detach pairs")
    parser.add_argument("--burst", type=int, default=0, help="attaches at once instead")
    parser.add_argument("--rounds", type=int, default=3, help="of --burst")
    parser.add_argument("--lo", action="store_true", help="time bringing lo up instead")
    args = parser.parse_args()
    if args.lo:
        lo_up(args.n)
        return
    net = network.ClusterNetwork()
    net.create()
    work = Path(tempfile.mkdtemp(prefix="bench-cni-"))
    try:
        print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the start", flush=True)
        if args.burst:
            await burst(net, work, args.burst, args.rounds)
        else:
            await pairs(net, work, args.n)
        print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    finally:
        net.remove()
        for index in range(_AGENTS):  # the isolators' roots and leases (all detached)
            shutil.rmtree(cni.runtime_dir(work_dir=(work / f"agent-{index}").resolve()),
                          ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
