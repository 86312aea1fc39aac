"""The kubelet API's shared state and its seams (who finds pods, who knows agents).

Why apart: the routes live in modules by concern (``api_auth``, ``api_logs``, ``api_stats``)
and each builds on this base; ``kubelet/api.py`` assembles the server.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import tempfile
from collections.abc import Mapping
from typing import Any, Protocol

import cachetools
from aiohttp import web

from k8sbridge import settings as bridge_settings
from k8sbridge.kubelet import agents as mesos_agents

__all__ = [
    "ANONYMOUS", "USER", "AgentLookup", "PodLocator", "ServerBase", "TokenReviewer", "UserInfo",
]

log = logging.getLogger(__name__)


TOKEN_CACHE_SIZE = 4096


SIZE_HISTORY = 64  # (time, size) observations kept per log file for sinceSeconds


SIZE_FILES = 4096  # log files with a size history (least recently touched dropped first)


ANONYMOUS = "system:anonymous"


@dataclasses.dataclass(frozen=True, slots=True)
class UserInfo:
    """Who a request authenticated as, and how (``x509``, ``token`` or ``anonymous``)."""

    username: str
    groups: tuple[str, ...]
    method: str


USER = web.RequestKey("user", UserInfo)  # the authenticated user of a request


class TokenReviewer(Protocol):
    """What the token check needs from the Kubernetes client (``KubeClient`` has it)."""

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...


class PodLocator(Protocol):
    """Finds where a container of a pod runs (the scheduler loop implements it)."""

    def locate(
        self, *, namespace: str, name: str, container: str, previous: bool
    ) -> tuple[str, str, str, bool] | None:
        """(agent id, executor id, task id, task finished) or None."""
        ...

    def known_pods(self) -> list[dict[str, Any]]: ...

    def running_pods(self) -> list[dict[str, Any]]: ...

    @property
    def framework_id(self) -> str | None: ...


class AgentLookup(Protocol):
    @property
    def agents(self) -> Mapping[Any, mesos_agents.AgentInfo]: ...


class ServerBase:
    """What every part of the server reads: settings, seams, caches."""

    def __init__(
        self, *, settings: bridge_settings.KubeletSettings, reader: mesos_agents.MesosReader
    ) -> None:
        self._settings = settings
        self._reader = reader
        self._locator: PodLocator | None = None
        self._agents: AgentLookup | None = None
        self._runner: web.AppRunner | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._reviewer: TokenReviewer | None = None
        self._metrics: Any = None  # k8sbridge.metrics.BridgeMetrics (app.py attaches it)
        self._tokens_ok: cachetools.TTLCache[str, UserInfo] = cachetools.TTLCache(
            maxsize=TOKEN_CACHE_SIZE, ttl=max(settings.token_cache_ttl_seconds, 1e-6))
        self._tokens_bad: cachetools.TTLCache[str, bool] = cachetools.TTLCache(
            maxsize=TOKEN_CACHE_SIZE, ttl=max(settings.token_cache_failure_ttl_seconds, 1e-6))
        self._sizes: collections.OrderedDict[tuple[str, str], list[tuple[float, int]]] = (
            collections.OrderedDict())
        self.token_reviews = 0  # TokenReviews sent (observable by tests)
        self._sampler: asyncio.Task[None] | None = None
        # /stats/summary: the last (timestamp, cpu seconds) per pod/container, for usageNanoCores
        self._cpu_prev: dict[str, tuple[float, float]] = {}
        # exec and port-forward: (agent address, task id) -> the task's ContainerID
        self._targets: dict[tuple[str, str], dict[str, Any]] = {}
        # attach: the tasks of stdinOnce containers whose stdin a first attach has closed
        self._stdin_spent: set[str] = set()
        self.port = 0
