"""The bridge's settings: nested frozen dataclasses under one ``BridgeSettings``.

Why one tree: every component receives only its own section (``settings.mesos``,
``settings.kubelet`` ...), so a component's knobs are visible in one place and tests can build a
settings value with ``dataclasses.replace`` instead of patching globals.

Precedence (highest first): command-line flags > environment ``K8SBRIDGE_<SECTION>_<FIELD>``
(e.g. ``K8SBRIDGE_MESOS_MASTERS=http://m1:5050,http://m2:5050``) > an optional YAML file
(``{mesos: {masters: [...]}, kubelet: {port: 10250}}``) > the defaults below. Unknown keys in
the file or the environment are errors, not silently ignored: a misspelt setting would otherwise
look like it took effect.
"""

from __future__ import annotations

import dataclasses
import getpass
import ipaddress
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "BridgeSettings",
    "EmbeddedSettings",
    "KubeSettings",
    "KubeletSettings",
    "LeaderSettings",
    "MesosSettings",
    "SchedulerSettings",
    "SettingsError",
    "dump",
    "load",
]

ENV_PREFIX = "K8SBRIDGE_"
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


class SettingsError(ValueError):
    """A setting that cannot be used (the message names the key and the source)."""


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "root"


@dataclasses.dataclass(frozen=True, slots=True)
class MesosSettings:
    """The framework side: how to reach the master and how to behave towards it."""

    masters: tuple[str, ...] = ("http://127.0.0.1:5050",)
    roles: tuple[str, ...] = ("kubernetes",)
    framework_name: str = "k8sbridge"
    user: str = dataclasses.field(default_factory=_default_user)
    principal: str | None = None
    secret_file: Path | None = None  # HTTP basic auth secret, read at start (never logged)
    ca_file: Path | None = None
    failover_timeout_seconds: float = 7 * 24 * 3600.0
    refuse_seconds: float = 30.0  # decline filter for offers we cannot use
    revive_min_interval_seconds: float = 1.0  # REVIVE at most this often
    offer_hold_seconds: float = 5.0  # never keep an offer longer than this
    reconcile_interval_seconds: float = 900.0
    agent_poll_seconds: float = 2.0  # operator API GET_AGENTS period (nodes)
    # Re-SUBSCRIBE after losing the master: backoff from the first value doubling to the cap
    # (equal jitter), cut short when a TCP probe every master_probe_seconds (0: off) finds a
    # master that was down accepting again (``mesos.pacing``).
    resubscribe_backoff_seconds: float = 0.5
    resubscribe_backoff_max_seconds: float = 8.0
    master_probe_seconds: float = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class KubeSettings:
    """The Kubernetes side: credentials and where the bridge keeps its own state."""

    kubeconfig: Path | None = None  # None: in-cluster config, else ~/.kube/config
    context: str | None = None
    namespace: str = "k8sbridge"  # the bridge's namespace (state ConfigMap, events)
    state_configmap: str = "k8sbridge-state"
    client_threads: int = 16  # API calls in flight at once (connections; the name is older)


@dataclasses.dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """Which pods the bridge schedules, and how pods become Mesos task groups."""

    scheduler_names: tuple[str, ...] = ("k8sbridge",)
    ranking: str = "spread"  # or "binpack"
    seed: int | None = None
    executor_cpus: float = 0.1  # the DEFAULT executor's own resources, once per pod
    executor_mem: float = 32.0
    executor_disk: float = 10.0  # Mesos refuses an executor without disk
    # "mesos": every image goes in container.mesos.image; "none": no image is sent (commands
    # run in the agent's own view); "local": an image is sent only when image_dir (a local
    # docker registry directory the agents share, Mesos --docker_registry) holds its archive
    # repository:tag.tar, else the container runs without one and the pod is told so.
    # Offers shaped by demand (Mesos >= 1.11): UPDATE_FRAMEWORK with offer_constraints and
    # min_allocatable_resources from the pending pods (``scheduler.shaping``); off: every offer
    shape_offers: bool = True
    # One IP for a pod's life (scheduler.podsandbox): a sandbox task in a group of its own holds
    # the executor and its network namespace, every later group joins it. Off by default: it
    # doubles the isolated tasks per pod (1,000 replicas: 524/1000 in 150 s at load 400), and
    # a kernel killed mid-rollout lost pods with it; off, each phase gets an IP of its own.
    pod_sandbox: bool = False
    image_mode: str = "mesos"
    image_dir: Path | None = None
    # hostPath volumes become Mesos HOST_PATH volumes only when allowed (they reach the agent's
    # file system): off against real clusters, on in the embedded default.
    allow_host_path: bool = False
    # runAsUser → CommandInfo.user: Mesos runs a task as a user *name* on the agent, so each uid
    # pods may ask for is mapped to one ("1000=alice,65534=nobody"); an unmapped uid (not 0) is
    # refused, 0 or no runAsUser sends no user (the framework's, mesos.user).
    run_as_users: tuple[str, ...] = ()
    # The agents run Mesos' linux/capabilities isolator (without it Mesos ignores capabilities
    # silently): only then are securityContext.capabilities sent, else refused. The embedded
    # cluster always sets it (its agents isolate fully).
    agent_capabilities: bool = False
    # The pod's /etc/hosts, /etc/resolv.conf and /etc/hostname, written as the kubelet writes
    # them (SECRET volumes: the agents run Mesos' volume/secret isolator, as configMap volumes
    # need too). Off: containers see the agent's files and fields that need a file of the
    # pod's own (hostAliases, dnsConfig, hostname, subdomain ...) are refused.
    pod_files: bool = True
    # The kubelet's --cluster-dns: the nameservers of pods with dnsPolicy ClusterFirst. Empty:
    # those pods get the agent's resolv.conf and a MissingClusterDNS warning, as from a
    # kubelet without it.
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"  # the kubelet's --cluster-domain
    # The CNI network pods join (ContainerInfo.network_infos of their executor: Mesos'
    # network/cni isolator gives each pod a network namespace and an IP of its own). Default:
    # the embedded cluster's network. hostNetwork pods and pods with a hostPort keep the
    # agent's network. "": every pod keeps the agent's network. Mesos agents do not advertise
    # their CNI networks: every agent serving the bridge's roles must have this one (a pod
    # launched on one that does not waits in ContainerCreating with the agent's message and
    # FailedCreatePodSandBox events, retried with back-off, as a kubelet without its network).
    pod_network: str = "k8sbridge"
    # Where pods reach the Kubernetes API (their KUBERNETES_SERVICE_HOST/PORT), overriding
    # the kubernetes Service's ClusterIP. Empty: that ClusterIP, as a kubelet gives it (a
    # service proxy answers it). The embedded default keeps it, its service proxy answering
    # the ClusterIP; without one (no nft) it sets the API server's address inside the
    # cluster network.
    api_service_host: str = ""
    api_service_port: int = 443
    tolerate_own_taint: bool = True
    cycle_seconds: float = 0.2  # batching window before a placement pass
    # Pods without requests get these (documented in docs/operations.md).
    default_cpus: float = 0.1
    default_mem: float = 64.0


@dataclasses.dataclass(frozen=True, slots=True)
class KubeletSettings:
    """The virtual kubelet: nodes, leases and the HTTPS API on 10250."""

    # Bind address of the HTTPS API (several, comma-separated, share one port). "": loopback
    # (127.0.0.1 and every embedded agent's address) in the embedded default, where the API
    # server runs on this host; all interfaces (0.0.0.0) with external targets, where a remote
    # API server must reach it. Set it explicitly to narrow that down.
    host: str = ""
    port: int = 10250
    advertise_address: str = ""  # the kubelet API's address; "": the route to the API server
    # Each Node's InternalIP: "agent" (the agent's own address, from its pid, as a kubelet
    # reports its host's) or "kubelet" (advertise_address: for an API server that reaches
    # kubelets by InternalIP, the bridge's kubelet API then serving every node there). With
    # "agent" the API server dials AGENT_IP:port for `kubectl logs`: the kubelet API must
    # listen there too (the embedded default does, ``host`` listing every agent's address).
    node_address: str = "agent"
    cert_file: Path | None = None  # None: a generated self-signed certificate
    key_file: Path | None = None
    # Authentication, as a kubelet's: a client certificate signed by this CA (the API server's
    # --kubelet-client-certificate), or a bearer token the API server accepts in a TokenReview.
    # The embedded default fills client_ca_file with devkube's CA when it is left unset.
    client_ca_file: Path | None = None
    token_review: bool = True  # check bearer tokens with authentication.k8s.io/v1 TokenReview
    token_cache_ttl_seconds: float = 120.0  # a kubelet's --authentication-token-webhook-cache-ttl
    token_cache_failure_ttl_seconds: float = 10.0  # rejected tokens are remembered this long
    anonymous: bool = False  # serve unauthenticated requests (as system:anonymous)
    # sinceSeconds precision: every this many seconds record the size of each running
    # container's stdout/stderr (one agent /files/browse call per container); 0: only the sizes
    # seen while serving log requests are recorded.
    log_sample_seconds: float = 0.0
    node_taint: str = "virtual-kubelet.io/provider=mesos:NoSchedule"  # "" disables
    lease_duration_seconds: int = 40
    lease_renew_seconds: float = 10.0
    status_report_seconds: float = 60.0
    max_pods: int = 110


@dataclasses.dataclass(frozen=True, slots=True)
class LeaderSettings:
    """Leader election between replicas (a ``coordination.k8s.io/v1`` Lease, client-go's
    timings): only the leader subscribes to Mesos, places, launches and writes status."""

    enabled: bool = False  # on for 2+ replicas (manifests/deploy); off: this process leads
    lease_name: str = "k8sbridge-leader"  # in kube.namespace
    identity: str = ""  # holderIdentity; "": HOSTNAME_<random> (unique per process)
    lease_duration_seconds: int = 15  # a standby takes an unrenewed Lease after this
    renew_deadline_seconds: float = 10.0  # the leader stops acting if not renewed by then
    retry_period_seconds: float = 2.0  # between tries (acquire and renew)
    release_on_stop: bool = True  # give the Lease up on SIGTERM (fast takeover)


@dataclasses.dataclass(frozen=True, slots=True)
class EmbeddedSettings:
    """``k8sbridge run`` without --master/--kubeconfig: kernel + devkube + bridge."""

    data_dir: Path = Path(".k8sbridge")
    kernel_port: int = 5050
    api_port: int = 6443
    agents: int = 3
    # Mesos --resources of every embedded agent; "": the built-in shapes (4, 2 and 8 cpus ...).
    # Larger agents let the embedded default hold more pods (bench/bench_embedded.py).
    agent_resources: str = ""
    # The agents' local docker registry (Mesos --docker_registry: ``docker save`` archives named
    # repository:tag.tar); None: DATA_DIR/images. The agents always run with full isolation
    # (a root of their own, volumes, pid namespaces) and the bridge sends an image only when
    # its archive is here (else the container runs on a copy-on-write view of the host's root).
    image_dir: Path | None = None
    allow_host_path: bool = True  # hostPath volumes in the embedded cluster (scheduler setting)
    # The cluster network (a network namespace of its own, created on start and removed on
    # stop; needs root and the CNI reference plugins in /usr/lib/cni, else pods keep the
    # agents' network and one warning says why): pods get IPs of cluster_cidr, a subnet of
    # node_cidr_mask_size bits per agent (kube-controller-manager's --node-cidr-mask-size,
    # the node's podCIDR); the last address is the API server's inside it.
    cluster_network: bool = True
    cluster_cidr: str = "10.88.0.0/16"
    node_cidr_mask_size: int = 24
    cni_plugins_dir: Path = Path("/usr/lib/cni")  # the agents' --network_cni_plugins_dir
    # DATA_DIR/logs/<child>.log rotate past log_max_bytes (0: never), log_files copies kept
    log_max_bytes: int = 100 * 1024 * 1024
    log_files: int = 5
    # TLS on the kernel (libprocess' LIBPROCESS_SSL_* settings): a CA and a certificate made in
    # DATA_DIR/kernel-pki, the master and agents on https, the bridge verifying them with
    # that CA (mesos.ca_file). False: plain HTTP, as Mesos' default.
    tls: bool = True
    # Bridge child processes; 2+: each with leader election on (leader.enabled) and an identity
    # of its own, the 2nd's kubelet API on kubelet.port + 1 (and so on); a killed one is
    # restarted and comes back as the standby.
    bridge_replicas: int = 1


@dataclasses.dataclass(frozen=True, slots=True)
class BridgeSettings:
    mesos: MesosSettings = dataclasses.field(default_factory=MesosSettings)
    kube: KubeSettings = dataclasses.field(default_factory=KubeSettings)
    scheduler: SchedulerSettings = dataclasses.field(default_factory=SchedulerSettings)
    kubelet: KubeletSettings = dataclasses.field(default_factory=KubeletSettings)
    leader: LeaderSettings = dataclasses.field(default_factory=LeaderSettings)
    embedded: EmbeddedSettings = dataclasses.field(default_factory=EmbeddedSettings)


# --------------------------------------------------------------------------------------------
# Loading


def _coerce(value: Any, hint: Any, *, where: str) -> Any:
    """Convert a YAML or environment value to the field's declared type."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        return _coerce(value, args[0], where=where)
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
        elif isinstance(value, list | tuple):
            parts = list(value)
        else:
            raise SettingsError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(p, item, where=where) for p in parts)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if hint is Path:
            return Path(str(value)).expanduser()
        if hint is str:
            if isinstance(value, dict | list):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError) as e:
        raise SettingsError(f"{where}: {value!r} is not a valid {hint.__name__}") from e
    raise SettingsError(f"{where}: unsupported setting type {hint!r}")


def _section_types() -> dict[str, type[Any]]:
    hints = typing.get_type_hints(BridgeSettings)
    return {f.name: hints[f.name] for f in dataclasses.fields(BridgeSettings)}


def _apply(
    base: BridgeSettings, values: Mapping[str, Mapping[str, Any]], *, source: str
) -> BridgeSettings:
    sections = _section_types()
    replaced: dict[str, Any] = {}
    for section, fields in values.items():
        if section not in sections:
            raise SettingsError(f"{source}: unknown section {section!r}")
        if not isinstance(fields, Mapping):
            raise SettingsError(f"{source}: section {section!r} must be a mapping")
        cls = sections[section]
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        changes: dict[str, Any] = {}
        for key, raw in fields.items():
            if key not in names:
                raise SettingsError(f"{source}: unknown setting {section}.{key}")
            changes[key] = _coerce(raw, hints[key], where=f"{source}: {section}.{key}")
        replaced[section] = dataclasses.replace(getattr(base, section), **changes)
    return dataclasses.replace(base, **replaced)


def _from_env(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    sections = _section_types()
    out: dict[str, dict[str, str]] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        rest = key[len(ENV_PREFIX) :].lower()
        section, _, field = rest.partition("_")
        if section not in sections or not field:
            continue  # other K8SBRIDGE_* variables (e.g. the e2e target) are not settings
        names = {f.name for f in dataclasses.fields(sections[section])}
        if field not in names:
            raise SettingsError(f"environment: {key} is not a known setting")
        out.setdefault(section, {})[field] = value
    return out


def load(
    *,
    flags: Mapping[str, Mapping[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> BridgeSettings:
    """Build the settings: defaults < YAML file < environment < flags (None values skipped)."""
    env = os.environ if env is None else env
    settings = BridgeSettings()
    if config_file is None and env.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(env[ENV_PREFIX + "CONFIG"])
    if config_file is not None:
        try:
            data = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise SettingsError(f"config file {config_file}: {e}") from e
        if not isinstance(data, Mapping):
            raise SettingsError(f"config file {config_file}: the top level must be a mapping")
        settings = _apply(settings, data, source=f"config file {config_file}")
    settings = _apply(settings, _from_env(env), source="environment")
    if flags:
        given = {
            section: {k: v for k, v in fields.items() if v is not None}
            for section, fields in flags.items()
        }
        settings = _apply(settings, given, source="flags")
    _validate(settings)
    return settings


def dump(settings: BridgeSettings) -> dict[str, dict[str, Any]]:
    """The settings as plain YAML/JSON values, section by section; ``load(config_file=...)`` of
    that document gives back an equal value (``k8sbridge run`` hands the embedded bridge its
    settings this way). Secrets are never in the settings, only the paths of their files."""
    out: dict[str, dict[str, Any]] = {}
    for section in dataclasses.fields(BridgeSettings):
        value = getattr(settings, section.name)
        fields: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if isinstance(item, Path):
                item = str(item)
            elif isinstance(item, tuple):
                item = [str(x) if isinstance(x, Path) else x for x in item]
            fields[f.name] = item
        out[section.name] = fields
    return out


def _validate(settings: BridgeSettings) -> None:
    if not settings.mesos.masters:
        raise SettingsError("mesos.masters: at least one master URL is needed")
    if not settings.mesos.roles:
        raise SettingsError("mesos.roles: at least one role is needed")
    if settings.scheduler.ranking not in ("spread", "binpack"):
        raise SettingsError("scheduler.ranking: must be 'spread' or 'binpack'")
    if settings.scheduler.image_mode not in ("mesos", "none", "local"):
        raise SettingsError("scheduler.image_mode: must be 'mesos', 'none' or 'local'")
    if settings.scheduler.image_mode == "local" and settings.scheduler.image_dir is None:
        raise SettingsError("scheduler.image_dir: needed with scheduler.image_mode 'local'")
    for item in settings.scheduler.run_as_users:
        uid, sep, name = item.partition("=")
        if not sep or not uid.strip().isdigit() or not name.strip():
            raise SettingsError(f"scheduler.run_as_users: {item!r} is not uid=name")
    for ip in settings.scheduler.cluster_dns:
        try:
            ipaddress.ip_address(ip)
        except ValueError as e:
            raise SettingsError(f"scheduler.cluster_dns: {ip!r} is not an IP address") from e
    if len(settings.scheduler.cluster_dns) > 3:
        raise SettingsError("scheduler.cluster_dns: at most 3 nameservers (resolv.conf's "
                            "limit)")
    domain = settings.scheduler.cluster_domain
    if not _DOMAIN.match(domain) or len(domain) > 253:
        raise SettingsError(f"scheduler.cluster_domain: {domain!r} is not a DNS domain "
                            "(lower-case labels separated by dots)")
    if not settings.scheduler.scheduler_names:
        raise SettingsError("scheduler.scheduler_names: at least one name is needed")
    if settings.kubelet.node_address not in ("agent", "kubelet"):
        raise SettingsError("kubelet.node_address: must be 'agent' or 'kubelet'")
    if not 0 < settings.scheduler.api_service_port < 65536:
        raise SettingsError("scheduler.api_service_port: must be 1..65535")
    if settings.kube.client_threads < 1:
        raise SettingsError("kube.client_threads: must be at least 1")
    if settings.kubelet.token_cache_ttl_seconds < 0:
        raise SettingsError("kubelet.token_cache_ttl_seconds: must not be negative")
    if settings.kubelet.token_cache_failure_ttl_seconds < 0:
        raise SettingsError("kubelet.token_cache_failure_ttl_seconds: must not be negative")
    if settings.kubelet.log_sample_seconds < 0:
        raise SettingsError("kubelet.log_sample_seconds: must not be negative")
    try:
        cidr = ipaddress.ip_network(settings.embedded.cluster_cidr)
    except ValueError as e:
        raise SettingsError(f"embedded.cluster_cidr: {e}") from e
    if settings.embedded.agents < 1:
        raise SettingsError("embedded.agents: at least one agent is needed")
    if settings.embedded.bridge_replicas < 1:
        raise SettingsError("embedded.bridge_replicas: must be at least 1")
    if settings.embedded.log_max_bytes < 0 or settings.embedded.log_files < 0:
        raise SettingsError("embedded.log_max_bytes, embedded.log_files: must not be negative")
    _check_pod_subnets(settings, cidr)
    _validate_leader(settings.leader)
    if not 0 <= settings.kubelet.port < 65536:
        raise SettingsError("kubelet.port: must be 0..65535")


def _check_pod_subnets(settings: BridgeSettings, cidr: ipaddress.IPv4Network |
                       ipaddress.IPv6Network) -> None:
    """The cluster CIDR must hold a subnet per agent plus the API server's (the last)."""
    emb = settings.embedded
    mask = emb.node_cidr_mask_size
    if cidr.version != 4:
        raise SettingsError("embedded.cluster_cidr: an IPv4 network")
    if not cidr.prefixlen < mask <= 30:
        raise SettingsError(f"embedded.node_cidr_mask_size: {mask} must be longer than the "
                            f"cluster CIDR's /{cidr.prefixlen} and at most 30")
    subnets = 1 << (mask - cidr.prefixlen)
    if subnets - 1 < emb.agents:  # the last subnet is the API server's
        raise SettingsError(f"embedded.cluster_cidr: {cidr} has {subnets - 1} /{mask} subnet(s) "
                            f"for pods, fewer than the {emb.agents} agents (a larger "
                            "cluster_cidr or a longer node_cidr_mask_size)")


def check_embedded_pods(settings: BridgeSettings) -> None:
    """``k8sbridge run``'s embedded default only: a node must not offer more pods than its
    subnet has addresses, else a pod placed beyond them waits in ContainerCreating for an
    address that never comes (``host-local`` keeps the network, broadcast and gateway
    addresses of a subnet)."""
    emb = settings.embedded
    mask = emb.node_cidr_mask_size
    addresses = (1 << (32 - mask)) - 3
    if emb.cluster_network and settings.scheduler.pod_network and \
            settings.kubelet.max_pods > addresses:
        raise SettingsError(f"kubelet.max_pods: {settings.kubelet.max_pods} pods per node do "
                            f"not fit the {addresses} pod addresses of a /{mask} per agent "
                            "(a shorter embedded.node_cidr_mask_size, or fewer pods)")


def _validate_leader(leader: LeaderSettings) -> None:
    """client-go's own checks (leaderelection.NewLeaderElector): a leader must give up before
    anyone may take over, and retry often enough to renew in time."""
    if leader.retry_period_seconds <= 0:
        raise SettingsError("leader.retry_period_seconds: must be positive")
    if leader.lease_duration_seconds <= leader.renew_deadline_seconds:
        raise SettingsError("leader.lease_duration_seconds: must be greater than "
                            "leader.renew_deadline_seconds (the leader stops acting at the "
                            "deadline, before a standby may take the Lease)")
    if leader.renew_deadline_seconds <= 1.2 * leader.retry_period_seconds:
        raise SettingsError("leader.renew_deadline_seconds: must be greater than 1.2 × "
                            "leader.retry_period_seconds")
    if not leader.lease_name:
        raise SettingsError("leader.lease_name: must not be empty")
