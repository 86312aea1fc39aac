"""Command-line entry for ``k8sbridge kernel`` (arguments owned by this package).

``k8sbridge kernel`` runs a master with N in-process agents; ``k8sbridge kernel master`` and
``k8sbridge kernel agent --master HOST:PORT`` run the parts alone (e.g. one agent per machine).
Why the signal handling lives here: this is the process' top for these commands; SIGINT and
SIGTERM set the stop event, and stopping kills the agents' tasks before the master goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from k8sbridge.kernel import network
from k8sbridge.kernel.agent.config import AgentConfig
from k8sbridge.kernel.agent.errors import AgentError
from k8sbridge.kernel.master.config import MasterConfig
from k8sbridge.kernel.tls import TlsError, TlsSettings, settings_from_environment

# The master and the agent are imported when a kernel command runs, not when the ``k8sbridge``
# parser is built: the other commands' processes (``k8sbridge run`` and its bridge and devkube
# children) then do not load them.


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "kernel",
        help="run the embedded Mesos-compatible kernel (master + agents)",
        description="Run the embedded offer-based kernel: a Mesos-compatible master (v1 "
        "scheduler and operator APIs on --port) and N in-process agents that run tasks as "
        "processes on this host. TLS as Mesos: libprocess' LIBPROCESS_SSL_* environment "
        "variables (LIBPROCESS_SSL_ENABLED, _CERT_FILE, _KEY_FILE, _CA_FILE, ...; off by "
        "default; docs/kernel.md).",
    )
    _master_args(parser)
    parser.add_argument("--agents", type=int, default=1, metavar="N",
                        help="number of in-process agents (default 1)")
    parser.add_argument("--agent-resources", action="append", default=None, metavar="SPEC",
                        help="Mesos --resources of the agents; {i} is the agent index. Given "
                        "once it applies to every agent; given once per agent (N times) the "
                        "k-th applies to agent k (default: auto-detected like Mesos)")
    parser.add_argument("--agent-attributes", action="append", default=None, metavar="SPEC",
                        help="Mesos --attributes of the agents, e.g. 'rack:r{i}'; once for "
                        "every agent or once per agent, as --agent-resources")
    parser.add_argument("--agent-region", action="append", default=None, metavar="NAME",
                        help="fault domain region of the agents; once for every agent or once "
                        "per agent (default: none)")
    parser.add_argument("--agent-zone", action="append", default=None, metavar="NAME",
                        help="fault domain zone of the agents, e.g. 'z{i}'; once for every "
                        "agent or once per agent (default: none; a zone needs a region)")
    parser.add_argument("--agent-status-retry-seconds", type=float, default=None,
                        metavar="SECONDS",
                        help="how long an agent waits for a status update's acknowledgement "
                        "before it resends it (default 10, as Mesos)")
    parser.add_argument("--agent-host", default=None, metavar="ADDR",
                        help="address each agent serves its API on; {i} is the agent index, "
                        "{n} the index + 1 (default: 127.0.0.{n} when --host is a loopback "
                        "address, so every agent is a distinct host and Node; else --host)")
    parser.add_argument("--agent-hostname", default=None, metavar="NAME",
                        help="hostname each agent advertises; {i}/{n} as for --agent-host "
                        "(default: the agent's address)")
    parser.add_argument("--cluster-network", action="store_true",
                        help="create the embedded cluster network (a network namespace of its "
                        "own, removed on exit) and give every agent the CNI network "
                        f"'{network.DEFAULT_NETWORK_NAME}' on its own subnet of "
                        "--cluster-cidr (needs --agent-isolation with filesystem/linux and "
                        "network/cni)")
    parser.add_argument("--cluster-cidr", default=network.DEFAULT_CLUSTER_CIDR, metavar="CIDR",
                        help="pod range of the cluster network, a subnet per agent (default "
                        f"{network.DEFAULT_CLUSTER_CIDR})")
    parser.add_argument("--node-cidr-mask-size", type=int, default=24, metavar="BITS",
                        help="prefix length of each agent's subnet of --cluster-cidr (default "
                        "24, as kube-controller-manager's flag)")
    _agent_flags(parser, prefix="agent-")
    parser.set_defaults(func=_run_kernel)
    parts = parser.add_subparsers(dest="kernel_part", metavar="PART")

    master = parts.add_parser("master", help="run the master alone")
    _master_args(master)
    master.set_defaults(func=_run_master)

    agent = parts.add_parser("agent", help="run one agent linked to a master")
    agent.add_argument("--master", required=True, metavar="HOST:PORT",
                       help="the master's HTTP address")
    agent.add_argument("--host", default="127.0.0.1", help="address to serve the agent API on")
    agent.add_argument("--port", type=int, default=0,
                       help="agent HTTP API port (default: a free one; Mesos uses 5051)")
    agent.add_argument("--hostname", default=None, help="hostname advertised to the master")
    agent.add_argument("--work-dir", type=Path, default=None,
                       help="sandboxes and checkpoints (default: a new temporary directory)")
    agent.add_argument("--resources", default="", help="Mesos --resources syntax")
    agent.add_argument("--attributes", default="", help="Mesos --attributes syntax")
    agent.add_argument("--region", default=None, help="fault domain region")
    agent.add_argument("--zone", default=None, help="fault domain zone")
    _agent_flags(agent, prefix="")
    agent.set_defaults(func=_run_agent)


def _agent_flags(parser: argparse.ArgumentParser, *, prefix: str) -> None:
    """The Mesos agent flags for sandbox GC and HTTP authentication (``--gc_delay`` ...),
    spelled ``--agent-gc-delay`` ... where they apply to every embedded agent."""
    def flag(name: str) -> list[str]:
        return [f"--{prefix}{name.replace('_', '-')}"] + ([f"--{name}"] if not prefix else [])

    parser.add_argument(*flag("switch_user"), dest="agent_switch_user", default=None,
                        choices=("true", "false"),
                        help="Mesos --switch_user: run tasks as CommandInfo.user, else the "
                        "framework's user (default true; false: as the agent's user)")
    parser.add_argument(*flag("gc_delay"), dest="agent_gc_delay", type=mesos_duration, default=None,
                        metavar="DURATION", help="Mesos --gc_delay: keep finished sandboxes "
                        "this long at most (default 1weeks, less as the disk fills)")
    parser.add_argument(*flag("disk_watch_interval"), dest="agent_disk_watch_interval",
                        type=mesos_duration, default=None, metavar="DURATION",
                        help="Mesos --disk_watch_interval (default 1mins)")
    parser.add_argument(*flag("gc_disk_headroom"), dest="agent_gc_disk_headroom", type=float,
                        default=None, metavar="FRACTION",
                        help="Mesos --gc_disk_headroom (default 0.1)")
    for name in ("authenticate_http_readonly", "authenticate_http_readwrite"):
        parser.add_argument(*flag(name), dest=f"agent_{name}", type=mesos_bool, nargs="?",
                            const=True,
                            default=False, metavar="BOOL", help=f"Mesos agent --{name}")
    parser.add_argument(*flag("http_credentials"), dest="agent_http_credentials", type=Path,
                        default=None, metavar="PATH",
                        help="Mesos agent --http_credentials (a JSON credentials file)")
    parser.add_argument(*flag("isolation"), dest="agent_isolation", default=None,
                        metavar="ISOLATORS",
                        help="Mesos agent --isolation (default cgroups/cpu,cgroups/mem); add "
                        "filesystem/linux,volume/sandbox_path,volume/secret,volume/host_path,"
                        "docker/runtime,namespaces/pid for containers with views of their own")
    parser.add_argument(*flag("image_providers"), dest="agent_image_providers", default=None,
                        metavar="PROVIDERS", help="Mesos agent --image_providers (docker)")
    parser.add_argument(*flag("docker_registry"), dest="agent_docker_registry", default=None,
                        metavar="DIR", help="Mesos agent --docker_registry: a local directory "
                        "of 'docker save' archives named repository:tag.tar")
    parser.add_argument(*flag("docker_store_dir"), dest="agent_docker_store_dir", type=Path,
                        default=None, metavar="DIR",
                        help="Mesos agent --docker_store_dir (default WORK_DIR/store/docker)")
    parser.add_argument(*flag("network_cni_config_dir"), dest="agent_network_cni_config_dir",
                        default=None, metavar="DIR",
                        help="Mesos agent --network_cni_config_dir (with network/cni "
                        "isolation); {i}/{n} as for --agent-host (one directory per agent)")
    parser.add_argument(*flag("network_cni_plugins_dir"), dest="agent_network_cni_plugins_dir",
                        default=None, metavar="DIR",
                        help="Mesos agent --network_cni_plugins_dir (Debian's: /usr/lib/cni)")
    parser.add_argument(*flag("network_cni_root_dir_persist"),
                        dest="agent_network_cni_root_dir_persist", type=mesos_bool, nargs="?",
                        const=True, default=None, metavar="BOOL",
                        help="Mesos agent --network_cni_root_dir_persist")
    parser.add_argument(*flag("network_cni_plugins_netns"), dest="agent_network_cni_plugins_netns",
                        default=None, metavar="PATH",
                        help="network namespace the CNI plugins run in (default the agent's)")
    parser.add_argument(*flag("network_cni_plugin_timeout"),
                        dest="agent_network_cni_plugin_timeout", type=mesos_duration,
                        default=None, metavar="DURATION",
                        help="kill a CNI plugin call after this long (default 1mins)")


def _agent_flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """``AgentConfig`` fields from the flags of ``_agent_flags`` (unset ones keep Mesos'
    defaults)."""
    out: dict[str, Any] = {
        "authenticate_http_readonly": args.agent_authenticate_http_readonly,
        "authenticate_http_readwrite": args.agent_authenticate_http_readwrite,
        "http_credentials": args.agent_http_credentials,
    }
    for name in ("isolation", "image_providers", "docker_registry", "docker_store_dir",
                 "network_cni_config_dir", "network_cni_plugins_dir",
                 "network_cni_root_dir_persist", "network_cni_plugins_netns"):
        value = getattr(args, f"agent_{name}")
        if value is not None:
            out[name] = value
    if args.agent_switch_user is not None:
        out["switch_user"] = args.agent_switch_user == "true"
    for dest, field in (("agent_gc_delay", "gc_delay_seconds"),
                        ("agent_disk_watch_interval", "disk_watch_interval_seconds"),
                        ("agent_gc_disk_headroom", "gc_disk_headroom"),
                        ("agent_network_cni_plugin_timeout",
                         "network_cni_plugin_timeout_seconds")):
        if getattr(args, dest) is not None:
            out[field] = getattr(args, dest)
    return out


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1.0, "mins": 60.0,
                   "hrs": 3600.0, "days": 86400.0, "weeks": 604800.0}


def mesos_duration(text: str) -> float:
    """A Mesos ``Duration`` flag (``15secs``, ``500ms``, ``2mins``) in seconds; a bare number is
    taken as seconds."""
    value = text.strip()
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        if value.endswith(unit):
            number, scale = value[: -len(unit)], _DURATION_UNITS[unit]
            break
    else:
        number, scale = value, 1.0
    try:
        seconds = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"Invalid duration '{text}'") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"Invalid duration '{text}': must be positive")
    return seconds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"Invalid number '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be at least 1")
    return value


def mesos_bool(text: str) -> bool:
    """A Mesos boolean flag's value (``--flag``, ``--flag=true``, ``--flag=false``)."""
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"Failed to parse boolean value '{text}'")


_AUTH_FLAGS = (
    ("authenticate_frameworks", "only authenticated (driver) frameworks may register; this "
     "master serves HTTP frameworks only, so it needs --credentials and changes nothing else"),
    ("authenticate_http_frameworks", "only HTTP frameworks authenticated with HTTP Basic may "
     "use /api/v1/scheduler (realm mesos-master-scheduler); needs "
     "--http_framework_authenticators=basic and --credentials"),
    ("authenticate_http_readonly", "read-only endpoints (/state, /frameworks, /slaves, /tasks, "
     "/roles, /metrics/snapshot) need HTTP Basic (realm mesos-master-readonly)"),
    ("authenticate_http_readwrite", "the operator API /api/v1 needs HTTP Basic (realm "
     "mesos-master-readwrite)"),
)


def _auth_args(parser: argparse.ArgumentParser) -> None:
    for name, text in _AUTH_FLAGS:
        parser.add_argument(f"--{name}", f"--{name.replace('_', '-')}", dest=name,
                            type=mesos_bool, nargs="?", const=True, default=False,
                            metavar="BOOL", help=f"Mesos --{name} (default false): {text}")
    parser.add_argument("--credentials", default=None, metavar="PATH",
                        help='Mesos --credentials: a JSON file {"credentials": [{"principal": '
                        '"...", "secret": "..."}]} (PATH or file:///PATH; keep it 0600)')
    parser.add_argument("--http_framework_authenticators", "--http-framework-authenticators",
                        default=None, metavar="NAMES",
                        help="Mesos --http_framework_authenticators (only 'basic' exists here)")
    parser.add_argument("--http_authenticators", "--http-authenticators", default="basic",
                        metavar="NAMES", help="Mesos --http_authenticators (default basic)")
    parser.add_argument("--acls", default=None, metavar="JSON|PATH",
                        help="Mesos --acls for the local authorizer (register_frameworks, "
                        "run_tasks, teardown_frameworks, mark_agents_gone are enforced; "
                        "permissive by default)")


def _master_args(parser: argparse.ArgumentParser) -> None:
    defaults = MasterConfig()
    _auth_args(parser)
    parser.add_argument("--agent_ping_timeout", "--agent-ping-timeout", type=mesos_duration,
                        default=defaults.agent_ping_interval, metavar="DURATION",
                        help="Mesos --agent_ping_timeout: how long the master waits for an "
                        "agent's pong (and pings that often); default 15secs")
    parser.add_argument("--max_agent_ping_timeouts", "--max-agent-ping-timeouts",
                        type=_positive_int, default=defaults.max_missed_pings, metavar="N",
                        help="Mesos --max_agent_ping_timeouts: missed pongs in a row before "
                        "an agent is unreachable; default 5")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5050, help="HTTP port (default 5050)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the registry (and agent sandboxes) here; default: memory "
                        "only for the master and a temporary directory for agents")


def _master_config(args: argparse.Namespace) -> MasterConfig:
    work_dir = args.work_dir / "master" if args.work_dir is not None else None
    return MasterConfig(host=args.host, port=args.port, work_dir=work_dir,
                        tls=getattr(args, "tls", TlsSettings()),
                        agent_ping_interval=args.agent_ping_timeout,
                        max_missed_pings=args.max_agent_ping_timeouts,
                        authenticate_frameworks=args.authenticate_frameworks,
                        authenticate_http_frameworks=args.authenticate_http_frameworks,
                        authenticate_http_readonly=args.authenticate_http_readonly,
                        authenticate_http_readwrite=args.authenticate_http_readwrite,
                        credentials=args.credentials, acls=args.acls,
                        http_framework_authenticators=args.http_framework_authenticators,
                        http_authenticators=args.http_authenticators)


def agent_host(*, index: int, host: str, spec: str | None) -> str:
    """The address of in-process agent ``index``: ``spec`` with {i}/{n} filled in, else a
    loopback address of its own (127.0.0.{index + 1}, carrying into the next octets past 255)
    when the master's ``host`` is loopback, else ``host`` itself."""
    if spec:
        return _fill(spec, index)
    try:
        parsed = ipaddress.ip_address(host)
        loopback = parsed.is_loopback and parsed.version == 4
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        return host
    n = index + 1
    if n >= 1 << 24:
        raise ValueError(f"no loopback address for agent {index}")
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def _fill(spec: str, index: int) -> str:
    return spec.replace("{i}", str(index)).replace("{n}", str(index + 1))


class AgentFlagError(ValueError):
    """A per-agent flag given a number of times that fits neither "once" nor "once per agent"."""


def per_agent(values: list[str] | None, *, flag: str, agents: int) -> list[str | None]:
    """The value of a repeatable per-agent flag for each of ``agents`` agents, {i}/{n} filled.

    Not given: None for every agent. Given once: that value for every agent (the historical
    form, with {i} as the agent index). Given once per agent: the k-th value for agent k.
    """
    if not values:
        return [None] * agents
    if len(values) == 1:
        return [_fill(values[0], i) for i in range(agents)]
    if len(values) != agents:
        raise AgentFlagError(f"{flag} is given {len(values)} times for {agents} agents: give it "
                             "once (for every agent) or once per agent")
    return [_fill(v, i) for i, v in enumerate(values)]


def _agent_configs(args: argparse.Namespace, base: Path) -> list[AgentConfig]:
    n = args.agents
    resources = per_agent(args.agent_resources, flag="--agent-resources", agents=n)
    attributes = per_agent(args.agent_attributes, flag="--agent-attributes", agents=n)
    regions = per_agent(args.agent_region, flag="--agent-region", agents=n)
    zones = per_agent(args.agent_zone, flag="--agent-zone", agents=n)
    extra: dict[str, Any] = _agent_flag_values(args)
    if args.agent_status_retry_seconds is not None:
        extra["status_retry_seconds"] = args.agent_status_retry_seconds
    out = []
    for i in range(n):
        if zones[i] and not regions[i]:
            raise AgentFlagError(f"agent {i} has a zone ({zones[i]}) but no region: give "
                                 "--agent-region too")
        out.append(AgentConfig(
            master=f"{args.host}:{args.port}", tls=getattr(args, "tls", TlsSettings()),
            work_dir=base / f"agent-{i}",
            host=agent_host(index=i, host=args.host, spec=args.agent_host),
            hostname=_fill(args.agent_hostname, i) if args.agent_hostname else None,
            resources=resources[i] or "",
            attributes=attributes[i] or "",
            region=regions[i],
            zone=zones[i],
            **{**extra, **({"network_cni_config_dir": _fill(
                extra["network_cni_config_dir"], i)} if "network_cni_config_dir" in extra
                else {})},
        ))
    return out


def _tls_from_environment(command: str) -> TlsSettings:
    """libprocess' SSL settings of this process (``LIBPROCESS_SSL_*``); what libprocess refuses
    ends the command with libprocess' message, as its ``EXIT(EXIT_FAILURE)`` does."""
    try:
        settings, warnings = settings_from_environment(os.environ)
    except TlsError as e:
        raise SystemExit(f"{command}: {e}") from e
    for warning in warnings:
        logging.getLogger(__name__).warning("%s", warning)
    return settings


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def _run_kernel(args: argparse.Namespace) -> int:
    args.tls = _tls_from_environment("k8sbridge kernel")
    if args.agents < 0:
        raise SystemExit("k8sbridge kernel: --agents must be >= 0")
    if args.agents >= 1 << 24 and not args.agent_host:
        raise SystemExit("k8sbridge kernel: --agents is too large for distinct loopback "
                         "addresses; give --agent-host")
    if args.agent_status_retry_seconds is not None and args.agent_status_retry_seconds <= 0:
        raise SystemExit("k8sbridge kernel: --agent-status-retry-seconds must be > 0")
    try:
        _agent_configs(args, Path("."))  # check the per-agent flags before starting anything
    except (AgentFlagError, AgentError) as e:  # a bad agent flag: its message, no traceback
        raise SystemExit(f"k8sbridge kernel: {e}") from e
    return asyncio.run(_kernel(args))


async def _kernel(args: argparse.Namespace) -> int:
    from k8sbridge.kernel import main
    from k8sbridge.kernel.master.errors import MasterError

    stop = asyncio.Event()
    _install_signals(stop)
    with contextlib.ExitStack() as stack:
        if args.work_dir is not None:
            base = Path(args.work_dir)
        else:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="k8sbridge-")))
        agents = _agent_configs(args, base)
        if args.cluster_network:
            if any("network/cni" not in c.isolation for c in agents):
                print("k8sbridge kernel: --cluster-network needs --agent-isolation with "
                      "filesystem/linux,network/cni", file=sys.stderr)
                return 1
            try:
                cluster = network.ClusterNetwork(cidr=args.cluster_cidr,
                                                 agent_prefix=args.node_cidr_mask_size)
                cluster.create()
            except network.NetworkError as e:
                print(f"k8sbridge kernel: cannot create the cluster network: {e}",
                      file=sys.stderr)
                return 1
            stack.callback(cluster.remove)
            agents = [dataclasses.replace(c, **cluster.agent_flags(i, work_dir=c.work_dir))
                      for i, c in enumerate(agents)]
            print(f"cluster network: namespace {cluster.name} ({cluster.netns_path}), pods "
                  f"in {cluster.cidr}, CNI network '{cluster.network_name}'", flush=True)
        try:
            async with main.running_kernel(
                master=_master_config(args), agents=agents
            ) as kernel:
                print(f"master: {kernel.master_url}  (scheduler API {kernel.master_url}"
                      "/api/v1/scheduler, operator API /api/v1, legacy /state)", flush=True)
                for i, agent in enumerate(kernel.agents):
                    print(f"agent {i}: {args.tls.scheme}://{agent.http_address}  id "
                          f"{agent.agent_id}",
                          flush=True)
                await stop.wait()
                print("stopping: killing tasks and shutting down", flush=True)
        except (main.KernelError, MasterError, OSError) as e:
            print(f"k8sbridge kernel: {e}", file=sys.stderr)
            return 1
    return 0


def _run_master(args: argparse.Namespace) -> int:
    args.tls = _tls_from_environment("k8sbridge kernel master")
    return asyncio.run(_master(args))


async def _master(args: argparse.Namespace) -> int:
    from k8sbridge.kernel.master.errors import MasterError
    from k8sbridge.kernel.master.master import Master

    stop, ready = asyncio.Event(), asyncio.Event()
    _install_signals(stop)
    try:
        master = Master(config=_master_config(args))
    except MasterError as e:
        print(f"k8sbridge kernel master: {e}", file=sys.stderr)
        return 1
    task = asyncio.create_task(master.run(stop=stop, ready=ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        waiter.cancel()
        try:
            await task
        except OSError as e:
            print(f"k8sbridge kernel master: {e}", file=sys.stderr)
        return 1
    print(f"master: {master.url}  (agents link via {master.url}/kernel/link)", flush=True)
    await task
    return 0


def _run_agent(args: argparse.Namespace) -> int:
    args.tls = _tls_from_environment("k8sbridge kernel agent")
    return asyncio.run(_agent(args))


async def _agent(args: argparse.Namespace) -> int:
    from k8sbridge.kernel.agent.agent import Agent

    stop, ready = asyncio.Event(), asyncio.Event()
    _install_signals(stop)
    with contextlib.ExitStack() as stack:
        work_dir = args.work_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="k8sbridge-agent-"))
        )
        try:
            config = AgentConfig(
                master=args.master, work_dir=work_dir, host=args.host, port=args.port,
                tls=args.tls,
                hostname=args.hostname, resources=args.resources, attributes=args.attributes,
                region=args.region, zone=args.zone, **_agent_flag_values(args),
            )
        except AgentError as e:  # a bad flag: its message, no traceback
            print(f"k8sbridge kernel agent: {e}", file=sys.stderr)
            return 1
        agent = Agent(config=config)
        task = asyncio.create_task(agent.run(stop=stop, ready=ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            print(f"agent: {args.tls.scheme}://{agent.http_address}  id {agent.agent_id}  "
                  f"master {args.master}", flush=True)
        else:
            waiter.cancel()
        try:
            await task
        except Exception as e:
            print(f"k8sbridge kernel agent: {e}", file=sys.stderr)
            return 1
    return 0
