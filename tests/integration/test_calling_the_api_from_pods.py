"""A pod of ``k8sbridge run`` calls the Kubernetes API as pods do on a cluster: through
``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``, the ``kubernetes`` Service's
ClusterIP and port (answered by ``k8sbridge proxy``, whose rules send it to the EndpointSlice's
address: the API server's inside the cluster network), over TLS verified with the mounted
``ca.crt`` (the serving certificate names the ClusterIP) and the mounted token; with curl and
with the official client's in-cluster configuration. Real processes, real kubectl."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge.kernel import network
from tests.integration.test_giving_pods_their_own_network import Cluster, eventually

# retried for a while: the first connection may come before the proxy's first sync
SCRIPT = textwrap.dedent("""
    import json, os, subprocess, time
    import kubernetes
    SA = "/var/run/secrets/kubernetes.io/serviceaccount"
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    print("env", f"{host}:{port}", flush=True)
    with open(f"{SA}/token") as f:
        token = f.read()
    for _ in range(30):
        curl = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", f"{SA}/ca.crt",
                               "-H", f"Authorization: Bearer {token}",
                               f"https://{host}:{port}/api/v1/namespaces/default/pods/caller"],
                              capture_output=True, text=True)
        if curl.returncode == 0:
            break
        time.sleep(1)
    print("curl", json.loads(curl.stdout)["metadata"]["name"] if curl.returncode == 0
          else curl.stderr.strip(), flush=True)
    kubernetes.config.load_incluster_config()
    api = kubernetes.client.ApiClient()
    review = kubernetes.client.AuthenticationV1Api(api).create_self_subject_review(
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    print("client", review.status.user_info.username, flush=True)
    me = kubernetes.client.CoreV1Api(api).read_namespaced_pod("caller", "default")
    print("client", me.metadata.name, me.status.pod_ip, flush=True)
""")


def _objects() -> list[dict[str, Any]]:
    rbac = "rbac.authorization.k8s.io/v1"
    return [  # the default account may read nothing: it is granted its own pod
        {"apiVersion": rbac, "kind": "Role", "metadata": {"name": "caller"},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "resourceNames": ["caller"],
                    "verbs": ["get"]}]},
        {"apiVersion": rbac, "kind": "RoleBinding", "metadata": {"name": "caller"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "caller"},
         "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "caller"},
         "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                  "containers": [{"name": "main", "image": "python",
                                  "command": [sys.executable, "-c", SCRIPT]}]}},
    ]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path / "run", agents=1)
    try:
        running.ready()
        yield running
    finally:
        running.stop()


@pytest.mark.timeout(300)
def test_a_pod_calls_the_api_through_the_kubernetes_service(cluster: Cluster) -> None:
    service = cluster.json("get", "service", "kubernetes")
    cluster_ip = service["spec"]["clusterIP"]
    [https] = service["spec"]["ports"]
    # the Service's endpoint is the API server's address inside the cluster network
    netns = (cluster.data_dir / "cluster-netns").read_text().strip()
    [endpoints] = cluster.json("get", "endpointslices", "-l",
                               "kubernetes.io/service-name=kubernetes")["items"]
    assert endpoints["endpoints"][0]["addresses"] == [network.ClusterNetwork(
        name=netns).api_address]
    assert endpoints["ports"] == [{"name": "https", "port": cluster.api_port,
                                   "protocol": "TCP"}]
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": _objects()}))
    pod = eventually(lambda: (lambda p: p if p["status"].get("phase") in (
        "Succeeded", "Failed") else None)(cluster.json("get", "pod", "caller")),
        timeout=180, what="the caller pod finished", output=cluster.lines)
    logs = cluster.kubectl("logs", "caller")
    assert pod["status"]["phase"] == "Succeeded", (pod["status"], logs)
    assert logs.splitlines() == [
        f"env {cluster_ip}:{https['port']}",
        "curl caller",
        "client system:serviceaccount:default:default",
        f"client caller {pod['status']['podIP']}",
    ], logs
