"""Fixtures for master tests: a real master with real in-process agents on loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from k8sbridge.kernel import main
from k8sbridge.kernel.agent.config import AgentConfig
from k8sbridge.kernel.master.config import MasterConfig


def master_config(**extra: object) -> MasterConfig:
    """A master on a port the kernel picks when it binds (``port=0``; ``Master.port`` and
    ``master_url`` say which): a port found free beforehand can be taken by another test's
    server before this one binds it (seen once in a full suite). Tests that restart a master
    on the same port pass the first one's ``port``."""
    values: dict[str, object] = {
        "port": 0, "heartbeat_interval": 2.0, "allocation_interval": 0.2,
        "refuse_seconds_default": 5.0,
    }
    values.update(extra)
    return MasterConfig(**values)  # type: ignore[arg-type]


def agent_config(tmp_path: Path, index: int = 0, **extra: object) -> AgentConfig:
    values: dict[str, object] = {
        "master": "127.0.0.1:0",
        "work_dir": tmp_path / f"agent{index}",
        "resources": "cpus:2;mem:1024;disk:1024;ports:[31000-31099]",
        "attributes": f"rack:r{index}",
        "status_retry_seconds": 1.0,
        "executor_shutdown_grace_seconds": 1.0,
        # The wire tests' framework user ("tester") is no user of this machine: as Mesos'
        # --switch_user=false, their tasks run as the agent's user.
        "switch_user": False,
    }
    values.update(extra)
    return AgentConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[main.Kernel]:
    async with main.running_kernel(
        master=master_config(), agents=[agent_config(tmp_path)]
    ) as k:
        yield k


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
