"""What the virtual kubelet reads from Mesos outside the scheduler stream: agents and sandboxes.

Why here and not in the scheduler client: a framework only sees agents through offers, and a
suppressed framework sees none; nodes must exist (and go NotReady) whatever the offer flow.
The operator API (``POST /api/v1 GET_AGENTS`` on the master) lists every agent with its total
resources and whether it is active; the agent's files API (``/files/read``, ``/files/browse``)
serves task sandboxes for ``kubectl logs``. Both are public Mesos APIs, so this works unchanged
against Apache Mesos.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from typing import Any

import aiohttp

from k8sbridge.model import ids
from k8sbridge.model.resources import Attribute, ResourceError, Resources

__all__ = [
    "AgentInfo",
    "AgentsError",
    "FileNotFound",
    "MesosReader",
    "parse_agents",
]

log = logging.getLogger(__name__)


class AgentsError(Exception):
    """The master or an agent could not be read (retry later)."""


class FileNotFound(AgentsError):
    """The agent has no such sandbox file (yet)."""


@dataclasses.dataclass(frozen=True, slots=True)
class AgentInfo:
    agent_id: ids.AgentId
    hostname: str
    address: str  # "host:port" of the agent's HTTP API
    active: bool
    total: Resources
    attributes: tuple[Attribute, ...]
    region: str | None
    zone: str | None
    version: str = ""
    removed: bool = False  # the master no longer lists the agent


_PID = re.compile(r"^[^@]+@(?P<addr>[^:]+:\d+)$")


def parse_agents(reply: Any) -> list[AgentInfo]:
    """Parse a GET_AGENTS reply; malformed entries are skipped with a warning."""
    out: list[AgentInfo] = []
    body = (reply or {}).get("get_agents") or {}
    for entry in body.get("agents") or []:
        try:
            info = entry["agent_info"]
            agent_id = ids.AgentId(str(info["id"]["value"]))
            hostname = str(info.get("hostname") or "")
            port = int(info.get("port") or 5051)
            pid_match = _PID.match(str(entry.get("pid") or ""))
            address = pid_match.group("addr") if pid_match else f"{hostname}:{port}"
            total_raw = entry.get("total_resources") or info.get("resources") or []
            total = Resources.parse(total_raw)
            attributes = tuple(Attribute.parse(a) for a in info.get("attributes") or [])
            fault = (info.get("domain") or {}).get("fault_domain") or {}
            region = (fault.get("region") or {}).get("name")
            zone = (fault.get("zone") or {}).get("name")
            active = bool(entry.get("active", True)) and not entry.get("deactivated", False)
        except (KeyError, TypeError, ValueError, ResourceError) as e:
            log.warning("skipping a malformed agent in GET_AGENTS: %s", e)
            continue
        out.append(
            AgentInfo(
                agent_id=agent_id,
                hostname=hostname,
                address=address,
                active=active,
                total=total,
                attributes=attributes,
                region=region,
                zone=zone,
                version=str(entry.get("version") or ""),
            )
        )
    return out


class MesosReader:
    """Read-only operator/agent API calls over one aiohttp session."""

    def __init__(self, *, masters: Sequence[str], timeout: float = 10.0) -> None:
        self._masters = [m.rstrip("/") for m in masters]
        if not self._masters:
            raise AgentsError("no master URL given")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._leader = 0

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def get_agents(self) -> list[AgentInfo]:
        """GET_AGENTS on the leading master (tries every master, follows one 307)."""
        last: Exception | None = None
        for i in range(len(self._masters)):
            base = self._masters[(self._leader + i) % len(self._masters)]
            if "://" not in base:
                base = "http://" + base
            try:
                reply = await self._operator_call(base, {"type": "GET_AGENTS"})
            except AgentsError as e:
                last = e
                continue
            self._leader = (self._leader + i) % len(self._masters)
            return parse_agents(reply)
        raise AgentsError(f"no master answered GET_AGENTS: {last}")

    async def get_tasks(self) -> list[dict[str, Any]]:
        """GET_TASKS: every task the master knows (active, unreachable and completed)."""
        last: Exception | None = None
        for i in range(len(self._masters)):
            base = self._masters[(self._leader + i) % len(self._masters)]
            if "://" not in base:
                base = "http://" + base
            try:
                reply = await self._operator_call(base, {"type": "GET_TASKS"})
            except AgentsError as e:
                last = e
                continue
            body = (reply or {}).get("get_tasks") or {}
            out: list[dict[str, Any]] = []
            for key in ("tasks", "unreachable_tasks", "completed_tasks", "orphan_tasks"):
                out.extend(t for t in body.get(key) or [] if isinstance(t, dict))
            return out
        raise AgentsError(f"no master answered GET_TASKS: {last}")

    async def _operator_call(self, base: str, call: dict[str, Any]) -> Any:
        url = base + "/api/v1"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        try:
            for _ in range(3):
                async with self._http().post(
                    url, json=call, headers=headers, allow_redirects=False
                ) as resp:
                    if resp.status == 307 and resp.headers.get("Location"):
                        location = resp.headers["Location"]
                        scheme = base.split("://", 1)[0]
                        url = f"{scheme}:{location}" if location.startswith("//") else location
                        continue
                    if resp.status != 200:
                        text = (await resp.text())[:200]
                        raise AgentsError(f"{url}: {call['type']} answered {resp.status} {text}")
                    return await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise AgentsError(f"{url}: {e}") from e
        raise AgentsError(f"{url}: too many redirects")

    # -- agent files API ----------------------------------------------------------------

    async def agent_state(self, address: str) -> dict[str, Any]:
        reply = await self._agent_json(address, "/state", {})
        return reply if isinstance(reply, dict) else {}

    async def containers(self, address: str) -> list[dict[str, Any]]:
        """The agent's ``/containers`` (executor ids with ResourceStatistics)."""
        reply = await self._agent_json(address, "/containers", {})
        return [c for c in reply if isinstance(c, dict)] if isinstance(reply, list) else []

    async def get_containers(self, address: str, *, show_nested: bool = True
                             ) -> list[dict[str, Any]]:
        """The agent's v1 GET_CONTAINERS: containers (nested ones too) with
        ``resource_statistics``."""
        base = address if "://" in address else "http://" + address
        call = {"type": "GET_CONTAINERS", "get_containers": {"show_nested": show_nested}}
        try:
            async with self._http().post(base + "/api/v1", json=call,
                                         headers={"Accept": "application/json"}) as resp:
                if resp.status != 200:
                    raise AgentsError(f"{address}/api/v1 GET_CONTAINERS: {resp.status}")
                reply = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise AgentsError(f"{address}/api/v1 GET_CONTAINERS: {e}") from e
        found = (reply.get("get_containers") or {}).get("containers") if isinstance(
            reply, dict) else None
        return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []

    async def browse(self, address: str, *, path: str) -> list[dict[str, Any]]:
        """``/files/browse`` of a sandbox directory: its entries (path, size, mtime, mode...)."""
        reply = await self._agent_json(address, "/files/browse", {"path": path})
        return [e for e in reply if isinstance(e, dict)] if isinstance(reply, list) else []

    async def read_file(
        self, address: str, *, path: str, offset: int, length: int | None = None
    ) -> tuple[str, int]:
        """``/files/read``: returns (data, offset). ``offset=-1`` gives the current size."""
        params = {"path": path, "offset": str(offset)}
        if length is not None:
            params["length"] = str(length)
        reply = await self._agent_json(address, "/files/read", params)
        return str(reply.get("data", "")), int(reply.get("offset", 0))

    async def _agent_json(self, address: str, path: str, params: dict[str, str]) -> Any:
        base = address if "://" in address else "http://" + address
        try:
            async with self._http().get(base + path, params=params) as resp:
                if resp.status == 404:
                    raise FileNotFound(f"{address}{path}: {params.get('path', '')} not found")
                if resp.status != 200:
                    raise AgentsError(f"{address}{path}: {resp.status}")
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise AgentsError(f"{address}{path}: {e}") from e
