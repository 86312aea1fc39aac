"""Benchmark: queries per second and latency of the cluster DNS, from one client.

Why: the issue asks for the DNS's queries/s from a single client and its p99 latency, as
dnsperf measures them. The server is the product's (``k8sbridge.dns.server.Server`` over the
records ``cluster.build`` makes) in a process of its own, serving 1,000 ClusterIP Services and
100 headless Services of 10 endpoints on a loopback address; the client is this process, a
dnsperf-style loop over UDP: ``--outstanding`` queries in flight (1: one at a time, each
latency alone), each answer checked, for ``--seconds``. Query mix: A of a Service, SRV of a
named port, A of a headless Service (10 records), NXDOMAIN; "warm" repeats 1,600 queries (the
server's answer cache hits, as for pods asking the same names), "cold" spells every name in a
case of its own (every query parsed and answered from the tables).

Run: ``python bench/bench_dns.py [--seconds 5] [--outstanding 1] [--outstanding 32]``.
Bounded: the server process is killed at the end. Prints queries/s, p50/p99 latency, the
machine's core count and load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import dns.message  # noqa: E402
import dns.rcode  # noqa: E402

HOST = "127.0.0.154"
SERVICES = 1000
HEADLESS = 100


def serve(port: int) -> None:
    from k8sbridge.dns import cluster, listen, server, sources

    services = [cluster.Service(namespace="default", name=f"svc-{i}", kind="ClusterIP",
                                cluster_ips=(f"10.96.{i // 250 + 1}.{i % 250 + 1}",),
                                ports=(cluster.Port("http", "tcp", 80),))
                for i in range(SERVICES)]
    services += [cluster.Service(namespace="default", name=f"hl-{i}", kind="Headless",
                                 ports=(cluster.Port("http", "tcp", 80),))
                 for i in range(HEADLESS)]
    slices = [cluster.Slice(namespace="default", service=f"hl-{i}", endpoints=tuple(
        cluster.Endpoint(addresses=(f"10.88.{i}.{j + 1}",), hostname=f"p{j}")
        for j in range(10)), ports=(cluster.Port("http", "tcp", 80),)) for i in range(HEADLESS)]
    records = cluster.build(domain="cluster.local", services=services, slices=slices,
                            namespaces=["default"])
    zones = sources.Zones(cluster=records)
    udp, tcp = listen.bind_all([HOST], port=port)

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        dns_server = server.Server(zones=lambda: zones)
        task = asyncio.create_task(dns_server.serve(udp_socks=udp, tcp_socks=tcp, stop=stop,
                                                    ready=ready))
        await ready.wait()
        print("serving", flush=True)
        await task

    asyncio.run(main())


def _spelled(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


def queries(*, cold: bool) -> list[tuple[bytes, int]]:
    """(wire, expected rcode) of the mix; ``cold``: each name spelled in a case of its own
    (50,000 of them), so the server's answer cache never hits."""
    out: list[tuple[bytes, int]] = []
    rng = random.Random(7)
    for _ in range(12_500 if cold else 400):
        i = rng.randrange(SERVICES)
        h = rng.randrange(HEADLESS)
        for name, kind, rcode in (
                (f"svc-{i}.default.svc.cluster.local", "A", dns.rcode.NOERROR),
                (f"_http._tcp.svc-{i}.default.svc.cluster.local", "SRV", dns.rcode.NOERROR),
                (f"hl-{h}.default.svc.cluster.local", "A", dns.rcode.NOERROR),
                (f"nope-{i}.default.svc.cluster.local", "A", dns.rcode.NXDOMAIN)):
            if cold:
                name = _spelled(name, rng)
            out.append((dns.message.make_query(name, kind).to_wire(), rcode))
    return out


def run(port: int, *, seconds: float, outstanding: int,
        cold: bool) -> tuple[int, list[float], int]:
    """dnsperf's loop: keep ``outstanding`` queries in flight; (answered, latencies, errors)."""
    mix = queries(cold=cold)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((HOST, port))
    sock.settimeout(2.0)
    sent: dict[int, tuple[float, int]] = {}
    latencies: list[float] = []
    errors = 0
    ident = 0
    end = time.perf_counter() + seconds
    k = 0
    try:
        while True:
            now = time.perf_counter()
            while len(sent) < outstanding and now < end:
                wire, rcode = mix[k % len(mix)]
                k += 1
                ident = (ident + 1) & 0xFFFF
                sock.send(ident.to_bytes(2, "big") + wire[2:])
                sent[ident] = (time.perf_counter(), rcode)
            if not sent:
                break
            try:
                data = sock.recv(4096)
            except TimeoutError:
                errors += len(sent)
                sent.clear()
                continue
            got = int.from_bytes(data[:2], "big")
            entry = sent.pop(got, None)
            if entry is None:
                continue
            latencies.append(time.perf_counter() - entry[0])
            if dns.message.from_wire(data).rcode() != entry[1]:
                errors += 1
    finally:
        sock.close()
    return len(latencies), latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--outstanding", type=int, action="append", default=None)
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "serving"
        print(f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; {SERVICES} ClusterIP + "
              f"{HEADLESS} headless Services (10 endpoints); mix A/SRV/headless A/NXDOMAIN")
        print("cache  outstanding  queries/s   p50 ms   p99 ms  errors")
        for cold in (False, True):
            for outstanding in args.outstanding or [1, 32]:
                run(port, seconds=0.5, outstanding=outstanding, cold=cold)  # warm-up
                answered, lat, errors = run(port, seconds=args.seconds,
                                            outstanding=outstanding, cold=cold)
                lat.sort()
                p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
                print(f"{'cold' if cold else 'warm':>5}  {outstanding:>11}  "
                      f"{answered / args.seconds:>9.0f}  {statistics.median(lat) * 1000:>7.3f}"
                      f"  {p99:>7.3f}  {errors:>6}")
    finally:
        proc.kill()
        proc.wait(10)


if __name__ == "__main__":
    main()
