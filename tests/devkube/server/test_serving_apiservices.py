"""apiregistration.k8s.io/v1 APIServices as kube-aggregator shows them: one per served
group/version, local and Available (``v1beta1.metrics.k8s.io`` too, which devkube serves
itself), with kube-apiserver's columns in real ``kubectl get apiservices``; a new one must be
named ``<version>.<group>``, and a restart keeps what is there."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from k8sbridge.devkube import apiservices, discovery, kinds, main

from .conftest import Api


def _kubectl(kubeconfig: Path, *args: str, check: bool = True,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=30, check=check)


async def kubectl(devkube: main.Devkube, *args: str, check: bool = True,
                  stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # in a thread: devkube answers from this event loop
    return await asyncio.to_thread(_kubectl, devkube.kubeconfig, *args, check=check,
                                   stdin=stdin)


async def test_every_served_group_version_has_a_local_available_apiservice(
    devkube: main.Devkube, api: Api,
) -> None:
    status, listed = await api.request("GET", "/apis/apiregistration.k8s.io/v1/apiservices")
    assert status == 200
    by_name = {a["metadata"]["name"]: a for a in listed["items"]}
    served = {(k.group, k.version) for k in kinds.KINDS} | set(
        discovery.unstored_group_versions())
    assert set(by_name) == {f"{v}.{g}" for g, v in served}
    assert {"v1.", "v1.apps", "v2.autoscaling", "v1beta1.metrics.k8s.io",
            "v1.apiregistration.k8s.io"} <= set(by_name)
    metrics = by_name["v1beta1.metrics.k8s.io"]
    assert metrics["spec"] == {"group": "metrics.k8s.io", "version": "v1beta1",
                               "groupPriorityMinimum": 100, "versionPriority": 100}
    assert "service" not in metrics["spec"]
    [available] = metrics["status"]["conditions"]
    assert (available["type"], available["status"], available["reason"]) == (
        "Available", "True", "Local")
    assert by_name["v1."]["spec"]["groupPriorityMinimum"] == 18000

    table = (await kubectl(devkube, "get", "apiservices")).stdout.splitlines()
    assert table[0].split() == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    rows = {line.split()[0]: line.split()[1:3] for line in table[1:]}
    assert rows["v1beta1.metrics.k8s.io"] == ["Local", "True"]
    assert all(cells == ["Local", "True"] for cells in rows.values())
    resources = (await kubectl(devkube, "api-resources",
                               "--api-group=apiregistration.k8s.io")).stdout
    assert "apiservices" in resources and "APIService" in resources


async def test_an_apiservice_is_named_version_dot_group(devkube: main.Devkube) -> None:
    wrong = """
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1.example.com}
spec: {group: example.com, version: v1alpha1, groupPriorityMinimum: 1000, versionPriority: 15,
       service: {namespace: default, name: example}}
"""
    refused = await kubectl(devkube, "apply", "-f", "-", stdin=wrong, check=False)
    assert refused.returncode != 0
    assert ('metadata.name: Invalid value: "v1.example.com": must be '
            '`spec.version+"."+spec.group`: "v1alpha1.example.com"') in refused.stderr
    right = wrong.replace("name: v1.example.com", "name: v1alpha1.example.com")
    await kubectl(devkube, "apply", "-f", "-", stdin=right)
    row = (await kubectl(devkube, "get", "apiservice", "v1alpha1.example.com",
                         "--no-headers")).stdout.split()
    # no aggregator proxies it, so no availability controller writes its status
    assert row[:3] == ["v1alpha1.example.com", "default/example", "Unknown"]


async def test_a_restart_keeps_the_apiservices_and_adds_the_missing(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig", controllers=False,
                                data_dir=tmp_path / "data")
    async with main.running(config) as dk:
        await kubectl(dk, "label", "apiservice", "v1.apps", "kept=yes")
        await kubectl(dk, "delete", "apiservice", "v1.batch")
    async with main.running(config) as dk:
        apps = (await kubectl(dk, "get", "apiservice", "v1.apps", "-o",
                              "jsonpath={.metadata.labels.kept}")).stdout
        assert apps == "yes"
        batch = (await kubectl(dk, "get", "apiservice", "v1.batch", "--no-headers")).stdout
        assert batch.split()[1:3] == ["Local", "True"]
        assert apiservices.name_of("", "v1") == "v1."
