"""The e2e suite's external mode, as the kind path takes it, without kind: a Mesos master and a
Kubernetes API started on their own (``k8sbridge kernel`` with authentication, ``k8sbridge
devkube``), the bridge deployed from ``manifests/deploy/`` the way the cluster would run it, and
then ``pytest tests/e2e/...`` with ``K8SBRIDGE_E2E_KUBECONFIG``/``K8SBRIDGE_E2E_MASTER`` set.

Run: ``python -m tests.e2e.external [pytest arguments]`` (exit status: pytest's).

What is applied as on a cluster: ``namespace.yaml`` and ``rbac.yaml`` with real kubectl; the
Mesos credentials as the Secret ``k8sbridge-mesos`` the manifest reads; the bridge processes
(``spec.replicas`` of them, leader election as the manifest sets it) started with the
container's ``args`` and environment resolved from ``bridge.yaml`` (its ConfigMap, ``value``,
``configMapKeyRef``, ``secretKeyRef``, ``fieldRef``) and the service account's token. What a
process on this host cannot take from a pod, and is overridden (printed at start): the
kubeconfig (the account's token against devkube, instead of in-cluster credentials), the
masters (the kernel started here), the kubelet port and address (a free port on loopback per
replica, instead of 10250 on the pod IP), the client CA (devkube's, instead of the service
account's ``ca.crt``), the Mesos secret's file path, and the images (no registry here: each
pod runs on the agent's view of the host, ``K8SBRIDGE_SCHEDULER_IMAGE_MODE=local``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "manifests" / "deploy"
PRINCIPAL = "k8sbridge"
AGENTS = (  # the embedded default's three shapes: racks, zones, disks
    ("cpus:4;mem:4096;disk:20480;ports:[31000-32000]", "rack:r1;zone:z1;disk:ssd", "z1"),
    ("cpus:2;mem:2048;disk:10240;ports:[31000-32000]", "rack:r2;zone:z1;disk:hdd", "z1"),
    ("cpus:8;mem:8192;disk:40960;ports:[31000-32000]", "rack:r3;zone:z2;disk:ssd", "z2"),
)
ISOLATION = ("cgroups/cpu,cgroups/mem,filesystem/linux,volume/sandbox_path,volume/secret,"
             "volume/host_path,docker/runtime,namespaces/pid,linux/capabilities")


class Process:
    def __init__(self, name: str, argv: list[str], *, log: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=REPO,
                                         env=dict(env) if env is not None else None,
                                         start_new_session=True)

    def wait_for(self, pattern: str, *, timeout: float = 90) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log.read_text(errors="replace"), re.MULTILINE)
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not say {pattern!r}; its log {self.log}:\n"
                         + self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout


def container_env(deployment: Mapping[str, Any], config: Mapping[str, str],
                  secret: Mapping[str, str], fields: Mapping[str, str]) -> dict[str, str]:
    """The bridge container's environment as the kubelet would give it: envFrom the
    ConfigMap, then ``env`` in order (``value`` with ``$(VAR)`` expansion, ``configMapKeyRef``,
    ``secretKeyRef`` (an optional one that is missing is left out), ``fieldRef``)."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            env.update(config)
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]),
                                      str(var["value"]))
            continue
        ref = var["valueFrom"]
        if "configMapKeyRef" in ref:
            env[var["name"]] = config[ref["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in ref:
            key = ref["secretKeyRef"]["key"]
            if key in secret:
                env[var["name"]] = secret[key]
            elif not ref["secretKeyRef"].get("optional"):
                raise SystemExit(f"the Secret lacks {key} for {var['name']}")
        elif "fieldRef" in ref:
            env[var["name"]] = fields[ref["fieldRef"]["fieldPath"]]
    return env


def container_args(deployment: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), str(a))
            for a in container.get("args") or []]


@contextlib.contextmanager
def deployed(work: Path) -> Iterator[dict[str, str]]:
    """Kernel, devkube and the bridge replicas as the manifests say; yields the variables
    the e2e suite's external mode reads."""
    # the manifest runs tasks as K8SBRIDGE_MESOS_USER "nobody": the agents' work directories
    # must be reachable by it, as /var/lib/mesos is (a temporary directory is 0700)
    work.chmod(0o755)
    logs = work / "logs"
    logs.mkdir(parents=True)
    secret = secrets.token_urlsafe(24)
    credentials = work / "credentials.json"
    credentials.write_text(json.dumps({"credentials": [
        {"principal": PRINCIPAL, "secret": secret}]}))
    credentials.chmod(0o600)
    kernel_port = free_port()
    kernel_argv = [sys.executable, "-m", "k8sbridge", "kernel", "--host", "127.0.0.1",
                   "--port", str(kernel_port), "--work-dir", str(work / "kernel"),
                   "--agents", str(len(AGENTS)), f"--credentials={credentials}",
                   "--authenticate_frameworks=true", "--authenticate_http_frameworks=true",
                   "--http_framework_authenticators=basic",
                   "--authenticate_http_readonly=true", "--authenticate_http_readwrite=true"]
    for resources, attributes, zone in AGENTS:
        kernel_argv += ["--agent-resources", resources, "--agent-attributes", attributes,
                        "--agent-region", "local", "--agent-zone", zone]
    kernel_argv += [f"--agent-isolation={ISOLATION}", "--agent-image-providers=docker",
                    f"--agent-docker-registry={work / 'images'}"]
    (work / "images").mkdir()
    admin = work / "admin.kubeconfig"
    started: list[Process] = []
    try:
        kernel = Process("kernel", kernel_argv, log=logs / "kernel.log")
        started.append(kernel)
        master = kernel.wait_for(r"^master: (\S+)")[1]
        devkube = Process("devkube", [
            sys.executable, "-m", "k8sbridge", "devkube", "--port", str(free_port()),
            "--data-dir", str(work / "devkube"), "--kubeconfig", str(admin),
        ], log=logs / "devkube.log")
        started.append(devkube)
        devkube.wait_for(r"^devkube serving ")
        for name in ("namespace.yaml", "rbac.yaml"):
            _kubectl(admin, "apply", "-f", str(DEPLOY / name))
        _kubectl(admin, "-n", "k8sbridge", "create", "secret", "generic", "k8sbridge-mesos",
                 f"--from-literal=principal={PRINCIPAL}", f"--from-literal=secret={secret}")
        token = _kubectl(admin, "-n", "k8sbridge", "create", "token", "k8sbridge",
                         "--duration=2h").strip()
        cluster = yaml.safe_load(admin.read_text())["clusters"][0]["cluster"]
        ca = work / "devkube-ca.crt"
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        bridge_kubeconfig = work / "bridge.kubeconfig"
        bridge_kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "sa",
            "clusters": [{"name": "c", "cluster": {"server": cluster["server"],
                                                   "certificate-authority": str(ca)}}],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}]}))
        secret_dir = work / "mesos-secret"
        secret_dir.mkdir()
        (secret_dir / "secret").write_text(secret)
        docs = {d["kind"]: d for d in _documents("bridge.yaml")}
        config = dict(docs["ConfigMap"]["data"])
        config["masters"] = master
        deployment = docs["Deployment"]
        for i in range(int(deployment["spec"].get("replicas", 1))):
            env = container_env(deployment, config, {"principal": PRINCIPAL, "secret": secret},
                                {"status.podIP": "127.0.0.1", "metadata.namespace": "k8sbridge",
                                 "metadata.name": f"k8sbridge-{i}"})
            overrides = {
                "K8SBRIDGE_MESOS_SECRET_FILE": str(secret_dir / "secret"),
                "K8SBRIDGE_KUBELET_CLIENT_CA_FILE": str(ca),
                "K8SBRIDGE_KUBELET_HOST": "127.0.0.1",
                "K8SBRIDGE_SCHEDULER_IMAGE_MODE": "local",
                "K8SBRIDGE_SCHEDULER_IMAGE_DIR": str(work / "images"),
                "K8SBRIDGE_SCHEDULER_POD_NETWORK": "",  # the agents have no CNI network here
                "K8SBRIDGE_LEADER_IDENTITY": f"k8sbridge-{i}",
            }
            args = container_args(deployment, {**env, **overrides})
            port = str(free_port())
            args[args.index("--kubelet-port") + 1] = port
            print(f"bridge {i}: k8sbridge {' '.join(args)} (overriding "
                  f"{', '.join(sorted(overrides))}, --kubelet-port {port}, --kubeconfig)",
                  flush=True)
            clean = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
            bridge = Process(f"bridge-{i}", [
                sys.executable, "-m", "k8sbridge", "--log-level", "INFO", *args,
                "--kubeconfig", str(bridge_kubeconfig)],
                log=logs / f"bridge-{i}.log", env={**clean, **env, **overrides})
            started.append(bridge)
        _one_leads(started[2:])
        yield {"K8SBRIDGE_E2E_KUBECONFIG": str(admin), "K8SBRIDGE_E2E_MASTER": master,
               "K8SBRIDGE_E2E_MASTER_AUTH": f"{PRINCIPAL}:{secret}",
               "K8SBRIDGE_E2E_SCHEDULER_NAME": config["K8SBRIDGE_SCHEDULER_SCHEDULER_NAMES"]}
    finally:
        for process in reversed(started):
            process.stop()


def _one_leads(bridges: list[Process], *, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for bridge in bridges:
            if re.search(r"k8sbridge is ready( \(leader\))?: framework ",
                         bridge.log.read_text(errors="replace")):
                return
        time.sleep(0.3)
    raise SystemExit("no bridge replica became the leader:\n" + "\n".join(
        b.log.read_text(errors="replace")[-2000:] for b in bridges))


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="k8sbridge-external-") as tmp, \
            deployed(Path(tmp)) as variables:
        env = {k: v for k, v in os.environ.items() if not k.startswith("K8SBRIDGE_")}
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                               *(argv or ["tests/e2e"])], cwd=REPO, env={**env, **variables},
                              check=False)
        if done.returncode != 0:
            for log in sorted((Path(tmp) / "logs").iterdir()):
                print(f"--- {log.name} (last lines)\n" + "\n".join(
                    log.read_text(errors="replace").splitlines()[-40:]), flush=True)
        return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
