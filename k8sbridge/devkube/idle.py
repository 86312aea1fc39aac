"""Closing connections that hold the server without using it: idle keep-alives and slow headers.

Why: every open connection costs devkube a socket, buffers and (over TLS) a session; a client
that opens connections and never sends a complete request (slowloris) or keeps idle ones open
could exhaust it. kube-apiserver's http.Server bounds both: ReadHeaderTimeout (32 s) for a
request's headers and IdleTimeout (90 s) between keep-alive requests. Here one watchdog does the
same for every site of devkube's runner, whatever aiohttp version serves them: a connection with
no request being handled is closed once it has waited ``header_timeout`` for its first request,
or ``idle_timeout`` since its last one. A request being handled (a watch, a log stream, a body
being read within its own timeout) is never cut by this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 32.0
IDLE_TIMEOUT = 90.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Watchdog:
    def __init__(self, *, header_timeout: float = HEADER_TIMEOUT,
                 idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self._busy: dict[asyncio.BaseTransport, int] = {}  # requests being handled
        self._since: dict[asyncio.BaseTransport, tuple[float, bool]] = {}  # (when, served one)
        self.closed = 0  # connections closed for idling, for tests and logs

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        if transport is None:
            return await handler(request)
        self._busy[transport] = self._busy.get(transport, 0) + 1
        try:
            return await handler(request)
        finally:
            left = self._busy[transport] - 1
            if left:
                self._busy[transport] = left
            else:
                del self._busy[transport]
            self._since[transport] = (asyncio.get_running_loop().time(), True)

    def sweep(self, server: web.Server) -> None:
        """Close the connections of ``server`` that waited too long without a request."""
        now = asyncio.get_running_loop().time()
        live: set[asyncio.BaseTransport] = set()
        for conn in list(server.connections):
            transport = conn.transport
            if transport is None or transport.is_closing():
                continue
            live.add(transport)
            if transport in self._busy:
                continue
            since, served = self._since.setdefault(transport, (now, False))
            limit = self.idle_timeout if served else self.header_timeout
            if now - since >= limit:
                self.closed += 1
                log.debug("closing a connection idle for %.1fs", now - since)
                transport.close()
        for gone in [t for t in self._since if t not in live]:
            del self._since[gone]

    async def run(self, *, server: web.Server, stop: asyncio.Event) -> None:
        """Sweep ``server`` about four times per timeout until ``stop``."""
        period = max(0.05, min(self.header_timeout, self.idle_timeout) / 4)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(period):
                    await stop.wait()
            self.sweep(server)
