"""The embedded default (``k8sbridge run`` with no target flags) as processes.

Why a module apart from app.py: ``k8sbridge run`` is here a small supervisor of three child
processes — ``k8sbridge kernel``, ``k8sbridge devkube`` and the bridge (``k8sbridge run --master
--kubeconfig``, as in production) — so each part has an interpreter and a core of its own and a
burst in one cannot starve another's event loop. The supervisor never runs bridge code, so it
does not import it (app.py's imports cost ~0.8 s CPU and ~45 MB): this module needs only the
settings and ``supervise``. It also holds what both forms of the embedded default share (the
agents' shapes, the bridge's settings there); ``app.running_embedded`` runs all three parts in
one process for integration tests.

The door is locked by default: anyone on the host could otherwise tear the bridge's framework
down (killing every pod) or register a framework of their own. ``k8sbridge run`` keeps its state
in a 0700 data dir, generates Mesos credentials there once (``credentials.json``, 0600, random
secrets: ``k8sbridge`` for the bridge, ``operator`` for people and tools, also as a curl
``kernel.netrc``), starts the kernel with Mesos' authentication flags and gives the bridge its
principal and secret (a file, never a command-line argument or a log line).

Authentication says who calls; Mesos' local authorizer says what they may do. Each start writes
``acls.json`` (0600, next to the credentials; Mesos' ``--acls`` JSON, ``permissive: false``, for
the four actions the kernel's master authorizes): ``k8sbridge`` may register the bridge's roles
and nobody else may; ``operator`` may register frameworks in any other role (Marathon and the
like, next to the bridge); both may run tasks only as the user the bridge registers with (the
user running ``k8sbridge run``, never another one such as root); ``operator`` may tear down any
framework, ``k8sbridge`` only its own; only ``operator`` may mark an agent gone
(``MARK_AGENT_GONE``, for a machine that will not come back); everything else is denied (a
principal added to the credentials file gets 403).

The kernel serves TLS by default (``embedded.tls``): libprocess' ``LIBPROCESS_SSL_*`` variables
in its environment name a certificate from ``embedded_tls`` (DATA_DIR/kernel-pki), and the
bridge verifies the master and its agents with that CA (``mesos.ca_file``), as against a
Mesos cluster with TLS.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from k8sbridge import embedded_bridges, supervise
from k8sbridge import settings as bridge_settings
from k8sbridge.embedded_network import (  # re-exported: tests and tools name them here
    CLUSTER_DNS_ADDRESS,
    CLUSTER_NETNS_FILE,
    dns_argv,
    make_cluster_network,
    proxy_flags,
    remove_cluster_network,
    write_private,
)

__all__ = [
    "BRIDGE_PRINCIPAL",
    "CLUSTER_DNS_ADDRESS",
    "CLUSTER_NETNS_FILE",
    "OPERATOR_PRINCIPAL",
    "EmbeddedProcesses",
    "KernelCredentials",
    "bridge_settings_for",
    "embedded_agent_configs",
    "acl_document",
    "kernel_acls",
    "kernel_argv",
    "kernel_credentials",
    "proxy_flags",
    "running_processes",
]

log = logging.getLogger(__name__)


EMBEDDED_STATUS_RETRY_SECONDS = 2.0  # agents resend unacknowledged updates this often
_AGENT_SHAPES = (
    ("cpus:4;mem:4096;disk:20480;ports:[31000-32000]", "rack:r1;zone:z1;disk:ssd", "z1"),
    ("cpus:2;mem:2048;disk:10240;ports:[31000-32000]", "rack:r2;zone:z1;disk:hdd", "z1"),
    ("cpus:8;mem:8192;disk:40960;ports:[31000-32000]", "rack:r3;zone:z2;disk:ssd", "z2"),
)


def image_dir_of(settings: bridge_settings.BridgeSettings) -> Path:
    """The embedded agents' local docker registry directory (created if absent): the
    ``image_dir`` setting, else ``DATA_DIR/images``. An empty one is fine: a container whose
    image has no archive there runs on a copy-on-write view of the host's root."""
    emb = settings.embedded
    path = (emb.image_dir if emb.image_dir is not None else emb.data_dir / "images").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_agent_configs(*, data_dir: Path, count: int, resources: str = "",
                           image_dir: Path | None = None) -> list[Any]:
    """Agents with distinct resources and attributes (``rack``, ``zone``, ``disk``).

    Each agent listens on its own loopback address (127.0.0.N), which is also its hostname, so
    every agent is a distinct, reachable Node. ``resources`` (Mesos --resources), when given,
    replaces the built-in shapes for every agent. The agents always isolate as Mesos'
    containerizer does (``filesystems.FULL_ISOLATION``: a root of their own, volumes, pid
    namespaces, capabilities) with ``image_dir`` (default ``data_dir/images``) as their local
    docker registry.
    """
    from k8sbridge.kernel.agent import config as agent_config
    from k8sbridge.kernel.agent import filesystems

    registry = (image_dir if image_dir is not None else data_dir / "images").resolve()
    views: dict[str, Any] = {"isolation": filesystems.FULL_ISOLATION, "image_providers": "docker",
                             "docker_registry": str(registry)}

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
                **views,
            )
        )
    return out


def bridge_settings_for(
    settings: bridge_settings.BridgeSettings,
    *,
    kernel_url: str,
    kubeconfig: Path,
    client_ca_file: Path | None,
    credentials: KernelCredentials | None = None,
    kernel_ca_file: Path | None = None,
    agent_hosts: Sequence[str] = (),
    pod_network: str = "",
    api_address: str = "",
) -> bridge_settings.BridgeSettings:
    """The bridge's settings in the embedded default: the kernel and devkube as targets, pods
    of ``default-scheduler`` too (no other scheduler exists there), images sent only when
    their archive is in the agents' registry directory (``image_dir_of``).

    The kubelet API listens on loopback unless told otherwise, and trusts devkube's CA, which
    signed the client certificate devkube presents when it proxies pods/log (so ``kubectl
    logs`` works with anonymous requests off). With ``credentials`` the bridge authenticates
    to the kernel as ``BRIDGE_PRINCIPAL`` (its secret read from a file).

    Each Node's InternalIP is its agent's address (``agent_hosts``): the kubelet API listens
    there too (besides its ``kubelet.host``, loopback by default), so the API server reaches
    it by any Node's address. Pods join ``pod_network``
    (the cluster network's CNI network; ``""``: the cluster network is off, pods keep the
    agents' network).

    Pods find the API server as on a cluster: ``KUBERNETES_SERVICE_HOST``/``PORT`` are the
    ``kubernetes`` Service's ClusterIP and port, which the service proxy answers. With
    ``api_address`` (the API server's address inside the cluster network: given when the
    cluster network has no service proxy) they are that address and the API server's port,
    reachable without one. ``scheduler.api_service_host``, when set, wins over both."""
    mesos = dataclasses.replace(settings.mesos, masters=(kernel_url,))
    if kernel_ca_file is not None:  # the kernel serves TLS: its master and agents verified
        mesos = dataclasses.replace(mesos, ca_file=kernel_ca_file)
    image_dir = image_dir_of(settings)
    if credentials is not None:
        mesos = dataclasses.replace(mesos, principal=BRIDGE_PRINCIPAL,
                                    secret_file=credentials.bridge_secret_file)
    names = tuple(dict.fromkeys((*settings.scheduler.scheduler_names, "default-scheduler")))
    kubelet = settings.kubelet
    hosts = [h.strip() for h in kubelet.host.split(",") if h.strip()] or ["127.0.0.1"]
    if not {"0.0.0.0", "::"} & set(hosts) and kubelet.node_address == "agent":
        # each Node's InternalIP is its agent's: the API server dials the kubelet API there
        kubelet = dataclasses.replace(
            kubelet, host=",".join(dict.fromkeys((*hosts, *agent_hosts))))
    if kubelet.client_ca_file is None and client_ca_file is not None:
        kubelet = dataclasses.replace(kubelet, client_ca_file=client_ca_file)
    return dataclasses.replace(
        settings,
        mesos=mesos,
        kube=dataclasses.replace(settings.kube, kubeconfig=kubeconfig),
        scheduler=dataclasses.replace(
            settings.scheduler, scheduler_names=names,
            image_mode="local", image_dir=image_dir,
            allow_host_path=settings.embedded.allow_host_path,
            agent_capabilities=True,
            pod_network=pod_network,
            api_service_host=settings.scheduler.api_service_host or api_address,
            api_service_port=(settings.embedded.api_port
                              if api_address and not settings.scheduler.api_service_host
                              else settings.scheduler.api_service_port),
        ),
        kubelet=kubelet,
    )


# --------------------------------------------------------------------------------------------
# The process form: what ``k8sbridge run`` runs


KERNEL_READY = re.compile(r"^master: (?P<url>\S+)")
DEVKUBE_READY = re.compile(r"^devkube serving (?P<url>\S+); kubeconfig: ")
DNS_READY = re.compile(r"^k8sbridge dns serving ")
BRIDGE_READY = re.compile(
    r"k8sbridge is ready: framework (?P<framework>\S+), kubelet API on port (?P<port>\d+)"
)
PROXY_READY = re.compile(r"^k8sbridge proxy ready: ")
CHILD_START_TIMEOUT = 120.0  # each child must print its ready line within this
BRIDGE_STOP_GRACE = 30.0  # after SIGTERM (its components get STOP_GRACE each, in parallel)
DEVKUBE_STOP_GRACE = 20.0
PROXY_STOP_GRACE = 10.0  # it removes its table
KERNEL_STOP_GRACE = 60.0  # it kills its tasks first (a pod's kill grace may be 30 s)
DNS_STOP_GRACE = 10.0
# kube-dns' convention: the 10th address of the Service range (devkube's is 10.96.0.0/12)
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
    credentials: KernelCredentials | None = None  # None: the kernel's door is open
    acls: Path | None = None  # the kernel's --acls file (with credentials only)
    cluster_netns: str | None = None  # the cluster network's namespace (None: none was made)
    kernel_ca_file: Path | None = None  # the CA the kernel's certificate verifies with (TLS)

    def child(self, name: str) -> supervise.Child:
        return next(c for c in self.group.children if c.spec.name == name)


def _child_env() -> dict[str, str]:
    """The children's environment: ours without K8SBRIDGE_* (the bridge gets its settings as
    one resolved file; the stand-ins take none), output unbuffered so lines arrive whole."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(bridge_settings.ENV_PREFIX)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def kernel_argv(
    *, settings: bridge_settings.BridgeSettings, data_dir: Path, log_level: str,
    credentials: KernelCredentials | None = None, acls: Path | None = None,
    cluster: Any = None,
) -> list[str]:
    """``k8sbridge kernel`` with the embedded agents (one set of per-agent flags each); with
    ``credentials``, Mesos' authentication on for frameworks and both HTTP realms; with
    ``acls``, Mesos' local authorizer over that ``--acls`` file; with ``cluster`` (a
    ``kernel.network.ClusterNetwork``), Mesos' CNI flags giving each agent its network
    (configurations written now, in each agent's work directory)."""
    emb = settings.embedded
    argv = [
        sys.executable, "-m", "k8sbridge", "--log-level", log_level, "kernel",
        "--host", "127.0.0.1", "--port", str(emb.kernel_port),
        "--work-dir", str(data_dir / "kernel"), "--agents", str(emb.agents),
        "--agent-status-retry-seconds", f"{EMBEDDED_STATUS_RETRY_SECONDS:g}",
    ]
    if credentials is not None:
        argv += [f"--credentials={credentials.file}", *KERNEL_AUTH_FLAGS]
    if acls is not None:
        argv.append(f"--acls=file://{acls}")
    image_dir = image_dir_of(settings)
    configs = embedded_agent_configs(data_dir=data_dir, count=emb.agents,
                                     resources=emb.agent_resources, image_dir=image_dir)
    for cfg in configs:
        argv += ["--agent-resources", cfg.resources, "--agent-attributes", cfg.attributes,
                 "--agent-region", cfg.region, "--agent-zone", cfg.zone]
    if cluster is not None:
        flags: dict[str, Any] = {}
        for i in range(emb.agents):  # the kernel's agents work in WORK_DIR/agent-<i>
            flags = cluster.agent_flags(i, work_dir=data_dir / "kernel" / f"agent-{i}")
        argv += [f"--agent-network-cni-config-dir={data_dir / 'kernel'}/agent-{{i}}/network/cni",
                 f"--agent-network-cni-plugins-dir={flags['network_cni_plugins_dir']}",
                 f"--agent-network-cni-plugins-netns={flags['network_cni_plugins_netns']}"]
    argv += [f"--agent-isolation={configs[0].isolation}",
             f"--agent-image-providers={configs[0].image_providers}",
             f"--agent-docker-registry={image_dir}"]
    return argv


def kernel_tls(settings: bridge_settings.BridgeSettings, *, data_dir: Path,
               env: dict[str, str], hosts: Sequence[str]) -> tuple[dict[str, str], Any]:
    """The kernel's environment and TLS identity (``embedded_tls.KernelPki``; None with
    ``embedded.tls`` off): libprocess' SSL variables for DATA_DIR/kernel-pki's certificate
    (naming the master's and every agent's address), or, off, none of ours or the caller's
    (plain HTTP, whatever this process' environment says)."""
    plain = {k: v for k, v in env.items() if not k.startswith("LIBPROCESS_SSL_")}
    if not settings.embedded.tls:
        return plain, None
    from k8sbridge import embedded_tls

    pki = embedded_tls.ensure(directory=data_dir / "kernel-pki", hosts=["127.0.0.1", *hosts])
    return {**plain, **embedded_tls.kernel_environment(pki)}, pki


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


BRIDGE_PRINCIPAL = "k8sbridge"  # the bridge's framework principal at the embedded kernel
OPERATOR_PRINCIPAL = "operator"  # for people and tools (curl, kubectl's neighbours, Marathon)
KERNEL_AUTH_FLAGS = (
    "--authenticate_frameworks=true", "--authenticate_http_frameworks=true",
    "--http_framework_authenticators=basic", "--authenticate_http_readonly=true",
    "--authenticate_http_readwrite=true",
)


@dataclasses.dataclass(frozen=True, slots=True)
class KernelCredentials:
    """Where the embedded kernel's credentials live (every file 0600, in the 0700 data dir)."""

    file: Path  # Mesos --credentials JSON: both principals
    bridge_secret_file: Path  # the bridge's secret alone (its mesos.secret_file)
    netrc: Path  # the operator's, for ``curl --netrc-file``

    def secret_of(self, principal: str) -> str:
        for entry in json.loads(self.file.read_text(encoding="utf-8"))["credentials"]:
            if entry.get("principal") == principal:
                return str(entry["secret"])
        raise KeyError(principal)


def private_dir(path: Path) -> Path:
    """``path`` created if needed and made 0700 (state, secrets and sandboxes live there)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def kernel_credentials(*, data_dir: Path) -> KernelCredentials:
    """The credentials of ``data_dir``, generated once (random secrets) and kept: a restarted
    kernel or a resumed ``k8sbridge run`` uses the same. Files are rewritten 0600 if they were
    made more open; a file that is not Mesos' format is replaced."""
    file = data_dir / "credentials.json"
    creds = KernelCredentials(file=file, bridge_secret_file=data_dir / "mesos-secret",
                              netrc=data_dir / "kernel.netrc")
    entries: dict[str, str] = {}
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        entries = {str(e["principal"]): str(e["secret"]) for e in doc["credentials"]}
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError) as e:
        log.warning("%s is not a Mesos credentials file (%s): generating new credentials",
                    file, type(e).__name__)
    if not all(entries.get(p) for p in (BRIDGE_PRINCIPAL, OPERATOR_PRINCIPAL)):
        entries = {p: secrets.token_urlsafe(32) for p in (BRIDGE_PRINCIPAL, OPERATOR_PRINCIPAL)}
    write_private(file, json.dumps({"credentials": [
        {"principal": p, "secret": s} for p, s in entries.items()]}, indent=2) + "\n")
    write_private(creds.bridge_secret_file, entries[BRIDGE_PRINCIPAL] + "\n")
    write_private(creds.netrc, f"machine 127.0.0.1 login {OPERATOR_PRINCIPAL} password "
                                f"{entries[OPERATOR_PRINCIPAL]}\n")
    return creds


def acl_document(*, roles: Sequence[str], user: str) -> dict[str, Any]:
    """Mesos' ``--acls`` JSON for the embedded kernel (see the module docstring). The local
    authorizer takes the first ACL that matches a request, so the ``NONE`` entry keeps every
    other principal out of the bridge's roles before ``operator`` gets the rest."""
    bridge = {"values": [BRIDGE_PRINCIPAL]}
    operator = {"values": [OPERATOR_PRINCIPAL]}
    return {
        "permissive": False,
        "register_frameworks": [
            {"principals": bridge, "roles": {"values": list(roles)}},
            {"principals": {"type": "NONE"}, "roles": {"values": list(roles)}},
            {"principals": operator, "roles": {"type": "ANY"}},
        ],
        "run_tasks": [
            {"principals": {"values": [BRIDGE_PRINCIPAL, OPERATOR_PRINCIPAL]},
             "users": {"values": [user]}},
        ],
        "teardown_frameworks": [
            {"principals": operator, "framework_principals": {"type": "ANY"}},
            {"principals": bridge, "framework_principals": bridge},
        ],
        "mark_agents_gone": [
            {"principals": operator, "agents": {"type": "ANY"}},
        ],
    }


def kernel_acls(*, data_dir: Path, settings: bridge_settings.BridgeSettings) -> Path:
    """DATA_DIR/acls.json (0600) for the bridge's roles and user, rewritten on every start (the
    roles may have changed)."""
    file = data_dir / "acls.json"
    doc = acl_document(roles=settings.mesos.roles, user=settings.mesos.user)
    write_private(file, json.dumps(doc, indent=2) + "\n")
    return file


@contextlib.asynccontextmanager
async def running_processes(
    settings: bridge_settings.BridgeSettings,
    *,
    log_level: str = "INFO",
    stop: asyncio.Event | None = None,
    echo: BinaryIO | None = None,
    authenticate: bool = True,
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
    data_dir = private_dir(settings.embedded.data_dir.resolve())
    credentials = kernel_credentials(data_dir=data_dir) if authenticate else None
    acls = kernel_acls(data_dir=data_dir, settings=settings) if authenticate else None
    logs = data_dir / "logs"
    kubeconfig = data_dir / "kubeconfig"
    env = _child_env()
    py = [sys.executable, "-m", "k8sbridge", "--log-level", log_level]
    group = supervise.Group(echo=echo, rotation=supervise.LogRotation(
        max_bytes=settings.embedded.log_max_bytes, keep=settings.embedded.log_files))
    cluster = make_cluster_network(settings, data_dir=data_dir)
    agent_hosts = [c.host for c in embedded_agent_configs(data_dir=data_dir,
                                                          count=settings.embedded.agents)]
    kernel_env, pki = kernel_tls(settings, data_dir=data_dir, env=env, hosts=agent_hosts)
    proxied = cluster is not None and shutil.which("nft") is not None
    in_cluster: tuple[str, ...] = ()
    if cluster is not None:  # devkube also listens inside it (the kubernetes Service's IP)
        in_cluster = ("--advertise-address", cluster.api_address,
                      "--listen-netns", cluster.netns_path)
    try:
        kernel = await group.spawn(supervise.ChildSpec(
            name="kernel", argv=tuple(kernel_argv(settings=settings, data_dir=data_dir,
                                                  log_level=log_level, credentials=credentials,
                                                  acls=acls, cluster=cluster)),
            log_file=logs / "kernel.log", ready=KERNEL_READY,
            stop_grace_seconds=KERNEL_STOP_GRACE, env=kernel_env,
        ))
        devkube = await group.spawn(supervise.ChildSpec(
            name="devkube",
            argv=(*py, "devkube", "--host", "127.0.0.1",
                  "--port", str(settings.embedded.api_port),
                  "--data-dir", str(data_dir / "devkube"), "--kubeconfig", str(kubeconfig),
                  *in_cluster),
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
            credentials=credentials,
            kernel_ca_file=pki.ca_file if pki is not None else None,
            agent_hosts=agent_hosts,
            # wanted but not made: the pods still ask for it (and wait, saying why)
            pod_network=(cluster.network_name if cluster is not None
                         else settings.scheduler.pod_network if settings.embedded.cluster_network
                         else ""),
            # no service proxy (no nft): pods reach the API server at its own address
            api_address=cluster.api_address if cluster is not None and not proxied else "",
        )
        dns = None
        if cluster is not None:  # the cluster DNS, ready before the bridge can start a pod
            dns = await group.spawn(supervise.ChildSpec(
                name="dns", argv=dns_argv(
                    py=py, cluster=cluster, kubeconfig=kubeconfig, kernel_url=kernel_url,
                    domain=settings.scheduler.cluster_domain,
                    principal=BRIDGE_PRINCIPAL if credentials is not None else None,
                    secret_file=credentials.bridge_secret_file if credentials else None,
                    ca_file=pki.ca_file if pki is not None else None),
                log_file=logs / "dns.log", ready=DNS_READY,
                stop_grace_seconds=DNS_STOP_GRACE, env=env,
            ))
            if not settings.scheduler.cluster_dns:
                bridge_cfg = dataclasses.replace(bridge_cfg, scheduler=dataclasses.replace(
                    bridge_cfg.scheduler, cluster_dns=(CLUSTER_DNS_ADDRESS,)))
        proxy = None
        if cluster is not None and not proxied:
            log.warning("nft is not installed (Debian's nftables, as scripts/system-packages "
                        "installs it): no service proxy, so Services' cluster IPs and node "
                        "ports reach nothing (pods find the API server at %s)",
                        cluster.api_address)
        elif cluster is not None:  # the service proxy, in the cluster network's namespace
            proxy = await group.spawn(supervise.ChildSpec(
                name="proxy", argv=(*py, "proxy", *proxy_flags(
                    cluster, kubeconfig=kubeconfig, hosts=agent_hosts)),
                log_file=logs / "proxy.log", ready=PROXY_READY,
                stop_grace_seconds=PROXY_STOP_GRACE, env=env,
            ))
        ready = await embedded_bridges.spawn_bridges(
            group, bridge_cfg, data_dir=data_dir, py=py, env=env, kernel_url=kernel_url,
            kubeconfig=kubeconfig, stop=stop, write=write_private, ready=BRIDGE_READY,
            start_timeout=CHILD_START_TIMEOUT, stop_grace=BRIDGE_STOP_GRACE)
        for beside in (dns, proxy):  # they started beside the bridge
            if beside is not None:
                await group.wait_ready(beside, timeout=CHILD_START_TIMEOUT, stop=stop)
        yield EmbeddedProcesses(
            kernel_url=kernel_url, api_url=api_url, kubeconfig=kubeconfig, data_dir=data_dir,
            logs_dir=logs, framework_id=ready["framework"], kubelet_port=int(ready["port"]),
            group=group, credentials=credentials, acls=acls,
            cluster_netns=cluster.name if cluster is not None else None,
            kernel_ca_file=pki.ca_file if pki is not None else None,
        )
    finally:
        await group.stop()
        if cluster is not None:  # the kernel killed its tasks: their DELs freed everything
            remove_cluster_network(cluster, data_dir=data_dir, agents=settings.embedded.agents)
