"""``k8sbridge dns`` refuses bad flags with exit 2 and a named reason, fails with exit 1 when
it cannot listen, and serves Mesos names and forwarding alone with ``--no-kubernetes``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from k8sbridge.dns import cli as dns_cli
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def _dns(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "k8sbridge", "dns", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_bad_flags_exit_2_and_say_why() -> None:
    done = _dns("--listen", "not-an-ip", "--no-kubernetes")
    assert done.returncode == 2 and "not-an-ip" in done.stderr
    done = _dns("--service", "kube-dns", "--no-kubernetes")
    assert done.returncode == 2 and "--service needs NAMESPACE/NAME and --service-ip" in \
        done.stderr
    done = _dns("--upstream", "resolver.example", "--no-kubernetes")
    assert done.returncode == 2 and "resolver.example" in done.stderr


def test_an_address_it_cannot_listen_on_exits_1() -> None:
    done = _dns("--listen", "192.0.2.99", "--port", str(free_port()), "--no-kubernetes")
    assert done.returncode == 1
    assert "cannot listen on 192.0.2.99" in done.stderr


def test_upstreams_come_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example\nnameserver 192.0.2.53\nnameserver ::1\n"
                    "nameserver bogus\noptions ndots:5\n")
    assert [(u.host, u.port) for u in dns_cli.upstreams_from_resolv_conf(conf)] == [
        ("192.0.2.53", 53), ("::1", 53)]
    assert dns_cli.upstreams_from_resolv_conf(tmp_path / "missing") == []
