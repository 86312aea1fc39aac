"""``k8sbridge dns`` as a process, watching devkube, asked with Debian's ``dig`` and with
dnspython's stub resolver, as pods and people ask it.

Everything listens on loopback addresses of its own (the server on 127.0.0.152, a stand-in
upstream on 127.0.0.153); nothing is sent to an outside address.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.resolver
import pytest

from tests.conftest import free_port
from tests.dns import upstream

HOST = "127.0.0.152"
UPSTREAM = "127.0.0.153"
REPO = Path(__file__).resolve().parents[2]
ZONE = "cluster.local"


class Process:
    def __init__(self, argv: list[str], ready: str) -> None:
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._pattern = ready
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        if not self._ready.wait(60):
            self.stop()
            raise AssertionError(f"{argv[3:5]} did not start:\n" + "".join(self.lines[-40:]))

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if self._pattern in line:
                self._ready.set()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _objects() -> list[dict[str, Any]]:
    many = [{"addresses": [f"10.88.{i // 200}.{i % 200 + 1}"], "conditions": {"ready": True}}
            for i in range(60)]
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "default"},
         "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "db-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": "db"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": ["10.88.0.5"], "hostname": "db-0",
                        "conditions": {"ready": True}},
                       {"addresses": ["10.88.1.6"], "hostname": "db-1",
                        "conditions": {"ready": True}}],
         "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "many",
                                                             "namespace": "default"},
         "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "many-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": "many"}},
         "addressType": "IPv4", "endpoints": many,
         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext",
                                                             "namespace": "default"},
         "spec": {"type": "ExternalName", "externalName": "db.upstream.test"}},
    ]


KUBECONFIG: list[Path] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    data = tmp_path_factory.mktemp("dns")
    api_port, port, up_port = free_port(), free_port(HOST), free_port(UPSTREAM)
    py = [sys.executable, "-m", "k8sbridge"]
    devkube = Process([*py, "devkube", "--port", str(api_port), "--data-dir", str(data / "dk"),
                       "--no-controllers"], ready="devkube serving")
    kubeconfig = data / "dk" / "kubeconfig"
    KUBECONFIG[:] = [kubeconfig]
    server = None
    try:
        manifest = data / "objects.json"
        manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                        "items": _objects()}))
        subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f",
                        str(manifest)], check=True, capture_output=True, timeout=60)
        with upstream.running(UPSTREAM, up_port):
            server = Process([*py, "dns", "--listen", HOST, "--port", str(port),
                              "--kubeconfig", str(kubeconfig), "--upstream",
                              f"{UPSTREAM}:{up_port}", "--service", "kube-system/kube-dns",
                              "--service-ip", "10.96.0.10", "--service-endpoint",
                              "10.88.255.253"], ready="k8sbridge dns serving")
            yield port
    finally:
        if server is not None:
            server.stop()
        devkube.stop()


def dig(port: int, *args: str) -> str:
    done = subprocess.run(["dig", f"@{HOST}", "-p", str(port), "+time=2", "+tries=1", *args],
                          capture_output=True, text=True, timeout=30)
    return done.stdout


def short(port: int, *args: str) -> list[str]:
    return sorted(dig(port, "+short", *args).split("\n")[:-1])


def eventually_short(port: int, *args: str, want: int = 1) -> list[str]:
    deadline = time.monotonic() + 20
    while True:
        got = short(port, *args)
        if len(got) >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_a_service_resolves_over_udp_and_tcp(server: int) -> None:
    [ip] = eventually_short(server, f"web.default.svc.{ZONE}")
    assert ip.startswith("10.96.")
    assert short(server, "+tcp", f"web.default.svc.{ZONE}") == [ip]
    assert short(server, "+tcp", "-x", ip) == [f"web.default.svc.{ZONE}."]
    assert short(server, f"_http._tcp.web.default.svc.{ZONE}", "SRV") == [
        f"0 100 8080 web.default.svc.{ZONE}."]


def test_nxdomain_differs_from_nodata(server: int) -> None:
    eventually_short(server, f"web.default.svc.{ZONE}")
    nodata = dig(server, f"web.default.svc.{ZONE}", "AAAA")
    assert "status: NOERROR" in nodata and "ANSWER: 0" in nodata and "SOA" in nodata
    nx = dig(server, f"nope.default.svc.{ZONE}")
    assert "status: NXDOMAIN" in nx and "flags: qr aa" in nx
    assert short(server, f"dns-version.{ZONE}", "TXT") == ['"1.1.0"']


def test_a_headless_service_has_records_per_endpoint(server: int) -> None:
    assert eventually_short(server, f"db.default.svc.{ZONE}", want=2) == [
        "10.88.0.5", "10.88.1.6"]
    assert short(server, f"db-1.db.default.svc.{ZONE}") == ["10.88.1.6"]
    assert short(server, f"_pg._tcp.db.default.svc.{ZONE}", "SRV") == [
        f"0 50 5432 db-0.db.default.svc.{ZONE}.", f"0 50 5432 db-1.db.default.svc.{ZONE}."]
    assert short(server, "-x", "10.88.0.5") == [f"db-0.db.default.svc.{ZONE}."]


def test_a_large_answer_is_truncated_over_udp_and_whole_over_tcp(server: int) -> None:
    eventually_short(server, f"many.default.svc.{ZONE}", want=60)
    cut = dig(server, "+notcp", "+ignore", "+noedns", f"many.default.svc.{ZONE}")
    assert "flags: qr aa tc" in cut
    assert len(short(server, f"many.default.svc.{ZONE}")) == 60  # dig retried over TCP
    assert len(short(server, "+bufsize=4096", f"many.default.svc.{ZONE}")) == 60  # EDNS size


def test_other_names_are_forwarded_upstream(server: int) -> None:
    assert short(server, "www.upstream.test") == [upstream.ADDRESS]
    assert "status: NXDOMAIN" in dig(server, "nothing.example")
    big = short(server, "big.upstream.test", "TXT")  # upstream truncated: we asked over TCP
    assert len(big) == 60
    # an ExternalName: the CNAME, and its target's address from upstream (stubs do not chase)
    assert short(server, f"ext.default.svc.{ZONE}") == [upstream.ADDRESS, "db.upstream.test."]
    assert short(server, "+tcp", f"ext.default.svc.{ZONE}") == [upstream.ADDRESS,
                                                                "db.upstream.test."]
    assert short(server, f"ext.default.svc.{ZONE}", "CNAME") == ["db.upstream.test."]


def test_pods_and_the_kube_dns_service(server: int) -> None:
    assert short(server, f"10-88-0-9.default.pod.{ZONE}") == ["10.88.0.9"]
    assert eventually_short(server, f"kube-dns.kube-system.svc.{ZONE}") == ["10.96.0.10"]
    assert short(server, f"_dns._udp.kube-dns.kube-system.svc.{ZONE}", "SRV") == [
        f"0 100 53 kube-dns.kube-system.svc.{ZONE}."]


def test_pythons_resolver_finds_srv_records(server: int) -> None:
    eventually_short(server, f"db.default.svc.{ZONE}", want=2)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [HOST]
    resolver.port = server
    got = resolver.resolve(f"_pg._tcp.db.default.svc.{ZONE}", "SRV")
    assert sorted(str(r.target) for r in got) == [f"db-0.db.default.svc.{ZONE}.",
                                                  f"db-1.db.default.svc.{ZONE}."]
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve(f"nope.default.svc.{ZONE}", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve(f"web.default.svc.{ZONE}", "AAAA")


def test_malformed_packets_and_a_flood_leave_it_answering(server: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    try:
        query = dns.message.make_query(f"web.default.svc.{ZONE}", "A").to_wire()
        sock.sendto(query[:12] + b"\xff\xff\x00", (HOST, server))  # a header, then garbage
        reply = dns.message.from_wire(sock.recv(512))
        assert reply.rcode() == dns.rcode.FORMERR
        for junk in (b"", b"\x00", b"\xff" * 11, b"\x00" * 600, bytes(range(256))):
            sock.sendto(junk, (HOST, server))
        sock.setblocking(False)
        for _ in range(5000):  # a flood: bounded, and nothing is read meanwhile
            try:
                sock.sendto(query, (HOST, server))
            except BlockingIOError:
                time.sleep(0.001)
    finally:
        sock.close()
    tcp = socket.create_connection((HOST, server), timeout=5)
    try:
        tcp.sendall(b"\x00\x05hello")  # a framed message that is no DNS message
        tcp.settimeout(5)
        data = tcp.recv(100)
        assert data == b"" or dns.message.from_wire(data[2:]).rcode() == dns.rcode.FORMERR
    finally:
        tcp.close()
    assert short(server, f"web.default.svc.{ZONE}")[0].startswith("10.96.")


def test_answers_follow_changes_to_services_and_endpoints(server: int) -> None:
    def kubectl(*args: str) -> None:
        subprocess.run(["kubectl", "--kubeconfig", str(KUBECONFIG[0]), *args], check=True,
                       capture_output=True, timeout=60)

    name = f"later.default.svc.{ZONE}"
    assert "status: NXDOMAIN" in dig(server, name)  # asked once: its answer is cached
    kubectl("create", "service", "clusterip", "later", "--tcp=80:80")
    [ip] = eventually_short(server, name)
    kubectl("delete", "service", "later")
    deadline = time.monotonic() + 20
    while "status: NXDOMAIN" not in dig(server, name):
        assert time.monotonic() < deadline, "the deleted Service still resolves"
        time.sleep(0.2)
    assert short(server, "-x", ip) != [f"{name}."]
    # an endpoint more: the headless Service answers it
    eventually_short(server, f"db.default.svc.{ZONE}", want=2)
    kubectl("patch", "endpointslice", "db-1", "--type=json", "-p", json.dumps([
        {"op": "add", "path": "/endpoints/-", "value": {
            "addresses": ["10.88.2.8"], "hostname": "db-2", "conditions": {"ready": True}}}]))
    assert "10.88.2.8" in eventually_short(server, f"db.default.svc.{ZONE}", want=3)
    assert short(server, f"db-2.db.default.svc.{ZONE}") == ["10.88.2.8"]
