"""Runs devkube's controllers against an API server, like kube-controller-manager.

The API server hooks ``run`` into ``devkube.main``; the controllers only talk to it over HTTP.
"""

from __future__ import annotations

import asyncio
from pathlib import Path


async def run(
        *,
        url: str,
        token: str | None,
        ca_file: Path | None,
        node_grace_seconds: float = 50.0,
        stop: asyncio.Event,
        ready: asyncio.Event,
) -> None:
    """Run all controllers until ``stop`` is set; ``ready`` once their caches are synced.

    First version: the signature only (controllers land in the next commits).
    """
    del url, token, ca_file, node_grace_seconds
    ready.set()
    await stop.wait()
