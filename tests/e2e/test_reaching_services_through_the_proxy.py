"""e2e with REAL kubectl: from inside a pod, a Service's ClusterIP and its NodePort (on a node's
address in the cluster network: its bridge's gateway) reach the backend pods, scaling the
Deployment changes which pods answer, ClientIP affinity sticks, and a Service with no
endpoints refuses at once (issue 14's service proxy, ``k8sbridge proxy`` under ``k8sbridge
run``); the Service's name through the cluster DNS and its ``*_SERVICE_HOST``/``_PORT``
variables lead to the same backends.

The requests are HTTP/1.0 written with busybox ``nc``: Debian's static busybox 1.35 ``wget``
crashes (SIGSEGV) on this machine whatever the address, also outside any pod."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.e2e.conftest import Target, eventually

pytestmark = pytest.mark.e2e

SERVE = ("mkdir -p /tmp/www && hostname > /tmp/www/index.html && "
         "exec busybox httpd -f -p 8080 -h /tmp/www")
MANIFEST = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: proxied}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: proxied}}}}
  template:
    metadata: {{labels: {{app: proxied}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        command: ["sh", "-c", "{SERVE}"]
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: proxied}}
spec:
  type: NodePort
  selector: {{app: proxied}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: proxied-sticky}}
spec:
  selector: {{app: proxied}}
  sessionAffinity: ClientIP
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: proxied-nobody}}
spec:
  selector: {{app: nobody-has-this-label}}
  ports: [{{port: 80}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: proxied-client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: busybox
    command: ["sleep", "3600"]
"""


def get(target: Target, address: str, port: int) -> str:
    """The answer's last line (the serving pod's hostname), or the client's error."""
    out = target.kubectl(
        "exec", "proxied-client", "--", "sh", "-c",
        f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 {address} {port} 2>&1",
        check=False)
    return out.strip().splitlines()[-1] if out.strip() else ""


def answers(target: Target, address: str, port: int, *, tries: int = 12) -> set[str]:
    return {get(target, address, port) for _ in range(tries)}


def test_pods_reach_services_through_cluster_ips_and_node_ports(target: Target) -> None:
    subprocess.run(["kubectl", "--kubeconfig", str(target.kubeconfig), "apply", "-f", "-"],
                   input=MANIFEST, text=True, check=True, capture_output=True, timeout=60)
    try:
        target.kubectl("rollout", "status", "deployment/proxied", "--timeout=90s", timeout=120)
        target.kubectl("wait", "--for=condition=Ready", "pod/proxied-client", "--timeout=90s",
                       timeout=120)
        services = {s["metadata"]["name"]: s for s in
                    target.kubectl_json("get", "services")["items"]}
        web_ip = services["proxied"]["spec"]["clusterIP"]
        node_port = services["proxied"]["spec"]["ports"][0]["nodePort"]

        def names() -> set[str]:
            pods = target.kubectl_json("get", "pods", "-l", "app=proxied")["items"]
            return {p["metadata"]["name"] for p in pods
                    if p["metadata"].get("deletionTimestamp") is None}

        eventually(lambda: answers(target, web_ip, 80) == names(), timeout=60,
                   what="both replicas answering through the ClusterIP")
        target.kubectl("scale", "deployment/proxied", "--replicas=3")
        target.kubectl("rollout", "status", "deployment/proxied", "--timeout=90s", timeout=120)
        eventually(lambda: len(names()) == 3 and answers(target, web_ip, 80, tries=20)
                   == names(), timeout=60, what="the third replica answering")
        target.kubectl("scale", "deployment/proxied", "--replicas=1")
        eventually(lambda: len(names()) == 1 and answers(target, web_ip, 80) == names(),
                   timeout=60, what="only the remaining replica answering")
        [last] = names()
        # a NodePort on every node's address in the cluster network (its bridge's gateway)
        client_ip = target.kubectl_json("get", "pod", "proxied-client")["status"]["podIP"]
        gateway = client_ip.rsplit(".", 1)[0] + ".1"
        assert answers(target, gateway, node_port, tries=3) == {last}
        # by name through the cluster DNS (k8sbridge dns), the search path, and the kubelet's
        # service variables: the same backend through the same ClusterIP
        for name in ("proxied.default.svc.cluster.local", "proxied"):
            assert answers(target, name, 80, tries=2) == {last}, name
        variables = target.kubectl("exec", "proxied-client", "--", "sh", "-c",
                                   "echo $PROXIED_SERVICE_HOST $PROXIED_SERVICE_PORT").split()
        assert variables == [web_ip, "80"]
        assert answers(target, variables[0], int(variables[1]), tries=2) == {last}
        target.kubectl("scale", "deployment/proxied", "--replicas=3")
        target.kubectl("rollout", "status", "deployment/proxied", "--timeout=90s", timeout=120)
        sticky_ip = services["proxied-sticky"]["spec"]["clusterIP"]
        eventually(lambda: len(answers(target, sticky_ip, 80, tries=10)) == 1
                   and get(target, sticky_ip, 80) in names(), timeout=30,
                   what="ClientIP affinity keeping one backend")
        nobody_ip = services["proxied-nobody"]["spec"]["clusterIP"]
        started = time.monotonic()
        refused = get(target, nobody_ip, 80)
        assert "refused" in refused.lower(), refused
        assert time.monotonic() - started < 4.5  # nc -w 5: a timeout would take longer
    finally:
        subprocess.run(["kubectl", "--kubeconfig", str(target.kubeconfig), "delete", "-f",
                        "-", "--wait=false"], input=MANIFEST, text=True, capture_output=True,
                       timeout=60, check=False)
