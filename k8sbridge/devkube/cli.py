"""Command-line entry for ``k8sbridge devkube`` (arguments owned by this package).

Why: a newcomer runs ``k8sbridge devkube`` and points kubectl at the kubeconfig it writes. SIGTERM
and SIGINT stop it cleanly (open watches are closed, the SQLite file is closed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
from pathlib import Path
from typing import Any

from k8sbridge.devkube import main

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
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.insecure_http and args.host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit("k8sbridge devkube: --insecure-http is only allowed on loopback")
    # Stored objects are acyclic JSON trees: cyclic-GC passes over hundreds of thousands of them
    # only add latency spikes, so this process (which owns its interpreter) runs the collector
    # rarely.
    gc.set_threshold(GC_THRESHOLD_GEN0, GC_THRESHOLD_GEN1, GC_THRESHOLD_GEN2)
    config = main.DevkubeConfig(
        host=args.host, port=args.port, data_dir=args.data_dir, kubeconfig=args.kubeconfig,
        insecure_http=args.insecure_http, node_grace_seconds=args.node_grace_seconds,
        controllers=not args.no_controllers,
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
