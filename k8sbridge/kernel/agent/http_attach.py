"""``ATTACH_CONTAINER_OUTPUT`` and ``ATTACH_CONTAINER_INPUT`` for a task's container (not a
session's): forwarded to the task's I/O switchboard (``switchboard``), as Mesos' agent
forwards them to the switchboard server of the container (``src/slave/http.cpp``
``_attachContainerInput``/``_attachContainerOutput``).

Mesos' answers mirrored: an unknown container is 404 "Container ... cannot be found"; a
container launched without a TTY has no switchboard server, so the containerizer's attach
fails and the agent answers 500 "I/O switchboard server was disabled for this container"; a
task that has ended has no switchboard left (500 "I/O switchboard has shutdown"); a second
input connection is 409 "Multiple input connections are not allowed". With a TTY an empty
DATA record is not the end of input (Mesos expects EOT), and TTY_INFO sets the window size.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any

from aiohttp import web

from k8sbridge.kernel.agent import containers, sessions, switchboard
from k8sbridge.kernel.agent.core import AgentCore
from k8sbridge.kernel.agent.state import Container, Task, nested_container_id

__all__ = ["DISABLED", "SHUTDOWN", "TaskInput", "open_input", "output"]

RECORDIO = "application/recordio"
DISABLED = "I/O switchboard server was disabled for this container"
SHUTDOWN = "I/O switchboard has shutdown"
CONFLICT = "Multiple input connections are not allowed"
READ_CHUNK = 64 * 1024


class AttachError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _task_of(agent: AgentCore, value: str) -> tuple[Container, Task] | None:
    """The task whose container ``value`` names: a task group's nested container, or the
    container of a command task."""
    for container in agent.live_containers():
        if container.container_id == value and container.kind != "DEFAULT":
            tasks = list(container.tasks.values())
            return (container, tasks[0]) if len(tasks) == 1 else None
        if container.kind == "DEFAULT":
            for task in container.tasks.values():
                if nested_container_id(container.container_id, task.task_id) == value:
                    return container, task
    return None


async def _connect(agent: AgentCore, value: str, kind: bytes
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    found = _task_of(agent, value)
    if found is None:
        raise AttachError(404, f"Container {value} cannot be found")
    container, task = found
    if not isinstance((task.info.get("container") or {}).get("tty_info"), dict):
        raise AttachError(500, DISABLED)
    if task.terminal or container.terminated:
        raise AttachError(500, SHUTDOWN)
    name = switchboard.io_socket_name(containers.socket_name(container.container_id),
                                      task.task_id)
    try:
        reader, writer = await asyncio.open_unix_connection("\0" + name)
    except OSError as e:
        raise AttachError(500, f"{SHUTDOWN}: {e}") from e
    writer.write(kind + b"\n")
    await writer.drain()
    return reader, writer


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


async def output(request: web.Request, agent: AgentCore, value: str) -> web.StreamResponse:
    """The task's terminal output as ``ProcessIO`` DATA (STDOUT) records, with heartbeats,
    until the terminal closes or the caller goes away."""
    try:
        reader, writer = await _connect(agent, value, b"output")
    except AttachError as e:
        return _error(e.status, str(e))
    accept = request.headers.get("Accept", "application/json")
    response = web.StreamResponse(status=200, headers={
        "Content-Type": RECORDIO if RECORDIO in accept else "application/json",
        "Message-Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        while True:
            try:
                async with asyncio.timeout(sessions.HEARTBEAT_SECONDS):
                    data = await reader.read(READ_CHUNK)
            except TimeoutError:
                await response.write(sessions.heartbeat_record())
                continue
            if not data:
                break
            await response.write(sessions.data_record("STDOUT", data))
        await response.write_eof()
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.close()
    return response


class TaskInput:
    """One input connection to a task's switchboard."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def apply(self, body: dict[str, Any]) -> None:
        process_io = body.get("process_io")
        if not isinstance(process_io, dict):
            return
        line: dict[str, Any] | None = None
        if process_io.get("type") == "DATA":
            data = str((process_io.get("data") or {}).get("data") or "")
            if base64.b64decode(data):  # empty is not EOF on a terminal (EOT is)
                line = {"data": data}
        elif process_io.get("type") == "CONTROL":
            control = process_io.get("control") or {}
            if control.get("type") == "TTY_INFO":
                size = (control.get("tty_info") or {}).get("window_size")
                if not isinstance(size, dict):
                    raise ValueError("Expecting 'tty_info.window_size' to be present")
                line = {"rows": int(size.get("rows", 0)), "columns": int(size.get("columns", 0))}
        if line is not None:
            self._writer.write(json.dumps(line).encode() + b"\n")
            await self._writer.drain()

    def close(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            self._writer.close()


async def open_input(agent: AgentCore, value: str) -> TaskInput | web.Response:
    """The task's switchboard input, or the agent's refusal."""
    try:
        reader, writer = await _connect(agent, value, b"input")
        answer = (await reader.readline()).strip()
    except AttachError as e:
        return _error(e.status, str(e))
    except (ConnectionError, OSError) as e:
        return _error(500, f"{SHUTDOWN}: {e}")
    if answer != b"ok":
        writer.close()
        return _error(409, CONFLICT) if answer == b"conflict" else _error(500, SHUTDOWN)
    return TaskInput(writer)
