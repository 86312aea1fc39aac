"""Command-line entry for ``k8sbridge devkube`` (arguments owned by this package).

Why: a newcomer runs ``k8sbridge devkube`` and points kubectl at the kubeconfig it writes. SIGTERM
and SIGINT stop it cleanly (open watches are closed, the SQLite file is closed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import signal
from pathlib import Path
from typing import Any

from k8sbridge.devkube import main, services

GC_THRESHOLD_GEN0 = 50_000
GC_THRESHOLD_GEN1 = 50
GC_THRESHOLD_GEN2 = 1_000


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "devkube", help="run a local Kubernetes API server (+ controllers) for development",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=6443, help="port (default 6443, 0 = any)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep state (SQLite), certificates and token here across restarts")
    parser.add_argument("--kubeconfig", type=Path, default=None,
                        help="where to write the kubeconfig (default DATA_DIR/kubeconfig)")
    parser.add_argument("--insecure-http", action="store_true",
                        help="serve plain HTTP without authentication (loopback only)")
    parser.add_argument("--node-grace-seconds", type=float, default=50.0,
                        help="node lifecycle grace period (default 50)")
    parser.add_argument("--no-controllers", action="store_true",
                        help="run only the API server")
    parser.add_argument("--disable-admission-plugins", default="", metavar="NAMES",
                        help="admission plugins to turn off, comma-separated (ServiceAccount)")
    parser.add_argument("--advertise-address", default=None, metavar="IP",
                        help="the address the kubernetes Service's endpoints name (default: "
                        "the bind address)")
    parser.add_argument("--listen-netns", type=Path, default=None, metavar="PATH",
                        help="also listen on ADVERTISE-ADDRESS:PORT inside the network "
                        "namespace at PATH (e.g. /run/netns/NAME)")
    parser.add_argument("--service-cluster-ip-range", default=services.DEFAULT_SERVICE_CIDR,
                        metavar="CIDR", help="Service ClusterIPs come from here (default "
                        f"{services.DEFAULT_SERVICE_CIDR}; the kubernetes Service gets the "
                        "first address)")
    parser.add_argument("--service-node-port-range", default=services.DEFAULT_NODE_PORT_RANGE,
                        metavar="LOW-HIGH", help="NodePorts come from here (default "
                        f"{services.DEFAULT_NODE_PORT_RANGE})")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.insecure_http and args.host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit("k8sbridge devkube: --insecure-http is only allowed on loopback")
    # Stored objects are acyclic JSON trees: cyclic-GC passes over hundreds of thousands of them
    # only add latency spikes, so this process (which owns its interpreter) runs the collector
    # rarely.
    gc.set_threshold(GC_THRESHOLD_GEN0, GC_THRESHOLD_GEN1, GC_THRESHOLD_GEN2)
    for flag, value, check in (
            ("--service-cluster-ip-range", args.service_cluster_ip_range, services.parse_cidr),
            ("--service-node-port-range", args.service_node_port_range,
             services.parse_port_range)):
        try:
            check(value)
        except ValueError as e:
            raise SystemExit(f"k8sbridge devkube: {flag}: {e}") from e
    if args.advertise_address is not None:
        try:
            ipaddress.ip_address(args.advertise_address)
        except ValueError as e:
            raise SystemExit(f"k8sbridge devkube: --advertise-address: {e}") from e
    config = main.DevkubeConfig(
        host=args.host, port=args.port, data_dir=args.data_dir, kubeconfig=args.kubeconfig,
        insecure_http=args.insecure_http, node_grace_seconds=args.node_grace_seconds,
        controllers=not args.no_controllers, advertise_address=args.advertise_address,
        listen_netns=args.listen_netns, service_cluster_ip_range=args.service_cluster_ip_range,
        service_node_port_range=args.service_node_port_range,
        disable_admission_plugins=frozenset(
            p.strip() for p in args.disable_admission_plugins.split(",") if p.strip()),
    )
    unknown = config.disable_admission_plugins - {"ServiceAccount"}
    if unknown:
        raise SystemExit("k8sbridge devkube: --disable-admission-plugins: unknown plugin(s) "
                         + ", ".join(sorted(unknown)))
    try:
        asyncio.run(_serve(config))
    except OSError as e:  # e.g. the port is taken: say so, without a traceback
        raise SystemExit(f"k8sbridge devkube: cannot serve on {args.host}:{args.port}: {e}") from e
    return 0


async def _serve(config: main.DevkubeConfig) -> None:
    stop = asyncio.Event()
    ready = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with main.running(config) as devkube:
        ready.set()
        print(f"devkube serving {devkube.url}; kubeconfig: {devkube.kubeconfig}", flush=True)
        await stop.wait()
