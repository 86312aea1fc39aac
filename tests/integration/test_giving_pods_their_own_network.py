"""``k8sbridge run`` gives every pod an IP of its own on the cluster network, as a cluster does:
two replicas on one node listen on one port, a pod on another agent reaches them by pod IP, a
readiness httpGet probe dials the pod IP (a grpc one runs in the pod's namespace), a
hostNetwork pod keeps its agent's address, each Node reports its own agent's address, pods
reach the API server's in-cluster address, find the kubernetes Service's ClusterIP in
KUBERNETES_SERVICE_HOST (a service proxy runs) and their own IP in
$(VAR) expansions; a Service's EndpointSlice and Endpoints follow its replicas' readiness;
after Ctrl-C nothing of the network is left. Real processes (``k8sbridge run`` with two
agents), real kubectl; pods are reached from inside the cluster network's namespace, as the
host has no route to it."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from k8sbridge import embedded
from k8sbridge.kernel import network
from k8sbridge.kernel.agent import cni
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")
SERVE = "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec busybox httpd -f -p 8080 " \
        "-h /tmp/www"
GRPC_SERVER = str(Path(__file__).with_name("grpc_health_server.py"))
PROBE_PORT = 18080  # a plain server on the API server's in-cluster address (not devkube's)


class Cluster:
    """``k8sbridge run --agents 2`` on free ports."""

    def __init__(self, data_dir: Path, *, agents: int = 2, **settings: str) -> None:
        self.data_dir = data_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
        env["K8SBRIDGE_MESOS_AGENT_POLL_SECONDS"] = "1"
        env["K8SBRIDGE_SCHEDULER_CYCLE_SECONDS"] = "0.05"
        env.update(settings)
        self.api_port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "k8sbridge", "run", "--data-dir", str(data_dir),
             "--kernel-port", str(free_port()), "--api-port", str(self.api_port),
             "--kubelet-port", "0", "--agents", str(agents)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def ready(self) -> None:
        eventually(lambda: self.proc.poll() is None and any(
            line.startswith("k8sbridge is ready; Ctrl-C") for line in self.lines),
            timeout=120, what="k8sbridge run ready", output=self.lines)

    def stop(self) -> int:
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
        return self.proc.returncode

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(["kubectl", "--kubeconfig", str(self.data_dir / "kubeconfig"),
                               *args], input=stdin, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))


def eventually(probe: Callable[[], T | None], *, timeout: float = 90, what: str = "",
               output: list[str] | None = None) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except AssertionError as e:
            last = e
        if last and not isinstance(last, AssertionError):
            return last  # type: ignore[no-any-return]
        time.sleep(0.3)
    tail = "".join((output or [])[-80:])
    raise AssertionError(f"timed out waiting for {what}: last {last!r}\n{tail}")


def in_cluster(netns: str, *argv: str) -> str:
    done = subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True,
                          text=True, timeout=30, check=False)
    return done.stdout


def namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]


def _pod(name: str, node: str, command: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox",
                                     "command": ["sh", "-c", command]}], **spec}}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path / "run")
    try:
        running.ready()
        yield running
    finally:
        running.stop()


def test_pods_get_their_own_ips_and_the_network_goes_with_the_cluster(
        cluster: Cluster) -> None:
    netns = (cluster.data_dir / embedded.CLUSTER_NETNS_FILE).read_text().strip()
    assert netns in namespaces()
    api_address = network.ClusterNetwork(name=netns).api_address
    # Each Node reports its own agent's address.
    nodes = eventually(lambda: (lambda items: items if len(items) == 2 else None)(
        cluster.json("get", "nodes")["items"]), what="two Nodes")
    internal = {n["metadata"]["name"]: next(a["address"] for a in n["status"]["addresses"]
                                            if a["type"] == "InternalIP") for n in nodes}
    assert len(set(internal.values())) == 2, internal
    first, second = sorted(internal)
    # Two replicas on one node, one port, each its own IP; ready by a probe on the pod IP.
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "nodeSelector": {"kubernetes.io/hostname": first},
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{
                         "name": "web", "image": "busybox", "command": ["sh", "-c", SERVE],
                         "ports": [{"containerPort": 8080}],
                         "readinessProbe": {"httpGet": {"port": 8080, "path": "/"},
                                            "periodSeconds": 1}}]}}}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
    # A grpc readiness probe: its check command runs in the pod's network namespace.
    (flags := cluster.data_dir.parent / "flags").mkdir()
    (flags / "serving").write_text("yes")
    grpc = _pod("grpc", first, "unused", volumes=[
        {"name": "flags", "hostPath": {"path": str(flags)}}])
    grpc["spec"]["containers"][0].update({
        "image": "python", "command": [sys.executable, GRPC_SERVER, "9000", "/flags/serving"],
        "volumeMounts": [{"name": "flags", "mountPath": "/flags"}],
        "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 1, "timeoutSeconds": 2}})
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(grpc))

    def ready_pods() -> list[dict[str, Any]] | None:
        pods = cluster.json("get", "pods", "-l", "app=web")["items"]
        ready = [p for p in pods if p["status"].get("phase") == "Running" and all(
            c.get("ready") for c in p["status"].get("containerStatuses") or [])]
        return ready if len(ready) == 2 else None

    web = eventually(ready_pods, timeout=120, what="two ready replicas", output=cluster.lines)
    ips = [p["status"]["podIP"] for p in web]
    assert len(set(ips)) == 2 and all(ip.startswith("10.88.") for ip in ips), ips
    for pod in web:
        assert pod["spec"]["nodeName"] == first
        assert pod["status"]["hostIP"] == internal[first]
        assert pod["status"]["podIPs"] == [{"ip": pod["status"]["podIP"]}]
        # reachable from the cluster network, answering with the pod's own hostname
        url = f"http://{pod['status']['podIP']}:8080/"
        got = eventually(functools.partial(in_cluster, netns, "busybox", "wget", "-qO-", url),
                         what="the pod's page")
        assert got.strip() == pod["metadata"]["name"]
    eventually(lambda: all(c.get("ready") for c in cluster.json("get", "pod", "grpc")[
        "status"].get("containerStatuses") or [{}]), what="the grpc pod ready",
        output=cluster.lines)
    # A pod on the other agent reaches a replica by its IP, and the API server's address.
    server = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", textwrap.dedent(f"""
            import socket
            s = socket.create_server(("{api_address}", {PROBE_PORT}))
            while True:
                c, _ = s.accept(); c.recv(1024)
                c.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\napi"); c.close()
            """)])
    try:
        fetch = (f"until busybox wget -qO- http://{ips[0]}:8080/ > /tmp/web; do sleep 0.2; "
                 f"done; until busybox wget -qO- http://{api_address}:{PROBE_PORT}/ "
                 "> /tmp/api; do sleep 0.2; done; echo web=$(cat /tmp/web) api=$(cat /tmp/api) "
                 "host=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT ip=$POD_IP addr=$ADDR "
                 "arg=$(POD_IP); sleep 300")
        client = _pod("client", second, fetch)
        client["spec"]["containers"][0]["env"] = [  # the downward API's pod IP, expanded
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "ADDR", "value": "$(POD_IP):8080"}]
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(client))
        line = eventually(lambda: (lambda out: out if "web=" in out else None)(
            cluster.kubectl("logs", "client")), timeout=90, what="the client's fetch",
            output=cluster.lines)
    finally:
        server.kill()
        server.wait()
    client = cluster.json("get", "pod", "client")
    assert line.split() == [f"web={web[0]['metadata']['name']}", "api=api",
                            "host=10.96.0.1:443",  # the kubernetes Service's ClusterIP
                            f"ip={client['status']['podIP']}",
                            f"addr={client['status']['podIP']}:8080",
                            f"arg={client['status']['podIP']}"]
    assert client["status"]["hostIP"] == internal[second]
    assert client["status"]["podIP"] not in ips and client["status"]["podIP"].startswith("10.88.")
    # The API server itself answers at that address, on its port (the kubernetes Service's
    # endpoint).
    port = cluster.api_port
    code = eventually(lambda: (lambda c: c if c not in ("", "000") else None)(in_cluster(
        netns, "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
        f"https://{api_address}:{port}/version")), what="the API server in the network")
    assert code in ("200", "401", "403"), code  # an answer of the API server
    # A hostNetwork pod keeps its agent's address.
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(
        _pod("on-host", second, "sleep 300", hostNetwork=True)))
    host_pod = eventually(lambda: (lambda p: p if p["status"].get("phase") == "Running"
                                   else None)(cluster.json("get", "pod", "on-host")),
                          what="the hostNetwork pod running")
    assert host_pod["status"]["podIP"] == host_pod["status"]["hostIP"] == internal[second]
    # Ctrl-C: the namespace, its bridges and veths, and the agents' IPAM state are gone.
    ipam = [network.ClusterNetwork.ipam_dir(work_dir=cluster.data_dir / "kernel" / f"agent-{i}")
            for i in (0, 1)]
    assert [p for d in ipam for p in d.glob("*/10.*")]  # the running pods' leases
    assert cluster.stop() == 0
    assert netns not in namespaces()
    assert not [d for d in ipam if d.exists()]
    roots = [str(cni.root_dir(work_dir=cluster.data_dir.resolve() / "kernel" / f"agent-{i}",
                              persist=False)) for i in (0, 1)]
    with open("/proc/self/mountinfo") as f:  # the pods' namespaces
        assert not [line for line in f if any(root in line for root in roots)]
    assert not [p for root in roots for p in Path(root).glob("*")]
    host_addresses = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert "10.88." not in host_addresses


def test_without_the_cni_plugins_one_warning_pods_wait_and_host_network_pods_run(
        tmp_path: Path) -> None:
    (plugins := tmp_path / "no-plugins").mkdir()
    cluster = Cluster(tmp_path / "run", agents=1,
                      K8SBRIDGE_EMBEDDED_CNI_PLUGINS_DIR=str(plugins))
    try:
        cluster.ready()
        warnings = [line for line in cluster.lines if "CNI reference plugins" in line]
        assert len(warnings) == 1 and "containernetworking-plugins" in warnings[0], warnings
        assert not (cluster.data_dir / embedded.CLUSTER_NETNS_FILE).exists()
        assert not [line for line in cluster.lines if "cluster network:" in line]
        [node] = eventually(lambda: cluster.json("get", "nodes")["items"], what="the Node")
        name = node["metadata"]["name"]
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(_pod("plain", name, "sleep 300")))
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(
            _pod("host", name, "sleep 300", hostNetwork=True)))
        host = eventually(lambda: (lambda p: p if p["status"].get("phase") == "Running"
                                   else None)(cluster.json("get", "pod", "host")),
                          what="the hostNetwork pod running", output=cluster.lines)
        assert host["status"]["podIP"] == host["status"]["hostIP"]

        def sandbox_events() -> list[dict[str, Any]] | None:
            events = [e for e in cluster.json("get", "events", "--field-selector",
                                              "involvedObject.name=plain")["items"]
                      if e.get("reason") == "FailedCreatePodSandBox"]
            return events or None

        [event, *_] = eventually(sandbox_events, what="the pod's sandbox failure event",
                                 output=cluster.lines)
        assert "k8sbridge" in event["message"], event  # the network it asked for, by name
        plain = cluster.json("get", "pod", "plain")
        assert plain["status"]["phase"] == "Pending", plain["status"]
        [waiting] = [c["state"].get("waiting") for c in plain["status"]["containerStatuses"]]
        assert waiting and waiting["reason"] == "ContainerCreating", plain["status"]
        assert not plain["status"].get("podIP")
    finally:
        assert cluster.stop() == 0


def test_endpoints_follow_the_replicas_readiness_probed_on_their_pod_ips(
        cluster: Cluster) -> None:
    """A Service over two replicas, each ready while its probe's file is served: both are
    ready endpoints; one file gone, its endpoint turns ready=false in the EndpointSlice and
    moves to notReadyAddresses in Endpoints; the file back, it is ready again."""
    nodes = eventually(lambda: (lambda items: items if len(items) == 2 else None)(
        cluster.json("get", "nodes")["items"]), what="two Nodes")
    names = sorted(n["metadata"]["name"] for n in nodes)
    flags: dict[str, Path] = {}
    for i, node in enumerate(names):  # one replica per agent, each serving its own directory
        name = f"ep-{i}"
        flags[name] = cluster.data_dir.parent / name
        flags[name].mkdir()
        (flags[name] / "ready").write_text("yes")
        pod = _pod(name, node, "exec busybox httpd -f -p 8080 -h /www", volumes=[
            {"name": "www", "hostPath": {"path": str(flags[name])}}])
        pod["metadata"]["labels"] = {"app": "ep"}
        pod["spec"]["containers"][0].update({
            "ports": [{"name": "http", "containerPort": 8080}],
            "volumeMounts": [{"name": "www", "mountPath": "/www"}],
            "readinessProbe": {"httpGet": {"port": "http", "path": "/ready"},
                               "periodSeconds": 1, "failureThreshold": 1}})
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "ep"},
        "spec": {"selector": {"app": "ep"},
                 "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}))

    def pod_ips() -> dict[str, str] | None:
        pods = cluster.json("get", "pods", "-l", "app=ep")["items"]
        ips = {p["metadata"]["name"]: p["status"].get("podIP") for p in pods}
        return ips if len(ips) == 2 and all(ips.values()) else None

    ips = eventually(pod_ips, timeout=120, what="the replicas' IPs", output=cluster.lines)
    assert all(ip.startswith("10.88.") for ip in ips.values()), ips

    def slice_readiness() -> dict[str, bool]:
        [slice_] = cluster.json("get", "endpointslices", "-l",
                                "kubernetes.io/service-name=ep")["items"]
        assert slice_["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}], slice_
        return {e["addresses"][0]: bool(e["conditions"].get("ready"))
                for e in slice_.get("endpoints") or []}

    def endpoints() -> tuple[set[str], set[str]]:
        subsets = cluster.json("get", "endpoints", "ep").get("subsets") or []
        return ({a["ip"] for s in subsets for a in s.get("addresses") or []},
                {a["ip"] for s in subsets for a in s.get("notReadyAddresses") or []})

    def settled(ready: set[str], not_ready: set[str]) -> bool:
        want = {ip: ip in ready for ip in (*ready, *not_ready)}
        return slice_readiness() == want and endpoints() == (ready, not_ready)

    both = set(ips.values())
    eventually(lambda: settled(both, set()), timeout=90, what="both endpoints ready",
               output=cluster.lines)
    (flags["ep-1"] / "ready").unlink()  # its probe now gets 404
    eventually(lambda: settled({ips["ep-0"]}, {ips["ep-1"]}), timeout=60,
               what="ep-1 not ready", output=cluster.lines)
    pod = cluster.json("get", "pod", "ep-1")
    assert pod["status"]["phase"] == "Running"
    assert not pod["status"]["containerStatuses"][0]["ready"]
    (flags["ep-1"] / "ready").write_text("yes")
    eventually(lambda: settled(both, set()), timeout=60, what="ep-1 ready again",
               output=cluster.lines)
