"""``/exec`` and ``/attach``: ``kubectl exec`` (and ``cp``, which is exec + tar) as a nested
container session on the pod's Mesos agent (``mesos.sessions``), streamed over WebSocket with
the kubelet's channel protocol.

Why WebSocket ``v5.channel.k8s.io`` / ``v4.channel.k8s.io``: what kubectl >= 1.30 asks first
(and what an API server proxying an upgraded request passes through). Each binary message is a
channel byte and data: 0 stdin, 1 stdout, 2 stderr, 3 error (a ``metav1.Status``: Success, or
Failure with reason ``NonZeroExitCode`` and the exit code as an ``ExitCode`` cause, which kubectl
turns into its own exit status), 4 terminal resize (``{"Width":..,"Height":..}``); v5 adds
the close signal (channel 255, then the channel closed: the client's stdin EOF). As the
kubelet does: the lowest writable channel gets an empty message once the streams are ready,
``tty`` turns stderr off, at least one of stdin/stdout/stderr is needed, and the connection is
closed after the status. SPDY/3.1 (kubectl's fallback) is not served.

``/attach`` has no Mesos counterpart for a task started without an I/O switchboard, so it
follows the container's output from the sandbox files from now on (as ``logs -f --tail=0``);
stdin is refused with a message on the error channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import WSMsgType, web

from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import api_base
from k8sbridge.mesos import sessions

__all__ = ["EXEC_PROTOCOLS", "ExecRoutes", "exit_status", "parse_options"]

log = logging.getLogger(__name__)

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
MAX_MESSAGE = 4 * 1024 * 1024  # a larger WebSocket message closes the connection (1009)
_TRUE = ("1", "true", "True")
_KEPT_TARGETS = 4096


class Options:
    """The query of an exec or attach request, as the kubelet reads it."""

    def __init__(self, *, command: list[str], stdin: bool, stdout: bool, stderr: bool,
                 tty: bool) -> None:
        self.command = command
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr and not tty  # a terminal has one output
        self.tty = tty


def parse_options(query: Mapping[str, str], commands: list[str]) -> Options:
    """``input``/``output``/``error``/``tty`` (the API server's names; ``stdin`` etc. too);
    ``ValueError`` with the kubelet's words when no stream is asked for."""
    def flag(*names: str) -> bool:
        return any(query.get(n) in _TRUE for n in names)

    options = Options(command=commands, stdin=flag("input", "stdin"),
                      stdout=flag("output", "stdout"), stderr=flag("error", "stderr"),
                      tty=flag("tty"))
    if not (options.stdin or options.stdout or options.stderr):
        raise ValueError("you must specify at least 1 of stdin, stdout, stderr")
    return options


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    """The error channel's ``metav1.Status`` for an exit code."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"{command}, exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal_error(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: "
            f"{message}", "reason": "InternalError",
            "details": {"causes": [{"message": message}]}, "code": 500}


async def _send(ws: web.WebSocketResponse, channel: int, data: bytes) -> bool:
    try:
        await ws.send_bytes(bytes((channel,)) + data)
    except (ConnectionResetError, RuntimeError):
        return False
    return True


async def _status(ws: web.WebSocketResponse, status: dict[str, Any]) -> None:
    await _send(ws, ERROR, json.dumps(status).encode())


class ExecRoutes(api_base.ServerBase):
    """``/exec`` and ``/attach`` over WebSocket."""

    async def _where(self, ns: str, pod: str, container: str, *, fresh: bool = False
                     ) -> tuple[str, dict[str, Any]]:
        """(agent address, the task's ContainerID) of a pod's container; an HTTP error
        (raised) when it is not running anywhere. The ContainerID is read from the agent's
        ``/state`` once per task (``fresh``: again)."""
        if self._locator is None or self._agents is None:
            raise web.HTTPServiceUnavailable(text="kubelet is starting\n")
        where = self._locator.locate(namespace=ns, name=pod, container=container,
                                     previous=False)
        if where is None or where[3]:
            raise web.HTTPNotFound(text=f'container "{container}" in pod "{pod}" is not '
                                        "running\n")
        agent = self._agents.agents.get(where[0])
        if agent is None:
            raise web.HTTPServiceUnavailable(text=f"agent {where[0]} is not reachable\n")
        key = (agent.address, where[2])
        target = None if fresh else self._targets.get(key)
        if target is None:
            try:
                state = await self._reader.agent_state(agent.address)
            except mesos_agents.AgentsError as e:
                raise web.HTTPServiceUnavailable(text=f"agent {where[0]}: {e}\n") from e
            target = sessions.task_container(state, task_id=where[2])
            if target is not None:
                self._targets[key] = target
                while len(self._targets) > _KEPT_TARGETS:
                    self._targets.pop(next(iter(self._targets)))
        if target is None:
            raise web.HTTPNotFound(text=f'container "{container}" in pod "{pod}" is not '
                                        "running on its agent\n")
        return agent.address, target

    async def _open(self, request: web.Request) -> web.WebSocketResponse | web.Response:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=400, text="Upgrade request required: this kubelet "
                                "serves exec, attach and port-forward over WebSocket "
                                f"({', '.join(EXEC_PROTOCOLS)}), not SPDY\n")
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, max_msg_size=MAX_MESSAGE,
                                   autoping=True)
        return ws

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        try:
            options = parse_options(request.query, request.query.getall("command", []))
        except ValueError as e:
            return web.Response(status=400, text=f"{e}\n")
        if not options.command:
            return web.Response(status=400, text="you must specify a command\n")
        opened = await self._open(request)
        if isinstance(opened, web.Response):
            return opened
        where = (request.match_info["namespace"], request.match_info["pod"],
                 request.match_info["container"])
        address, target = await self._where(*where)
        try:
            session = await sessions.launch(self._reader, address, parent=target,
                                            command=options.command, tty=options.tty)
        except mesos_agents.AgentsError:
            # The task may have been restarted in a new container since it was read: again.
            address, target = await self._where(*where, fresh=True)
            try:
                session = await sessions.launch(self._reader, address, parent=target,
                                                command=options.command, tty=options.tty)
            except mesos_agents.AgentsError as e:
                return web.json_response(internal_error(
                    f"error executing command in container: {e}"), status=500)
        ws = opened
        try:
            await ws.prepare(request)
        except BaseException:
            await session.close()
            raise
        await self._serve_session(ws, session, options=options)
        return ws

    async def _serve_session(self, ws: web.WebSocketResponse, session: sessions.Session, *,
                             options: Options) -> None:
        first = STDOUT if options.stdout else STDERR if options.stderr else ERROR
        await _send(ws, first, b"")
        if not options.stdin:
            await session.close_input()
        reader = asyncio.create_task(self._client_to_session(ws, session, options))
        try:
            async for kind, data in session.output():
                channel = STDERR if kind == "STDERR" and not options.tty else STDOUT
                wanted = options.stderr if channel == STDERR else options.stdout
                if wanted and not await _send(ws, channel, data):
                    break
            if not ws.closed:
                code = sessions.decode_status(await session.wait())
                await _status(ws, exit_status(code, options.command))
        except mesos_agents.AgentsError as e:
            if not ws.closed:
                await _status(ws, internal_error(str(e)))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await session.close()
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await ws.close()

    async def _client_to_session(self, ws: web.WebSocketResponse, session: sessions.Session,
                                 options: Options) -> None:
        """stdin, stdin's close (v5) and resizes from the client, until it hangs up."""
        async for message in ws:
            if message.type != WSMsgType.BINARY or not message.data:
                continue
            data: bytes = message.data
            channel, payload = data[0], data[1:]
            if channel == STDIN and options.stdin:
                await session.send(payload)
            elif channel == RESIZE and options.tty:
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    size = json.loads(payload)
                    await session.resize(rows=int(size["Height"]),
                                         columns=int(size["Width"]))
            elif channel == CLOSE and payload[:1] == bytes((STDIN,)):
                await session.close_input()
        # The client hung up (or closed its side): its output has nowhere to go.
        await session.close()

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        try:
            options = parse_options(request.query, [])
        except ValueError as e:
            return web.Response(status=400, text=f"{e}\n")
        opened = await self._open(request)
        if isinstance(opened, web.Response):
            return opened
        if self._locator is None or self._agents is None:
            return web.Response(status=503, text="kubelet is starting\n")
        ns, pod = request.match_info["namespace"], request.match_info["pod"]
        container = request.match_info["container"]
        where = self._locator.locate(namespace=ns, name=pod, container=container,
                                     previous=False)
        agent = self._agents.agents.get(where[0]) if where is not None else None
        fid = self._locator.framework_id
        if where is None or where[3] or agent is None or not fid:
            return web.Response(status=404, text=f'container "{container}" in pod "{pod}" '
                                "is not running\n")
        ws = opened
        await ws.prepare(request)
        base = f"/frameworks/{fid}/executors/{where[1]}/runs/latest/tasks/{where[2]}"
        await _send(ws, STDOUT if options.stdout else STDERR if options.stderr else ERROR, b"")
        if options.stdin:
            await _status(ws, internal_error(
                "attaching to the stdin of a Mesos task is not supported (its stdin is not "
                "kept by the agent); use kubectl exec"))
            await ws.close()
            return ws
        await self._follow_output(ws, agent.address, base, options)
        return ws

    async def _follow_output(self, ws: web.WebSocketResponse, address: str, base: str,
                             options: Options) -> None:
        """The container's stdout and stderr from their current ends, until the client hangs
        up or the task ends."""
        offsets: dict[str, int] = {}
        for name in ("stdout", "stderr"):
            try:
                _, offsets[name] = await self._reader.read_file(
                    address, path=f"{base}/{name}", offset=-1)
            except mesos_agents.AgentsError:
                offsets[name] = 0
        closed = asyncio.create_task(self._drain(ws))
        try:
            while not closed.done():
                for name, channel, wanted in (("stdout", STDOUT, options.stdout),
                                              ("stderr", STDERR, options.stderr)):
                    try:
                        data, _ = await self._reader.read_file(
                            address, path=f"{base}/{name}", offset=offsets[name])
                    except mesos_agents.AgentsError:
                        continue
                    raw = data.encode()
                    offsets[name] += len(raw)
                    if raw and (wanted or options.tty) and not await _send(
                            ws, STDOUT if options.tty else channel, raw):
                        return
                await asyncio.wait({closed}, timeout=0.2)
        finally:
            closed.cancel()
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await ws.close()

    @staticmethod
    async def _drain(ws: web.WebSocketResponse) -> None:
        async for _message in ws:
            pass
