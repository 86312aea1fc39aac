"""A pod finds the Services of its namespace in its environment, as a kubelet gives them
(``WEB_SERVICE_HOST`` ... the Docker link variables), and only the kubernetes Service's with
``enableServiceLinks: false``; a Service created after the pod started is not in it. Real
kubectl, real pods printing their environment (``kubectl logs``)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.e2e.conftest import Target, eventually

pytestmark = pytest.mark.e2e

NAMESPACE = "service-env"
SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": NAMESPACE},
    "spec": {"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 8080, "targetPort": 80},
        {"name": "metrics", "port": 9090, "protocol": "UDP"}]},
}
HEADLESS = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "peers", "namespace": NAMESPACE},
    "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 7000}]},
}


def _pod(name: str, *, links: bool | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "main", "image": "busybox:1.36",
            "command": ["sh", "-c", "env | sort; echo done; sleep 300"],
            "env": [{"name": "URL", "value": "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)"},
                    {"name": "WEB_SERVICE_PORT_METRICS", "value": "own"}],
        }],
    }
    if links is not None:
        spec["enableServiceLinks"] = links
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def _apply(target: Target, obj: dict[str, Any]) -> None:
    subprocess.run(["kubectl", "--kubeconfig", str(target.kubeconfig), "apply", "-f", "-"],
                   input=json.dumps(obj), text=True, check=True, capture_output=True,
                   timeout=60)


def _env(target: Target, pod: str) -> dict[str, str]:
    out = eventually(lambda: (lambda o: o if "\ndone" in o else None)(
        target.kubectl("logs", "-n", NAMESPACE, pod, check=False)),
        timeout=90, what=f"{pod}'s environment")
    pairs = (line.partition("=") for line in out.splitlines() if "=" in line)
    return {k: v for k, _, v in pairs}


def test_pods_get_their_namespaces_service_variables(target: Target) -> None:
    target.kubectl("create", "namespace", NAMESPACE, check=False)
    _apply(target, SERVICE)
    _apply(target, HEADLESS)
    ip = target.kubectl_json("get", "service", "-n", NAMESPACE, "web")["spec"]["clusterIP"]
    _apply(target, _pod("linked", links=None))
    _apply(target, _pod("unlinked", links=False))
    env = _env(target, "linked")
    assert {k: v for k, v in env.items() if k.startswith("WEB_")} == {
        "WEB_SERVICE_HOST": ip,
        "WEB_SERVICE_PORT": "8080",
        "WEB_SERVICE_PORT_HTTP": "8080",
        "WEB_SERVICE_PORT_METRICS": "own",  # the container's own value wins
        "WEB_PORT": f"tcp://{ip}:8080",
        "WEB_PORT_8080_TCP": f"tcp://{ip}:8080",
        "WEB_PORT_8080_TCP_PROTO": "tcp",
        "WEB_PORT_8080_TCP_PORT": "8080",
        "WEB_PORT_8080_TCP_ADDR": ip,
        "WEB_PORT_9090_UDP": f"udp://{ip}:9090",
        "WEB_PORT_9090_UDP_PROTO": "udp",
        "WEB_PORT_9090_UDP_PORT": "9090",
        "WEB_PORT_9090_UDP_ADDR": ip,
    }
    assert env["URL"] == f"http://{ip}:8080"  # $(VAR) expansion sees them
    assert not [k for k in env if k.startswith("PEERS_")]  # headless: none
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == env["KUBERNETES_SERVICE_PORT"]
    assert env["KUBERNETES_PORT"] == (
        f"tcp://{env['KUBERNETES_SERVICE_HOST']}:{env['KUBERNETES_SERVICE_PORT']}")
    unlinked = _env(target, "unlinked")
    assert "WEB_SERVICE_HOST" not in unlinked and "WEB_PORT" not in unlinked
    assert unlinked["URL"] == "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)"
    assert unlinked["KUBERNETES_SERVICE_HOST"] == env["KUBERNETES_SERVICE_HOST"]
    # a Service made after a pod started is not in its environment; a pod started later has it
    _apply(target, {**SERVICE, "metadata": {"name": "late", "namespace": NAMESPACE}})
    late_ip = target.kubectl_json("get", "service", "-n", NAMESPACE, "late")["spec"]["clusterIP"]
    _apply(target, _pod("later", links=True))
    assert eventually(lambda: _env(target, "later").get("LATE_SERVICE_HOST"), timeout=30,
                      what="the later pod's LATE_SERVICE_HOST") == late_ip
    assert not [k for k in env if k.startswith("LATE_")]
    target.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
