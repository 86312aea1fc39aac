"""Bridge benchmarks on the embedded default (kernel + devkube + bridge in one process).

1. Pod startup latency as the Kubernetes SLO defines it: from the create request to the pod
   observed (via watch) Running with every container ready, for N pods created at once.
2. Throughput: a Deployment of R replicas of a `sleep` container until all pods are Running.
3. Status propagation: the agent's TASK_RUNNING timestamp to the pod seen Running via watch,
   for the startup pods and for every replica of the throughput run.

``--processes`` runs kernel, devkube and the bridge as three separate processes (the bridge
as ``k8sbridge run --master --kubeconfig``, as in production), so the bridge's own RSS can
be sampled from /proc while the R replicas run (issue 6: RSS with 5,000 running pods).

Bounded: each phase gives up after --timeout seconds. Prints medians/percentiles and the
machine's core count. Run: python bench/bench_bridge.py [--pods 100] [--replicas 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import logging
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from k8sbridge import app, embedded  # noqa: E402
from k8sbridge import settings as bridge_settings  # noqa: E402
from k8sbridge.kernel.agent import stats as agent_stats  # noqa: E402


def _settings(data_dir: Path) -> bridge_settings.BridgeSettings:
    base = bridge_settings.load(env={})
    return dataclasses.replace(
        base,
        mesos=dataclasses.replace(base.mesos, agent_poll_seconds=1.0),
        # the agents it starts have no CNI network (bench_pod_network.py times that)
        scheduler=dataclasses.replace(base.scheduler, cycle_seconds=0.05, pod_network=""),
        kubelet=dataclasses.replace(base.kubelet, host="127.0.0.1", port=0, max_pods=2000),
        embedded=dataclasses.replace(
            base.embedded, data_dir=data_dir, kernel_port=0, api_port=0, agents=3
        ),
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


SLEEP = ["3600"]  # the pods' sleep; bounded in --processes mode so nothing outlives the run
# Issue 12's startup shape: each pod mounts two volumes (a ConfigMap and an emptyDir).
VOLUMES = [False]
CONFIG_MAP = "bench-config"
WALL: dict[str, float] = {}  # pod name -> wall-clock time it was seen Running+ready


def _is_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and all(
        c.get("ready") for c in status.get("containerStatuses") or [{}]
    )


async def _watch_running(
    conn: Any, namespace: str, want: int, seen: dict[str, float], timeout: float
) -> None:
    """Record when each pod is first seen Running+ready; a dropped watch (devkube drops
    watchers that fall behind, and this one shares the process) is resumed by a relist."""
    ctx = ssl.create_default_context(cafile=conn.ca_file) if conn.ca_file else None
    headers = {"Authorization": f"Bearer {conn.token}"} if conn.token else {}
    base = f"{conn.server}/api/v1/namespaces/{namespace}/pods"
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(headers=headers) as http:
        while time.monotonic() < deadline and len(seen) < want:
            async with http.get(base, ssl=ctx) as resp:
                listing = await resp.json()
            for pod in listing.get("items") or []:
                name = pod["metadata"]["name"]
                if _is_ready(pod) and name not in seen:
                    seen[name] = time.monotonic()
                    WALL[name] = time.time()
            rv = listing["metadata"]["resourceVersion"]
            left = max(1.0, deadline - time.monotonic())
            try:
                async with http.get(
                    f"{base}?watch=true&resourceVersion={rv}", ssl=ctx,
                    timeout=aiohttp.ClientTimeout(total=left),
                ) as resp:
                    async for line in resp.content:
                        pod = json.loads(line).get("object") or {}
                        name = (pod.get("metadata") or {}).get("name")
                        if name and _is_ready(pod) and name not in seen:
                            seen[name] = time.monotonic()
                            WALL[name] = time.time()
                            if len(seen) >= want:
                                return
            except (aiohttp.ClientError, TimeoutError, ValueError):
                continue


def _spec(cpu: str, memory: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "busybox",
                                 "command": ["sleep", SLEEP[0]],
                                 "resources": {"requests": {"cpu": cpu, "memory": memory}}}
    spec: dict[str, Any] = {"containers": [container]}
    if VOLUMES[0]:
        container["volumeMounts"] = [{"name": "config", "mountPath": "/config"},
                                     {"name": "scratch", "mountPath": "/scratch"}]
        spec["volumes"] = [{"name": "config", "configMap": {"name": CONFIG_MAP}},
                           {"name": "scratch", "emptyDir": {}}]
    return spec


async def _watching(kube: Any, namespace: str, pods: int, seen: dict[str, float],
                    timeout: float) -> asyncio.Task[None]:
    """Make ``namespace`` and start watching for ``pods`` of it Running+ready (into ``seen``)."""
    await kube.ensure_namespace(namespace)
    if VOLUMES[0]:
        await kube.create(f"/api/v1/namespaces/{namespace}/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": namespace},
            "data": {"app.conf": "level=info\n", "peers": "a,b,c\n"},
        })
    watcher = asyncio.create_task(
        _watch_running(kube.connection(), namespace, pods, seen, timeout)
    )
    await asyncio.sleep(0.5)  # the watch is open before the first pod is created
    return watcher


def _sleep_pod(name: str, namespace: str, *, cpu: str, memory: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": _spec(cpu, memory),
    }


async def startup_latency(
    targets: app.EmbeddedTargets | Targets, pods: int, timeout: float
) -> None:
    kube = targets.bridge.kube
    seen: dict[str, float] = {}
    watcher = await _watching(kube, "bench", pods, seen, timeout)
    created: dict[str, float] = {}

    async def create(i: int) -> None:
        name = f"p{i}"
        created[name] = time.monotonic()
        await kube.create("/api/v1/namespaces/bench/pods",
                          _sleep_pod(name, "bench", cpu="10m", memory="8Mi"))

    t0 = time.monotonic()
    await asyncio.gather(*(create(i) for i in range(pods)))
    await asyncio.wait_for(watcher, timeout + 5)
    latencies = [seen[n] - created[n] for n in seen]
    print(f"startup latency, {len(seen)}/{pods} pods Running+ready "
          f"(all done {max(seen.values(), default=t0) - t0:.2f}s after the first create):")
    if latencies:
        print(f"  p50 {statistics.median(latencies):.3f}s  p90 {_pct(latencies, 0.9):.3f}s  "
              f"p99 {_pct(latencies, 0.99):.3f}s  max {max(latencies):.3f}s")
    await _propagation(targets, "bench")
    await _logs_first_byte(targets)
    await kube.request("DELETE", "/api/v1/namespaces/bench/pods",
                       query={"gracePeriodSeconds": "0"})


async def steady_propagation(
    targets: app.EmbeddedTargets | Targets, pods: int, timeout: float, *, interval: float = 0.2
) -> None:
    """Propagation with the throughput run's pods still running (the bridge at that scale):
    ``pods`` more pods, one every ``interval`` seconds, not a burst."""
    kube = targets.bridge.kube
    seen: dict[str, float] = {}
    watcher = await _watching(kube, "steady", pods, seen, timeout)
    for i in range(pods):
        await kube.create("/api/v1/namespaces/steady/pods",
                          _sleep_pod(f"s{i}", "steady", cpu="5m", memory="4Mi"))
        await asyncio.sleep(interval)
    try:
        await asyncio.wait_for(watcher, timeout + 5)
    except TimeoutError:
        pass
    print(f"steady state: {pods} pods created one every {interval:.1f}s beside the running "
          f"replicas, {len(seen)} seen Running")
    await _propagation(targets, "steady")


async def _propagation(targets: app.EmbeddedTargets | Targets, namespace: str) -> None:
    """Task RUNNING (the agent's status timestamp) → pod Running+ready seen via watch."""
    kube = targets.bridge.kube
    pods = (await kube.get(f"/api/v1/namespaces/{namespace}/pods"))["items"]
    uid_to_name = {p["metadata"]["uid"]: p["metadata"]["name"] for p in pods}
    auth = getattr(targets, "kernel_auth", None)  # k8sbridge run locks the kernel's door
    headers = {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()
               } if auth else {}
    ca = getattr(targets, "kernel_ca", None)
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    async with aiohttp.ClientSession() as http, http.get(
        targets.kernel_url + "/state", headers=headers, ssl=context if context else True,
    ) as r:
        r.raise_for_status()
        state = await r.json(content_type=None)
    delays = []
    for fw in state["frameworks"]:
        for task in fw.get("tasks") or []:
            name = uid_to_name.get(task["id"].split(".")[0])
            running = [st["timestamp"] for st in task.get("statuses") or []
                       if st.get("state") == "TASK_RUNNING"]
            if name in WALL and running:
                delays.append(WALL[name] - min(running))
    if delays:
        print(f"status propagation (task RUNNING -> pod Running via watch), {len(delays)} pods:"
              f"  p50 {statistics.median(delays) * 1000:.0f} ms"
              f"  p90 {_pct(delays, 0.9) * 1000:.0f} ms"
              f"  p99 {_pct(delays, 0.99) * 1000:.0f} ms  max {max(delays) * 1000:.0f} ms")


async def _logs_first_byte(targets: app.EmbeddedTargets | Targets, runs: int = 5) -> None:
    """`kubectl logs -f` path: API server log proxy → kubelet API → agent files API."""
    kube = targets.bridge.kube
    await kube.create("/api/v1/namespaces/bench/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker", "namespace": "bench"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": [
            "sh", "-c", "while true; do echo tick; sleep 0.05; done"]}]},
    })
    for _ in range(300):
        pod = await kube.get_pod("bench", "talker")
        if _is_ready(pod):
            break
        await asyncio.sleep(0.1)
    conn = kube.connection()
    ctx = ssl.create_default_context(cafile=conn.ca_file) if conn.ca_file else None
    headers = {"Authorization": f"Bearer {conn.token}"} if conn.token else {}
    url = f"{conn.server}/api/v1/namespaces/bench/pods/talker/log?follow=true&tailLines=1"
    times = []
    async with aiohttp.ClientSession(headers=headers) as http:
        for _ in range(runs):
            t0 = time.monotonic()
            async with http.get(url, ssl=ctx, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                await resp.content.readany()  # the headers came; wait for the first byte
                times.append(time.monotonic() - t0)
    print(f"logs -f first byte ({runs} runs): median {statistics.median(times) * 1000:.0f} ms"
          f"  max {max(times) * 1000:.0f} ms")


async def throughput(
    targets: app.EmbeddedTargets | Targets, replicas: int, timeout: float,
    *, rss_pid: int | None = None, keep: bool = False,
) -> None:
    kube = targets.bridge.kube
    seen: dict[str, float] = {}
    watcher = await _watching(kube, "tput", replicas, seen, timeout)
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "sleepers", "namespace": "tput"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "sleepers"}},
            "template": {
                "metadata": {"labels": {"app": "sleepers"}},
                "spec": _spec("5m", "4Mi"),
            },
        },
    }
    t0 = time.monotonic()
    await kube.create("/apis/apps/v1/namespaces/tput/deployments", body)
    try:
        await asyncio.wait_for(watcher, timeout + 5)
    except TimeoutError:
        pass
    done = max(seen.values(), default=t0) - t0
    print(f"throughput: {len(seen)}/{replicas} replicas Running in {done:.2f}s "
          f"({len(seen) / done if done else 0:.0f} pods/s)")
    await _propagation(targets, "tput")
    scheduler = getattr(targets.bridge, "scheduler", None)
    delays = list(getattr(scheduler, "running_update_delays", ()))[-replicas:]
    if delays:
        print(f"  of which Mesos (TASK_RUNNING timestamp -> update received by the bridge):"
              f"  p50 {statistics.median(delays) * 1000:.0f} ms"
              f"  p99 {_pct(delays, 0.99) * 1000:.0f} ms  max {max(delays) * 1000:.0f} ms")
    writer = getattr(targets.bridge, "writer", None)
    if writer is not None:  # the bridge runs in this process: what it wrote
        print(f"  status writes by kind: {dict(writer.writes)}; events dropped: "
              f"{writer.events_dropped}")
    if rss_pid is not None:
        await asyncio.sleep(5)  # let the status writer and the event posters drain
        rss, peak = _rss_mib(rss_pid)
        print(f"bridge RSS with {len(seen)} pods Running: {rss:.1f} MiB (peak {peak:.1f} MiB)")
    if not keep:
        await kube.request("DELETE", "/apis/apps/v1/namespaces/tput/deployments/sleepers")


@dataclasses.dataclass
class _BridgeHandle:
    kube: Any


@dataclasses.dataclass
class Targets:
    """What the phases need when the bridge runs in another process."""

    kernel_url: str
    bridge: _BridgeHandle
    kernel_auth: tuple[str, str] | None = None  # (principal, secret) for the kernel's HTTP API
    kernel_ca: Path | None = None  # the CA of a kernel serving TLS (k8sbridge run's default)


def _cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a process and all its live descendants, from /proc (the
    kernel agent's own /proc reader)."""
    table = agent_stats.proc_table()
    usage = agent_stats.proc_usage(agent_stats.proc_tree({root}, table=table), table=table)
    return float(usage.get("cpus_user_time_secs", 0.0) + usage.get("cpus_system_time_secs", 0.0))


def _rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


async def _processes(args: argparse.Namespace) -> None:
    """Kernel, devkube and the bridge each in its own process; the bridge's RSS is sampled."""
    import socket
    import subprocess

    from k8sbridge.kube import client as kube_client

    def port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    kport, dport = port(), port()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        big = (f"cpus:{args.replicas + 200};mem:{(args.replicas + 200) * 64};"
               f"disk:{(args.replicas + 200) * 20};ports:[31000-32000]")
        py = [sys.executable, "-m", "k8sbridge", "--log-level", "WARNING"]
        try:
            procs.append(subprocess.Popen(
                [*py, "kernel", "--port", str(kport), "--work-dir", str(Path(tmp) / "kernel"),
                 "--agents", "1", "--agent-resources", big]))
            kubeconfig = Path(tmp) / "kubeconfig"
            dk_profile = (["-m", "cProfile", "-o", args.profile_devkube]
                          if args.profile_devkube else [])
            procs.append(subprocess.Popen(
                [sys.executable, *dk_profile, *py[1:], "devkube", "--port", str(dport),
                 "--data-dir", str(Path(tmp) / "dk"), "--kubeconfig", str(kubeconfig)]))
            master = f"http://127.0.0.1:{kport}"
            for _ in range(150):
                try:
                    async with aiohttp.ClientSession() as http, http.get(master + "/health"):
                        if kubeconfig.exists():
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            env = dict(os.environ)
            env.update({
                "K8SBRIDGE_SCHEDULER_IMAGE_MODE": "none",
                "K8SBRIDGE_SCHEDULER_CYCLE_SECONDS": "0.05",
                "K8SBRIDGE_KUBELET_MAX_PODS": str(args.replicas + args.pods + 100),
                "K8SBRIDGE_MESOS_AGENT_POLL_SECONDS": "1",
            })
            profile = (["-m", "cProfile", "-o", args.profile_bridge]
                       if args.profile_bridge else [])
            bridge = subprocess.Popen(
                [sys.executable, *profile, *py[1:], "run", "--master", master,
                 "--kubeconfig", str(kubeconfig),
                 "--scheduler-name", "default-scheduler", "--kubelet-port", "0",
                 "--kubelet-bind", "127.0.0.1"], env=env)
            procs.append(bridge)
            kube = kube_client.KubeClient.from_kubeconfig(path=kubeconfig)
            try:
                for _ in range(300):
                    try:
                        nodes = (await kube.get("/api/v1/nodes"))["items"]
                    except Exception:  # the API server may still be starting
                        nodes = []
                    if nodes:
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(2)
                rss, _ = _rss_mib(bridge.pid)
                print(f"bridge RSS idle (one node, no pods): {rss:.1f} MiB")
                targets = Targets(kernel_url=master, bridge=_BridgeHandle(kube=kube))
                if args.pods:
                    await startup_latency(targets, args.pods, args.timeout)
                    await asyncio.sleep(3)
                if args.replicas:
                    await throughput(targets, args.replicas, args.timeout, rss_pid=bridge.pid,
                                     keep=True)
                    if args.steady:
                        await steady_propagation(targets, args.steady, args.timeout)
            finally:
                await kube.close()
                names = ("kernel (master, agent, container daemon)", "devkube", "bridge")
                for name, proc in zip(names, procs, strict=False):
                    print(f"CPU seconds, {name}: {_cpu_seconds(proc.pid):.1f}")
                print(f"CPU seconds, this bench process: {sum(os.times()[:2]):.1f}")
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in reversed(procs):
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument(
        "--processes", action="store_true",
        help="kernel (one agent), devkube and the bridge as three processes; samples the "
             "bridge's RSS with --replicas pods running",
    )
    parser.add_argument(
        "--steady", type=int, default=0, metavar="N",
        help="with --processes: after the replicas run, N more pods one at a time (0.2 s "
             "apart) and their status propagation (the bridge at the replicas' scale)",
    )
    parser.add_argument(
        "--profile-bridge", metavar="FILE", default="",
        help="with --processes: run the bridge under cProfile, writing FILE on exit",
    )
    parser.add_argument(
        "--profile-devkube", metavar="FILE", default="",
        help="with --processes: run devkube under cProfile, writing FILE on exit",
    )
    parser.add_argument(
        "--separate-kernel", action="store_true",
        help="run the kernel (one big agent) as its own process; devkube + bridge in-process",
    )
    parser.add_argument(
        "--agent-resources", default="cpus:64;mem:131072;disk:100000;ports:[31000-32000]",
        help="declared resources of each of the 3 agents (room for 1000 pods + executors)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"cores: {os.cpu_count()}")
    if args.processes:
        SLEEP[0] = str(int(args.timeout * 2 + 300))
        await _processes(args)
        return
    if args.separate_kernel:
        await _separate(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        agents = [
            dataclasses.replace(a, resources=args.agent_resources)
            for a in embedded.embedded_agent_configs(data_dir=Path(tmp), count=3)
        ]
        async with app.running_embedded(_settings(Path(tmp)), agents=agents) as targets:
            if args.pods:
                await startup_latency(targets, args.pods, args.timeout)
            if args.pods:
                await asyncio.sleep(3)
            if args.replicas:
                await throughput(targets, args.replicas, args.timeout)


async def _separate(args: argparse.Namespace) -> None:
    """Kernel in a child process (``k8sbridge kernel``), devkube + bridge here."""
    import socket
    import subprocess

    from k8sbridge.devkube import main as devkube_main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        big = args.agent_resources.replace("cpus:64", "cpus:192").replace(
            "mem:131072", "mem:393216")
        kernel = subprocess.Popen(
            [sys.executable, "-m", "k8sbridge", "--log-level", "WARNING", "kernel", "--port",
             str(port), "--work-dir", str(Path(tmp) / "kernel"), "--agents", "1",
             "--agent-resources", big],
        )
        try:
            master = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    async with aiohttp.ClientSession() as http, http.get(master + "/health"):
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            dk_cfg = devkube_main.DevkubeConfig(port=0, kubeconfig=Path(tmp) / "kubeconfig")
            async with devkube_main.running(dk_cfg) as dk:
                base = _settings(Path(tmp))
                settings = dataclasses.replace(
                    base,
                    mesos=dataclasses.replace(base.mesos, masters=(master,)),
                    kube=dataclasses.replace(base.kube, kubeconfig=dk.kubeconfig),
                    scheduler=dataclasses.replace(
                        base.scheduler, scheduler_names=("default-scheduler",),
                        image_mode="none",
                    ),
                )
                async with app.running_bridge(settings) as bridge:
                    targets = app.EmbeddedTargets(kernel_url=master, kubeconfig=dk.kubeconfig,
                                                  api_url=dk.url, bridge=bridge)
                    if args.pods:
                        await startup_latency(targets, args.pods, args.timeout)
                        await asyncio.sleep(3)
                    if args.replicas:
                        await throughput(targets, args.replicas, args.timeout)
        finally:
            kernel.terminate()
            kernel.wait(30)


if __name__ == "__main__":
    asyncio.run(main())
