"""`kubectl attach -it` and `attach -i` to a container started with ``stdin: true, tty: true``:
the bridge launches it with ``ContainerInfo.tty_info``, the agent's I/O switchboard gives it a
terminal, and the kubelet API forwards the client's input, resizes and the terminal's output
through ATTACH_CONTAINER_INPUT / OUTPUT. ``stdin`` without ``tty`` is refused with the reason
(Mesos has no stdin for a task without a terminal). Real kubectl on a pty, and with piped
stdin."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import termios
import time
from typing import Any

import pytest

from k8sbridge.scheduler import podfields
from tests.e2e.conftest import Target, eventually
from tests.e2e.test_execing_into_pods import KUBECTLS, _resolve

pytestmark = pytest.mark.e2e


def _shell(name: str, **container: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": 1, "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh"],
                        "stdin": True, "tty": True, **container}]}}


def _start(target: Target, pod: dict[str, Any]) -> None:
    subprocess.run(["kubectl", "--kubeconfig", str(target.kubeconfig), "apply", "-f", "-"],
                   input=json.dumps(pod), text=True, check=True, capture_output=True,
                   timeout=60)
    target.kubectl("wait", "--for=condition=Ready", f"pod/{pod['metadata']['name']}",
                   "--timeout=60s", timeout=90)


def _read(fd: int, marker: bytes, seen: bytearray, *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        seen += chunk


def _phase(target: Target, name: str) -> str:
    return str(target.kubectl_json("get", "pod", name)["status"].get("phase"))


def test_attach_it_types_into_the_terminal_and_resizes_it(target: Target) -> None:
    _start(target, _shell("tty-shell"))
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on a terminal of 30 rows and 100 columns
        path, env = _resolve(KUBECTLS[0])
        os.execvpe(path, [path, "--kubeconfig", str(target.kubeconfig), "attach", "-it",
                          "tty-shell"], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    seen = bytearray()
    try:
        time.sleep(1.0)  # kubectl's streams are up before the first keystrokes
        os.write(fd, b"stty size; echo $((6*7))\n")
        _read(fd, b"\n42", seen)
        assert b"30 100" in seen, bytes(seen)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        time.sleep(0.5)  # kubectl sends the resize on SIGWINCH
        os.write(fd, b"stty size\n")
        _read(fd, b"40 120", seen)
        assert b"40 120" in seen, bytes(seen)
        os.write(fd, b"echo hi; exit\n")
        _read(fd, b"hi\r\n", seen)
        _read(fd, b"never", seen, timeout=20)  # kubectl ends when the terminal closes
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert b"hi\r\n" in seen, bytes(seen)
    assert os.WEXITSTATUS(status) == 0, bytes(seen)
    assert eventually(lambda: _phase(target, "tty-shell") == "Succeeded",
                      what="the shell's pod succeeded")


@pytest.mark.parametrize("kubectl", KUBECTLS)
def test_attach_i_with_piped_stdin_runs_the_commands(target: Target, kubectl: str) -> None:
    name = f"tty-piped-{KUBECTLS.index(kubectl)}"
    _start(target, _shell(name))
    path, env = _resolve(kubectl)
    done = subprocess.run([path, "--kubeconfig", str(target.kubeconfig), "attach", "-i", name],
                          input=b"echo h''i; exit\n", capture_output=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert b"hi\r\n" in done.stdout, done.stdout
    assert eventually(lambda: _phase(target, name) == "Succeeded", what=f"{name} succeeded")
    # the terminal's output is in the container's log too
    assert "hi" in target.kubectl("logs", name).split()


def test_stdin_once_ends_the_terminals_input_after_the_first_attach(target: Target) -> None:
    _start(target, _shell("tty-once", stdinOnce=True,
                          command=["sh", "-c", "cat; echo cat-e''nded; exec sleep 300"]))
    attach = ["kubectl", "--kubeconfig", str(target.kubeconfig), "attach", "-i", "tty-once"]
    done = subprocess.run(attach, input=b"typed\n", capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # the first attach's end was the terminal's end of input: cat saw it
    assert "cat-ended" in eventually(
        lambda: (lambda out: out if "cat-ended" in out else None)(
            target.kubectl("logs", "tty-once")), what="cat's end")
    again = subprocess.run(attach, input=b"more\n", capture_output=True, timeout=60)
    assert again.returncode != 0, (again.stdout, again.stderr)
    assert b"stdinOnce" in again.stderr, again.stderr
    target.kubectl("delete", "pod", "tty-once", "--wait=false")


def test_attach_i_to_a_container_without_a_terminal_says_why(target: Target) -> None:
    pod = _shell("no-tty", stdin=False, tty=False, command=["sleep", "300"])
    _start(target, pod)
    done = subprocess.run(["kubectl", "--kubeconfig", str(target.kubeconfig), "attach", "-i",
                           "no-tty"], input=b"x\n", capture_output=True, timeout=60)
    assert done.returncode != 0
    assert b"without tty is not supported" in done.stderr, done.stderr
    target.kubectl("delete", "pod", "no-tty", "--wait=false")


def test_stdin_without_a_tty_is_refused_with_the_reason(target: Target) -> None:
    pod = _shell("stdin-no-tty", tty=False)
    subprocess.run(["kubectl", "--kubeconfig", str(target.kubeconfig), "apply", "-f", "-"],
                   input=json.dumps(pod), text=True, check=True, capture_output=True,
                   timeout=60)

    def waiting() -> dict[str, Any] | None:
        statuses = target.kubectl_json("get", "pod", "stdin-no-tty")["status"].get(
            "containerStatuses") or [{}]
        found: dict[str, Any] | None = (statuses[0].get("state") or {}).get("waiting")
        return found if found and found.get("message") else None

    state = eventually(waiting, what="the refusal")
    assert state["reason"] == "CreateContainerConfigError"
    assert state["message"] == f"spec.containers{{main}}.stdin {podfields.STDIN_WITHOUT_TTY}"
