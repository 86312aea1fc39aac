"""What exec and attach share whatever protocol carries them: the request's options as the
kubelet reads them, the error channel's ``metav1.Status`` (the exit code as the kubelet writes
it), the channel numbers and ``Channels``, the client side of a session (WebSocket in
``api_exec``, SPDY/3.1 in ``api_exec_spdy``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from k8sbridge.mesos import sessions

__all__ = ["Channels", "Options", "WebSocketChannels", "exit_status", "internal_error",
           "parse_options", "resize"]

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
MAX_MESSAGE = 4 * 1024 * 1024  # a larger WebSocket message closes the connection (1009)
_TRUE = ("1", "true", "True")


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


class Channels(Protocol):
    """The client's channels, whichever protocol carries them (WebSocket here, SPDY in
    ``api_exec_spdy``)."""

    async def send(self, channel: int, data: bytes) -> bool:
        """Output on STDOUT or STDERR; False once the client has gone."""
        ...

    async def status(self, status: dict[str, Any]) -> None:
        """The error channel's ``metav1.Status`` (as the protocol version writes it)."""
        ...

    async def pump_input(self, session: sessions.Input | None, options: Options) -> None:
        """stdin, its close and resizes to the session until the client hangs up (then the
        session is closed); without a session the client's input is drained."""
        ...

    async def close(self) -> None: ...


class WebSocketChannels:
    """Channels as binary WebSocket messages, the channel number first."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def send(self, channel: int, data: bytes) -> bool:
        try:
            await self.ws.send_bytes(bytes((channel,)) + data)
        except (ConnectionResetError, RuntimeError):
            return False
        return True

    async def status(self, status: dict[str, Any]) -> None:
        await self.send(ERROR, json.dumps(status).encode())

    async def pump_input(self, session: sessions.Input | None, options: Options) -> None:
        async for message in self.ws:
            if session is None or message.type != WSMsgType.BINARY or not message.data:
                continue
            data: bytes = message.data
            channel, payload = data[0], data[1:]
            if channel == STDIN and options.stdin:
                await session.send(payload)
            elif channel == RESIZE and options.tty:
                await resize(session, payload)
            elif channel == CLOSE and payload[:1] == bytes((STDIN,)):
                await session.close_input()
        # The client hung up (or closed its side): its output has nowhere to go.
        if session is not None:
            await session.close()

    async def close(self) -> None:
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await self.ws.close()


async def resize(session: sessions.Input, payload: bytes) -> None:
    """A ``{"Width":..,"Height":..}`` resize to the session's terminal (bad JSON ignored)."""
    with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
        size = json.loads(payload)
        await session.resize(rows=int(size["Height"]), columns=int(size["Width"]))


