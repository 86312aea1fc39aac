"""Benchmark: a Service change → its rules programmed, at 1,000 Services × 10 endpoints.

Why: the service proxy's target is p99 ≤ 200 ms from a change reaching the proxy (a watch
event) to the kernel having its rules (the transaction committed). This fills a table in a
network namespace of its own with ``S`` Services of ``E`` ready endpoints each (the first full
sync is timed too), then times ``N`` changes one at a time, each an EndpointSlice update of a
random Service (one endpoint replaced) or, every fifth, a Service created or deleted, as the
proxy commits them (render of that Service, the difference as one transaction through
libnftables). For comparison it times a few whole-table replacements of the same state (what a
proxy without incremental transactions would pay per change). The watch itself (API server →
event) is not included.
The CPU time per change (this process and nft) is printed too: on a box shared with other work
the wall times mostly measure the load, the CPU time does not.
Usage: ``python bench/bench_proxy.py [S] [E] [N]`` (root; default 1000 10 200).
"""

from __future__ import annotations

import asyncio
import random
import resource
import secrets
import statistics
import subprocess
import sys
import time
from typing import Any

from k8sbridge.proxy import nft, proxier, rules


def service(i: int) -> dict[str, Any]:
    return {"metadata": {"namespace": "bench", "name": f"svc-{i}"},
            "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}", "type": "NodePort",
                     "ports": [{"name": "http", "port": 80, "nodePort": 30000 + i}]}}


def endpoint_slice(i: int, ips: list[str]) -> dict[str, Any]:
    return {"metadata": {"namespace": "bench", "name": f"svc-{i}-abcde",
                         "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [ip], "nodeName": f"n{j % 3}",
                           "conditions": {"ready": True}} for j, ip in enumerate(ips)]}


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (nft) so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _line(name: str, xs: list[float]) -> str:
    xs = sorted(xs)
    return (f"{name}: median {statistics.median(xs) * 1000:.1f} ms, "
            f"p90 {xs[int(len(xs) * 0.9)] * 1000:.1f} ms, "
            f"p99 {xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1000:.1f} ms, "
            f"max {xs[-1] * 1000:.1f} ms, n={len(xs)}")


async def main(services: int, endpoints: int, changes: int) -> None:
    netns = f"k8sbridge-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        config = rules.ProxyConfig(nodes=tuple(rules.Node(f"n{i}", f"10.88.{i}.0/24")
                                               for i in range(3)), masquerade_all=True)
        proxy = proxier.Proxier(config=config, tool=nft.Nft(netns=netns))
        rng = random.Random(1)
        ips = {i: [f"10.88.{j % 3}.{(i * endpoints + j) % 250 + 2}" for j in range(endpoints)]
               for i in range(services)}
        # distinct endpoint addresses per Service are not needed: chains are per Service
        proxy.replace_services([service(i) for i in range(services)])
        proxy.replace_slices([endpoint_slice(i, ips[i]) for i in range(services)])
        t = time.perf_counter()
        await proxy.sync()
        print(f"first full sync ({services} Services x {endpoints} endpoints): "
              f"{(time.perf_counter() - t) * 1000:.0f} ms")
        listed = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "ip",
                                 "kube-proxy"], capture_output=True, text=True, check=True)
        print(f"  table: {listed.stdout.count('chain ')} chains, "
              f"{len(listed.stdout.splitlines())} lines listed")
        times: list[float] = []
        cpu: list[float] = []
        kinds: dict[str, list[float]] = {"slice": [], "service": []}
        extra = services
        for n in range(changes):
            t, c = time.perf_counter(), _cpu()
            if n % 5 == 4:  # a Service created, or the last one created deleted
                if n % 10 == 4:
                    proxy.update_service("ADDED", service(extra))
                    proxy.update_slice("ADDED", endpoint_slice(extra, ips[0]))
                    extra += 1
                else:
                    extra -= 1
                    proxy.update_service("DELETED", service(extra))
                    proxy.update_slice("DELETED", endpoint_slice(extra, ips[0]))
            else:
                i = rng.randrange(services)
                ips[i][rng.randrange(endpoints)] = \
                    f"10.88.{rng.randrange(3)}.{rng.randrange(2, 250)}"
                proxy.update_slice("MODIFIED", endpoint_slice(i, ips[i]))
            await proxy.sync()
            times.append(time.perf_counter() - t)
            cpu.append(_cpu() - c)
            kinds["service" if n % 5 == 4 else "slice"].append(times[-1])
        print(_line("change -> rules committed (incremental)", times))
        print(_line("  of which an EndpointSlice update", kinds["slice"]))
        print(_line("  of which a Service created or deleted", kinds["service"]))
        print(_line("CPU time per change (the proxy and nft; the box's load does not add)",
                    cpu))
        whole: list[float] = []
        for _ in range(5):
            t = time.perf_counter()
            text = rules.full_text(rules.merge(proxy.plan(k) for k in proxy.services),
                                   config)
            await proxy.tool.apply(text)
            whole.append(time.perf_counter() - t)
        print(_line("whole-table replacement (render all + nft -f)", whole))
        proxy.tool.close()
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [1000, 10, 200][len(args):])))
