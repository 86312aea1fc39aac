"""PriorityClasses and the Priority admission plugin, driven with real kubectl against a devkube
process: the system classes, ``kubectl get priorityclasses`` columns, the resolution of a pod's
``priority`` and ``preemptionPolicy``, ``globalDefault``, and kube-apiserver's refusals in its
words."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.devkube.server.test_driving_kubectl import Kubectl

CLASS = """
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: {name}
value: {value}
globalDefault: {default}
preemptionPolicy: {policy}
description: test class
"""


def _pod(name: str, *, pc: str | None = None, priority: int | None = None,
         policy: str | None = None) -> str:
    spec: dict[str, object] = {"containers": [{"name": "app", "image": "busybox"}]}
    if pc is not None:
        spec["priorityClassName"] = pc
    if priority is not None:
        spec["priority"] = priority
    if policy is not None:
        spec["preemptionPolicy"] = policy
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": spec})


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    data = tmp_path_factory.mktemp("devkube")
    proc = subprocess.Popen(
        [sys.executable, "-m", "k8sbridge", "devkube", "--port", "0", "--data-dir", str(data),
         "--no-controllers"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "devkube serving https://" in line, line
        yield Kubectl(kubeconfig=data / "kubeconfig", cache=tmp_path_factory.mktemp("cache"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()


def _apply_class(kubectl: Kubectl, name: str, value: int, *, default: bool = False,
                 policy: str = "PreemptLowerPriority",
                 check: bool = True) -> subprocess.CompletedProcess[str]:
    return kubectl.run("apply", "-f", "-", check=check, stdin=CLASS.format(
        name=name, value=value, default=str(default).lower(), policy=policy))


def test_the_system_classes_exist_and_print_like_kubectl_shows_them(kubectl: Kubectl) -> None:
    _apply_class(kubectl, "batch-low", 10, policy="Never")
    out = kubectl.run("get", "priorityclasses").stdout.splitlines()
    assert out[0].split() == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["system-node-critical"][1:3] == ["2000001000", "false"]
    assert rows["system-node-critical"][4] == "PreemptLowerPriority"
    assert rows["system-cluster-critical"][1] == "2000000000"
    assert rows["batch-low"][1:3] == ["10", "false"] and rows["batch-low"][4] == "Never"
    got = kubectl.json("get", "pc", "system-cluster-critical")
    assert got["description"].startswith("Used for system critical pods that must run")
    assert got["metadata"]["generation"] == 1
    refused = kubectl.run("delete", "pc", "system-node-critical", check=False)
    assert refused.returncode != 0
    assert ('priorityclasses.scheduling.k8s.io "system-node-critical" is forbidden: this is a '
            "system priority class and cannot be deleted") in refused.stderr


def test_a_pod_gets_its_class_priority_and_policy(kubectl: Kubectl) -> None:
    _apply_class(kubectl, "batch-high", 1000, policy="Never")
    kubectl.run("create", "-f", "-", stdin=_pod("resolved", pc="batch-high"))
    spec = kubectl.json("get", "pod", "resolved")["spec"]
    assert (spec["priority"], spec["preemptionPolicy"]) == (1000, "Never")
    kubectl.run("create", "-f", "-", stdin=_pod("critical", pc="system-cluster-critical"))
    spec = kubectl.json("get", "pod", "critical")["spec"]
    assert (spec["priority"], spec["preemptionPolicy"]) == (2000000000, "PreemptLowerPriority")
    kubectl.run("create", "-f", "-", stdin=_pod("agrees", pc="batch-high", priority=1000))
    assert kubectl.json("get", "pod", "agrees")["spec"]["priority"] == 1000
    # a replace that leaves the priority out keeps it (the plugin copies it on update)
    pod = kubectl.json("get", "pod", "agrees")
    del pod["spec"]["priority"]
    kubectl.run("replace", "-f", "-", stdin=json.dumps(pod))
    assert kubectl.json("get", "pod", "agrees")["spec"]["priority"] == 1000
    kubectl.run("create", "priorityclass", "made-by-kubectl", "--value=7",
                "--preemption-policy=Never", "--description=from the command line")
    made = kubectl.json("get", "priorityclass", "made-by-kubectl")
    assert (made["value"], made["preemptionPolicy"]) == (7, "Never")
    assert "globalDefault" not in made  # false is omitted, as kube-apiserver encodes it


def test_refusals_are_kube_apiservers(kubectl: Kubectl) -> None:
    _apply_class(kubectl, "batch-mid", 500)
    cases = [
        (_pod("nope", pc="does-not-exist"),
         'pods "nope" is forbidden: no PriorityClass with name does-not-exist was found'),
        (_pod("mine", pc="batch-mid", priority=7),
         'pods "mine" is forbidden: the integer value of priority (7) must not be provided in '
         "pod spec; priority admission controller computed 500 from the given PriorityClass "
         "name"),
        (_pod("policy", pc="batch-mid", policy="Never"),
         'pods "policy" is forbidden: the string value of PreemptionPolicy (Never) must not be '
         "provided in pod spec; priority admission controller computed PreemptLowerPriority "
         "from the given PriorityClass name"),
    ]
    for manifest, message in cases:
        refused = kubectl.run("create", "-f", "-", stdin=manifest, check=False)
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr
    too_high = _apply_class(kubectl, "huge", 2_000_000_000, check=False)
    assert "value: Forbidden: maximum allowed value of a user defined priority is 1000000000" \
        in too_high.stderr
    reserved = _apply_class(kubectl, "system-mine", 5, check=False)
    assert ("metadata.name: Forbidden: priority class names with 'system-' prefix are reserved "
            "for system use only. error: system-mine is not a known system priority class"
            ) in reserved.stderr
    bad_policy = _apply_class(kubectl, "odd", 5, policy="Sometimes", check=False)
    assert ('preemptionPolicy: Unsupported value: "Sometimes": supported values: '
            '"PreemptLowerPriority", "Never"') in bad_policy.stderr
    changed = _apply_class(kubectl, "batch-mid", 501, check=False)
    assert "value: Forbidden: may not be changed in an update." in changed.stderr


def test_the_global_default_applies_to_pods_without_a_class(kubectl: Kubectl) -> None:
    kubectl.run("create", "-f", "-", stdin=_pod("plain"))
    spec = kubectl.json("get", "pod", "plain")["spec"]
    assert spec["priority"] == 0 and "priorityClassName" not in spec
    _apply_class(kubectl, "everyone", 42, default=True)
    second = _apply_class(kubectl, "everyone-else", 43, default=True, check=False)
    assert ('priorityclasses.scheduling.k8s.io "everyone-else" is forbidden: PriorityClass '
            "everyone is already marked as default. Only one default can exist"
            ) in second.stderr
    kubectl.run("create", "-f", "-", stdin=_pod("defaulted"))
    spec = kubectl.json("get", "pod", "defaulted")["spec"]
    assert (spec["priorityClassName"], spec["priority"]) == ("everyone", 42)
    kubectl.run("delete", "pc", "everyone")
