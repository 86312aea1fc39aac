"""Command-line entry for `k8sbridge devkube` (arguments owned by this package)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("devkube", help="(being built)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    raise SystemExit("k8sbridge devkube: not built yet")
