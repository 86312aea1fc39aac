"""The ``k8sbridge`` command line: one subcommand per component.

Why this shape: each component package owns its own arguments (``register(subparsers)``), so
the CLI file stays a table of contents; only this module and ``app.py`` know the stand-ins.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from k8sbridge import __version__, doctor, run_cli
from k8sbridge.devkube import cli as devkube_cli
from k8sbridge.dns import cli as dns_cli
from k8sbridge.kernel import cli as kernel_cli
from k8sbridge.proxy import cli as proxy_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="k8sbridge",
        description="Run Kubernetes workloads on an offer-based cluster kernel (Mesos v1 API).",
    )
    parser.add_argument("--version", action="version", version=f"k8sbridge {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    kernel_cli.register(sub)
    devkube_cli.register(sub)
    run_cli.register(sub)
    doctor.register(sub)
    proxy_cli.register(sub)
    dns_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    result: int = args.func(args)
    return result
