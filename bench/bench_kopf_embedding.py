"""Benchmark the bridge's pod watch (embedded kopf): in the bridge's own event loop vs in a thread.

Why: until issue 10 the watch ran kopf in a thread with an event loop of its own and relayed
every event to the bridge's loop with ``call_soon_threadsafe``; kopf can also run inside an
existing loop. This measures both on the same burst, alternating, and reports for each:

- ``seen``: from the start of ``kubectl create -f`` of N pods to the watch callback having seen
  all N (ADDED), and ``lag``: how much of that came after kubectl had exited;
- ``gone``: from the start of ``kubectl delete pods --all`` to the callback having seen all N
  DELETED;
- ``cpu``: CPU seconds of this process (every thread: kopf, the relay, the bridge's loop) from
  the start of the create to the last DELETED. kubectl and devkube are other processes.

devkube runs as its own process (``k8sbridge devkube``, HTTPS + token, no controllers, so the
pods stay Pending and the only events are kubectl's). The watch is ``k8sbridge.kube.operator.run``
exactly as the bridge runs it; "thread" wraps that same call in a thread with its own loop and
relays each callback to this loop, as the bridge did before.

    python bench/bench_kopf_embedding.py [--pods 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import operator as kube_operator

NAMESPACE = "default"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _manifest(path: Path, *, pods: int, run: int) -> None:
    items = [
        {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"burst-{run}-{i}", "namespace": NAMESPACE,
                         "labels": {"app": "burst"}},
            "spec": {"schedulerName": "nobody", "containers": [{
                "name": "app", "image": "busybox", "command": ["sleep", "3600"],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }]},
        }
        for i in range(pods)
    ]
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


class _Counter:
    """The watch callback: counts this run's ADDED and DELETED pods, wakes the waiter."""

    def __init__(self, *, prefix: str, pods: int) -> None:
        self.prefix = prefix
        self.pods = pods
        self.added: set[str] = set()
        self.deleted: set[str] = set()
        self.all_added = asyncio.Event()
        self.all_deleted = asyncio.Event()

    def __call__(self, etype: str | None, raw: dict[str, Any]) -> None:
        name = str((raw.get("metadata") or {}).get("name") or "")
        if not name.startswith(self.prefix):
            return
        if etype == "DELETED":
            self.deleted.add(name)
            if len(self.deleted) == self.pods:
                self.all_deleted.set()
        else:
            self.added.add(name)
            if len(self.added) == self.pods:
                self.all_added.set()


async def _in_loop(
    *, connection: kube_client.Connection, on_pod: Callable[[str | None, dict[str, Any]], None],
    stop: asyncio.Event, ready: asyncio.Event,
) -> None:
    await kube_operator.run(connection=connection, on_pod=on_pod, stop=stop, ready=ready)


async def _in_thread(
    *, connection: kube_client.Connection, on_pod: Callable[[str | None, dict[str, Any]], None],
    stop: asyncio.Event, ready: asyncio.Event,
) -> None:
    """The pre-issue-10 arrangement: kopf's loop in a thread, each event relayed to ours."""
    loop = asyncio.get_running_loop()
    started = threading.Event()
    box: dict[str, Any] = {}

    def relay(etype: str | None, raw: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(on_pod, etype, raw)

    async def inner() -> None:
        inner_stop, inner_ready = asyncio.Event(), asyncio.Event()
        box["loop"], box["stop"] = asyncio.get_running_loop(), inner_stop
        started.set()
        watch = asyncio.create_task(kube_operator.run(
            connection=connection, on_pod=relay, stop=inner_stop, ready=inner_ready))
        await inner_ready.wait()
        loop.call_soon_threadsafe(ready.set)
        await watch

    thread = threading.Thread(target=lambda: asyncio.run(inner()), name="kopf-watch")
    thread.start()
    await asyncio.to_thread(started.wait, 30)
    try:
        await stop.wait()
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        await asyncio.to_thread(thread.join, 30)


async def _kubectl(kubeconfig: Path, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(kubeconfig), *args,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {err.decode()[-500:]}")


async def _one(
    *, mode: str, run: int, pods: int, kubeconfig: Path, connection: kube_client.Connection,
    tmp: Path,
) -> dict[str, float]:
    counter = _Counter(prefix=f"burst-{run}-", pods=pods)
    manifest = tmp / f"burst-{run}.json"
    _manifest(manifest, pods=pods, run=run)
    stop, ready = asyncio.Event(), asyncio.Event()
    runner = _in_loop if mode == "loop" else _in_thread
    watch = asyncio.create_task(runner(connection=connection, on_pod=counter, stop=stop,
                                       ready=ready))
    try:
        async with asyncio.timeout(60):
            await ready.wait()
        await asyncio.sleep(1.0)  # the initial listing is delivered and the watch is idle
        cpu0, t0 = _cpu(), time.perf_counter()
        await _kubectl(kubeconfig, "create", "-f", str(manifest))
        t_created = time.perf_counter()
        async with asyncio.timeout(120):
            await counter.all_added.wait()
        t_seen = time.perf_counter()
        await _kubectl(kubeconfig, "delete", "pods", "-n", NAMESPACE, "-l", "app=burst",
                       "--grace-period=0", "--force", "--wait=false")
        async with asyncio.timeout(120):
            await counter.all_deleted.wait()
        t_gone, cpu1 = time.perf_counter(), _cpu()
    finally:
        stop.set()
        async with asyncio.timeout(60):
            await watch
    return {"seen": t_seen - t0, "lag": max(0.0, t_seen - t_created), "gone": t_gone - t_seen,
            "cpu": cpu1 - cpu0}


async def _bench(*, kubeconfig: Path, args: argparse.Namespace, tmp: Path) -> None:
    kube = kube_client.KubeClient.from_kubeconfig(path=kubeconfig, connections=2)
    connection = kube.connection()
    results: dict[str, list[dict[str, float]]] = {"loop": [], "thread": []}
    try:
        run = 0
        for _ in range(args.runs):
            for mode in ("thread", "loop"):
                run += 1
                r = await _one(mode=mode, run=run, pods=args.pods, kubeconfig=kubeconfig,
                               connection=connection, tmp=tmp)
                results[mode].append(r)
                print(f"  run {run:2d} {mode:6s}: seen {r['seen']:.2f} s (lag after kubectl "
                      f"{r['lag'] * 1000:.0f} ms), gone {r['gone']:.2f} s, "
                      f"cpu {r['cpu']:.2f} s", flush=True)
    finally:
        await kube.close()
    print(f"median of {args.runs} runs, {args.pods} pods created then deleted:")
    for mode, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"  {mode:6s}: seen {med['seen']:.2f} s, lag {med['lag'] * 1000:.0f} ms, "
              f"gone {med['gone']:.2f} s, cpu {med['cpu']:.2f} s "
              f"({med['cpu'] / (2 * args.pods) * 1000:.2f} ms per event)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        kubeconfig = tmp / "kubeconfig"
        proc = subprocess.Popen(
            [sys.executable, "-m", "k8sbridge", "--log-level", "WARNING", "devkube", "--port",
             "0", "--no-controllers", "--kubeconfig", str(kubeconfig)],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if "devkube serving" not in line:
                raise SystemExit(f"devkube did not start: {line!r}")
            asyncio.run(_bench(kubeconfig=kubeconfig, args=args, tmp=tmp))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()


if __name__ == "__main__":
    main()
