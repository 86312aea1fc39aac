"""Bridge replicas as real processes beside a kernel and devkube process (test and bench code).

Why a harness: the failover tests and ``bench/bench_failover.py`` do the same things — start
the kernel and devkube as ``k8sbridge kernel`` / ``k8sbridge devkube``, start bridge replicas
(``k8sbridge run --master --kubeconfig`` with ``leader.enabled``), read who holds the leader
Lease, which tasks are live at the master and which pods run — and a partition needs a proxy
between one replica and the API server that can stop answering (``BlackholeProxy``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import filesystems
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
LIVE = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING")


def eventually_(probe: Any, *, timeout: float = 60, what: str = "", every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except AssertionError as e:
            last = e
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


def spawn(argv: list[str], log: Path, env_extra: dict[str, str] | None = None
          ) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
    env["PYTHONPATH"] = str(REPO)
    env["K8SBRIDGE_MESOS_AGENT_POLL_SECONDS"] = "1"
    env["K8SBRIDGE_SCHEDULER_CYCLE_SECONDS"] = "0.05"
    env["K8SBRIDGE_SCHEDULER_IMAGE_MODE"] = "none"  # the agents' registry is empty
    env["K8SBRIDGE_SCHEDULER_POD_NETWORK"] = ""  # the agents have no CNI network
    env.update(env_extra or {})
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "k8sbridge", *argv], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, wait: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return int(proc.returncode)


@dataclasses.dataclass
class Replica:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def leads(self) -> bool:
        return "k8sbridge is ready (leader)" in self.output()

    def kubelet_port(self) -> int:
        """The port of this replica's kubelet API (from its log)."""
        marker = "kubelet API listening on https://"
        for line in self.output().splitlines():
            if marker in line:
                return int(line.split(marker, 1)[1].split()[0].rsplit(":", 1)[1])
        raise AssertionError(f"{self.name}: no kubelet API yet")

    def kubelet_get(self, path: str) -> tuple[int, str]:
        """GET on this replica's kubelet API (anonymous; its certificate is self-signed)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        url = f"https://127.0.0.1:{self.kubelet_port()}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10, context=context) as reply:
                return int(reply.status), reply.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return int(e.code), e.read().decode(errors="replace")


class Cluster:
    """A kernel (one agent) and devkube as processes; bridge replicas started on demand."""

    def __init__(self, tmp: Path, *, cpus: int = 8) -> None:
        self.tmp = tmp
        kport, aport = free_port(), free_port()
        self.master = f"http://127.0.0.1:{kport}"
        self.api_port = aport
        self.kubeconfig = tmp / "kubeconfig"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.replicas: list[Replica] = []
        self.procs.append(spawn(
            ["kernel", "--port", str(kport), "--work-dir", str(tmp / "kernel"), "--agents", "1",
             "--agent-resources", f"cpus:{cpus};mem:8192;disk:20000;ports:[31000-32000]",
             "--agent-isolation", filesystems.FULL_ISOLATION,
             "--agent-image-providers", "docker",
             "--agent-docker-registry", str(tmp / "images")], tmp / "kernel.log"))
        self.procs.append(spawn(
            ["devkube", "--port", str(aport), "--data-dir", str(tmp / "dk"),
             "--kubeconfig", str(self.kubeconfig)], tmp / "devkube.log"))

        def up() -> bool:
            try:
                with urllib.request.urlopen(self.master + "/health", timeout=2):
                    pass
            except OSError:
                return False
            return self.kubeconfig.exists()

        eventually_(up, what="kernel and devkube up", timeout=120)

    def start_replica(self, name: str, *, timing: tuple[int, float, float],
                      kubeconfig: Path | None = None, lease_name: str = "k8sbridge-leader"
                      ) -> Replica:
        lease, deadline, retry = timing
        env = {
            "K8SBRIDGE_KUBELET_ANONYMOUS": "true",  # tests read the kubelet API without certs
            "K8SBRIDGE_LEADER_ENABLED": "true",
            "K8SBRIDGE_LEADER_IDENTITY": name,
            "K8SBRIDGE_LEADER_LEASE_NAME": lease_name,
            "K8SBRIDGE_LEADER_LEASE_DURATION_SECONDS": str(lease),
            "K8SBRIDGE_LEADER_RENEW_DEADLINE_SECONDS": str(deadline),
            "K8SBRIDGE_LEADER_RETRY_PERIOD_SECONDS": str(retry),
        }
        log = self.tmp / f"bridge-{name}.log"
        proc = spawn(["run", "--master", self.master, "--kubeconfig",
                      str(kubeconfig or self.kubeconfig), "--kubelet-port", "0",
                      "--scheduler-name", "default-scheduler"], log, env)
        replica = Replica(name=name, proc=proc, log=log)
        self.replicas.append(replica)
        return replica

    def kubectl(self, *args: str) -> str:
        done = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def lease(self) -> dict[str, Any]:
        """The leader Lease's spec ({} when there is none yet)."""
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), "-n", "k8sbridge", "get",
             "lease", "k8sbridge-leader", "-o", "json"],
            capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            return {}
        spec: dict[str, Any] = json.loads(done.stdout)["spec"]
        return spec

    def holder(self) -> str | None:
        """The leader Lease's holderIdentity (None: no Lease yet)."""
        spec = self.lease()
        return str(spec.get("holderIdentity") or "") if spec else None

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.master + "/state", timeout=10) as reply:
            state: dict[str, Any] = json.loads(reply.read())
            return state

    def frameworks(self) -> list[dict[str, Any]]:
        return [f for f in self.state()["frameworks"] if f["name"] == "k8sbridge"]

    def live_tasks(self) -> dict[str, str]:
        """task id → pod uid of every live task of the framework."""
        return {t["id"]: t["id"].split(".")[0] for fw in self.frameworks()
                for t in fw["tasks"] if t["state"] in LIVE}

    def pods(self, label: str = "app=web") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(
            self.kubectl("get", "pods", "-l", label, "-o", "json"))["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def running(self, count: int, label: str = "app=web") -> bool:
        pods = self.pods(label)
        return len(pods) == count and all(p["status"].get("phase") == "Running"
                                          for p in pods)

    def tasks_per_pod(self) -> collections.Counter[str]:
        return collections.Counter(self.live_tasks().values())

    def close(self) -> None:
        for replica in reversed(self.replicas):
            stop(replica.proc)
        for proc in reversed(self.procs):
            stop(proc)


@contextlib.contextmanager
def cluster(tmp: Path, *, cpus: int = 8) -> Iterator[Cluster]:
    c = Cluster(tmp, cpus=cpus)
    try:
        yield c
    finally:
        c.close()


class BlackholeProxy:
    """A TCP proxy to ``upstream`` that, once ``block()``ed, stops answering: bytes from
    either side are read and dropped, connections stay open, new ones are accepted and never
    served (a partition, as a dead route: no reset, no FIN)."""

    def __init__(self, *, upstream_port: int) -> None:
        self._upstream = ("127.0.0.1", upstream_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self.blocked = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def block(self) -> None:
        self.blocked.set()

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._sockets.append(client)
            if self.blocked.is_set():
                threading.Thread(target=self._drain, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()
                continue
            self._sockets.append(upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _drain(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                if not data:
                    if not self.blocked.is_set():
                        dst.shutdown(socket.SHUT_WR)
                    return
                if not self.blocked.is_set():
                    dst.sendall(data)


def proxied_kubeconfig(kubeconfig: Path, *, api_port: int, proxy_port: int, into: Path) -> Path:
    """A copy of ``kubeconfig`` whose server is the proxy (same host: the certificate fits)."""
    text = kubeconfig.read_text()
    assert f":{api_port}" in text, text
    into.write_text(text.replace(f":{api_port}", f":{proxy_port}"))
    return into
