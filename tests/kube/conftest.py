"""The kube client tests' shared fixture: a client of a devkube without controllers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from k8sbridge.devkube import main as devkube_main
from k8sbridge.kube import client as kube_client


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[kube_client.KubeClient]:
    config = devkube_main.DevkubeConfig(
        port=0, kubeconfig=tmp_path / "kubeconfig", controllers=False)
    async with devkube_main.running(config) as dk:
        client = kube_client.KubeClient.from_kubeconfig(path=dk.kubeconfig, connections=2)
        try:
            yield client
        finally:
            await client.close()
