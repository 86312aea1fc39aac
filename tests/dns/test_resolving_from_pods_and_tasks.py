"""From inside a pod of ``k8sbridge run``, Service names resolve through the cluster DNS (its
resolv.conf names it, with the search path), and so does a Marathon-like framework's task by
its Mesos name; that task, on the cluster network, resolves the Service through the same
server (by its FQDN and by ``<svc>.<ns>``, with glibc's and Python's resolvers: its
resolv.conf, from the network's CNI result, names the cluster DNS with a search path). Real
processes, real kubectl; the pod is asked with ``kubectl exec``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge import embedded
from tests.dns.clusterapp import ClusterApp
from tests.integration.test_giving_pods_their_own_network import Cluster, eventually

SERVE = "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec busybox httpd -f -p 8080 " \
        "-h /tmp/www"
# the task looks the Service up with glibc's resolver (getent: its resolv.conf, from the
# network's CNI result, names the cluster DNS and the search path), by its FQDN, by <svc>.<ns>
# and with Python's resolver, then serves what it found and its resolv.conf
TASK = ("cd \"$MESOS_SANDBOX\" && mkdir -p www && until getent hosts "
        "web.default.svc.cluster.local > www/fqdn && getent hosts web.default > www/short; "
        f"do sleep 1; done; {sys.executable} -c 'import socket; "
        "print(socket.gethostbyname(\"web.default\"))' "
        "> www/python; cat www/fqdn www/short www/python /etc/resolv.conf > www/index.html; "
        "exec busybox httpd -f -p 8080 -h www")


def _objects() -> list[dict[str, Any]]:
    web = {"app": "web"}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": 1, "selector": {"matchLabels": web},
                  "template": {"metadata": {"labels": web}, "spec": {
                      "terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "web", "image": "busybox",
                                      "command": ["sh", "-c", SERVE],
                                      "ports": [{"containerPort": 8080}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": web, "ports": [{"name": "http", "port": 8080}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
         "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
             "name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 3600"]}]}},
    ]


class Framework:
    """The Marathon-like framework in a thread of its own (its own event loop)."""

    def __init__(self, app: ClusterApp) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        async def main() -> None:
            await self.app.run(stop=self._stop, ready=asyncio.Event())
            # the kernel speaks TLS: its connections need a few turns of the loop to close
            # (aiohttp's advice for a graceful shutdown) before the loop itself is closed
            await asyncio.sleep(0.25)
        try:
            self._loop.run_until_complete(main())
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("dns-run") / "run")
    try:
        running.ready()
        yield running
    finally:
        running.stop()


def _exec(cluster: Cluster, *argv: str) -> str:
    try:
        return cluster.kubectl("exec", "client", "--", *argv)
    except AssertionError as e:
        return f"failed: {e}"


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_pod_resolves_services_and_mesos_tasks(cluster: Cluster, tmp_path: Path) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": _objects()}))
    svc = cluster.json("get", "service", "web")
    ip = svc["spec"]["clusterIP"]
    assert cluster.json("get", "service", "-n", "kube-system", "kube-dns")["spec"][
        "clusterIP"] == embedded.CLUSTER_DNS_ADDRESS
    eventually(lambda: cluster.json("get", "pod", "client")["status"].get("phase") == "Running",
               timeout=120, what="the client pod running", output=cluster.lines)
    resolv = _exec(cluster, "cat", "/etc/resolv.conf")
    assert f"nameserver {embedded.CLUSTER_DNS_ADDRESS}" in resolv and "ndots:5" in resolv
    got = eventually(lambda: (lambda out: out if ip in out else None)(
        _exec(cluster, "nslookup", "web.default.svc.cluster.local")),
        what="nslookup of the Service from the pod", output=cluster.lines)
    assert "web.default.svc.cluster.local" in got
    # the search path: the short name resolves too
    assert ip in _exec(cluster, "nslookup", "web")
    assert "10.96.0.1" in _exec(cluster, "nslookup", "kubernetes.default")
    # the kube-dns Service's endpoint (where a service proxy sends 10.96.0.10) answers too
    [dns_slice] = cluster.json("get", "endpointslices", "-n", "kube-system", "-l",
                               "kubernetes.io/service-name=kube-dns")["items"]
    [endpoint] = dns_slice["endpoints"][0]["addresses"]
    assert ip in _exec(cluster, "nslookup", "web.default.svc.cluster.local", endpoint)
    # a pod's address names the pod (PTR)
    pod_ip = eventually(lambda: next((p["status"].get("podIP") for p in cluster.json(
        "get", "pods", "-l", "app=web")["items"]), None), what="the web pod's IP")
    pod_name = f"{pod_ip.replace('.', '-')}.default.pod.cluster.local"
    eventually(lambda: pod_name in _exec(cluster, "nslookup", pod_ip),
               what="the pod's PTR", output=cluster.lines)

    creds = json.loads((cluster.data_dir / "credentials.json").read_text())["credentials"]
    [secret] = [c["secret"] for c in creds if c["principal"] == embedded.OPERATOR_PRINCIPAL]
    master = next(line.split()[4] for line in cluster.lines
                  if line.startswith("kernel (Mesos v1 API): "))
    ca = cluster.data_dir / "kernel-pki" / "ca.crt"  # the kernel's TLS
    framework = Framework(ClusterApp(master=master, auth=(embedded.OPERATOR_PRINCIPAL, secret),
                                     name="webapp", command=TASK,
                                     ca_file=str(ca) if ca.exists() else None))
    try:
        found = eventually(lambda: (lambda out: out if "10.88." in out.split("Name:")[-1]
                                    else None)(_exec(cluster, "nslookup", "webapp.marathon.mesos")),
                           timeout=120, what="the task's Mesos name from the pod",
                           output=[*cluster.lines, *map(str, framework.app.statuses)])
        assert "webapp.marathon.mesos" in found
        # the task serves what it resolved: the Service's ClusterIP, through the same server
        # (its resolv.conf is the cluster network's, not the host's)
        page = eventually(lambda: (lambda out: out if ip in out else None)(_exec(
            cluster, "wget", "-qO-", "http://webapp.marathon.mesos:8080/")),
            timeout=60, what="the task's page", output=cluster.lines)
        fqdn, short, python, *task_resolv = page.splitlines()
        assert fqdn.split() == [ip, "web.default.svc.cluster.local"], page
        assert short.split()[0] == ip and python == ip, page
        assert task_resolv == [
            f"nameserver {embedded.CLUSTER_DNS_ADDRESS}",
            "search default.svc.cluster.local svc.cluster.local cluster.local",
            "options ndots:5"], page
    finally:
        framework.stop()
