"""Fixtures for devkube server tests: a real devkube on a free loopback port, real HTTP clients."""

from __future__ import annotations

import io
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.devkube import main


class Api:
    """A tiny raw HTTP client for asserting wire-level behaviour."""

    def __init__(self, *, devkube: main.Devkube, session: aiohttp.ClientSession) -> None:
        self.devkube = devkube
        self.session = session
        self.ssl: ssl.SSLContext | bool = True
        if devkube.ca_file is not None:
            self.ssl = ssl.create_default_context(cafile=str(devkube.ca_file))
        self.headers = {"Authorization": f"Bearer {devkube.token}"} if devkube.token else {}

    async def request(
        self, method: str, path: str, *, body: Any = None, content_type: str = "application/json",
        params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data: Any = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            if len(data) > 512 * 1024:
                data = io.BytesIO(data)  # aiohttp warns about large raw byte bodies
        hdrs = {**self.headers, "Content-Type": content_type, **(headers or {})}
        async with self.session.request(
            method, self.devkube.url + path, data=data, params=params, headers=hdrs, ssl=self.ssl
        ) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def watch(
        self, path: str, *, params: dict[str, str], limit: int = 1000, stop_on: int | None = None,
    ) -> list[dict[str, Any]]:
        """Read a watch stream until it ends or ``stop_on`` events arrived."""
        events: list[dict[str, Any]] = []
        async with self.session.get(
            self.devkube.url + path, params={**params, "watch": "true"}, headers=self.headers,
            ssl=self.ssl, timeout=aiohttp.ClientTimeout(total=30),
        ) as resp:
            assert resp.status == 200
            async for raw in resp.content:
                if raw.strip():
                    events.append(json.loads(raw))
                if stop_on is not None and len(events) >= stop_on or len(events) >= limit:
                    break
        return events


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
    }


@pytest.fixture
async def devkube(tmp_path: Path) -> AsyncIterator[main.Devkube]:
    config = main.DevkubeConfig(port=0, controllers=False, kubeconfig=tmp_path / "kubeconfig")
    async with main.running(config) as dk:
        yield dk


@pytest.fixture
async def api(devkube: main.Devkube) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(devkube=devkube, session=session)
