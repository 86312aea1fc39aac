"""`kubectl exec`, `cp`, `attach` and port-forward through the API server's proxy to the
bridge's kubelet API, which runs a nested container session on the pod's agent. Each kubectl
on the machine is used (the pinned one first, then the system's older one), and the older one
once more with WebSockets turned off (``spdy:``): its SPDY/3.1 upgrade goes through devkube to
the kubelet as it went through API servers before 1.30. With WebSockets, devkube translates
exec/attach to SPDY towards the kubelet and tunnels port-forward's SPDY, as kube-apiserver
>= 1.31 does."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Target, eventually

pytestmark = pytest.mark.e2e

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.36
      command: ["sh", "-c", "echo hello > /tmp/greeting; echo started; \
while true; do echo tick; sleep 0.5; done"]
      env:
        - name: GREETING
          value: from-the-pod
"""


def _kubectls() -> list[str]:
    """The kubectl on PATH (the pinned one) and the system's, when they differ."""
    found: dict[str, str] = {}
    for candidate in (shutil.which("kubectl"), "/usr/bin/kubectl", "/usr/local/bin/kubectl"):
        if candidate and os.path.exists(candidate):
            version = subprocess.run([candidate, "version", "--client"], capture_output=True,
                                     text=True, timeout=30).stdout.split("\n")[0]
            found.setdefault(version, candidate)
    return list(found.values())


SPDY = "spdy:"
KUBECTLS = [*_kubectls(), SPDY + _kubectls()[-1]]


def _resolve(kubectl: str) -> tuple[str, dict[str, str]]:
    """(the kubectl, its environment): ``spdy:`` turns its WebSocket clients off."""
    env = dict(os.environ)
    if kubectl.startswith(SPDY):
        env["KUBECTL_REMOTE_COMMAND_WEBSOCKETS"] = "false"
        env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = "false"
        return kubectl[len(SPDY):], env
    return kubectl, env


@pytest.fixture(scope="module")
def shell_pod(target: Target) -> Target:
    subprocess.run(["kubectl", "--kubeconfig", str(target.kubeconfig), "apply", "-f", "-"],
                   input=POD, text=True, check=True, capture_output=True, timeout=60)
    target.kubectl("wait", "--for=condition=Ready", "pod/shell", "--timeout=60s", timeout=90)
    eventually(lambda: "started" in target.kubectl("logs", "shell"), what="the pod's output")
    return target


def _run(kubectl: str, target: Target, *args: str, stdin: str | bytes | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    path, env = _resolve(kubectl)
    return subprocess.run([path, "--kubeconfig", str(target.kubeconfig), *args],
                          input=data, capture_output=True, timeout=timeout, env=env)


@pytest.mark.parametrize("kubectl", KUBECTLS)
def test_exec_returns_output_and_the_commands_exit_status(shell_pod: Target,
                                                           kubectl: str) -> None:
    done = _run(kubectl, shell_pod, "exec", "shell", "--", "sh", "-c",
                "cat /tmp/greeting; echo $GREETING; echo oops >&2; exit 3")
    assert done.returncode == 3, done.stderr
    assert done.stdout == b"hello\nfrom-the-pod\n"
    assert b"oops" in done.stderr
    ok = _run(kubectl, shell_pod, "exec", "shell", "--", "true")
    assert ok.returncode == 0 and ok.stdout == b"", ok.stderr
    missing = _run(kubectl, shell_pod, "exec", "shell", "--", "no-such-command")
    assert missing.returncode in (126, 127), missing.stderr
    assert b"no-such-command" in missing.stderr


@pytest.mark.parametrize("kubectl", KUBECTLS)
def test_exec_with_stdin_piped(shell_pod: Target, kubectl: str) -> None:
    payload = b"".join(b"line %d\n" % i for i in range(2000))
    done = _run(kubectl, shell_pod, "exec", "-i", "shell", "--", "sh", "-c", "wc -l; exit 0",
                stdin=payload)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == b"2000"
    echoed = _run(kubectl, shell_pod, "exec", "-i", "shell", "--", "cat", stdin=payload)
    assert echoed.stdout == payload


@pytest.mark.parametrize("kubectl", KUBECTLS)
def test_exec_with_a_terminal(shell_pod: Target, kubectl: str) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on a terminal of 30 rows and 100 columns
        path, env = _resolve(kubectl)
        os.execvpe(path, [path, "--kubeconfig", str(shell_pod.kubeconfig), "exec",
                          "-it", "shell", "--", "sh"], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    seen = b""
    try:
        os.write(fd, b"tty; stty size; echo $((6*7))\n")
        seen = _read_until(fd, b"42", timeout=30)
        os.write(fd, b"exit 5\n")
        seen += _read_until(fd, None, timeout=30)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = seen.decode(errors="replace")
    assert "/dev/pts/" in text and "30 100" in text and "42" in text, text
    assert os.WEXITSTATUS(status) == 5


def _read_until(fd: int, marker: bytes | None, *, timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return out
        if not chunk:
            return out
        out += chunk
        if marker is not None and marker in out.split(b"echo", 1)[-1][5:]:
            return out
    return out


@pytest.mark.parametrize("kubectl", KUBECTLS)
def test_cp_both_ways(shell_pod: Target, kubectl: str, tmp_path: Path) -> None:
    local = tmp_path / "up.txt"
    local.write_bytes(os.urandom(200_000))
    up = _run(kubectl, shell_pod, "cp", str(local), "shell:/tmp/up.txt")
    assert up.returncode == 0, up.stderr
    back = tmp_path / "back.txt"
    down = _run(kubectl, shell_pod, "cp", "shell:/tmp/up.txt", str(back))
    assert down.returncode == 0, down.stderr
    assert back.read_bytes() == local.read_bytes()


def test_attach_follows_the_containers_output(shell_pod: Target) -> None:
    argv = ["kubectl", "--kubeconfig", str(shell_pod.kubeconfig), "attach", "shell"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines == [b"tick\n", b"tick\n"], lines
    finally:
        proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


WEB = """
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: busybox:1.36
      command: ["sh", "-c", "mkdir -p /tmp/www && echo hello-through-the-tunnel > \\
/tmp/www/index.html && exec busybox httpd -f -p 8080 -h /tmp/www"]
"""


@pytest.fixture(scope="module")
def web_pod(target: Target) -> Target:
    subprocess.run(["kubectl", "--kubeconfig", str(target.kubeconfig), "apply", "-f", "-"],
                   input=WEB, text=True, check=True, capture_output=True, timeout=60)
    target.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=60s", timeout=90)
    return target


_PY_CLIENT = """
import sys
from kubernetes import client, config
from kubernetes.stream import portforward
api = client.CoreV1Api(config.new_client_from_config(sys.argv[1]))
port = int(sys.argv[2])
forward = portforward(api.connect_get_namespaced_pod_portforward, "web", "default",
                      ports=str(port))
sock = forward.socket(port)
sock.settimeout(20)
sock.sendall(b"GET /index.html HTTP/1.0\\r\\nHost: web\\r\\n\\r\\n")
reply = b""
while True:
    chunk = sock.recv(65536)
    if not chunk:
        break
    reply += chunk
error = forward.error(port)
sys.stdout.buffer.write(reply if error is None else error.encode())
"""


def test_port_forward_with_the_official_python_client(web_pod: Target) -> None:
    """The official client speaks the kubelet's WebSocket port-forward protocol (kubectl
    speaks SPDY, which is not served)."""
    def get(port: int) -> bytes:
        done = subprocess.run([sys.executable, "-c", _PY_CLIENT, str(web_pod.kubeconfig),
                               str(port)], capture_output=True, timeout=60)
        return done.stdout + done.stderr

    reply = eventually(lambda: (r if b"200" in (r := get(8080)) else None), timeout=30,
                       what="the web server through the tunnel")
    assert reply.startswith(b"HTTP/1.1 200") and b"hello-through-the-tunnel" in reply
    refused = get(8081)  # nobody listens there
    assert b"8081" in refused and b"refused" in refused.lower(), refused


def _sleepers(marker: bytes) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if Path(f"/proc/{name}/cmdline").read_bytes() == b"sleep\x00" + marker + b"\x00":
                    out.append(int(name))
            except OSError:
                continue
    return out


def test_a_client_that_goes_away_leaves_no_session_behind(shell_pod: Target) -> None:
    argv = ["kubectl", "--kubeconfig", str(shell_pod.kubeconfig), "exec", "shell", "--",
            "sleep", "777"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: _sleepers(b"777"), timeout=30, what="the session's process")
    finally:
        proc.kill()
        proc.wait(10)
    eventually(lambda: not _sleepers(b"777"), timeout=30, what="the session to be destroyed")


def test_exec_into_what_is_not_there_says_so(shell_pod: Target) -> None:
    done = _run("kubectl", shell_pod, "exec", "shell", "-c", "nope", "--", "true")
    assert done.returncode != 0 and b"container nope is not valid for pod shell" in done.stderr
    done = _run("kubectl", shell_pod, "exec", "no-such-pod", "--", "true")
    assert done.returncode != 0 and b"not found" in done.stderr


@pytest.mark.parametrize("kubectl", KUBECTLS)
def test_kubectl_port_forward_then_an_http_get(web_pod: Target, kubectl: str) -> None:
    import urllib.request

    from tests.conftest import free_port

    local = free_port()
    path, env = _resolve(kubectl)
    argv = [path, "--kubeconfig", str(web_pod.kubeconfig), "port-forward", "pod/web",
            f"{local}:8080", f"{free_port()}:8081"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        assert b"Forwarding from" in proc.stdout.readline()
        for _ in range(3):  # a connection after another, on the same tunnel
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/index.html",
                                        timeout=30) as reply:
                assert reply.read() == b"hello-through-the-tunnel\n"
    finally:
        proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_kubectl_top_pod_and_node(shell_pod: Target) -> None:
    def top(*args: str) -> str | None:
        done = _run("kubectl", shell_pod, "top", *args)
        return done.stdout.decode() if done.returncode == 0 else None

    pods = eventually(lambda: top("pod", "shell"), timeout=30, what="kubectl top pod")
    header, row = pods.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert row.split()[0] == "shell" and row.split()[2].endswith("Mi")
    containers = top("pod", "shell", "--containers")
    assert containers is not None and "main" in containers
    nodes = eventually(lambda: top("node"), timeout=30, what="kubectl top node")
    assert "CPU(cores)" in nodes.splitlines()[0] and len(nodes.splitlines()) >= 2


async def _oversized_stdin(target: Target) -> tuple[int | None, bytes]:
    import base64
    import ssl

    import aiohttp
    import yaml

    doc = yaml.safe_load(target.kubeconfig.read_text())
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    context = ssl.create_default_context(cadata=base64.b64decode(
        cluster["certificate-authority-data"]).decode())
    url = f"{cluster['server']}/api/v1/namespaces/default/pods/shell/exec"
    params = [("command", "sh"), ("command", "-c"), ("command", "echo ready; sleep 888"),
              ("stdin", "true"), ("stdout", "true")]
    output = b""
    async with aiohttp.ClientSession() as http, http.ws_connect(
            url, params=params, ssl=context, protocols=("v5.channel.k8s.io",),
            headers={"Authorization": f"Bearer {user['token']}"}) as ws:
        async for message in ws:
            output += message.data[1:] if isinstance(message.data, bytes) else b""
            if b"ready" in output:
                break
        await ws.send_bytes(b"\x00" + b"x" * (5 * 1024 * 1024))
        async for _message in ws:
            pass
        return ws.close_code, output


def test_an_oversized_frame_closes_the_stream_and_its_session(shell_pod: Target) -> None:
    import asyncio

    code, output = asyncio.run(_oversized_stdin(shell_pod))
    assert b"ready" in output
    assert code in (1006, 1009)  # closed (aiohttp drops the connection on a too-big frame)
    eventually(lambda: not _sleepers(b"888"), timeout=30, what="the session to be destroyed")
