"""A replay master for the scheduler client's fidelity tests (test code, aiohttp).

It serves ``POST /api/v1/scheduler`` with Mesos' framing and status codes: SUBSCRIBE answers come
from a queue of scripts (status, headers, RecordIO chunks, then held open for ``push``), other
calls are recorded and answered with a configurable status (202 by default), and a call must
carry the current ``Mesos-Stream-Id`` (else 400, as Mesos).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
from typing import Any

from aiohttp import web


@dataclasses.dataclass
class Script:
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""  # for non-200 answers
    chunks: list[bytes] = dataclasses.field(default_factory=list)
    hold: bool = True  # keep the stream open (for push) after the chunks; else close
    stream_id: str | None = "stream-1"


@dataclasses.dataclass
class Received:
    type: str
    body: dict[str, Any]
    headers: dict[str, str]


class ReplayMaster:
    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.scripts: list[Script] = []
        self.default_script: Script | None = None
        self.subscribes: list[Received] = []
        self.calls: list[Received] = []
        self.call_status: dict[str, tuple[int, str]] = {}
        self.streams: list[asyncio.Queue[bytes | None]] = []
        self.current_stream_id: str | None = None
        self.call_seen = asyncio.Event()
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/scheduler", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for q in self.streams:
            q.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()

    def push(self, data: bytes, *, stream: int = -1) -> None:
        self.streams[stream].put_nowait(data)

    def close_stream(self, *, stream: int = -1) -> None:
        self.streams[stream].put_nowait(None)

    def calls_of(self, kind: str) -> list[Received]:
        return [c for c in self.calls if c.type == kind]

    async def wait_for_call(self, kind: str, *, count: int = 1, timeout: float = 5.0) -> Received:
        async def waiter() -> Received:
            while len(self.calls_of(kind)) < count:
                self.call_seen.clear()
                await self.call_seen.wait()
            return self.calls_of(kind)[count - 1]

        return await asyncio.wait_for(waiter(), timeout)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return web.Response(status=400, text="Failed to parse body")
        kind = str(body.get("type"))
        received = Received(type=kind, body=body, headers=dict(request.headers))
        if kind != "SUBSCRIBE":
            self.calls.append(received)
            self.call_seen.set()
            if request.headers.get("Mesos-Stream-Id") != self.current_stream_id:
                return web.Response(status=400, text="The stream ID included in this request "
                                    "didn't match the stream ID currently associated with "
                                    "framework ID")
            status, text = self.call_status.get(kind, (202, ""))
            return web.Response(status=status, text=text)
        self.subscribes.append(received)
        if request.headers.get("Mesos-Stream-Id"):
            return web.Response(status=400, text="Subscribe calls should not include the "
                                "'Mesos-Stream-Id' header")
        if self.scripts:
            script = self.scripts.pop(0)
        elif self.default_script is not None:
            script = self.default_script
        else:
            return web.Response(status=503, text="No script")
        if script.status != 200:
            return web.Response(status=script.status, body=script.body, headers=script.headers)
        headers = {"Content-Type": "application/json", **script.headers}
        if script.stream_id is not None:
            headers["Mesos-Stream-Id"] = script.stream_id
            self.current_stream_id = script.stream_id
        response = web.StreamResponse(status=200, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.streams.append(queue)
        for chunk in script.chunks:
            await response.write(chunk)
        if script.hold:
            while (data := await queue.get()) is not None:
                await response.write(data)
        return response
