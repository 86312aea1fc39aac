"""The clusters the chaos tests do faults to, as real processes on this host.

Why two shapes: ``Supervised`` is ``k8sbridge run`` exactly as a user starts it (a supervisor
with three children: the kernel -- master and agents in one process --, devkube and the
bridge), so a ``kill -9`` of a child is answered by the supervisor's restart. An agent process
of its own exists only when the kernel's parts run apart (as Mesos runs them), so
``Separate`` starts ``k8sbridge kernel master``, N ``k8sbridge kernel agent`` processes,
``k8sbridge devkube`` and the bridge (``k8sbridge run --master --kubeconfig``) one by one.

Either way the harness cleans up what the product leaves behind (``sweep``): task processes
and container daemons that outlive their cluster are reported, then killed, so one failing
test does not leave hundreds of ``sleep`` processes on a shared machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from k8sbridge.kernel.agent import filesystems
from tests.conftest import free_port
from tests.e2e.chaos import Kube, alive, processes_mentioning, task_processes

__all__ = ["Part", "Separate", "Supervised", "sweep"]

REPO = Path(__file__).resolve().parents[2]


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _children(parent: int) -> dict[str, int]:
    """The supervisor's children by role (kernel, devkube, bridge), from /proc."""
    out: dict[str, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != parent or not alive(int(entry.name)):
            continue
        words = [a.decode(errors="replace") for a in argv]
        for role, word in (("kernel", "kernel"), ("devkube", "devkube"), ("bridge", "run")):
            if word in words:
                out[role] = int(entry.name)
    return out


def sweep(*, token: str, data_dir: Path) -> list[int]:
    """Kill (SIGKILL) the chaos run's task processes and every process whose command line
    names ``data_dir`` (container daemons); returns the pids that were still there."""
    left = [p.pid for p in task_processes(token)] + processes_mentioning(str(data_dir))
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


class Supervised:
    """``k8sbridge run --data-dir DIR`` on free ports; its output collected line by line."""

    def __init__(self, data_dir: Path, *, token: str, agents: int | None = None,
                 agent_resources: str | None = None, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.token = token
        self.kernel_port, self.api_port = free_port(), free_port()
        argv = [sys.executable, "-m", "k8sbridge", "--log-level", "INFO", "run",
                "--data-dir", str(data_dir), "--kernel-port", str(self.kernel_port),
                "--api-port", str(self.api_port), "--kubelet-port", "0"]
        if agents is not None:
            argv += ["--agents", str(agents)]
        if agent_resources is not None:
            argv += ["--agent-resources", agent_resources]
        self.proc = subprocess.Popen(argv, cwd=REPO, env=_env(env), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        self.kubeconfig = data_dir / "kubeconfig"
        self.master = f"https://127.0.0.1:{self.kernel_port}"  # TLS on by default
        self.ca_file = data_dir / "kernel-pki" / "ca.crt"
        self._kube: Kube | None = None

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, *, timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output, re.MULTILINE)
            if match:
                return match
            if self.proc.poll() is not None:
                self._reader.join(5)
                match = re.search(pattern, self.output, re.MULTILINE)
                if match:
                    return match
                raise AssertionError(f"k8sbridge run exited ({self.proc.returncode}) before "
                                     f"{pattern!r}:\n{self.output[-4000:]}")
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout}s:\n{self.output[-4000:]}")

    def ready(self) -> Supervised:
        self.wait_for(r"^k8sbridge is ready; Ctrl-C stops everything")
        return self

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(self.kubeconfig)
        return self._kube

    @property
    def operator(self) -> tuple[str, str]:
        creds = json.loads((self.data_dir / "credentials.json").read_text())["credentials"]
        [secret] = [c["secret"] for c in creds if c["principal"] == "operator"]
        return ("operator", str(secret))

    def log(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def children(self) -> dict[str, int]:
        return _children(self.proc.pid)

    def kill(self, name: str) -> int:
        """SIGKILL the child ``name`` (kernel, devkube, bridge); its pid."""
        pid = self.children()[name]
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_back(self, name: str, old: int, *, timeout: float = 120) -> int:
        """The pid of ``name`` once the supervisor says it is back after ``old`` died."""
        match = self.wait_for(rf"{name} is back \(pid (?!{old}\b)(\d+)", timeout=timeout)
        return int(match[1])

    def stop(self, *, timeout: float = 120) -> int | None:
        """Ctrl-C; the exit code (None: it did not stop in time and was killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return None
        self._reader.join(10)
        return self.proc.returncode

    def close(self) -> list[int]:
        """Stop (if still running) and sweep; the pids that had to be swept."""
        self.stop()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return sweep(token=self.token, data_dir=self.data_dir)


class Part:
    """One process of a ``Separate`` cluster, its output appended to ``log``."""

    def __init__(self, name: str, argv: list[str], *, log: Path, ready: str,
                 env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.log, self.ready_pattern = name, argv, log, ready
        self.env = _env(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self) -> Part:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self._offset = out.tell()
            self.proc = subprocess.Popen([sys.executable, "-m", "k8sbridge", *self.argv],
                                         cwd=REPO, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)
        return self

    def text(self) -> str:
        with self.log.open("rb") as f:
            f.seek(self._offset)
            return f.read().decode(errors="replace")

    def wait_ready(self, *, timeout: float = 120) -> re.Match[str]:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(self.ready_pattern, self.text(), re.MULTILINE)
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready ({self.proc.poll()}):\n"
                             f"{self.text()[-4000:]}")

    def kill(self) -> int:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        return self.proc.pid

    def stop(self, *, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Separate:
    """A master, ``agents`` agent processes (on 127.0.0.1, 127.0.0.2, ...), devkube and the
    bridge as separate processes under ``base``.

    ``master_flags`` go to ``k8sbridge kernel master`` (e.g. quick agent pings, credentials,
    ACLs); ``node_grace_seconds`` to devkube's node lifecycle controller; ``bridge_env`` to the
    bridge (``K8SBRIDGE_*`` settings)."""

    # room for 300 chaos pods each (a pod also holds the DEFAULT executor's 0.1 cpus, 32 MB)
    AGENT_RESOURCES = "cpus:40;mem:20480;disk:100000;ports:[31000-32000]"

    def __init__(self, base: Path, *, token: str, agents: int = 2,
                 master_flags: tuple[str, ...] = (), node_grace_seconds: float = 50.0,
                 bridge_env: dict[str, str] | None = None) -> None:
        self.base, self.token = base, token
        self.kernel_port, self.api_port = free_port(), free_port()
        self.master = f"http://127.0.0.1:{self.kernel_port}"
        self.kubeconfig = base / "kubeconfig"
        logs = base / "logs"
        self.master_part = Part("master", [
            "--log-level", "INFO", "kernel", "master", "--port", str(self.kernel_port),
            "--work-dir", str(base / "kernel"), *master_flags,
        ], log=logs / "master.log", ready=r"^master: (\S+)")
        self.agents = [Part(f"agent-{i}", [
            "--log-level", "INFO", "kernel", "agent", "--master", f"127.0.0.1:{self.kernel_port}",
            "--host", f"127.0.0.{i + 1}", "--work-dir", str(base / f"agent-{i}"),
            "--resources", self.AGENT_RESOURCES,
            # isolated as `k8sbridge run`'s agents (pods' volumes, pod files, tokens need it)
            "--isolation", filesystems.FULL_ISOLATION, "--image_providers", "docker",
            "--docker_registry", str(base / "images"),
        ], log=logs / f"agent-{i}.log", ready=r"^agent: http://\S+\s+id (\S+)")
            for i in range(agents)]
        self.devkube = Part("devkube", [
            "--log-level", "INFO", "devkube", "--port", str(self.api_port),
            "--data-dir", str(base / "devkube"), "--kubeconfig", str(self.kubeconfig),
            "--node-grace-seconds", f"{node_grace_seconds:g}",
        ], log=logs / "devkube.log", ready=r"^devkube serving ")
        env = {"K8SBRIDGE_SCHEDULER_IMAGE_MODE": "none", "K8SBRIDGE_KUBELET_MAX_PODS": "1000",
               "K8SBRIDGE_SCHEDULER_POD_NETWORK": ""}  # the agents have no CNI network
        env.update(bridge_env or {})
        self.bridge = Part("bridge", [
            "--log-level", "INFO", "run", "--master", self.master,
            "--kubeconfig", str(self.kubeconfig), "--kubelet-port", "0",
            "--kubelet-bind", "127.0.0.1", "--scheduler-name", "default-scheduler",
        ], log=logs / "bridge.log", ready=r"k8sbridge is ready: framework (\S+),", env=env)
        self.framework = ""
        self._kube: Kube | None = None

    @property
    def parts(self) -> list[Part]:
        return [self.master_part, *self.agents, self.devkube, self.bridge]

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(self.kubeconfig)
        return self._kube

    def start(self) -> Separate:
        self.master_part.start()
        self.devkube.start()
        self.master_part.wait_ready()
        for agent in self.agents:
            agent.start()
        for agent in self.agents:
            agent.wait_ready()
        self.devkube.wait_ready()
        self.bridge.start()
        self.framework = self.bridge.wait_ready()[1]
        return self

    def close(self) -> list[int]:
        """Stop every part (the bridge first, the master last) and sweep."""
        for part in reversed(self.parts):
            part.stop()
        return sweep(token=self.token, data_dir=self.base)
