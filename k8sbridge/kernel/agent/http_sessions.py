"""The agent API's streaming calls: ``LAUNCH_NESTED_CONTAINER_SESSION`` (a RecordIO stream of
``ProcessIO`` records answering the call), ``ATTACH_CONTAINER_INPUT`` (a RecordIO stream of
calls as the request body), ``WAIT_NESTED_CONTAINER`` and ``KILL_NESTED_CONTAINER`` for the
sessions of ``sessions``; ``ATTACH_CONTAINER_INPUT``/``OUTPUT`` naming a task's container go
to its I/O switchboard (``http_attach``).

Why a module in front of ``http``'s ``/api/v1`` handler: a streaming request must be recognised
from its headers before its body is read (the input stream never ends while the caller types),
and the other calls are answered by ``http`` unchanged. Media types, status codes and messages
are those of ``src/slave/http.cpp``: ``Content-Type: application/recordio`` with
``Message-Content-Type: application/json`` only for ``ATTACH_CONTAINER_INPUT`` (415 otherwise),
a streaming answer only for the session and ``ATTACH_CONTAINER_OUTPUT`` calls (406 otherwise),
404 "Container ... cannot be found". The container is destroyed when the caller's connection
closes, and when the output ends (Mesos' ``launchNestedContainerSession``). Authentication is
the ``/api/v1`` realm's (``httpauth``), as for every other call.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from k8sbridge.kernel import recordio
from k8sbridge.kernel.agent import calls, http_attach, sessions
from k8sbridge.kernel.agent.core import AgentCore
from k8sbridge.kernel.agent.state import Container, Task, nested_container_id

__all__ = ["MAX_INPUT_RECORD", "install"]

RECORDIO = "application/recordio"
MAX_INPUT_RECORD = 4 * 1024 * 1024  # an input record larger than this ends the input (413)
_SESSIONS = web.AppKey("sessions", sessions.Sessions)
_CORE = web.AppKey("sessions_agent", object)
_STREAMED = frozenset({"LAUNCH_NESTED_CONTAINER_SESSION", "ATTACH_CONTAINER_OUTPUT"})
_OURS = frozenset({"LAUNCH_NESTED_CONTAINER_SESSION", "ATTACH_CONTAINER_OUTPUT",
                   "WAIT_NESTED_CONTAINER", "KILL_NESTED_CONTAINER"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install(app: web.Application, agent: AgentCore, fallback: Handler) -> Handler:
    """Keep the sessions on ``app`` and return the ``/api/v1`` handler that serves the
    streaming calls and hands every other call to ``fallback``."""

    def alive(container_id: str) -> bool:
        return any(c.container_id == container_id and not c.terminated
                   for c in agent.live_containers())

    table = sessions.Sessions(alive=alive)
    app[_SESSIONS] = table
    app[_CORE] = agent

    async def cleanup(_app: web.Application) -> None:
        await table.close()

    app.on_shutdown.append(cleanup)

    async def handler(request: web.Request) -> web.StreamResponse:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type == RECORDIO:
            return await _attach_input(request, table, agent)
        if "Message-Content-Type" in request.headers:
            return _error(415, "Expecting 'Message-Content-Type' to be not set for "
                               "non-streaming requests")
        if content_type != "application/json":
            return await fallback(request)
        try:
            async with asyncio.timeout(agent.config.http_body_timeout_seconds):
                body = await request.read()
            call = calls.parse_call(body)
        except (TimeoutError, calls.CallError):
            return await fallback(request)  # it answers these (408, 400) as it always has
        kind = str(call["type"])
        if kind == "GET_CONTAINERS":
            return await _with_sessions(await fallback(request), table, call)
        if kind == "ATTACH_CONTAINER_INPUT":
            return _error(415, f"Expecting 'Content-Type' to be {RECORDIO} for "
                               "ATTACH_CONTAINER_INPUT call")
        accept = request.headers.get("Accept", "application/json")
        if RECORDIO in accept and kind not in _STREAMED:
            return _error(406, f"Streaming response is not supported for {kind} call")
        if kind not in _OURS:
            return await fallback(request)
        try:
            if kind == "WAIT_NESTED_CONTAINER":
                return await _wait(table, _container_id(call, "container_id"))
            if kind == "KILL_NESTED_CONTAINER":
                return _kill(table, _container_id(call, "container_id"))
            if kind == "ATTACH_CONTAINER_OUTPUT":
                target = _container_id(call, "container_id")
                found = table.find(target["value"])
                if found is None:  # a task's container: its switchboard, if it has one
                    return await http_attach.output(request, agent, str(target["value"]))
                return await _stream(request, table, found)
            return await _launch(request, agent, table, call)
        except calls.CallError as e:
            return _error(400, str(e))
        except sessions.SessionError as e:
            return _error(e.status, str(e))

    return handler


async def _with_sessions(response: web.StreamResponse, table: sessions.Sessions,
                         call: dict[str, Any]) -> web.StreamResponse:
    """GET_CONTAINERS with ``show_nested`` lists the live sessions too, as Mesos lists its
    DEBUG nested containers."""
    if (not isinstance(response, web.Response) or response.status != 200
            or not calls.field(call, "show_nested", bool, required=False, default=False)
            or not table.live() or response.body is None):
        return response
    body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    found = body.setdefault("get_containers", {}).setdefault("containers", [])
    for session in table.live():
        found.append({"container_id": {"value": session.container_id,
                                       "parent": session.parent_id},
                      "container_status": {"executor_pid": session.proc.pid
                                           if session.proc is not None else 0}})
    return web.json_response(body)


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


def _container_id(call: dict[str, Any], name: str) -> dict[str, Any]:
    raw: dict[str, Any] = calls.field(call, name, dict, required=True)
    value = raw.get("value")
    if not isinstance(value, str) or not value:
        sub = str(call["type"]).lower()
        raise calls.CallError(f"Expecting '{sub}.{name}.value' to be present")
    return raw


def _target(agent: AgentCore, parent: dict[str, Any]) -> tuple[Container, Task]:
    """The running task a session's parent id names: a task's nested container, or an
    executor container that runs one task."""
    value = str(parent.get("value") or "")
    for container in agent.live_containers():
        if container.terminated:
            continue
        if container.container_id == value:
            tasks = [t for t in container.tasks.values() if not t.terminal]
            if len(tasks) == 1:
                return container, tasks[0]
            raise sessions.SessionError(
                400, f"Parent container {value} runs {len(tasks)} tasks: name one task's "
                     "nested container")
        if container.kind == "DEFAULT":
            for task in container.tasks.values():
                if nested_container_id(container.container_id, task.task_id) == value:
                    if task.terminal:
                        raise sessions.SessionError(
                            400, f"Parent container {value} is not running")
                    return container, task
    raise sessions.SessionError(400, f"Parent container {value} does not exist")


async def _launch(request: web.Request, agent: AgentCore, table: sessions.Sessions,
                  call: dict[str, Any]) -> web.StreamResponse:
    target = _container_id(call, "container_id")
    parent = target.get("parent")
    if not isinstance(parent, dict) or not parent.get("value"):
        raise calls.CallError("Expecting 'launch_nested_container_session.container_id"
                              ".parent' to be present")
    command = calls.field(call, "command", dict, required=True)
    container_info = calls.field(call, "container", dict, required=False, default={})
    tty_info = container_info.get("tty_info")
    window: tuple[int, int] | None = None
    if isinstance(tty_info, dict):
        size = tty_info.get("window_size")
        if isinstance(size, dict):
            try:
                window = (int(size.get("rows", 0)), int(size.get("columns", 0)))
            except (TypeError, ValueError) as e:
                raise calls.CallError("'tty_info.window_size' must have numeric rows and "
                                      "columns") from e
    container, task = _target(agent, parent)
    session = await table.launch(container_id=str(target["value"]), parent_id=parent,
                                 container=container,
                                 task=task, command=command, tty=isinstance(tty_info, dict),
                                 window=window)
    return await _stream(request, table, session)


async def _stream(request: web.Request, table: sessions.Sessions,
                  session: sessions.Session) -> web.StreamResponse:
    """The session's output as the answer; a caller that goes away destroys it."""
    accept = request.headers.get("Accept", "application/json")
    response = web.StreamResponse(status=200, headers={
        "Content-Type": RECORDIO if RECORDIO in accept else "application/json",
        "Message-Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    quiet = 0.0
    try:
        while True:
            try:
                record = await asyncio.wait_for(session.output.get(), timeout=0.5)
            except TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    raise ConnectionResetError("the caller went away") from None
                if session.done.is_set() and session.output.empty():
                    break
                quiet += 0.5
                if quiet >= sessions.HEARTBEAT_SECONDS:
                    quiet = 0.0
                    await response.write(sessions.heartbeat_record())
                continue
            if record is None:
                break
            quiet = 0.0
            await response.write(record)
        await response.write_eof()
    except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
        table.destroy(session)
        raise
    finally:
        table.destroy(session)  # Mesos destroys the container when its output ends
    return response


async def _wait(table: sessions.Sessions, target: dict[str, Any]) -> web.Response:
    value = str(target["value"])
    session = table.find(value)
    if session is not None:
        await session.done.wait()
    status = table.status_of(value)
    if status is None:
        return _error(404, f"Container {value} cannot be found")
    return web.json_response({"type": "WAIT_NESTED_CONTAINER",
                              "wait_nested_container": {"exit_status": status}})


def _kill(table: sessions.Sessions, target: dict[str, Any]) -> web.Response:
    session = table.find(str(target["value"]))
    if session is None:
        return _error(404, f"Container {target['value']} cannot be found")
    session.kill()
    return web.Response(status=200)


async def _attach_input(request: web.Request, table: sessions.Sessions,
                        agent: AgentCore) -> web.Response:
    """``ATTACH_CONTAINER_INPUT``: the first record names the container, the rest carry
    stdin data (empty data: end of input) and control (TTY window size, heartbeats). A
    task's container (not a session's) gets them through its switchboard (``http_attach``)."""
    if request.headers.get("Message-Content-Type", "").split(";")[0].strip() != (
            "application/json"):
        if "Message-Content-Type" not in request.headers:
            return _error(400, "Expecting 'Message-Content-Type' to be set for streaming "
                               "requests")
        return _error(415, "Expecting 'Message-Content-Type' of application/json")
    reader = recordio.Reader(max_record=MAX_INPUT_RECORD)
    session: sessions.Session | None = None
    task_input: http_attach.TaskInput | None = None
    try:
        while True:
            chunk = await request.content.readany()
            if not chunk:
                break
            for record in reader.feed(chunk):
                call = json.loads(record)
                body = call.get("attach_container_input") if isinstance(call, dict) else None
                if call.get("type") != "ATTACH_CONTAINER_INPUT" or not isinstance(body, dict):
                    return _error(400, "Expecting 'type' to be ATTACH_CONTAINER_INPUT")
                if task_input is not None:
                    await task_input.apply(body)
                    continue
                if session is None:
                    if body.get("type") != "CONTAINER_ID":
                        return _error(400, "Expecting 'attach_container_input.type' to be "
                                           "CONTAINER_ID")
                    value = str((body.get("container_id") or {}).get("value") or "")
                    found = table.find(value)
                    if found is None:
                        opened = await http_attach.open_input(agent, value)
                        if isinstance(opened, web.Response):
                            return opened
                        task_input = opened
                        continue
                    if found.input_attached:
                        return _error(409, "Multiple input connections are not allowed")
                    session = found
                    session.input_attached = True
                    continue
                await _apply_input(session, body)
    except recordio.RecordIOError as e:
        return _error(413 if "exceeds" in str(e) else 400, f"Failed to read input: {e}")
    except (ValueError, AttributeError) as e:
        return _error(400, f"Failed to parse an input record: {e}")
    except (ConnectionError, OSError) as e:  # the switchboard went away
        return _error(500, f"{http_attach.SHUTDOWN}: {e}")
    finally:
        if session is not None:
            session.input_attached = False
        if task_input is not None:
            task_input.close()
    if task_input is not None:
        return web.Response(status=200)
    if session is None:
        return _error(400, "Expecting the first record to name the container")
    return web.Response(status=200)


async def _apply_input(session: sessions.Session, body: dict[str, Any]) -> None:
    process_io = body.get("process_io")
    if not isinstance(process_io, dict):
        return
    if process_io.get("type") == "DATA":
        data = process_io.get("data") or {}
        raw = base64.b64decode(str(data.get("data") or ""))
        if raw:
            await session.write_input(raw)
        else:
            await session.close_input()
    elif process_io.get("type") == "CONTROL":
        control = process_io.get("control") or {}
        if control.get("type") == "TTY_INFO":
            size = (control.get("tty_info") or {}).get("window_size") or {}
            session.resize(int(size.get("rows", 0)), int(size.get("columns", 0)))
