"""`k8sbridge run`: documented flags, bad settings are a clear error (exit 2), and the embedded
default as a user runs it: three child processes (kernel, devkube, bridge) supervised by the
command — Ctrl-C stops them in order, a restart on the same data dir resumes, a child that dies
is restarted with back-off while the others and the pods' task processes keep running, and a
SIGKILLed `k8sbridge run` leaves no process behind.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from k8sbridge import embedded, supervise
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "k8sbridge", "run", *args], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=60)


def test_help_documents_both_modes() -> None:
    done = _run("--help")
    assert done.returncode == 0
    for flag in ("--data-dir", "--kernel-port", "--api-port", "--agents", "--master",
                 "--kubeconfig", "--config", "--role", "--scheduler-name", "--kubelet-port",
                 "--agent-resources", "--kernel-auth"):
        assert flag in done.stdout
    assert "K8SBRIDGE_" in done.stdout
    assert "logs/" in done.stdout  # where the children's logs go


def test_bad_settings_exit_2_with_the_setting_named(tmp_path: Path) -> None:
    done = _run("--data-dir", str(tmp_path), env={"K8SBRIDGE_KUBELET_PORT": "abc"})
    assert done.returncode == 2
    assert "kubelet.port" in done.stderr and "Traceback" not in done.stderr
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("mesos:\n  rolez: [a]\n")
    done = _run("--config", str(cfg))
    assert done.returncode == 2 and "mesos.rolez" in done.stderr


# --------------------------------------------------------------------------------------------
# The embedded default as processes


class Running:
    """``k8sbridge run --data-dir DIR`` on free ports, its output collected line by line."""

    def __init__(self, data_dir: Path, *, kernel_port: int | None = None) -> None:
        self.data_dir = data_dir
        self.kernel_port = kernel_port or free_port()
        self.api_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
        env["K8SBRIDGE_MESOS_AGENT_POLL_SECONDS"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "k8sbridge", "run", "--data-dir", str(data_dir),
             "--kernel-port", str(self.kernel_port), "--api-port", str(self.api_port),
             "--kubelet-port", "0"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, *, timeout: float = 90) -> re.Match[str]:
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

    def ready(self) -> dict[str, int]:
        """Wait until ready; the children's pids from the 'processes:' line."""
        self.wait_for(r"^k8sbridge is ready; Ctrl-C stops everything")
        line = self.wait_for(r"^processes: (.*); logs in (.*)/$")
        pids = {name: int(pid) for name, pid in re.findall(r"(\w+) pid (\d+)", line[1])}
        assert set(pids) == set(self.stop_order()), line[0]
        assert Path(line[2]) == self.data_dir / "logs"
        return pids

    def stop_order(self) -> list[str]:
        """The children, the last started first; the service proxy runs (in the cluster
        network's namespace) only when the cluster network was made (root, CNI plugins)."""
        proxy = ["proxy"] if "\nservice proxy: " in self.output else []
        dns = ["dns"] if re.search(r"\bdns pid \d+", self.output) else []
        return ["bridge", *proxy, *dns, "devkube", "kernel"]

    def exit_code(self, timeout: float = 90) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"k8sbridge run did not exit:\n{self.output[-4000:]}") from e
        self._reader.join(10)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _alive(pid: int) -> bool:
    """A process that still runs (a zombie waiting for its reaper has stopped running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _processes_mentioning(text: str) -> list[str]:
    """Running processes whose command line or working directory mentions ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not _alive(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if text in cmdline or text in cwd:
            found.append(f"{entry.name}: {cmdline}")
    return found


def _wait_gone(pids: list[int], *, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


def _kubectl(data_dir: Path, *args: str) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", str(data_dir / "kubeconfig"), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_three_processes_ctrl_c_stops_them_in_order_and_a_restart_resumes(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "run"
    run = Running(data_dir)
    try:
        pids = run.ready()
        for name, pid in pids.items():  # children of the command, one per part
            assert _parent(pid) == run.proc.pid, name
        assert "kernel" in Path(f"/proc/{pids['kernel']}/cmdline").read_text()
        assert "devkube" in Path(f"/proc/{pids['devkube']}/cmdline").read_text()
        framework = run.wait_for(r"^\[bridge\] k8sbridge is ready: framework (\S+),")[1]
        assert f"kubectl --kubeconfig {data_dir / 'kubeconfig'} get nodes" in run.output
        assert run.wait_for(r"^kernel \(Mesos v1 API\): (\S+)")[1] == \
            f"https://127.0.0.1:{run.kernel_port}"  # TLS on by default, with a CA of its own
        assert f"--cacert {data_dir / 'kernel-pki' / 'ca.crt'} " in run.output
        for name in ("kernel", "devkube", "bridge"):  # labelled on the terminal, and in files
            assert f"[{name}] " in run.output
            assert (data_dir / "logs" / f"{name}.log").stat().st_size > 0
        nodes = _kubectl(data_dir, "get", "nodes", "-L", "topology.kubernetes.io/zone,rack")
        assert len(nodes.splitlines()) == 4, nodes  # three distinct agents, three Nodes
        assert "z2" in nodes and "r3" in nodes

        run.proc.send_signal(signal.SIGINT)
        assert run.exit_code() == 0, run.output[-4000:]
        order = [m[1] for m in re.finditer(r"k8sbridge\.supervise: (\w+) stopped \(exit code 0\)",
                                           run.output)]
        assert order == run.stop_order(), run.output[-4000:]
        assert _wait_gone(list(pids.values()), timeout=10) == []
        assert "Traceback" not in run.output
    finally:
        run.close()

    again = Running(data_dir)
    try:
        again.ready()
        # Same framework (its id is kept in devkube's SQLite, the kernel's registry knows it).
        assert again.wait_for(r"^\[bridge\] k8sbridge is ready: framework (\S+),")[1] == framework
        again.proc.send_signal(signal.SIGTERM)
        assert again.exit_code() == 0, again.output[-4000:]
    finally:
        again.close()
    assert (data_dir / "logs" / "kernel.log").read_text().count("==== ") == 2  # appended


def operator_credentials(data_dir: Path) -> tuple[str, str]:
    """The 'operator' principal and secret `k8sbridge run` generated in ``data_dir``."""
    doc = json.loads((data_dir / "credentials.json").read_text())
    [secret] = [c["secret"] for c in doc["credentials"] if c["principal"] == "operator"]
    return "operator", secret


def _task_processes(data_dir: Path, command: str) -> list[int]:
    """Pids of the pods' task processes running ``command`` in a sandbox under ``data_dir``."""
    return [int(line.split(":", 1)[0]) for line in _processes_mentioning(str(data_dir))
            if command in line.split(":", 1)[1]]


def _wait_pod_running(data_dir: Path, name: str, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        done = subprocess.run(["kubectl", "--kubeconfig", str(data_dir / "kubeconfig"), "get",
                               "pod", name, "-o", "jsonpath={.status.phase}"],
                              capture_output=True, text=True, timeout=30)
        last = done.stdout + done.stderr
        if done.returncode == 0 and done.stdout == "Running":
            return
        time.sleep(0.3)
    raise AssertionError(f"pod {name} is not Running after {timeout}s: {last}")


SECOND_POD = """
apiVersion: v1
kind: Pod
metadata: {name: after-the-crash}
spec:
  containers:
    - name: main
      image: busybox:1.36
      command: ["sh", "-c", "exec sleep 3599"]
      resources: {requests: {cpu: 100m, memory: 16Mi}}
"""


def test_a_crashed_child_is_restarted_and_the_pods_keep_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "run"
    run = Running(data_dir)
    try:
        pids = run.ready()
        _kubectl(data_dir, "apply", "-f", str(REPO / "manifests" / "examples" / "pod.yaml"))
        _wait_pod_running(data_dir, "hello")
        tasks = _task_processes(data_dir, "sleep 3600")
        assert len(tasks) == 1, _processes_mentioning(str(data_dir))

        for n, victim in enumerate(("devkube", "bridge"), start=1):
            os.kill(pids[victim], signal.SIGKILL)
            run.wait_for(rf"k8sbridge run: {victim} \(pid {pids[victim]}\) exited unexpectedly "
                         r"with signal SIGKILL after [\d.]+s; restarting it in 1s \(crash 1 in "
                         r"a row; the others keep running\)")
            back = run.wait_for(rf"k8sbridge run: {victim} is back \(pid (\d+), start 2\)")
            pids[victim] = int(back[1])
            assert _parent(pids[victim]) == run.proc.pid
            # Nothing else was touched: the other children and the pod's one task process.
            assert all(_alive(pid) for pid in pids.values()), pids
            assert run.proc.poll() is None
            assert _task_processes(data_dir, "sleep 3600") == tasks, n
            _wait_pod_running(data_dir, "hello")

        # The cluster works again: a new pod is scheduled and runs, the old one still runs once.
        subprocess.run(["kubectl", "--kubeconfig", str(data_dir / "kubeconfig"), "apply",
                        "-f", "-"], input=SECOND_POD, text=True, check=True,
                       capture_output=True, timeout=60)
        _wait_pod_running(data_dir, "after-the-crash")
        assert len(_task_processes(data_dir, "sleep 3599")) == 1
        assert _task_processes(data_dir, "sleep 3600") == tasks
        pods = _kubectl(data_dir, "get", "pods")
        assert "hello" in pods and "after-the-crash" in pods, pods

        run.proc.send_signal(signal.SIGINT)
        assert run.exit_code() == 0, run.output[-4000:]
        order = [m[1] for m in re.finditer(r"k8sbridge\.supervise: (\w+) stopped \(exit code 0\)",
                                           run.output)]
        assert order == run.stop_order(), run.output[-4000:]
        assert _wait_gone(list(pids.values()) + tasks, timeout=30) == []
    finally:
        run.close()


def test_a_child_that_cannot_start_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = Running(tmp_path / "run", kernel_port=taken.getsockname()[1])
        try:
            assert run.exit_code() == 1, run.output[-4000:]
            assert re.search(r"k8sbridge run: kernel \(pid \d+\) exited unexpectedly with exit "
                             r"code 1; its log: .*kernel\.log", run.output), run.output[-4000:]
        finally:
            run.close()
    assert "Traceback" not in run.output


def test_sigkill_of_the_command_leaves_no_process_behind(tmp_path: Path) -> None:
    data_dir = tmp_path / "run"
    run = Running(data_dir)
    try:
        pids = run.ready()
        _kubectl(data_dir, "apply", "-f", str(REPO / "manifests" / "examples" / "pod.yaml"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the pod's task runs in the agent's sandbox
            if "Running" in _kubectl(data_dir, "get", "pod", "hello"):
                break
            time.sleep(0.3)
        else:
            raise AssertionError("pod hello did not reach Running")
        assert len(_processes_mentioning(str(data_dir))) >= 4  # 3 children, daemon, task
        run.proc.kill()
        assert run.exit_code() == -signal.SIGKILL
        assert _wait_gone(list(pids.values()), timeout=30) == [], run.output[-3000:]
        deadline = time.monotonic() + 30  # the kernel killed its task; its daemon then exits
        while time.monotonic() < deadline and _processes_mentioning(str(data_dir)):
            time.sleep(0.3)
        assert _processes_mentioning(str(data_dir)) == []
        # The children kept logging after their parent was gone: the kernel's stop is there.
        assert "stopping: killing tasks" in (data_dir / "logs" / "kernel.log").read_text()
        # Nothing could remove the cluster network's namespace: the next run there does.
        stale = (data_dir / embedded.CLUSTER_NETNS_FILE).read_text().strip()
        assert stale in _namespaces()
        again = Running(data_dir)
        try:
            again.ready()
            assert stale not in _namespaces()
        finally:
            again.close()
        assert not (data_dir / embedded.CLUSTER_NETNS_FILE).exists()
    finally:
        run.close()


def _namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------
# The supervisor's parts on small children (python -c): labelling, readiness, bounded stop


async def test_a_child_is_labelled_logged_and_stopped_within_its_grace(tmp_path: Path) -> None:
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"  # stubborn: needs SIGKILL
            "print('hello', flush=True); print('up and ready', flush=True)\n"
            "sys.stderr.write('no newline at the end'); sys.stderr.flush()\n"
            "time.sleep(60)\n")
    echo = io.BytesIO()
    group = supervise.Group(echo=echo)
    child = await group.spawn(supervise.ChildSpec(
        name="toy", argv=(sys.executable, "-c", code), log_file=tmp_path / "logs" / "toy.log",
        ready=re.compile(r"^up and (?P<what>\w+)"), stop_grace_seconds=1.0,
    ))
    match = await group.wait_ready(child, timeout=30)
    assert match["what"] == "ready"
    started = time.monotonic()
    await group.stop()
    assert time.monotonic() - started < 10
    assert child.returncode == -signal.SIGKILL
    assert supervise.describe_exit(child.returncode) == "signal SIGKILL"
    shown = echo.getvalue().decode()
    assert "[toy] hello\n[toy] up and ready\n" in shown
    assert "[toy] no newline at the end\n" in shown
    log = (tmp_path / "logs" / "toy.log").read_text()
    assert log.startswith("==== ") and "hello\nup and ready\nno newline at the end" in log


async def test_a_child_that_never_says_ready_is_a_named_error(tmp_path: Path) -> None:
    group = supervise.Group(echo=None)
    child = await group.spawn(supervise.ChildSpec(
        name="mute", argv=(sys.executable, "-c", "import time; time.sleep(60)"),
        log_file=tmp_path / "mute.log", ready=re.compile("never"), stop_grace_seconds=5.0,
    ))
    try:
        with pytest.raises(supervise.ChildError, match=r"mute \(pid \d+\) did not become ready"):
            await group.wait_ready(child, timeout=1.0)
    finally:
        await group.stop()
    assert child.returncode == -signal.SIGTERM


async def test_a_child_that_keeps_crashing_is_restarted_with_doubling_back_off(
    tmp_path: Path,
) -> None:
    group = supervise.Group(echo=None)
    steady = await group.spawn(supervise.ChildSpec(
        name="steady", argv=(sys.executable, "-c", "print('up', flush=True)\n"
                             "import time; time.sleep(60)"),
        log_file=tmp_path / "steady.log", ready=re.compile("^up"), stop_grace_seconds=5.0,
    ))
    crashy = await group.spawn(supervise.ChildSpec(
        name="crashy", argv=(sys.executable, "-c", "print('up', flush=True); exit(3)"),
        log_file=tmp_path / "crashy.log", ready=re.compile("^up"), stop_grace_seconds=5.0,
    ))
    await group.wait_ready(steady, timeout=30)
    steady_pid = steady.pid
    said: list[str] = []
    stop = asyncio.Event()
    policy = supervise.RestartPolicy(initial_seconds=0.2, max_seconds=0.8,
                                     reset_after_seconds=60, ready_timeout_seconds=30)
    keeper = asyncio.create_task(group.keep_running(stop=stop, policy=policy, say=said.append))
    try:
        async with asyncio.timeout(60):
            while sum("exited unexpectedly" in m for m in said) < 5:
                await asyncio.sleep(0.05)
        stop.set()
        await keeper
    finally:
        stop.set()
        await group.stop()
    crashes = [m for m in said if m.startswith("crashy")]
    delays = [float(re.search(r"restarting it in ([\d.]+)s", m)[1])  # type: ignore[index]
              for m in crashes if "exited unexpectedly" in m]
    assert delays[:5] == [0.2, 0.4, 0.8, 0.8, 0.8], said
    assert all("with exit code 3" in m and "crashy.log" in m for m in crashes
               if "exited unexpectedly" in m)
    assert crashy.starts >= 5
    assert steady.pid == steady_pid and steady.starts == 1  # the other child was left alone
    assert not any(m.startswith("steady") for m in said)
    assert steady.returncode == -signal.SIGTERM  # stopped by the group's stop, not before


async def test_a_child_that_stayed_up_a_while_starts_its_back_off_again(tmp_path: Path) -> None:
    group = supervise.Group(echo=None)
    child = await group.spawn(supervise.ChildSpec(
        name="tired", argv=(sys.executable, "-c", "print('up', flush=True)\n"
                            "import time; time.sleep(0.8); exit(4)"),
        log_file=tmp_path / "tired.log", ready=re.compile("^up"), stop_grace_seconds=5.0,
    ))
    said: list[str] = []
    stop = asyncio.Event()
    policy = supervise.RestartPolicy(initial_seconds=0.1, max_seconds=5.0,
                                     reset_after_seconds=0.5, ready_timeout_seconds=30)
    keeper = asyncio.create_task(group.keep_running(stop=stop, policy=policy, say=said.append))
    try:
        async with asyncio.timeout(60):
            while sum("exited unexpectedly" in m for m in said) < 3:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await keeper
        await group.stop()
    crashes = [m for m in said if "exited unexpectedly" in m]
    # Each run lasted longer than reset_after_seconds: never a second crash "in a row".
    assert all("with exit code 4" in m and "restarting it in 0.1s (crash 1 in a row" in m
               for m in crashes), said
    assert any(m.startswith("tired is back (pid") for m in said), said
    assert child.starts >= 3


async def test_a_childs_log_rotates_by_size_and_the_terminal_keeps_following(
    tmp_path: Path,
) -> None:
    # 40 lines of 100 bytes a tenth of a second apart, a 1,000-byte limit, 2 copies kept: the
    # log is rotated several times while the child holds it open and appends.
    code = ("import time\n"
            "for i in range(40):\n"
            "    print(f'line {i:03d} ' + 'x' * 90, flush=True); time.sleep(0.1)\n"
            "print('done', flush=True); time.sleep(60)\n")
    echo = io.BytesIO()
    group = supervise.Group(echo=echo, rotation=supervise.LogRotation(max_bytes=1000, keep=2))
    log = tmp_path / "logs" / "toy.log"
    child = await group.spawn(supervise.ChildSpec(
        name="toy", argv=(sys.executable, "-c", code), log_file=log,
        ready=re.compile(r"^done$"), stop_grace_seconds=1.0))
    await group.wait_ready(child, timeout=60)
    await group.stop()
    copies = sorted(p.name for p in log.parent.iterdir())
    assert copies == ["toy.log", "toy.log.1", "toy.log.2"]  # no third copy
    for path in (log, log.with_name("toy.log.1"), log.with_name("toy.log.2")):
        text = path.read_bytes()
        assert len(text) < 1000 + 200 and b"\x00" not in text  # no hole left by the truncate
    newest = log.read_text() + log.with_name("toy.log.1").read_text()
    assert "done" in log.read_text() and "line 039" in newest
    shown = echo.getvalue().decode()
    assert "[toy] line 000" in shown and "[toy] done" in shown  # followed across rotations
