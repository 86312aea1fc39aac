"""A container reads the /etc/hosts, /etc/resolv.conf and /etc/hostname a kubelet would give
it (hostname, subdomain, hostAliases, dnsConfig, the cluster DNS setting), in its own view:
real kubectl apply / logs against the embedded cluster with fully isolating agents."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge import app
from tests.integration.conftest import eventually, fast_settings

SCRIPT = ("cat /etc/hosts; echo ===; cat /etc/resolv.conf; echo ===; cat /etc/hostname; "
          "echo ===; hostname")


@pytest.fixture
async def isolated(tmp_path: Path) -> AsyncIterator[app.EmbeddedTargets]:
    settings = fast_settings(tmp_path / "run")
    settings = dataclasses.replace(
        settings,
        scheduler=dataclasses.replace(settings.scheduler, cluster_dns=("10.96.0.10",),
                                      cluster_domain="k8s.test"))
    async with app.running_embedded(settings) as targets:
        yield targets


def _kubectl(kubeconfig: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"terminationGracePeriodSeconds": 1, "restartPolicy": "Never",
                     "containers": [{"name": "main", "image": "busybox",
                                     "command": ["/bin/sh", "-c", SCRIPT],
                                     "resources": {"requests": {"cpu": "50m",
                                                                "memory": "32Mi"}}}],
                     **spec}}


async def _finished(kube: Any, name: str) -> dict[str, Any] | None:
    pod: dict[str, Any] = await kube.get_pod("default", name)
    return pod if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None


async def _logs(kubeconfig: Path, name: str) -> list[str]:
    done = await asyncio.to_thread(_kubectl, kubeconfig, "logs", name)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("===\n")


async def test_containers_read_the_files_a_kubelet_writes(
    isolated: app.EmbeddedTargets,
) -> None:
    kube = isolated.bridge.kube
    kubeconfig = isolated.kubeconfig
    host_hosts = Path("/etc/hosts").read_text()
    manifests = {"items": [
        _pod("named", hostname="db-0", subdomain="backend",
             hostAliases=[{"ip": "192.0.2.10", "hostnames": ["foo.local", "bar.local"]}],
             dnsConfig={"nameservers": ["192.0.2.53"], "searches": ["corp.example"],
                        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}),
        _pod("agents", dnsPolicy="Default"),
    ], "apiVersion": "v1", "kind": "List"}
    done = await asyncio.to_thread(_kubectl, kubeconfig, "apply", "-f", "-",
                                   stdin=json.dumps(manifests))
    assert done.returncode == 0, done.stderr

    pod = await eventually(lambda: _finished(kube, "named"), timeout=60, what="named finished")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    pod_ip = pod["status"]["podIP"]
    hosts, resolv, hostname, uts = await _logs(kubeconfig, "named")
    assert hosts == (
        "# Kubernetes-managed hosts file.\n"
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "fe00::0\tip6-mcastprefix\n"
        "fe00::1\tip6-allnodes\n"
        "fe00::2\tip6-allrouters\n"
        f"{pod_ip}\tdb-0.backend.default.svc.k8s.test\tdb-0\n"
        "\n# Entries added by HostAliases.\n"
        "192.0.2.10\tfoo.local\tbar.local\n")
    assert resolv == ("search default.svc.k8s.test svc.k8s.test k8s.test corp.example\n"
                      "nameserver 10.96.0.10\nnameserver 192.0.2.53\n"
                      "options ndots:2 edns0\n")
    assert hostname == "db-0\n"
    assert uts.strip()  # the UTS name is the agent's until pods get a network of their own
    assert Path("/etc/hosts").read_text() == host_hosts  # the host never saw any of it

    agents = await eventually(lambda: _finished(kube, "agents"), timeout=60,
                              what="agents finished")
    assert agents["status"]["phase"] == "Succeeded", agents["status"]
    hosts, resolv, hostname, _ = await _logs(kubeconfig, "agents")
    assert f"{agents['status']['podIP']}\tagents\n" in hosts
    assert resolv == Path("/etc/resolv.conf").read_text()  # dnsPolicy Default: the agent's
    assert hostname == "agents\n"
