"""Agent settings: the Mesos agent flags the embedded agent honours.

Why a frozen dataclass: an agent's flags are fixed for its lifetime, and in-process agents are
built by the master's wiring and the CLI alike, so one plain value keeps both honest.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from k8sbridge.kernel.agent import capabilities, filesystems
from k8sbridge.kernel.agent.errors import AgentError
from k8sbridge.kernel.tls import TlsSettings

__all__ = ["AgentConfig"]


@dataclasses.dataclass(frozen=True, slots=True)
class AgentConfig:
    master: str  # master HTTP address "host:port"
    work_dir: Path
    host: str = "127.0.0.1"
    port: int = 0  # agent HTTP API port; 0 = a free one
    hostname: str | None = None  # default: host
    resources: str = ""  # Mesos --resources syntax; names left out auto-detected like Mesos
    attributes: str = ""  # Mesos --attributes syntax
    region: str | None = None
    zone: str | None = None
    status_retry_seconds: float = 10.0
    executor_shutdown_grace_seconds: float = 5.0
    registration_backoff_max_seconds: float = 60.0
    # Compatible extension: how long executors of checkpointing frameworks wait for a
    # restarted agent before they shut their tasks down (Mesos --recovery_timeout, 15 min).
    recovery_timeout_seconds: float = 900.0
    # Mesos --gc_delay (1 week), --disk_watch_interval (1 min), --gc_disk_headroom (0.1):
    # sandboxes and checkpoints of finished containers go gc_delay after they finished, sooner
    # as the work dir's disk fills (see ``garbage``).
    gc_delay_seconds: float = 7 * 24 * 3600.0
    disk_watch_interval_seconds: float = 60.0
    gc_disk_headroom: float = 0.1
    # Compatible extension (Mesos' libprocess has none; the audit found idle connections never
    # closed): a connection must complete a request's headers within http_idle_timeout_seconds
    # of connecting or of its previous response (idle and header timeout in one: aiohttp's
    # keep-alive deadline), and send a request's body within http_body_timeout_seconds.
    http_idle_timeout_seconds: float = 60.0
    http_body_timeout_seconds: float = 30.0
    # libprocess' SSL settings (LIBPROCESS_SSL_*, read by the CLI): the agent API over HTTPS,
    # the link to the master over TLS (see ``kernel.tls``). Off by default, as in Mesos.
    tls: TlsSettings = TlsSettings()
    # Mesos --authenticate_http_readonly, --authenticate_http_readwrite (both off by default)
    # and --http_credentials (a Mesos credentials file): HTTP Basic on the agent API's realms.
    authenticate_http_readonly: bool = False
    authenticate_http_readwrite: bool = False
    http_credentials: Path | None = None
    # Mesos --isolation (what a container sees; see ``filesystems``: FULL_ISOLATION turns on
    # every view isolator), --image_providers, --docker_registry (a local directory of
    # ``docker save`` archives) and --docker_store_dir (default: <work_dir>/store/docker).
    isolation: str = "cgroups/cpu,cgroups/mem"
    image_providers: str = ""
    docker_registry: str = ""
    docker_store_dir: Path | None = None
    # Mesos --switch_user (tasks run as CommandInfo.user, else FrameworkInfo.user; ``users``)
    # and --effective_capabilities/--bounding_capabilities (JSON CapabilityInfo; applied with
    # the linux/capabilities isolator, ``capabilities``).
    switch_user: bool = True
    effective_capabilities: str = ""
    bounding_capabilities: str = ""
    # Mesos --network_cni_config_dir, --network_cni_plugins_dir (both or neither) and
    # --network_cni_root_dir_persist, for the network/cni isolator (``cni``); compatible
    # extensions: the network namespace the plugins run in (the embedded cluster network's,
    # ``k8sbridge.kernel.network``; empty: the agent's own, as Mesos) and how long one plugin
    # call may take before it is killed.
    network_cni_config_dir: str = ""
    network_cni_plugins_dir: str = ""
    network_cni_root_dir_persist: bool = False
    network_cni_plugins_netns: str = ""
    network_cni_plugin_timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        try:
            names = filesystems.parse_isolation(self.isolation)
        except filesystems.IsolationError as e:
            raise AgentError(f"Invalid value for isolation: {e}") from e
        providers = {p.strip() for p in self.image_providers.split(",") if p.strip()}
        if providers - {"docker"}:
            raise AgentError(f"Unsupported image provider: {sorted(providers - {'docker'})[0]}")
        if providers and "filesystem/linux" not in names:
            raise AgentError("The 'filesystem/linux' isolator must be enabled for container "
                             "image provisioning")
        if self.docker_registry and not self.docker_registry.startswith("/"):
            raise AgentError("Expecting registry url starting with '/' (this agent pulls "
                             "only from a local docker registry directory)")
        try:
            effective = capabilities.parse_flag(self.effective_capabilities)
            bounding = capabilities.parse_flag(self.bounding_capabilities)
        except capabilities.CapabilityError as e:
            raise AgentError(f"Invalid capabilities flag: {e}") from e
        if effective is not None and bounding is not None and not effective <= bounding:
            raise AgentError("Allowed capabilities are not a subset of the bounding capabilites")
        if self.network_cni_config_dir and not self.network_cni_plugins_dir:
            raise AgentError("Missing required '--network_cni_plugins_dir' flag")
        if self.network_cni_plugins_dir and not self.network_cni_config_dir:
            raise AgentError("Missing required '--network_cni_config_dir' flag")
        if self.network_cni_config_dir and not Path(self.network_cni_config_dir).is_dir():
            raise AgentError(f"The CNI network configuration directory "
                             f"'{self.network_cni_config_dir}' does not exist")
        if self.network_cni_plugin_timeout_seconds <= 0:
            raise AgentError("network_cni_plugin_timeout must be positive")
        if not 0.0 <= self.gc_disk_headroom <= 1.0:  # as Mesos validates the flag
            raise AgentError("Invalid value for gc_disk_headroom: must be between 0.0 and 1.0")
        if self.gc_delay_seconds < 0 or self.disk_watch_interval_seconds <= 0:
            raise AgentError("gc_delay must not be negative, disk_watch_interval must be positive")
