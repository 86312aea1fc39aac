"""Issue 15's figures on the embedded default: exec round trip and port-forward throughput.

Why through the API server: that is the path ``kubectl exec`` takes (devkube, as
kube-apiserver >= 1.30, translates the WebSocket to SPDY/3.1 towards the bridge's kubelet API,
which launches a nested container session on the pod's agent and streams it back). Three exec
figures: a WebSocket client speaking ``v5.channel.k8s.io`` to ``pods/exec`` of a running pod,
``exec -- true`` from the upgrade request to the exit status on the error channel (p50/p99 of
--execs sequential runs); the wall time of the real ``kubectl exec pod -- true`` (kubectl's own
start-up included); the same with kubectl's WebSockets off (its own SPDY upgrade, carried to the
kubelet as API servers before 1.30 carried it).

Port-forward: the kubelet's WebSocket port-forward protocol (as the official Python client
speaks it) to a pod serving --mb MB over HTTP (busybox httpd), timed from the request to the
last byte, and the same GET through a real ``kubectl port-forward`` (SPDY tunnelled in a
WebSocket); beside them, the same bytes copied over a plain loopback TCP connection in this
process in the same run.

Run: ``python bench/bench_exec.py [--execs 100] [--mb 32] [--timeout 120]``. Prints the
machine's core count and load.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402
import bench_embedded  # noqa: E402
import yaml  # noqa: E402

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: bench-exec
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.36
      command: ["sh", "-c", "mkdir -p /tmp/www && head -c {size} /dev/zero > /tmp/www/big && \\
exec busybox httpd -f -p 8080 -h /tmp/www"]
"""


class Api:
    """devkube's address, token and CA from the kubeconfig ``k8sbridge run`` wrote."""

    def __init__(self, kubeconfig: Path, tmp: Path) -> None:
        doc = yaml.safe_load(kubeconfig.read_text())
        cluster = doc["clusters"][0]["cluster"]
        user = doc["users"][0]["user"]
        self.server = str(cluster["server"]).rstrip("/")
        self.headers = {"Authorization": f"Bearer {user['token']}"} if "token" in user else {}
        self.ssl: ssl.SSLContext | bool = False
        if "certificate-authority-data" in cluster:
            ca = tmp / "ca.crt"
            ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
            self.ssl = ssl.create_default_context(cafile=str(ca))
        elif "certificate-authority" in cluster:
            self.ssl = ssl.create_default_context(cafile=str(cluster["certificate-authority"]))


async def exec_once(http: aiohttp.ClientSession, api: Api) -> tuple[float, int]:
    url = f"{api.server}/api/v1/namespaces/default/pods/bench-exec/exec"
    params = [("command", "true"), ("stdout", "true"), ("stderr", "true")]
    start = time.perf_counter()
    async with http.ws_connect(url, params=params, headers=api.headers, ssl=api.ssl,
                               protocols=("v5.channel.k8s.io", "v4.channel.k8s.io")) as ws:
        status: dict[str, Any] = {}
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY and message.data[:1] == b"\x03":
                status = json.loads(message.data[1:])
    elapsed = time.perf_counter() - start
    return elapsed, 0 if status.get("status") == "Success" else 1


async def forward_once(http: aiohttp.ClientSession, api: Api, size: int) -> float:
    url = f"{api.server}/api/v1/namespaces/default/pods/bench-exec/portforward"
    start = time.perf_counter()
    got = 0
    async with http.ws_connect(url, params=[("ports", "8080")], headers=api.headers,
                               ssl=api.ssl, protocols=("v4.channel.k8s.io",),
                               max_msg_size=0) as ws:
        seen: set[int] = set()
        sent = False
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            channel, data = message.data[0], message.data[1:]
            if channel not in seen:  # the port announcement
                seen.add(channel)
                if seen == {0, 1} and not sent:
                    await ws.send_bytes(b"\x00GET /big HTTP/1.0\r\n\r\n")
                    sent = True
                continue
            if channel == 0:
                got += len(data)
            elif channel == 1:
                raise SystemExit(f"port-forward error: {data.decode(errors='replace')}")
    elapsed = time.perf_counter() - start
    if got < size:
        raise SystemExit(f"port-forward: {got} bytes of {size}")
    return size / elapsed / 1e6


async def loopback_copy(size: int) -> float:
    """The same bytes over a loopback TCP connection in this process: MB/s."""
    payload = b"\0" * (1 << 20)

    async def serve(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        left = size
        while left > 0:
            w.write(payload[:min(left, len(payload))])
            left -= len(payload)
            await w.drain()
        w.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = 0
    while chunk := await reader.read(1 << 20):
        got += len(chunk)
    elapsed = time.perf_counter() - start
    writer.close()
    server.close()
    await server.wait_closed()
    return got / elapsed / 1e6


def kubectl_forward(kubectl: list[str], size: int) -> list[float]:
    """MB/s of three GETs of the big file through a running ``kubectl port-forward``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    proc = subprocess.Popen([*kubectl, "port-forward", "pod/bench-exec", f"{local}:8080"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = []
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "Forwarding from ..."
        for _ in range(3):
            start = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/big", timeout=120) as r:
                got = len(r.read())
            if got != size:
                raise SystemExit(f"kubectl port-forward: {got} bytes of {size}")
            out.append(size / (time.perf_counter() - start) / 1e6)
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--execs", type=int, default=100)
    parser.add_argument("--kubectl-execs", type=int, default=20)
    parser.add_argument("--mb", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    size = args.mb * 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench-exec-") as tmp:
        data_dir = Path(tmp) / "run"
        run = bench_embedded.Run(data_dir=data_dir, extra=[], env={})
        try:
            await run.ready()
            kubeconfig = data_dir / "kubeconfig"
            kubectl = ["kubectl", "--kubeconfig", str(kubeconfig)]
            subprocess.run([*kubectl, "apply", "-f", "-"], input=POD.format(size=size),
                           text=True, check=True, capture_output=True, timeout=60)
            subprocess.run([*kubectl, "wait", "--for=condition=Ready", "pod/bench-exec",
                            f"--timeout={int(args.timeout)}s"], check=True,
                           capture_output=True, timeout=args.timeout + 30)
            api = Api(kubeconfig, Path(tmp))
            async with aiohttp.ClientSession() as http:
                await exec_once(http, api)  # warm: the first session pays for the caches
                times, failures = [], 0
                for _ in range(args.execs):
                    elapsed, failed = await exec_once(http, api)
                    times.append(elapsed)
                    failures += failed
                print(f"exec round trip (WebSocket v5 via the API server, SPDY to the kubelet, "
                      f"`true`), "
                      f"{args.execs} sequential: p50 {_pct(times, 0.5) * 1000:.0f} ms, "
                      f"p99 {_pct(times, 0.99) * 1000:.0f} ms, max {max(times) * 1000:.0f} "
                      f"ms, failures {failures}", flush=True)
                walls = []
                for _ in range(args.kubectl_execs):
                    t0 = time.perf_counter()
                    done = subprocess.run([*kubectl, "exec", "bench-exec", "--", "true"],
                                          capture_output=True, timeout=60)
                    walls.append(time.perf_counter() - t0)
                    if done.returncode != 0:
                        raise SystemExit(f"kubectl exec failed: {done.stderr!r}")
                print(f"`kubectl exec bench-exec -- true` wall time, {args.kubectl_execs} runs: "
                      f"p50 {_pct(walls, 0.5) * 1000:.0f} ms, p99 {_pct(walls, 0.99) * 1000:.0f}"
                      f" ms", flush=True)
                spdy_env = {**os.environ, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
                walls = []
                for _ in range(args.kubectl_execs):
                    t0 = time.perf_counter()
                    done = subprocess.run([*kubectl, "exec", "bench-exec", "--", "true"],
                                          capture_output=True, timeout=60, env=spdy_env)
                    walls.append(time.perf_counter() - t0)
                    if done.returncode != 0:
                        raise SystemExit(f"kubectl exec (SPDY) failed: {done.stderr!r}")
                print(f"the same with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false (SPDY): p50 "
                      f"{_pct(walls, 0.5) * 1000:.0f} ms, p99 {_pct(walls, 0.99) * 1000:.0f} ms",
                      flush=True)
                forwards = [await forward_once(http, api, size) for _ in range(3)]
                viakubectl = kubectl_forward(kubectl, size)
                loops = [await loopback_copy(size) for _ in range(3)]
                print(f"port-forward ({args.mb} MB over HTTP from the pod, WebSocket via the API "
                      f"server): median {statistics.median(forwards):.1f} MB/s "
                      f"(runs {', '.join(f'{f:.1f}' for f in forwards)}); direct loopback "
                      f"copy in this process: median {statistics.median(loops):.0f} MB/s",
                      flush=True)
                print(f"`kubectl port-forward` (SPDY in a WebSocket, tunnelled to the kubelet's "
                      f"SPDY), the same GET: median "
                      f"{statistics.median(viakubectl):.1f} MB/s (runs "
                      f"{', '.join(f'{f:.1f}' for f in viakubectl)})", flush=True)
        finally:
            run.stop()
    print(f"machine: {os.cpu_count()} cores, load {bench_embedded._load()}")


if __name__ == "__main__":
    asyncio.run(main())
