"""The embedded default (``k8sbridge run`` with no target flags) as processes.

Why a module apart from app.py: ``k8sbridge run`` is here a small supervisor of three child
processes — ``k8sbridge kernel``, ``k8sbridge devkube`` and the bridge (``k8sbridge run --master
--kubeconfig``, as in production) — so each part has an interpreter and a core of its own and a
burst in one cannot starve another's event loop. The supervisor never runs bridge code, so it
does not import it (app.py's imports cost ~0.8 s CPU and ~45 MB): this module needs only the
settings and ``supervise``. It also holds what both forms of the embedded default share (the
agents' shapes, the bridge's settings there); ``app.running_embedded`` runs all three parts in
one process for integration tests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from k8sbridge import settings as bridge_settings
from k8sbridge import supervise

__all__ = [
    "EmbeddedProcesses",
    "bridge_settings_for",
    "embedded_agent_configs",
    "kernel_argv",
    "running_processes",
]


EMBEDDED_STATUS_RETRY_SECONDS = 2.0  # agents resend unacknowledged updates this often
_AGENT_SHAPES = (
    ("cpus:4;mem:4096;disk:20480;ports:[31000-32000]", "rack:r1;zone:z1;disk:ssd", "z1"),
    ("cpus:2;mem:2048;disk:10240;ports:[31000-32000]", "rack:r2;zone:z1;disk:hdd", "z1"),
    ("cpus:8;mem:8192;disk:40960;ports:[31000-32000]", "rack:r3;zone:z2;disk:ssd", "z2"),
)


def embedded_agent_configs(*, data_dir: Path, count: int, resources: str = "") -> list[Any]:
    """Agents with distinct resources and attributes (``rack``, ``zone``, ``disk``).

    Each agent listens on its own loopback address (127.0.0.N), which is also its hostname, so
    every agent is a distinct, reachable Node. ``resources`` (Mesos --resources), when given,
    replaces the built-in shapes for every agent.
    """
    from k8sbridge.kernel.agent import config as agent_config

    out = []
    for i in range(count):
        shape, attributes, zone = _AGENT_SHAPES[i % len(_AGENT_SHAPES)]
        if i >= len(_AGENT_SHAPES):
            attributes = attributes.replace(f"rack:r{i % 3 + 1}", f"rack:r{i + 1}")
        out.append(
            agent_config.AgentConfig(
                master="127.0.0.1:0",  # replaced by the kernel with its real address
                work_dir=data_dir / f"agent-{i + 1}",
                host=f"127.0.0.{i + 1}",
                resources=resources or shape,
                attributes=attributes,
                region="local",
                zone=zone,
                status_retry_seconds=EMBEDDED_STATUS_RETRY_SECONDS,
            )
        )
    return out


def bridge_settings_for(
    settings: bridge_settings.BridgeSettings,
    *,
    kernel_url: str,
    kubeconfig: Path,
    client_ca_file: Path | None,
) -> bridge_settings.BridgeSettings:
    """The bridge's settings in the embedded default: the kernel and devkube as targets, pods
    of ``default-scheduler`` too (no other scheduler exists there), commands run on the host.

    The kubelet API listens on loopback unless told otherwise, and trusts devkube's CA, which
    signed the client certificate devkube presents when it proxies pods/log (so ``kubectl
    logs`` works with anonymous requests off)."""
    names = tuple(dict.fromkeys((*settings.scheduler.scheduler_names, "default-scheduler")))
    kubelet = settings.kubelet
    if not kubelet.host:
        kubelet = dataclasses.replace(kubelet, host="127.0.0.1")
    if kubelet.client_ca_file is None and client_ca_file is not None:
        kubelet = dataclasses.replace(kubelet, client_ca_file=client_ca_file)
    return dataclasses.replace(
        settings,
        mesos=dataclasses.replace(settings.mesos, masters=(kernel_url,)),
        kube=dataclasses.replace(settings.kube, kubeconfig=kubeconfig),
        scheduler=dataclasses.replace(
            settings.scheduler, scheduler_names=names, image_mode="none"
        ),
        kubelet=kubelet,
    )


# --------------------------------------------------------------------------------------------
# The process form: what ``k8sbridge run`` runs


KERNEL_READY = re.compile(r"^master: (?P<url>\S+)")
DEVKUBE_READY = re.compile(r"^devkube serving (?P<url>\S+); kubeconfig: ")
BRIDGE_READY = re.compile(
    r"k8sbridge is ready: framework (?P<framework>\S+), kubelet API on port (?P<port>\d+)"
)
CHILD_START_TIMEOUT = 120.0  # each child must print its ready line within this
BRIDGE_STOP_GRACE = 30.0  # after SIGTERM (its components get STOP_GRACE each, in parallel)
DEVKUBE_STOP_GRACE = 20.0
KERNEL_STOP_GRACE = 60.0  # it kills its tasks first (a pod's kill grace may be 30 s)


@dataclasses.dataclass(frozen=True, slots=True)
class EmbeddedProcesses:
    """Where the embedded default's parts listen, and the supervised child processes."""

    kernel_url: str
    api_url: str
    kubeconfig: Path
    data_dir: Path
    logs_dir: Path
    framework_id: str
    kubelet_port: int
    group: supervise.Group

    def child(self, name: str) -> supervise.Child:
        return next(c for c in self.group.children if c.spec.name == name)


def _child_env() -> dict[str, str]:
    """The children's environment: ours without K8SBRIDGE_* (the bridge gets its settings as
    one resolved file; the stand-ins take none), output unbuffered so lines arrive whole."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(bridge_settings.ENV_PREFIX)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def kernel_argv(
    *, settings: bridge_settings.BridgeSettings, data_dir: Path, log_level: str
) -> list[str]:
    """``k8sbridge kernel`` with the embedded agents (one set of per-agent flags each)."""
    emb = settings.embedded
    argv = [
        sys.executable, "-m", "k8sbridge", "--log-level", log_level, "kernel",
        "--host", "127.0.0.1", "--port", str(emb.kernel_port),
        "--work-dir", str(data_dir / "kernel"), "--agents", str(emb.agents),
        "--agent-status-retry-seconds", f"{EMBEDDED_STATUS_RETRY_SECONDS:g}",
    ]
    configs = embedded_agent_configs(data_dir=data_dir, count=emb.agents,
                                     resources=emb.agent_resources)
    for cfg in configs:
        argv += ["--agent-resources", cfg.resources, "--agent-attributes", cfg.attributes,
                 "--agent-region", cfg.region, "--agent-zone", cfg.zone]
    return argv


def _ca_from_kubeconfig(kubeconfig: Path, *, into: Path) -> Path | None:
    """devkube's CA, from the kubeconfig it wrote (the CA that also signed its kubelet client
    certificate): the kubelet API in the bridge process trusts it."""
    doc = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
    cluster = (doc.get("clusters") or [{}])[0].get("cluster") or {}
    data = cluster.get("certificate-authority-data")
    if not data:
        return None
    into.write_bytes(base64.b64decode(data))
    return into


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    tmp.replace(path)


@contextlib.asynccontextmanager
async def running_processes(
    settings: bridge_settings.BridgeSettings,
    *,
    log_level: str = "INFO",
    stop: asyncio.Event | None = None,
    echo: BinaryIO | None = None,
) -> AsyncIterator[EmbeddedProcesses]:
    """The embedded default as ``k8sbridge run`` runs it: ``k8sbridge kernel`` and ``k8sbridge
    devkube`` as child processes (started together), then the bridge as a third child
    (``k8sbridge run --master --kubeconfig``, as in production, its settings resolved into
    DATA_DIR/bridge-settings.yaml). Yields once all three printed their ready lines; on exit
    stops the bridge, then devkube, then the kernel (which kills its tasks), each bounded.

    Raises ``supervise.ChildExited`` if a child exits while starting, ``supervise.Interrupted``
    if ``stop`` is set first. Children log to DATA_DIR/logs/<name>.log and, labelled, to
    ``echo``; each gets SIGTERM if this process dies (``supervise``).
    """
    data_dir = settings.embedded.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    kubeconfig = data_dir / "kubeconfig"
    env = _child_env()
    py = [sys.executable, "-m", "k8sbridge", "--log-level", log_level]
    group = supervise.Group(echo=echo)
    try:
        kernel = await group.spawn(supervise.ChildSpec(
            name="kernel", argv=tuple(kernel_argv(settings=settings, data_dir=data_dir,
                                                  log_level=log_level)),
            log_file=logs / "kernel.log", ready=KERNEL_READY,
            stop_grace_seconds=KERNEL_STOP_GRACE, env=env,
        ))
        devkube = await group.spawn(supervise.ChildSpec(
            name="devkube",
            argv=(*py, "devkube", "--host", "127.0.0.1",
                  "--port", str(settings.embedded.api_port),
                  "--data-dir", str(data_dir / "devkube"), "--kubeconfig", str(kubeconfig)),
            log_file=logs / "devkube.log", ready=DEVKUBE_READY,
            stop_grace_seconds=DEVKUBE_STOP_GRACE, env=env,
        ))
        kernel_url = (await group.wait_ready(kernel, timeout=CHILD_START_TIMEOUT,
                                             stop=stop))["url"]
        api_url = (await group.wait_ready(devkube, timeout=CHILD_START_TIMEOUT,
                                          stop=stop))["url"]
        bridge_cfg = bridge_settings_for(
            settings, kernel_url=kernel_url, kubeconfig=kubeconfig,
            client_ca_file=_ca_from_kubeconfig(kubeconfig, into=data_dir / "devkube-ca.crt"),
        )
        settings_file = data_dir / "bridge-settings.yaml"
        _write_private(settings_file, yaml.safe_dump(bridge_settings.dump(bridge_cfg),
                                                     sort_keys=False))
        bridge = await group.spawn(supervise.ChildSpec(
            name="bridge",
            argv=(*py, "run", "--config", str(settings_file), "--master", kernel_url,
                  "--kubeconfig", str(kubeconfig)),
            log_file=logs / "bridge.log", ready=BRIDGE_READY,
            stop_grace_seconds=BRIDGE_STOP_GRACE, env=env,
        ))
        ready = await group.wait_ready(bridge, timeout=CHILD_START_TIMEOUT, stop=stop)
        yield EmbeddedProcesses(
            kernel_url=kernel_url, api_url=api_url, kubeconfig=kubeconfig, data_dir=data_dir,
            logs_dir=logs, framework_id=ready["framework"], kubelet_port=int(ready["port"]),
            group=group,
        )
    finally:
        await group.stop()
