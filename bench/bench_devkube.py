"""Benchmark devkube: concurrent pod creates with a watcher attached, LIST of 10,000 pods, RSS.

Why: devkube sits under every integration test and demo; it must not be the bottleneck. Targets
(issue 4): p99 create latency and p99 create->watch-event latency <= 50 ms for 1,000 creates from
10 concurrent clients; LIST of 10,000 pods <= 300 ms; RSS with 10,000 pods <= 400 MB.

The server runs as its own process (``k8sbridge devkube``, HTTPS + token, no controllers); the
clients are aiohttp sessions in this process. Bounded: it stops after a fixed amount of work.

    python bench/bench_devkube.py [--pods 10000] [--creates 1000] [--clients 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

PODS = "/api/v1/namespaces/default/pods"


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
        "spec": {"containers": [{
            "name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        }]},
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def _bench(
    *, url: str, token: str | None, ca: Path | None, pid: int, args: argparse.Namespace
) -> None:
    context: ssl.SSLContext | bool = True
    if ca is not None:
        context = ssl.create_default_context(cafile=str(ca))
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connector = aiohttp.TCPConnector(ssl=context, limit=64)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async with session.get(url + PODS) as resp:
            rv = (await resp.json())["metadata"]["resourceVersion"]
        seen: dict[str, float] = {}
        done = asyncio.Event()

        async def watcher() -> None:
            async with session.get(url + PODS, params={"watch": "true", "resourceVersion": rv},
                                   timeout=aiohttp.ClientTimeout(total=None)) as resp:
                async for line in resp.content:
                    event = json.loads(line)
                    seen[event["object"]["metadata"]["name"]] = time.perf_counter()
                    if len(seen) >= args.creates:
                        done.set()
                        return

        watch_task = asyncio.create_task(watcher())
        await asyncio.sleep(0.3)
        sent: dict[str, float] = {}
        latencies: list[float] = []

        async def client(index: int) -> None:
            for i in range(args.creates // args.clients):
                name = f"c{index}-{i}"
                body = json.dumps(_pod(name))
                began = time.perf_counter()
                sent[name] = began
                async with session.post(url + PODS, data=body) as resp:
                    await resp.read()
                    assert resp.status == 201, resp.status
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(args.clients)))
        elapsed = time.perf_counter() - began
        await asyncio.wait_for(done.wait(), timeout=60)
        watch_task.cancel()
        delivery = [seen[n] - sent[n] for n in sent]
        print(f"creates: {len(latencies)} from {args.clients} clients in {elapsed:.2f} s "
              f"({len(latencies) / elapsed:.0f}/s)")
        print(f"  create latency ms: p50 {1000 * _pct(latencies, 0.5):.1f}  "
              f"p99 {1000 * _pct(latencies, 0.99):.1f}")
        print(f"  create->watch event ms: p50 {1000 * _pct(delivery, 0.5):.1f}  "
              f"p99 {1000 * _pct(delivery, 0.99):.1f}")

        # fill up to args.pods pods
        remaining = args.pods - len(latencies)
        queue = list(range(remaining))

        async def filler() -> None:
            while queue:
                i = queue.pop()
                async with session.post(url + PODS, data=json.dumps(_pod(f"f{i}"))) as resp:
                    await resp.read()

        began = time.perf_counter()
        await asyncio.gather(*(filler() for _ in range(args.clients)))
        print(f"filled to {args.pods} pods in {time.perf_counter() - began:.1f} s")
        for accept, label in (("application/json", "JSON"),
                              ("application/json;as=Table;v=v1;g=meta.k8s.io", "Table")):
            timings = []
            for _ in range(5):
                began = time.perf_counter()
                async with session.get(url + PODS, headers={"Accept": accept}) as resp:
                    data = await resp.read()
                timings.append(time.perf_counter() - began)
            print(f"LIST {args.pods} pods ({label}, {len(data) / 1e6:.1f} MB): median "
                  f"{1000 * statistics.median(timings):.0f} ms, min {1000 * min(timings):.0f} ms")
        print(f"server RSS with {args.pods} pods: {_rss_mb(pid):.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--creates", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--insecure-http", action="store_true",
                        help="plain HTTP on loopback instead of HTTPS + token")
    args = parser.parse_args()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        proc = subprocess.Popen(
            [sys.executable, "-m", "k8sbridge", "--log-level", "WARNING", "devkube", "--port",
             "0", "--no-controllers", "--kubeconfig", str(kubeconfig),
             *(["--insecure-http"] if args.insecure_http else [])],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if "devkube serving" not in line:
                raise SystemExit(f"devkube did not start: {line!r}")
            doc = yaml.safe_load(kubeconfig.read_text())
            cluster = doc["clusters"][0]["cluster"]
            url = cluster["server"]
            ca: Path | None = None
            if "certificate-authority-data" in cluster:
                ca = Path(tmp) / "ca.crt"
                ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
            token = doc["users"][0]["user"].get("token")
            print(f"idle server RSS: {_rss_mb(proc.pid):.0f} MB")
            asyncio.run(_bench(url=url, token=token, ca=ca, pid=proc.pid, args=args))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()


if __name__ == "__main__":
    main()
