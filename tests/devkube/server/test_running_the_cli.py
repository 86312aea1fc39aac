"""``k8sbridge devkube`` refuses bad setups with one clear line instead of a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys


def _devkube(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "k8sbridge", "devkube", *args],
                          capture_output=True, text=True, timeout=60)


def test_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _devkube("--port", str(port), "--no-controllers")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"k8sbridge devkube: cannot serve on 127.0.0.1:{port}: [Errno 98] Address already in use")


def test_insecure_http_only_on_loopback() -> None:
    result = _devkube("--insecure-http", "--host", "0.0.0.0")
    assert result.returncode == 1
    assert "only allowed on loopback" in result.stderr
