"""Issue 5's two figures on the embedded default, started exactly as the README's main job.

Why a benchmark of its own: ``bench_bridge.py`` wires the parts itself; this one runs the
command a user runs, ``k8sbridge run --data-dir TMP`` (kernel, devkube and the bridge as three
child processes of that command; free ports instead of 5050/6443/10250), and measures from the
outside through the kubeconfig it writes:

1. startup: N pods (default 100) created at once, creation → Running with every container ready
   observed via watch, p50/p99 (``bench_bridge.startup_latency``, which also prints the status
   propagation and the ``kubectl logs -f`` first byte). Run on the pure default: three agents
   of the built-in shapes (4, 2 and 8 cpus).
2. throughput: a Deployment of R replicas (default 1,000) of a ``sleep`` container until all
   pods are Running (``bench_bridge.throughput``), in a second ``k8sbridge run`` whose only
   changes are documented settings a user would give for that many pods: ``--agent-resources``
   (the built-in agents hold ~130 such pods) and ``K8SBRIDGE_KUBELET_MAX_PODS``. The raw
   process-spawn rate (``subprocess.Popen`` of ``sleep``) is measured in the same run, right
   after the replicas are up.

After each phase: CPU seconds per process (the ``k8sbridge run`` supervisor itself; the kernel,
devkube and bridge children with their descendants; the kernel's container daemon, which is
nobody's child, with its tasks), the machine's core count and load. Bounded: each phase gives
up after --timeout seconds; each ``k8sbridge run`` is stopped with SIGINT (then killed).

Run: ``python bench/bench_embedded.py [--pods 100] [--replicas 1000] [--jobs 1000]
[--timeout 150] [--volumes | --startup-volumes]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_agent_launch  # noqa: E402
import bench_bridge  # noqa: E402

from k8sbridge.kube import client as kube_client  # noqa: E402

READY = "k8sbridge is ready; Ctrl-C stops everything"
BIG_AGENT = "cpus:64;mem:131072;disk:100000;ports:[31000-32000]"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def _own_cpu(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks


def _daemons(data_dir: Path) -> list[int]:
    """The kernel's container daemons for this data dir (double-forked: nobody's child)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"--daemon" in cmdline and str(data_dir).encode() in cmdline:
            out.append(int(entry.name))
    return out


def _operator_credential(data_dir: Path) -> tuple[str, str] | None:
    """The ``operator`` principal ``k8sbridge run`` writes for people and tools (None when
    the kernel's authentication is off)."""
    path = data_dir / "credentials.json"
    if not path.exists():
        return None
    creds = json.loads(path.read_text())["credentials"]
    return next(("operator", c["secret"]) for c in creds if c["principal"] == "operator")


def _kernel_ca(data_dir: Path) -> Path | None:
    """The CA of the run's kernel (TLS, k8sbridge run's default); None with --kernel-tls off."""
    ca = data_dir / "kernel-pki" / "ca.crt"
    return ca if ca.exists() else None


class Run:
    """One ``k8sbridge run --data-dir DIR`` on free ports, its output in DIR/../run.out."""

    def __init__(self, *, data_dir: Path, extra: list[str], env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.kernel_url = ""
        self.pids: dict[str, int] = {}
        self.out_path = data_dir.parent / f"{data_dir.name}.out"
        self._out = self.out_path.open("w")
        argv = [sys.executable, "-m", "k8sbridge", "run", "--data-dir", str(data_dir),
                "--kernel-port", str(_port()), "--api-port", str(_port()),
                "--kubelet-port", "0", *extra]
        shown = shlex.join(["python", *argv[1:]])
        print(f"$ {' '.join(f'{k}={v}' for k, v in env.items())} {shown}".replace("$  ", "$ "),
              flush=True)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
        full_env.update(env)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, env=full_env, stdout=self._out,
                                     stderr=subprocess.STDOUT)

    async def ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.out_path.read_text(errors="replace")
            if READY in text:
                self.kernel_url = re.search(r"^kernel \(Mesos v1 API\): (\S+)", text, re.M)[1]  # type: ignore[index]
                line = re.search(r"^processes: (.*); logs in", text, re.M)[1]  # type: ignore[index]
                self.pids = {n: int(p) for n, p in re.findall(r"(\w+) pid (\d+)", line)}
                print(f"k8sbridge run ready in {time.monotonic() - self.started:.1f}s "
                      f"({', '.join(f'{n} pid {p}' for n, p in self.pids.items())})", flush=True)
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"k8sbridge run exited ({self.proc.returncode}):\n{text[-3000:]}")
            await asyncio.sleep(0.2)
        raise SystemExit(f"k8sbridge run not ready within {timeout}s; see {self.out_path}")

    def cpu(self) -> None:
        """CPU seconds so far, per process."""
        print(f"CPU seconds, k8sbridge run (the supervisor itself): {_own_cpu(self.proc.pid):.1f}")
        for name, pid in self.pids.items():
            print(f"CPU seconds, {name} (with its descendants): "
                  f"{bench_bridge._cpu_seconds(pid):.1f}")
        daemons = _daemons(self.data_dir)
        total = sum(bench_bridge._cpu_seconds(pid) for pid in daemons)
        print(f"CPU seconds, the kernel's container daemon(s) with their tasks: {total:.1f}")
        print(f"CPU seconds, this bench process: {sum(os.times()[:2]):.1f}")
        lines = {name: sum(1 for _ in (self.data_dir / "logs" / f"{name}.log").open("rb"))
                 for name in self.pids}
        print("log lines so far (shown by the supervisor, kept in DIR/logs): "
              + ", ".join(f"{n} {c}" for n, c in lines.items()), flush=True)

    def stop(self) -> None:
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(150)
            except subprocess.TimeoutExpired:
                print("k8sbridge run did not stop within 150s of SIGINT; killing it")
                self.proc.kill()
                self.proc.wait(10)
        print(f"k8sbridge run stopped (exit {self.proc.returncode}) in "
              f"{time.monotonic() - t0:.1f}s", flush=True)
        self._out.close()


@contextlib.asynccontextmanager
async def running(
    *, data_dir: Path, extra: list[str], env: dict[str, str]
) -> AsyncIterator[tuple[Run, bench_bridge.Targets]]:
    run = Run(data_dir=data_dir, extra=extra, env=env)
    try:
        await run.ready()
        kube = kube_client.KubeClient.from_kubeconfig(path=data_dir / "kubeconfig")
        try:
            for _ in range(150):  # the bridge registered the Nodes before it said ready
                if len((await kube.get("/api/v1/nodes"))["items"]) >= 3:
                    break
                await asyncio.sleep(0.2)
            yield run, bench_bridge.Targets(kernel_url=run.kernel_url,
                                            bridge=bench_bridge._BridgeHandle(kube=kube),
                                            kernel_auth=_operator_credential(data_dir),
                                            kernel_ca=_kernel_ca(data_dir))
        finally:
            await kube.close()
    finally:
        run.stop()


def _complete(job: dict[str, Any]) -> bool:
    return any(c.get("type") == "Complete" and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


async def _watch_complete(conn: Any, namespace: str, want: int, done: dict[str, float],
                          timeout: float) -> None:
    """Record when each Job is first seen Complete; a dropped watch is resumed by a relist."""
    ctx: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=conn.ca_file) if conn.ca_file else True)
    headers = {"Authorization": f"Bearer {conn.token}"} if conn.token else {}
    base = f"{conn.server}/apis/batch/v1/namespaces/{namespace}/jobs"
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(headers=headers) as http:
        while time.monotonic() < deadline and len(done) < want:
            async with http.get(base, ssl=ctx) as resp:
                listing = await resp.json()
            for job in listing.get("items") or []:
                if _complete(job):
                    done.setdefault(job["metadata"]["name"], time.monotonic())
            rv = listing["metadata"]["resourceVersion"]
            try:
                async with http.get(
                    f"{base}?watch=true&resourceVersion={rv}", ssl=ctx,
                    timeout=aiohttp.ClientTimeout(total=max(1.0, deadline - time.monotonic())),
                ) as resp:
                    async for line in resp.content:
                        job = json.loads(line).get("object") or {}
                        name = (job.get("metadata") or {}).get("name")
                        if name and _complete(job):
                            done.setdefault(name, time.monotonic())
                            if len(done) >= want:
                                return
            except (aiohttp.ClientError, TimeoutError, ValueError):
                continue


async def jobs_to_complete(targets: bench_bridge.Targets, jobs: int, timeout: float) -> None:
    """``jobs`` Jobs of one ``true`` pod each, created at once: time until all are Complete."""
    kube = targets.bridge.kube
    namespace = "jobs"
    await kube.ensure_namespace(namespace)
    done: dict[str, float] = {}
    watcher = asyncio.create_task(
        _watch_complete(kube.connection(), namespace, jobs, done, timeout))
    await asyncio.sleep(0.5)  # the watch is open before the first Job is created
    gate = asyncio.Semaphore(64)

    async def create(i: int) -> None:
        body = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"job-{i:04d}", "namespace": namespace},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "command": ["true"],
                                "resources": {"requests": {"cpu": "5m",
                                                           "memory": "4Mi"}}}]}}},
        }
        async with gate:
            await kube.create(f"/apis/batch/v1/namespaces/{namespace}/jobs", body)

    t0 = time.monotonic()
    await asyncio.gather(*(create(i) for i in range(jobs)))
    created = time.monotonic() - t0
    try:
        await asyncio.wait_for(watcher, timeout + 5)
    except TimeoutError:
        pass
    times = sorted(t - t0 for t in done.values())
    total = times[-1] if times else 0.0
    print(f"jobs: {len(done)}/{jobs} Jobs Complete in {total:.2f}s "
          f"({len(done) / total if total else 0:.1f} Jobs/s); created in {created:.2f}s")
    if times:
        marks = [(p, times[min(len(times), max(1, round(jobs * p / 100))) - 1])
                 for p in (10, 50, 90, 100) if round(jobs * p / 100) <= len(times)]
        print("  Complete at: " + ", ".join(f"{p} % {t:.1f}s" for p, t in marks), flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=100, help="startup phase (0: skip)")
    parser.add_argument("--replicas", type=int, default=1000, help="throughput phase (0: skip)")
    parser.add_argument("--jobs", type=int, default=1000,
                        help="jobs phase: Jobs of one short pod each (0: skip)")
    parser.add_argument("--timeout", type=float, default=150, help="per phase")
    parser.add_argument("--agent-resources", default=BIG_AGENT,
                        help="--agent-resources of the throughput run's three agents")
    parser.add_argument("--spawn", type=int, default=200,
                        help="processes for the raw spawn rate")
    parser.add_argument("--env", action="append", default=[], metavar="K8SBRIDGE_X=V",
                        help="a setting for both runs, as a user would export it (A/B tests)")
    parser.add_argument("--volumes", action="store_true",
                        help="every pod mounts two volumes, a ConfigMap and an emptyDir "
                        "(issue 12's startup shape)")
    parser.add_argument("--startup-volumes", action="store_true",
                        help="the two volumes in the startup phase only: the throughput phase "
                        "keeps its plain Deployment (issue 12's two figures as the issue words "
                        "them: 100 pods with two volumes, 1,000 replicas)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="run in DIR (must not exist) and keep it: the runs' logs")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    print(f"cores: {os.cpu_count()}; {_load()}", flush=True)
    bench_bridge.SLEEP[0] = str(int(args.timeout * 2 + 300))  # nothing outlives the run
    bench_bridge.VOLUMES[0] = args.volumes or args.startup_volumes
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True)
            tmp = str(args.keep.resolve())
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-embedded-"))
        if args.pods:
            print(f"\n== startup: {args.pods} pods at once on the embedded default", flush=True)
            async with running(data_dir=Path(tmp) / "startup", extra=[],
                               env=extra_env) as (run, t):
                await bench_bridge.startup_latency(t, args.pods, args.timeout)
                run.cpu()
                print(_load(), flush=True)
        if args.replicas:
            bench_bridge.VOLUMES[0] = args.volumes
            shape = " (two volumes per pod)" if args.volumes else ""
            print(f"\n== throughput: a {args.replicas}-replica Deployment{shape}", flush=True)
            # A /21 per agent (2,045 pod addresses): the default /24 holds 253 pods a node.
            env = {"K8SBRIDGE_KUBELET_MAX_PODS": str(args.replicas + 100),
                   "K8SBRIDGE_EMBEDDED_NODE_CIDR_MASK_SIZE": "21", **extra_env}
            extra = ["--agent-resources", args.agent_resources]
            async with running(data_dir=Path(tmp) / "throughput", extra=extra,
                               env=env) as (run, t):
                await bench_bridge.throughput(t, args.replicas, args.timeout, keep=True)
                rates = [bench_agent_launch.raw_spawn_rate(args.spawn) for _ in range(3)]
                print(f"raw process-spawn rate (Popen of sleep, {args.spawn} x 3, same run): "
                      f"median {sorted(rates)[1]:.0f}/s (runs: "
                      f"{', '.join(f'{r:.0f}' for r in rates)})")
                run.cpu()
                print(_load(), flush=True)
        if args.jobs:
            print(f"\n== jobs: {args.jobs} Jobs of one pod each to Complete", flush=True)
            env = {"K8SBRIDGE_KUBELET_MAX_PODS": str(args.jobs + 100),
                   "K8SBRIDGE_EMBEDDED_NODE_CIDR_MASK_SIZE": "21", **extra_env}
            extra = ["--agent-resources", args.agent_resources]
            async with running(data_dir=Path(tmp) / "jobs", extra=extra,
                               env=env) as (run, t):
                await jobs_to_complete(t, args.jobs, args.timeout)
                run.cpu()
                print(_load(), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
