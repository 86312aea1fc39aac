"""``/containerLogs``: a container's stdout/stderr read through the Mesos agent files API.

Why a module: follow, tailLines, limitBytes, previous, timestamps and sinceSeconds over files
that carry no per-line times (see ``kubelet/api.py`` for how sinceSeconds is answered).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import api_base
from k8sbridge.kubelet.api_base import (
    SIZE_FILES,
    SIZE_HISTORY,
)

__all__ = ["LogRoutes"]

log = logging.getLogger(__name__)


READ_CHUNK = 64 * 1024


MAX_LOG_BYTES = 16 * 1024 * 1024  # never read more than this for one non-follow request


FOLLOW_POLL = 0.2


def _since_cutoff(query: Mapping[str, str], *, now: float) -> float | None:
    """The epoch time ``sinceSeconds`` (or ``sinceTime``, RFC 3339) asks for, or None."""
    if "sinceSeconds" in query and "sinceTime" in query:
        raise ValueError("at most one of sinceTime or sinceSeconds may be specified")
    if "sinceSeconds" in query:
        try:
            seconds = int(query["sinceSeconds"])
        except ValueError as e:
            raise ValueError(f"bad sinceSeconds {query['sinceSeconds']!r}") from e
        if seconds < 1:
            raise ValueError("sinceSeconds must be a positive integer")
        return now - seconds
    if "sinceTime" in query:
        raw = query["sinceTime"]
        try:
            when = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError as e:
            raise ValueError(f"bad sinceTime {raw!r} (RFC 3339 expected)") from e
        if when.tzinfo is None:
            raise ValueError(f"bad sinceTime {raw!r} (no time zone)")
        return when.timestamp()
    return None


async def _finish(response: web.StreamResponse) -> None:
    """End a streamed reply; a client that already went away is normal for ``-f``."""
    try:
        await response.write_eof()
    except ConnectionResetError:
        log.debug("log client went away before the end of the stream")


class _LogWriter:
    """Writes log bytes with optional RFC 3339 timestamps and a byte limit."""

    def __init__(self, *, response: web.StreamResponse, timestamps: bool, limit: int | None):
        self._response = response
        self._timestamps = timestamps
        self._left = limit
        self._at_line_start = True

    async def write(self, data: bytes) -> bool:
        """False once the limit is reached or the client went away."""
        if not data:
            return True
        if self._timestamps:
            stamp = (
                datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
                + b" "
            )
            out = bytearray()
            for line in data.splitlines(keepends=True):
                if self._at_line_start:
                    out += stamp
                out += line
                self._at_line_start = line.endswith(b"\n")
            data = bytes(out)
        if self._left is not None:
            data = data[: self._left]
            self._left -= len(data)
        try:
            await self._response.write(data)
        except (ConnectionResetError, RuntimeError):
            return False
        return self._left is None or self._left > 0


class LogRoutes(api_base.ServerBase):
    """``/containerLogs`` and the log-size sampler behind sinceSeconds."""

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        if self._locator is None or self._agents is None:
            return web.Response(status=503, text="kubelet is starting\n")
        q = request.query
        try:
            follow = q.get("follow", "false").lower() in ("1", "true")
            previous = q.get("previous", "false").lower() in ("1", "true")
            timestamps = q.get("timestamps", "false").lower() in ("1", "true")
            tail = int(q["tailLines"]) if "tailLines" in q else None
            limit = int(q["limitBytes"]) if "limitBytes" in q else None
            if (tail is not None and tail < 0) or (limit is not None and limit <= 0):
                raise ValueError("negative")
        except ValueError:
            return web.Response(status=400, text="bad tailLines or limitBytes\n")
        try:
            cutoff = _since_cutoff(q, now=time.time())
        except ValueError as e:
            return web.Response(status=400, text=f"{e}\n")
        ns = request.match_info["namespace"]
        pod = request.match_info["pod"]
        container = request.match_info["container"]
        where = self._locator.locate(namespace=ns, name=pod, container=container,
                                     previous=previous)
        if where is None:
            kind = "previous terminated container" if previous else "container"
            return web.Response(
                status=404,
                text=f'{kind} "{container}" in pod "{pod}" is not available\n',
            )
        agent_id, executor_id, task_id, finished = where
        agent = self._agents.agents.get(agent_id)
        fid = self._locator.framework_id
        if agent is None or not fid:
            return web.Response(status=503, text=f"agent {agent_id} is not reachable\n")
        base = f"/frameworks/{fid}/executors/{executor_id}/runs/latest/tasks/{task_id}"
        mtimes = await self._mtimes(agent.address, base) if cutoff is not None else {}
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        writer = _LogWriter(response=response, timestamps=timestamps, limit=limit)
        if not follow:
            data = b""
            for name in ("stdout", "stderr"):
                path = f"{base}/{name}"
                whole = await self._read_all(agent.address, path)
                data += whole[self._since_offset(agent.address, path, whole, cutoff,
                                                 mtimes.get(name)):]
                self._observe(agent.address, path, len(whole))
            if tail is not None:
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-tail:]) if tail else b""
            await writer.write(data)
            await _finish(response)
            return response
        offsets = {}
        for name in ("stdout", "stderr"):
            path = f"{base}/{name}"
            data = await self._read_all(agent.address, path)
            offsets[path] = len(data)
            start = self._since_offset(agent.address, path, data, cutoff, mtimes.get(name))
            self._observe(agent.address, path, len(data))
            data = data[start:]
            if name == "stdout" and tail is not None:
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-tail:]) if tail else b""
            if name == "stdout" or tail is None:
                if not await writer.write(data):
                    return response
        idle_after_finish = 0
        while True:
            grew = False
            for path, offset in offsets.items():
                chunk = await self._read_from(agent.address, path, offset)
                if chunk:
                    grew = True
                    offsets[path] = offset + len(chunk)
                    self._observe(agent.address, path, offsets[path])
                    if not await writer.write(chunk):
                        return response
            if not grew:
                where = self._locator.locate(namespace=ns, name=pod, container=container,
                                             previous=previous)
                if where is None or where[3]:
                    idle_after_finish += 1
                    if idle_after_finish >= 3:
                        break
            if request.transport is None or request.transport.is_closing():
                break
            await asyncio.sleep(FOLLOW_POLL)
        await _finish(response)
        return response

    def _observe(self, address: str, path: str, size: int) -> None:
        """Remember that ``path`` held ``size`` bytes now (bounded per file and in files)."""
        key = (address, path)
        history = self._sizes.get(key)
        if history is None:
            history = self._sizes[key] = []
            while len(self._sizes) > SIZE_FILES:
                self._sizes.popitem(last=False)
        else:
            self._sizes.move_to_end(key)
        if history and history[-1][1] == size:
            return  # unchanged: the earlier observation is the stronger fact
        history.append((time.time(), size))
        if len(history) > SIZE_HISTORY:
            del history[: len(history) - SIZE_HISTORY]

    def _since_offset(
        self, address: str, path: str, data: bytes, cutoff: float | None, mtime: float | None
    ) -> int:
        """Where the output written at or after ``cutoff`` begins in ``data`` (see module doc)."""
        if cutoff is None or not data:
            return 0
        if mtime is not None and mtime + 1 <= cutoff:  # mtime may be whole seconds
            return len(data)
        start = 0
        for seen, size in self._sizes.get((address, path), ()):
            if seen > cutoff:
                break
            start = size if size <= len(data) else 0  # a shorter file was rewritten
        if 0 < start < len(data) and data[start - 1 : start] != b"\n":
            newline = data.find(b"\n", start)
            start = len(data) if newline < 0 else newline + 1
        return min(start, len(data))

    async def _browse(self, address: str, base: str) -> list[dict[str, Any]]:
        """The agent's ``/files/browse`` of a task sandbox ([] when it cannot be read)."""
        try:
            return await self._reader.browse(address, path=base)
        except mesos_agents.AgentsError as e:
            log.info("cannot browse %s on %s: %s", base, address, e)
            return []

    async def _mtimes(self, address: str, base: str) -> dict[str, float]:
        """stdout/stderr modification times from the agent's ``/files/browse``."""
        out: dict[str, float] = {}
        for entry in await self._browse(address, base):
            if isinstance(entry.get("mtime"), int | float):
                out[str(entry.get("path", "")).rsplit("/", 1)[-1]] = float(entry["mtime"])
        return out

    async def _sample_sizes(self) -> None:
        """Every ``log_sample_seconds``: record the log sizes of every running container."""
        period = self._settings.log_sample_seconds
        while True:
            await asyncio.sleep(period)
            try:
                await self._sample_once()
            except Exception:  # one bad pass must not end sampling; the next one retries
                log.exception("sampling log sizes failed")

    async def _sample_once(self) -> None:
        locator, agents = self._locator, self._agents
        if locator is None or agents is None or not locator.framework_id:
            return
        fid = locator.framework_id
        for pod in locator.running_pods():
            meta = pod.get("metadata") or {}
            ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
            for container in (pod.get("spec") or {}).get("containers") or []:
                where = locator.locate(namespace=ns, name=name,
                                       container=str(container.get("name")), previous=False)
                if where is None or where[3]:
                    continue
                agent = agents.agents.get(where[0])
                if agent is None:
                    continue
                base = f"/frameworks/{fid}/executors/{where[1]}/runs/latest/tasks/{where[2]}"
                for entry in await self._browse(agent.address, base):
                    leaf = str(entry.get("path", "")).rsplit("/", 1)[-1]
                    if leaf in ("stdout", "stderr") and isinstance(entry.get("size"), int):
                        self._observe(agent.address, f"{base}/{leaf}", int(entry["size"]))

    async def _read_from(self, address: str, path: str, offset: int) -> bytes:
        out = b""
        while len(out) < MAX_LOG_BYTES:
            try:
                data, _ = await self._reader.read_file(
                    address, path=path, offset=offset + len(out), length=READ_CHUNK
                )
            except mesos_agents.FileNotFound:
                break
            except mesos_agents.AgentsError as e:
                log.info("reading %s from %s failed: %s", path, address, e)
                break
            if not data:
                break
            out += data.encode("utf-8", "surrogateescape")
        return out

    async def _read_all(self, address: str, path: str) -> bytes:
        return await self._read_from(address, path, 0)
