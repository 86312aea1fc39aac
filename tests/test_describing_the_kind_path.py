"""The kind path, checked where no Docker engine runs: ``kind-config.yaml`` against kind's
``kind.x-k8s.io/v1alpha4`` Cluster schema (field names, types and enums of kind's
pkg/apis/config/v1alpha4 types; unknown fields are errors, as kind's strict YAML decoding makes
them), the Dockerfile through hadolint, the scripts through shellcheck (both the real tools,
from the test extras), and ``scripts/e2e-kind`` wired to the same files and variables as the
external mode CI runs (``tests/e2e/test_running_the_external_mode.py``)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# kind v1alpha4: field -> (type, allowed values or a nested schema)
_PORT_MAPPING = {"containerPort": int, "hostPort": int, "listenAddress": str,
                 "protocol": ("TCP", "UDP", "SCTP")}
_MOUNT = {"containerPath": str, "hostPath": str, "readOnly": bool, "selinuxRelabel": bool,
          "propagation": ("None", "HostToContainer", "Bidirectional")}
_PATCH_6902 = {"group": str, "version": str, "kind": str, "patch": str}
_NODE = {"role": ("control-plane", "worker"), "image": str, "labels": {str: str},
         "extraMounts": [_MOUNT], "extraPortMappings": [_PORT_MAPPING], "gpus": str,
         "kubeadmConfigPatches": [str], "kubeadmConfigPatchesJSON6902": [_PATCH_6902]}
_NETWORKING = {"ipFamily": ("ipv4", "ipv6", "dual"), "apiServerPort": int,
               "apiServerAddress": str, "podSubnet": str, "serviceSubnet": str,
               "disableDefaultCNI": bool,
               "kubeProxyMode": ("iptables", "ipvs", "nftables", "none"), "dnsSearch": [str]}
CLUSTER = {"kind": ("Cluster",), "apiVersion": ("kind.x-k8s.io/v1alpha4",), "name": str,
           "nodes": [_NODE], "networking": _NETWORKING, "featureGates": {str: bool},
           "runtimeConfig": {str: str}, "kubeadmConfigPatches": [str],
           "kubeadmConfigPatchesJSON6902": [_PATCH_6902], "containerdConfigPatches": [str],
           "containerdConfigPatchesJSON6902": [str]}


def errors(value: Any, schema: Any, path: str = "") -> list[str]:
    """What kind would refuse in ``value`` (empty: valid)."""
    if isinstance(schema, tuple):
        return [] if value in schema else [f"{path}: {value!r} is not one of {list(schema)}"]
    if schema is bool or schema is str:
        ok = isinstance(value, schema)
        return [] if ok else [f"{path}: expected {schema.__name__}, got {value!r}"]
    if schema is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and -2**31 <= value < 2**31
        return [] if ok else [f"{path}: expected an int32, got {value!r}"]
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {value!r}"]
        return [e for i, item in enumerate(value) for e in errors(item, schema[0], f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [f"{path}: expected a mapping, got {value!r}"]
    if len(schema) == 1 and next(iter(schema)) in (str,):  # a map
        (item,) = schema.values()
        return [e for k, v in value.items() for e in
                (errors(k, str, f"{path}.{k}") + errors(v, item, f"{path}.{k}"))]
    out = [f"{path}.{k}: unknown field" for k in value if k not in schema]
    for key, sub in schema.items():
        if key in value:
            out += errors(value[key], sub, f"{path}.{key}")
    return out


def test_kind_config_is_a_valid_v1alpha4_cluster() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert errors(config, CLUSTER) == []
    assert config["nodes"][0]["role"] == "control-plane"
    assert sum(n["role"] == "worker" for n in config["nodes"]) == 2  # two bridge replicas


@pytest.mark.parametrize(("mutate", "error"), [
    (lambda c: c.update(nodez=[]), ".nodez: unknown field"),
    (lambda c: c["nodes"][0].update(role="master"), "not one of ['control-plane', 'worker']"),
    (lambda c: c["networking"].update(apiServerPort="6443"), "expected an int32"),
    (lambda c: c.update(apiVersion="kind.x-k8s.io/v1alpha3"), "not one of"),
])
def test_the_schema_check_refuses_what_kind_refuses(mutate: Any, error: str) -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    mutate(config)
    assert any(error in e for e in errors(config, CLUSTER)), errors(config, CLUSTER)


def test_the_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(["hadolint", "Dockerfile"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    bad = subprocess.run(["hadolint", "-"], input="FROM python\nRUN cd /tmp && pip install x\n",
                         cwd=REPO, capture_output=True, text=True)
    assert bad.returncode != 0 and "DL3006" in bad.stdout  # the linter really lints


def test_the_scripts_pass_shellcheck() -> None:
    scripts = sorted(str(p) for p in (REPO / "scripts").iterdir() if p.is_file())
    assert any(s.endswith("e2e-kind") for s in scripts)
    done = subprocess.run(["shellcheck", *scripts, str(REPO / ".ci" / "run")], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_kind_script_uses_what_the_external_mode_uses() -> None:
    script = (REPO / "scripts" / "e2e-kind").read_text()
    for needed in ("kind-config.yaml", "docker build", "kind load docker-image",
                   "manifests/deploy/namespace.yaml", "manifests/deploy/rbac.yaml",
                   "manifests/deploy/bridge.yaml", "k8sbridge-mesos"):
        assert needed in script, needed
    conftest = (REPO / "tests" / "e2e" / "conftest.py").read_text()
    for variable in ("K8SBRIDGE_E2E_KUBECONFIG", "K8SBRIDGE_E2E_MASTER",
                     "K8SBRIDGE_E2E_MASTER_AUTH", "K8SBRIDGE_E2E_SCHEDULER_NAME"):
        assert variable in script and variable in conftest, variable
    bridge = (REPO / "manifests" / "deploy" / "bridge.yaml").read_text()
    for replaced in ("image: k8sbridge:0.1.0", "masters: \"", "  K8SBRIDGE_MESOS_USER: "):
        assert replaced in bridge, replaced  # what the script's sed edits is still there
