"""``/exec`` and ``/attach`` over SPDY/3.1, as the kubelet's streaming server serves them: what
kube-apiserver >= 1.30 speaks to a kubelet after translating kubectl's WebSocket
(``v5.channel.k8s.io``) and what older API servers pass through from an older kubectl.

The protocol (``v4.channel.k8s.io``; ``v3`` and ``v2`` too): after the 101 the client opens one
stream per channel, told apart by the ``streamType`` header -- ``error``, then ``stdin``,
``stdout``, ``stderr`` as asked, ``resize`` with a terminal (v3 and later) -- each answered
with a SYN_REPLY at once; the command's I/O starts when all the expected streams are open
(30 s at most, else the connection is closed). stdin is DATA on its stream, its FIN (or
RST_STREAM) the end of input; a resize is a JSON ``{"Width":..,"Height":..}`` on the resize
stream (several may arrive in one frame, or one across frames). Output is DATA on stdout/stderr.
At the end the status is written on the error stream (v4: the ``metav1.Status`` JSON, Success
included, with the exit code as the ``ExitCode`` cause; v2/v3: the message of a failure only),
every stream of ours is closed with FIN, then GOAWAY and the connection is closed. A client
that hangs up (EOF, GOAWAY) or a frame that is not SPDY/3 or too long (``api_spdy.MAX_DATA``:
GOAWAY with PROTOCOL_ERROR) ends the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from k8sbridge.kubelet import api_exec_channels as channels
from k8sbridge.kubelet import api_spdy, api_spdy_upgrade
from k8sbridge.mesos import sessions

__all__ = ["PROTOCOLS", "STREAM_CREATION_TIMEOUT", "SpdyChannels"]

log = logging.getLogger(__name__)

V4, V3, V2 = "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io"
PROTOCOLS = (V4, V3, V2)
STREAM_CREATION_TIMEOUT = 30.0
_TYPES = {"stdin": channels.STDIN, "stdout": channels.STDOUT, "stderr": channels.STDERR,
          "error": channels.ERROR, "resize": channels.RESIZE}
_CHUNK = 32 * 1024
_MAX_RESIZE_BUFFER = 64 * 1024


def resizes(buffer: bytes) -> tuple[list[tuple[int, int]], bytes]:
    """The whole ``{"Width":..,"Height":..}`` objects at the start of ``buffer`` as (rows,
    columns), and what is left (an object not yet complete). Bad JSON is dropped."""
    decoder = json.JSONDecoder()
    text = buffer.decode(errors="replace")
    out: list[tuple[int, int]] = []
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return out, b""
        try:
            value, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            if "}" in text[at:]:  # complete but not JSON: skip past it
                at = text.index("}", at) + 1
                continue
            return out, text[at:].encode()
        if isinstance(value, dict):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                out.append((int(value["Height"]), int(value["Width"])))


class SpdyChannels:
    """One SPDY connection's streams for an exec or attach (``api_exec_channels.Channels``)."""

    def __init__(self, upgraded: api_spdy_upgrade.Upgraded, *, protocol: str,
                 options: channels.Options, session: sessions.Input | None) -> None:
        self._conn = upgraded
        self._protocol = protocol
        self._options = options
        self._session = session
        self._in = api_spdy.Reader()
        self._out = api_spdy.Writer()
        self._lock = asyncio.Lock()
        self._streams: dict[int, int] = {}  # channel -> stream id
        self._channels: dict[int, int] = {}  # stream id -> channel
        self._finished: set[int] = set()  # our half closed
        self._last = 0
        self._resize = b""
        self._expected = 1 + sum((options.stdin, options.stdout, options.stderr,
                                  options.tty and protocol != V2))
        self.ready = asyncio.Event()
        self.gone = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def accept(self, timeout: float = STREAM_CREATION_TIMEOUT) -> bool:
        """Read the client's frames from now on; True once the expected streams are open."""
        self._task = asyncio.create_task(self._read())
        waits = [asyncio.ensure_future(self.ready.wait()),
                 asyncio.ensure_future(self.gone.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if not self.ready.is_set():
            log.info("exec over SPDY: %d of %d streams opened before the client went or "
                     "%.0f s passed", len(self._streams), self._expected, timeout)
        return self.ready.is_set()

    async def _write(self, frame: bytes) -> bool:
        async with self._lock:
            return await self._conn.write(frame)

    async def _read(self) -> None:
        try:
            while data := await self._conn.read():
                try:
                    frames = self._in.feed(data)
                except api_spdy.FrameError as e:
                    log.info("exec over SPDY: %s", e)
                    await self._write(self._out.goaway(self._last,
                                                       api_spdy.GOAWAY_PROTOCOL_ERROR))
                    return
                for frame in frames:
                    if not await self._frame(frame):
                        return
        finally:
            self.gone.set()
            if self._session is not None:
                await self._session.close()
            self._conn.close()

    async def _frame(self, frame: api_spdy.Frame) -> bool:
        """Handle one frame; False when the client is going away."""
        if frame.kind == api_spdy.SYN_STREAM:
            self._last = max(self._last, frame.stream)
            await self._write(self._out.syn_reply(frame.stream))
            channel = _TYPES.get(frame.headers.get("streamtype", ""))
            if channel is None or channel in self._streams:
                log.info("exec over SPDY: unexpected stream type %r",
                         frame.headers.get("streamtype"))
                return True
            self._streams[channel] = frame.stream
            self._channels[frame.stream] = channel
            if len(self._streams) >= self._expected:
                self.ready.set()
        elif frame.kind == 0:
            channel = self._channels.get(frame.stream)
            session = self._session
            if session is None or channel is None:
                return True
            if channel == channels.STDIN and self._options.stdin:
                if frame.data:
                    await session.send(frame.data)
                if frame.fin:
                    await session.close_input()
            elif channel == channels.RESIZE and self._options.tty:
                self._resize += frame.data
                sizes, self._resize = resizes(self._resize)
                self._resize = self._resize[-_MAX_RESIZE_BUFFER:]
                for rows, columns in sizes:
                    await session.resize(rows=rows, columns=columns)
        elif frame.kind == api_spdy.RST_STREAM:
            if (self._channels.get(frame.stream) == channels.STDIN
                    and self._session is not None and self._options.stdin):
                await self._session.close_input()
            self._finished.add(frame.stream)
        elif frame.kind == api_spdy.PING:
            await self._write(self._out.ping(frame.data))
        elif frame.kind == api_spdy.GOAWAY:
            return False
        return True

    # -- Channels ---------------------------------------------------------------------

    async def send(self, channel: int, data: bytes) -> bool:
        stream = self._streams.get(channel)
        if stream is None or self.gone.is_set():
            return not self.gone.is_set()
        for at in range(0, len(data), _CHUNK):
            if not await self._write(self._out.data(stream, data[at:at + _CHUNK])):
                return False
        return True

    async def status(self, status: dict[str, Any]) -> None:
        stream = self._streams.get(channels.ERROR)
        if stream is None:
            return
        if self._protocol == V4:
            await self._write(self._out.data(stream, json.dumps(status).encode()))
        elif status.get("status") != "Success":
            await self._write(self._out.data(stream, str(status.get("message", "")).encode()))
        await self._finish(stream)

    async def _finish(self, stream: int) -> None:
        if stream not in self._finished:
            self._finished.add(stream)
            await self._write(self._out.data(stream, b"", fin=True))

    async def pump_input(self, session: sessions.Input | None,
                         options: channels.Options) -> None:
        await self.gone.wait()

    async def close(self) -> None:
        if not self.gone.is_set():
            for channel in (channels.STDOUT, channels.STDERR, channels.ERROR):
                if channel in self._streams:
                    await self._finish(self._streams[channel])
            await self._write(self._out.goaway(self._last))
        self._conn.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
