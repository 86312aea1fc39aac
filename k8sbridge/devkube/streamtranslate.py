"""kube-apiserver's stream translator (KEP-4006, on by default since 1.30): a client's
WebSocket ``v5.channel.k8s.io`` exec or attach is served by the API server itself and carried
to the kubelet as SPDY/3.1 (``v4.channel.k8s.io``, client-go's SPDY executor), so the kubelet
sees what it would see from kube-apiserver.

Order of things, as the translator does it: the client's WebSocket is accepted first (``v5``
only) and the lowest writable channel gets an empty message; then the kubelet is dialled with
the protocols client-go offers (v5 to v1: a kubelet picks v4); a refusal reaches the client as a
``Status`` on the error channel (the kubelet's own Status when its body is one, else
InternalError "unable to upgrade connection: ..."). Streams are opened in client-go's order --
error, stdin, stdout, stderr (not with a terminal), resize (with a terminal) -- each waiting for
its reply. stdin is copied to its stream and the v5 close signal (255, 0) becomes its FIN;
resizes are decoded and re-encoded as JSON lines; stdout/stderr are copied to their channels
until their streams end; then the error stream is read to its end and turned into the status
the client gets: Success; an exit code becomes NonZeroExitCode with the ``ExitCode`` cause and
the message "command terminated with non-zero exit code: command terminated with exit code N";
any other failure is InternalError with its message. The client hanging up closes the SPDY
connection (the kubelet then ends the session).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from k8sbridge.devkube import spdyclient

__all__ = ["KUBELET_PROTOCOLS", "V5", "translate"]

log = logging.getLogger(__name__)

V5 = "v5.channel.k8s.io"
KUBELET_PROTOCOLS = [V5, "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                     "channel.k8s.io"]
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
MAX_MESSAGE = 4 * 1024 * 1024


def internal_error(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure",
            "message": f"Internal error occurred: {message}", "reason": "InternalError",
            "details": {"causes": [{"message": message}]}, "code": 500}


def client_status(protocol: str, message: bytes) -> dict[str, Any]:
    """The status the WebSocket client gets for what the kubelet wrote on the error stream."""
    if not message:
        return {"metadata": {}, "status": "Success"}
    if protocol not in ("v4.channel.k8s.io", V5):
        return internal_error(f"error executing remote command: "
                              f"{message.decode(errors='replace')}")
    try:
        status = json.loads(message)
    except ValueError as e:
        return internal_error(f"error stream protocol error: {e} in {message!r}")
    if not isinstance(status, dict):
        return internal_error("error stream protocol error: unknown error")
    if status.get("status") == "Success":
        return {"metadata": {}, "status": "Success"}
    if status.get("status") != "Failure":
        return internal_error("error stream protocol error: unknown error")
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    code = int(cause.get("message", ""))
                except ValueError:
                    return internal_error(f"error stream protocol error: invalid exit code "
                                          f"value {cause.get('message')!r}")
                return {"metadata": {}, "status": "Failure",
                        "message": f"command terminated with non-zero exit code: command "
                                   f"terminated with exit code {code}",
                        "reason": "NonZeroExitCode",
                        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        return internal_error("error stream protocol error: no ExitCode cause given")
    return internal_error(str(status.get("message", "")))


def refusal_status(refused: spdyclient.Refused) -> dict[str, Any]:
    """A kubelet's refusal of the upgrade, as client-go reports it."""
    with contextlib.suppress(ValueError):
        body = json.loads(refused.body)
        if isinstance(body, dict) and body.get("kind") == "Status":
            return body
    return internal_error(f"unable to upgrade connection: "
                          f"{refused.body.decode(errors='replace').strip()}")


async def _send(ws: web.WebSocketResponse, channel: int, data: bytes) -> bool:
    try:
        await ws.send_bytes(bytes((channel,)) + data)
    except (ConnectionResetError, RuntimeError):
        return False
    return True


async def translate(request: web.Request, *, url: str, ssl_context: Any, stdin: bool,
                    stdout: bool, stderr: bool, tty: bool) -> web.WebSocketResponse:
    """Serve the client's WebSocket v5 with a SPDY connection to the kubelet at ``url``."""
    stderr = stderr and not tty
    ws = web.WebSocketResponse(protocols=(V5,), max_msg_size=MAX_MESSAGE, autoping=True)
    await ws.prepare(request)
    await _send(ws, STDOUT if stdout else STDERR if stderr else ERROR, b"")
    try:
        conn = await spdyclient.dial(url, ssl_context=ssl_context,
                                     protocols=KUBELET_PROTOCOLS)
    except spdyclient.Refused as e:
        await _send(ws, ERROR, json.dumps(refusal_status(e)).encode())
        await ws.close()
        return ws
    except (OSError, ValueError) as e:
        await _send(ws, ERROR, json.dumps(internal_error(
            f'error dialing the kubelet "{url}": {e}')).encode())
        await ws.close()
        return ws
    try:
        await _serve(ws, conn, stdin=stdin, stdout=stdout, stderr=stderr, tty=tty)
    finally:
        await conn.close()
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await ws.close()
    return ws


async def _serve(ws: web.WebSocketResponse, conn: spdyclient.Connection, *, stdin: bool,
                 stdout: bool, stderr: bool, tty: bool) -> None:
    error = await conn.open({"streamType": "error"})
    streams: dict[int, spdyclient.Stream] = {}
    for channel, kind, wanted in ((STDIN, "stdin", stdin), (STDOUT, "stdout", stdout),
                                  (STDERR, "stderr", stderr),
                                  (RESIZE, "resize", tty and conn.protocol not in (
                                      "v2.channel.k8s.io", "channel.k8s.io"))):
        if wanted:
            streams[channel] = await conn.open({"streamType": kind})

    async def copy_out(channel: int) -> None:
        stream = streams[channel]
        while (data := await stream.read()) is not None:
            if not await _send(ws, channel, data):
                return

    async def read_error() -> bytes:
        message = b""
        while (data := await error.read()) is not None:
            message += data[:MAX_MESSAGE - len(message)]
        return message

    async def copy_in() -> None:
        async for message in ws:
            if message.type != WSMsgType.BINARY or not message.data:
                continue
            data: bytes = message.data
            channel, payload = data[0], data[1:]
            if channel == STDIN and STDIN in streams and payload:
                await conn.write(streams[STDIN], payload)
            elif channel == RESIZE and RESIZE in streams:
                with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
                    size = json.loads(payload)
                    line = json.dumps({"Width": int(size["Width"]),
                                       "Height": int(size["Height"])}) + "\n"
                    await conn.write(streams[RESIZE], line.encode())
            elif channel == CLOSE and payload[:1] == bytes((STDIN,)) and STDIN in streams:
                await conn.write(streams[STDIN], b"", fin=True)

    async def outcome() -> bytes:
        await asyncio.gather(*(copy_out(c) for c in (STDOUT, STDERR) if c in streams))
        return await read_error()

    status = asyncio.create_task(outcome())
    client = asyncio.create_task(copy_in())
    try:
        await asyncio.wait({status, client}, return_when=asyncio.FIRST_COMPLETED)
        if status.done() and not client.done():
            await _send(ws, ERROR, json.dumps(client_status(conn.protocol,
                                                            status.result())).encode())
    except (ConnectionError, RuntimeError) as e:
        log.info("exec translation: %r", e)
    finally:
        for task in (status, client):
            task.cancel()
        await asyncio.gather(status, client, return_exceptions=True)
