"""kubectl's port-forward: SPDY/3.1 streams (``portforward.k8s.io``), on an upgraded
connection (what kube-apiserver >= 1.31 opens to a kubelet when tunnelling kubectl's WebSocket,
and what older API servers pass through from kubectl) or tunnelled in a WebSocket
(``SPDY/3.1+portforward.k8s.io``, when an API server relays the WebSocket), each forwarded
connection a pair of streams -- ``error``
and ``data``, with the same ``requestID`` and ``port`` headers -- served by one relay session
in the pod (``api_portforward.relay_command``), as the kubelet's ``portforward`` package
serves them.

Order of things, as kubectl expects them: every stream the client opens gets a SYN_REPLY; once
both streams of a request are open the relay starts; the client's data goes to the relay, its
half-close (DATA with FIN) ends the relay's input; what the pod sends comes back on the data
stream, closed with FIN when the pod's side ends; a relay that fails (nothing listens on the
port) writes why on the error stream; the error stream is closed last (kubectl waits for that
close to finish the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import api_spdy
from k8sbridge.mesos import sessions

__all__ = ["PORT_FORWARD_SPDY", "SPDY_TUNNEL", "serve_tunnel", "websocket_transport"]

log = logging.getLogger(__name__)

PORT_FORWARD_SPDY = "portforward.k8s.io"
SPDY_TUNNEL = "SPDY/3.1+" + PORT_FORWARD_SPDY
Read = Callable[[], Awaitable[bytes]]  # the client's next bytes, b"" at its end
Write = Callable[[bytes], Awaitable[bool]]  # False once the client has gone


def websocket_transport(ws: web.WebSocketResponse) -> tuple[Read, Write]:
    """The SPDY bytes of a tunnelling WebSocket: binary messages both ways."""
    async def read() -> bytes:
        async for message in ws:
            if message.type == WSMsgType.BINARY and message.data:
                data: bytes = message.data
                return data
        return b""

    async def write(data: bytes) -> bool:
        try:
            await ws.send_bytes(data)
        except (ConnectionResetError, RuntimeError):
            return False
        return True

    return read, write
_CHUNK = 32 * 1024


def pair_id(kind: str, stream: int) -> str:
    """The request a stream without ``requestID`` belongs to (clients before 1.6 sent none): as
    the kubelet guesses it, an error stream's own id, a data stream's id less 2 (the pair's
    streams are consecutive when connections are not opened concurrently)."""
    return str(stream - 2 if kind == "data" else stream)


class _Sender:
    """Frames to the client, one at a time."""

    def __init__(self, write: Write) -> None:
        self.write = write
        self.frames = api_spdy.Writer()
        self._lock = asyncio.Lock()

    async def send(self, frame: bytes) -> None:
        async with self._lock:
            await self.write(frame)


class _Connection:
    """One forwarded connection: its two streams and its relay session."""

    def __init__(self, *, sender: _Sender, data: int, error: int, port: int, pod: str) -> None:
        self.sender = sender
        self.data = data
        self.error = error
        self.port = port
        self.pod = pod
        self.session: sessions.Session | None = None
        self.started = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self, reader: Any, address: str, target: dict[str, Any],
                  relay: list[str]) -> None:
        errors = b""
        try:
            try:
                self.session = await sessions.launch(reader, address, parent=target,
                                                     command=relay)
            finally:
                self.started.set()
            async for kind, data in self.session.output():
                if kind == "STDERR":
                    errors += data[:4096]
                    continue
                for at in range(0, len(data), _CHUNK):
                    await self.sender.send(self.sender.frames.data(self.data,
                                                                   data[at:at + _CHUNK]))
            code = sessions.decode_status(await self.session.wait())
            if code != 0 and not errors:
                errors = f"the relay exited with {code}".encode()
        except mesos_agents.AgentsError as e:
            errors = str(e).encode()
        await self.sender.send(self.sender.frames.data(self.data, b"", fin=True))
        if errors:
            text = (f"error forwarding port {self.port} to pod {self.pod}: failed to connect "
                    f"to localhost:{self.port} inside the pod: "
                    f"{errors.decode(errors='replace').strip()}")
            await self.sender.send(self.sender.frames.data(self.error, text.encode()))
        await self.sender.send(self.sender.frames.data(self.error, b"", fin=True))

    async def send(self, data: bytes, *, fin: bool) -> None:
        await self.started.wait()
        if self.session is None:
            return
        if data:
            await self.session.send(data)
        if fin:
            await self.session.close_input()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.session is not None:
            await self.session.close()


async def serve_tunnel(transport: tuple[Read, Write], *, reader: Any, address: str,
                       target: dict[str, Any], pod: str,
                       relay_command: Any) -> None:
    """Serve the client's SPDY streams until it hangs up (or sends GOAWAY)."""
    read, write = transport
    sender = _Sender(write)
    frames = api_spdy.Reader()
    opened: dict[str, dict[str, tuple[int, int]]] = {}  # requestID -> type -> (stream, port)
    by_stream: dict[int, _Connection] = {}
    last = 0
    try:
        while data := await read():
            try:
                got = frames.feed(data)
            except api_spdy.FrameError as e:
                log.info("port-forward %s: %s", pod, e)
                await sender.send(sender.frames.goaway(last, api_spdy.GOAWAY_PROTOCOL_ERROR))
                break
            for frame in got:
                if frame.kind == api_spdy.SYN_STREAM:
                    last = max(last, frame.stream)
                    await sender.send(sender.frames.syn_reply(frame.stream))
                    kind = frame.headers.get("streamtype", "")
                    request = frame.headers.get("requestid") or pair_id(kind, frame.stream)
                    try:
                        port = int(frame.headers.get("port", ""))
                    except ValueError:
                        await sender.send(sender.frames.rst_stream(frame.stream, 1))
                        continue
                    pair = opened.setdefault(request, {})
                    pair[kind] = (frame.stream, port)
                    if "data" in pair and "error" in pair:
                        opened.pop(request)
                        connection = _Connection(sender=sender, data=pair["data"][0],
                                                 error=pair["error"][0], port=port, pod=pod)
                        by_stream[connection.data] = connection
                        connection.task = asyncio.create_task(connection.run(
                            reader, address, target, relay_command(port)))
                elif frame.kind == 0:
                    found = by_stream.get(frame.stream)
                    if found is not None:
                        await found.send(frame.data, fin=frame.fin)
                elif frame.kind == api_spdy.RST_STREAM:
                    found = by_stream.pop(frame.stream, None)
                    if found is not None:
                        await found.close()
                elif frame.kind == api_spdy.PING:
                    await sender.send(sender.frames.ping(frame.data))
                elif frame.kind == api_spdy.GOAWAY:
                    return
    finally:
        for connection in by_stream.values():
            await connection.close()
