"""scheduler-plugins' PodGroups on devkube through real kubectl, as on a cluster with the CRD:
apply, ``kubectl get podgroups`` (and its short name) with the CRD's columns, and the schema's
``minMember >= 1`` refusing a bad group."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import yaml

from k8sbridge.devkube import main

from .conftest import Api


def group(name: str, min_member: object) -> str:
    return yaml.safe_dump({
        "apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"minMember": min_member, "scheduleTimeoutSeconds": 10}})


async def kubectl(devkube: main.Devkube, tmp_path: Path, *args: str,
                  stdin: str | None = None) -> tuple[int, str]:
    kubectl_path = shutil.which("kubectl")
    assert kubectl_path is not None
    assert devkube.kubeconfig is not None
    proc = await asyncio.create_subprocess_exec(
        kubectl_path, "--kubeconfig", str(devkube.kubeconfig), "--cache-dir",
        str(tmp_path / "cache"), *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=dict(os.environ))
    out, _ = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
    return proc.returncode or 0, out.decode()


async def test_kubectl_creates_and_lists_pod_groups(
    devkube: main.Devkube, api: Api, tmp_path: Path
) -> None:
    code, out = await kubectl(devkube, tmp_path, "apply", "-f", "-", stdin=group("gang", 4))
    assert code == 0, out
    assert "podgroup.scheduling.x-k8s.io/gang created" in out
    code, out = await kubectl(devkube, tmp_path, "get", "podgroups")
    assert code == 0, out
    header, row = out.splitlines()
    assert header.split() == ["NAME", "PHASE", "MINMEMBER", "RUNNING", "SUCCEEDED", "FAILED",
                              "AGE"]
    # no PodGroup controller here: the status columns are blank, as kubectl prints a CRD's
    # missing values
    assert row.split()[:2] == ["gang", "4"]
    code, out = await kubectl(devkube, tmp_path, "get", "pg", "gang", "-o",
                              "jsonpath={.spec.minMember}")
    assert (code, out) == (0, "4")
    status, body = await api.request(
        "GET", "/apis/scheduling.x-k8s.io/v1alpha1/namespaces/default/podgroups/gang")
    assert status == 200 and body["spec"]["minMember"] == 4


async def test_the_schema_refuses_a_group_of_no_members(
    devkube: main.Devkube, api: Api, tmp_path: Path
) -> None:
    code, out = await kubectl(devkube, tmp_path, "apply", "-f", "-", stdin=group("empty", 0))
    assert code != 0
    assert ('The PodGroup "empty" is invalid: spec.minMember: Invalid value: 0: spec.minMember '
            "in body should be greater than or equal to 1") in out
    status, body = await api.request(
        "POST", "/apis/scheduling.x-k8s.io/v1alpha1/namespaces/default/podgroups",
        body=yaml.safe_load(group("words", "four")))
    assert status == 422
    assert body["details"]["causes"] == [{
        "reason": "FieldValueTypeInvalid", "field": "spec.minMember",
        "message": 'Invalid value: "string": spec.minMember in body must be of type integer: '
                   '"string"'}]
