"""``--advertise-address`` and ``--listen-netns``: devkube also listens inside a network
namespace (the pods' network), its certificate names the advertise address, and the
``kubernetes`` Service's endpoints name that address and the secure port. A client inside the
namespace (curl via ``ip netns exec``) reaches it and verifies the certificate."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ADDRESS = "10.250.7.1"


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"k8sbridge-test-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", f"{ADDRESS}/32", "dev", "lo"],
                       check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def start(data: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "k8sbridge", "devkube", "--port", "0", "--no-controllers",
         "--data-dir", str(data), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline()


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_a_client_inside_the_namespace_reaches_the_api(namespace: str, tmp_path: Path) -> None:
    data = tmp_path / "devkube"
    proc, line = start(data, "--advertise-address", ADDRESS, "--listen-netns",
                       f"/run/netns/{namespace}", "--service-cluster-ip-range", "10.97.0.0/16")
    try:
        assert "devkube serving https://127.0.0.1:" in line, line
        port = int(line.split("https://127.0.0.1:")[1].split(";")[0])
        token = (data / "pki" / "token").read_text().strip()
        reply = subprocess.run(
            ["ip", "netns", "exec", namespace, "curl", "-sS", "--fail", "--max-time", "10",
             "--cacert", str(data / "pki" / "ca.crt"), "-H", f"Authorization: Bearer {token}",
             f"https://{ADDRESS}:{port}/api/v1/namespaces/default/endpoints/kubernetes"],
            capture_output=True, text=True, timeout=30)
        assert reply.returncode == 0, reply.stderr
        endpoints = json.loads(reply.stdout)
        assert endpoints["subsets"] == [{
            "addresses": [{"ip": ADDRESS}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
        # the host's namespace has no such address: only the namespace's listener answers
        outside = subprocess.run(
            ["curl", "-sS", "--max-time", "2", "--cacert", str(data / "pki" / "ca.crt"),
             f"https://{ADDRESS}:{port}/version"], capture_output=True, text=True, timeout=30)
        assert outside.returncode != 0
        service = subprocess.run(
            ["ip", "netns", "exec", namespace, "curl", "-sS", "--fail", "--max-time", "10",
             "--cacert", str(data / "pki" / "ca.crt"), "-H", f"Authorization: Bearer {token}",
             f"https://{ADDRESS}:{port}/api/v1/namespaces/default/services/kubernetes"],
            capture_output=True, text=True, timeout=30)
        spec = json.loads(service.stdout)["spec"]
        assert spec["clusterIP"] == "10.97.0.1"
        assert spec["ports"] == [{"name": "https", "port": 443, "protocol": "TCP",
                                  "targetPort": port}]
    finally:
        stop(proc)


def test_a_missing_namespace_is_a_clear_error(tmp_path: Path) -> None:
    proc, line = start(tmp_path / "devkube", "--advertise-address", ADDRESS, "--listen-netns",
                       "/run/netns/k8sbridge-no-such-namespace")
    try:
        assert proc.wait(timeout=30) != 0
        assert proc.stderr is not None
        error = proc.stderr.read()
        assert "cannot open network namespace /run/netns/k8sbridge-no-such-namespace" in error
        assert "Traceback" not in error
    finally:
        stop(proc)
