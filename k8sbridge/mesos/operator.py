"""Reads the bridge makes outside the scheduler stream: the operator API and the agents' APIs.

Why here, on the scheduler client's transport: a framework sees agents only through offers (and
a suppressed one sees none), so nodes, reconciliation and ``kubectl logs`` read the master's
operator API (``POST /api/v1``: GET_AGENTS, GET_TASKS, GET_STATE, GET_VERSION) and the agents'
files and v1 APIs. Sharing ``transport.Transport`` means one leader (a redirect is paid once,
not on every poll), the same principal/secret and CA as SUBSCRIBE, and the same typed errors.
Every failure of a read is an ``errors.OperatorError`` (``OperatorTimeout`` when nothing
answered in time) with the transport's error chained, so callers retry on one type.

SUBSCRIBE (Mesos >= 1.1) is the one streaming call: ``subscribe`` opens it on the leader and
returns an ``OperatorStream`` of RecordIO-framed JSON events (SUBSCRIBED with the whole state
first, then each change and HEARTBEATs), read with the scheduler stream's decoder.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import aiohttp

from k8sbridge.mesos import errors, recordio
from k8sbridge.mesos.transport import ClientConfig, Transport
from k8sbridge.model.agents import AgentInfo, parse_agents
from k8sbridge.model.tasks import TaskStatus, TaskStatusError

__all__ = ["MasterVersion", "OperatorClient", "OperatorStream"]

log = logging.getLogger(__name__)

OPERATOR_PATH = "/api/v1"
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


@dataclasses.dataclass(frozen=True, slots=True)
class MasterVersion:
    """The master's ``version_info`` (GET_VERSION); ``at_least`` compares major.minor.patch."""

    version: str
    build_date: str = ""
    git_sha: str = ""

    @property
    def number(self) -> tuple[int, int, int]:
        found = _VERSION.match(self.version)
        if found is None:
            return (0, 0, 0)
        return (int(found[1]), int(found[2]), int(found[3] or 0))

    def at_least(self, major: int, minor: int, patch: int = 0) -> bool:
        return self.number >= (major, minor, patch)


def _with_valid_statuses(task: dict[str, Any]) -> dict[str, Any]:
    """The task with only the statuses that parse: a garbage status is logged, not fatal."""
    statuses = task.get("statuses")
    if not isinstance(statuses, list):
        return {**task, "statuses": []} if statuses is not None else task
    kept = []
    for status in statuses:
        try:
            TaskStatus.parse(status)
        except TaskStatusError as e:
            log.warning("GET_TASKS: dropping a malformed status of task %r: %s",
                        task.get("task_id"), e)
            continue
        kept.append(status)
    return task if len(kept) == len(statuses) else {**task, "statuses": kept}


class OperatorStream:
    """One open operator SUBSCRIBE response: its events, decoded, until EOF or ``close``."""

    def __init__(self, *, response: aiohttp.ClientResponse, master: str) -> None:
        self.master = master
        self._response = response
        self._decoder = recordio.Decoder()
        self._records: list[bytes] = []

    async def next_event(self, *, timeout: float) -> dict[str, Any]:
        """The next event (a JSON object); ``OperatorError`` when the stream ends, breaks,
        carries garbage or is silent for ``timeout`` seconds (heartbeats missed)."""
        while not self._records:
            try:
                async with asyncio.timeout(timeout):
                    chunk = await self._response.content.readany()
            except TimeoutError as e:
                raise errors.OperatorTimeout(
                    f"SUBSCRIBE: no event from {self.master} for {timeout:.1f}s") from e
            except (aiohttp.ClientError, OSError) as e:
                raise errors.OperatorError(f"SUBSCRIBE: stream from {self.master}: {e!r}") from e
            if not chunk:
                raise errors.OperatorError(f"SUBSCRIBE: the stream from {self.master} ended")
            try:
                self._records.extend(self._decoder.feed(chunk))
            except errors.RecordIOError as e:
                raise errors.OperatorError(f"SUBSCRIBE: {self.master}: {e}") from e
        record = self._records.pop(0)
        try:
            event = json.loads(record)
        except ValueError as e:
            raise errors.OperatorError(
                f"SUBSCRIBE: an event from {self.master} is not JSON: {record[:100]!r}") from e
        if not isinstance(event, dict):
            raise errors.OperatorError(f"SUBSCRIBE: an event from {self.master} is not an object")
        return event

    def close(self) -> None:
        self._response.close()


class OperatorClient:
    """Read-only operator- and agent-API calls over a (usually shared) ``Transport``."""

    def __init__(
            self,
            *,
            transport: Transport | None = None,
            masters: Sequence[str] = (),  # only without a transport: one of its own
            timeout: float = 10.0,
    ) -> None:
        if transport is None:
            if not masters:
                raise errors.OperatorError("no master URL given")
            transport = Transport(config=ClientConfig(masters=tuple(masters)))
        self.transport = transport
        self._timeout = timeout

    async def close(self) -> None:
        await self.transport.close()

    # -- the master's operator API --------------------------------------------------------

    async def call(self, call: dict[str, Any]) -> dict[str, Any]:
        """One operator call on the leading master; the decoded v1 response."""
        what = str(call.get("type"))
        try:
            reply = await self.transport.post_to_leader_json(
                path=OPERATOR_PATH, call=call, timeout=self._timeout
            )
        except errors.CallTimedOut as e:  # the transport's messages start with ``what``
            self.transport.metrics.call(what, "OperatorTimeout")
            raise errors.OperatorTimeout(str(e)) from e
        except errors.MesosError as e:
            self.transport.metrics.call(what, type(e).__name__)
            raise errors.OperatorError(str(e)) from e
        if not isinstance(reply, dict):
            self.transport.metrics.call(what, "ProtocolError")
            raise errors.OperatorError(f"{what}: the answer is not a JSON object")
        self.transport.metrics.call(what, "ok")
        return reply

    async def subscribe(self) -> OperatorStream:
        """SUBSCRIBE on the leading master: the open event stream (the caller closes it).

        ``OperatorError`` when no master accepted it, with the transport's error chained: an
        ``ApiError`` (``UnsupportedCall``, ``BadRequest``...) when a master refused the call."""
        try:
            response, url = await self.transport.open_on_leader(
                path=OPERATOR_PATH, body=self.transport.encode({"type": "SUBSCRIBE"}),
                what="SUBSCRIBE", head_timeout=self._timeout)
        except errors.MesosError as e:
            self.transport.metrics.call("SUBSCRIBE", type(e).__name__)
            raise errors.OperatorError(str(e)) from e
        self.transport.metrics.call("SUBSCRIBE", "ok")
        return OperatorStream(response=response, master=f"{url.scheme}://{url.host}:{url.port}")

    async def get_agents(self) -> list[AgentInfo]:
        """GET_AGENTS: every agent the master knows (malformed entries skipped)."""
        return parse_agents(await self.call({"type": "GET_AGENTS"}))

    async def get_tasks(self) -> list[dict[str, Any]]:
        """GET_TASKS: every task the master knows (active, unreachable, completed, orphan)."""
        reply = await self.call({"type": "GET_TASKS"})
        body = reply.get("get_tasks")
        if not isinstance(body, dict):
            raise errors.OperatorError("GET_TASKS: the answer has no 'get_tasks'")
        out: list[dict[str, Any]] = []
        for key in ("tasks", "unreachable_tasks", "completed_tasks", "orphan_tasks"):
            found = body.get(key)
            if isinstance(found, list):
                out.extend(_with_valid_statuses(t) for t in found if isinstance(t, dict))
        return out

    async def get_executors(self) -> list[dict[str, Any]]:
        """GET_EXECUTORS: ``{"agent_id", "executor_info"}`` of every executor the master
        knows to run (the ExecutorInfo as the master keeps it)."""
        body = (await self.call({"type": "GET_EXECUTORS"})).get("get_executors")
        if not isinstance(body, dict):
            raise errors.OperatorError("GET_EXECUTORS: the answer has no 'get_executors'")
        found = body.get("executors")
        return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []

    async def get_state(self) -> dict[str, Any]:
        """GET_STATE: the master's whole state (agents, frameworks, tasks, executors)."""
        body = (await self.call({"type": "GET_STATE"})).get("get_state")
        if not isinstance(body, dict):
            raise errors.OperatorError("GET_STATE: the answer has no 'get_state'")
        return body

    async def get_version(self) -> MasterVersion:
        """GET_VERSION: which Mesos the leader runs (``limits`` need ≥ 1.11)."""
        body = (await self.call({"type": "GET_VERSION"})).get("get_version")
        info = body.get("version_info") if isinstance(body, dict) else None
        if not isinstance(info, dict) or not isinstance(info.get("version"), str):
            raise errors.OperatorError("GET_VERSION: the answer has no version_info.version")
        return MasterVersion(
            version=info["version"],
            build_date=str(info.get("build_date") or ""),
            git_sha=str(info.get("git_sha") or ""),
        )

    # -- the agents' APIs (same session, credentials and CA) ------------------------------

    def agent_url(self, address: str, path: str) -> str:
        """``path`` on the agent at ``address`` (host:port, or a URL), with the masters'
        scheme."""
        base = address if "://" in address else f"{self.transport.scheme}://{address}"
        return base.rstrip("/") + path

    _agent_url = agent_url

    async def agent_call(self, url: str, call: dict[str, Any]) -> Any:
        """One non-streaming v1 call on an agent's ``/api/v1`` (``url``)."""
        return await self._agent_request("POST", url, json_body=call, params={})

    async def agent_state(self, address: str) -> dict[str, Any]:
        reply = await self._agent_get(address, "/state", {})
        return reply if isinstance(reply, dict) else {}

    async def containers(self, address: str) -> list[dict[str, Any]]:
        """The agent's ``/containers`` (executor ids with ResourceStatistics)."""
        reply = await self._agent_get(address, "/containers", {})
        return [c for c in reply if isinstance(c, dict)] if isinstance(reply, list) else []

    async def get_containers(
            self, address: str, *, show_nested: bool = True
    ) -> list[dict[str, Any]]:
        """The agent's v1 GET_CONTAINERS: containers (nested too) with resource statistics."""
        call = {"type": "GET_CONTAINERS", "get_containers": {"show_nested": show_nested}}
        url = self._agent_url(address, OPERATOR_PATH)
        reply = await self._agent_request("POST", url, json_body=call, params={})
        body = reply.get("get_containers") if isinstance(reply, dict) else None
        found = body.get("containers") if isinstance(body, dict) else None
        return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []

    async def browse(self, address: str, *, path: str) -> list[dict[str, Any]]:
        """``/files/browse`` of a sandbox directory: its entries (path, size, mtime, mode...)."""
        reply = await self._agent_get(address, "/files/browse", {"path": path})
        return [e for e in reply if isinstance(e, dict)] if isinstance(reply, list) else []

    async def read_file(
            self, address: str, *, path: str, offset: int, length: int | None = None
    ) -> tuple[str, int]:
        """``/files/read``: returns (data, offset). ``offset=-1`` gives the current size."""
        params = {"path": path, "offset": str(offset)}
        if length is not None:
            params["length"] = str(length)
        reply = await self._agent_get(address, "/files/read", params)
        if not isinstance(reply, dict):
            raise errors.OperatorError(f"{address}/files/read: the answer is not an object")
        try:
            return str(reply.get("data", "")), int(reply.get("offset", 0))
        except (TypeError, ValueError) as e:
            raise errors.OperatorError(f"{address}/files/read: bad offset: {e}") from e

    async def _agent_get(self, address: str, path: str, params: dict[str, str]) -> Any:
        return await self._agent_request(
            "GET", self._agent_url(address, path), json_body=None, params=params
        )

    async def _agent_request(
            self, method: str, url: str, *, json_body: dict[str, Any] | None,
            params: dict[str, str],
    ) -> Any:
        session = self.transport.session()
        data = None if json_body is None else self.transport.encode(json_body)
        try:
            async with session.request(
                method, url, params=params, data=data, headers=self.transport.headers(),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as resp:
                if resp.status == 404:
                    raise errors.FileNotFound(f"{url}: {params.get('path', '')} not found")
                if resp.status != 200:
                    text = (await resp.text(errors="replace"))[:200]
                    raise errors.OperatorError(f"{url}: {resp.status} {text}")
                return await resp.json(content_type=None)
        except TimeoutError as e:
            raise errors.OperatorTimeout(f"{url}: no answer within {self._timeout:.1f}s") from e
        except (aiohttp.ClientError, OSError, ValueError) as e:
            raise errors.OperatorError(f"{url}: {self.transport.describe(e)}") from e
