"""Configuration of the embedded master (contract D of the kernel).

Why a frozen dataclass: the CLI, ``running_kernel`` and tests all build one value and hand it
over; nothing mutates it afterwards. The defaults are Mesos' own (port 5050, 15 s heartbeats,
1 s allocation interval, agent pings every 15 s with 5 misses allowed, 5 s refuse filters).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from k8sbridge.kernel.tls import TlsSettings


@dataclasses.dataclass(frozen=True, slots=True)
class MasterConfig:
    host: str = "127.0.0.1"
    port: int = 5050
    link_port: int = 0
    work_dir: Path | None = None  # registry persistence (SQLite); None = memory only
    heartbeat_interval: float = 15.0
    allocation_interval: float = 1.0
    # Mesos' --agent_ping_timeout (a ping is sent, and its pong awaited, this often) and
    # --max_agent_ping_timeouts (pongs missed in a row before the agent is unreachable):
    # 15 s x 5, so an agent that stops answering is unreachable 75 s after its first silence.
    agent_ping_interval: float = 15.0
    max_missed_pings: int = 5
    offer_timeout: float | None = None
    refuse_seconds_default: float = 5.0
    # Extensions (compatible additions to contract D):
    hostname: str | None = None  # advertised in master_info; default: host
    agent_reregister_timeout: float = 600.0  # after a restart, recovered agents get this long
    max_completed_frameworks: int = 50
    max_completed_tasks_per_framework: int = 1000
    # Mesos' authentication and authorization flags, off by default as in Mesos.
    authenticate_frameworks: bool = False  # driver (SASL) frameworks; none are served here
    authenticate_http_frameworks: bool = False  # /api/v1/scheduler, realm mesos-master-scheduler
    authenticate_http_readonly: bool = False  # /state, /frameworks, ... realm ...-readonly
    authenticate_http_readwrite: bool = False  # /api/v1 (operator API), realm ...-readwrite
    http_authenticators: str = "basic"
    http_framework_authenticators: str | None = None  # Mesos: required with http frameworks
    credentials: str | None = None  # path (or file:///path) to Mesos' JSON credentials
    acls: str | None = None  # Mesos' ACLs JSON, or file:///path / /path to it
    # Bounds of the HTTP server (see http.py): a connection whose next request's headers are
    # not complete this long after it opened or after its last answer is closed (an idle
    # keep-alive connection and a slowloris client alike); a body not received in full within
    # http_body_timeout is answered 408 and the connection closed.
    http_idle_timeout: float = 30.0  # above aiohttp clients' 15 s pool keep-alive
    http_body_timeout: float = 30.0
    # libprocess' SSL settings (LIBPROCESS_SSL_*, read by the CLI): HTTPS on ``port``, TLS on
    # the agents' link (see ``kernel.tls``). Off by default, as in Mesos.
    tls: TlsSettings = TlsSettings()
