"""A fault-injecting HTTP proxy between the bridge's Mesos client and a real master (test code).

Why a proxy and not a replay: the faults a real cluster throws at the bridge (a load balancer's
502, a reset, a non-leading master's 307, a redirect loop, a garbage body, a stream cut
mid-record, a hung operator call) happen *in front of* a correct master. Everything that is not
faulted is forwarded byte for byte to the real embedded kernel master, so what the client sees
after a fault is what Apache Mesos would send. Faults are queued per call type (``SUBSCRIBE``,
``GET_TASKS``...) and consumed in order; every request is recorded with its arrival time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import time
from typing import Literal

import aiohttp
from aiohttp import web

FaultKind = Literal["status", "reset", "redirect", "garbage", "cut", "hang", "reply"]
_FORWARDED_HEADERS = ("Content-Type", "Mesos-Stream-Id", "Location")


@dataclasses.dataclass
class Fault:
    kind: FaultKind
    status: int = 502
    location: str = ""  # for redirect: sent as is (protocol-relative in Mesos)
    seconds: float = 30.0  # for hang
    times: int = 1  # how many requests it hits (-1: all)
    clean: bool = False  # for cut: end the HTTP body properly (only the RecordIO is cut)
    body: bytes = b""  # for reply: a 200 answer with this body instead of the master's


@dataclasses.dataclass(frozen=True)
class Seen:
    at: float
    type: str
    faulted: FaultKind | None
    path: str = ""
    authorization: str | None = None


class FaultProxy:
    def __init__(self, *, upstream: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self._ssl = ssl_context
        self.faults: dict[str, list[Fault]] = {}
        self.seen: list[Seen] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._open: set[aiohttp.ClientResponse] = set()
        self._streams: dict[int, web.Request] = {}  # by id(): requests are not hashable

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://{self.address}"

    def inject(self, call_type: str, fault: Fault) -> None:
        self.faults.setdefault(call_type, []).append(fault)

    def requests(self, call_type: str) -> list[Seen]:
        return [s for s in self.seen if s.type == call_type]

    def cut_streams(self) -> int:
        """Reset every live SUBSCRIBE stream; returns how many."""
        cut = 0
        for request in list(self._streams.values()):
            if request.transport is not None:
                request.transport.abort()
                cut += 1
        self._streams.clear()
        return cut

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for response in list(self._open):
            response.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _take(self, call_type: str) -> Fault | None:
        queue = self.faults.get(call_type) or []
        if not queue:
            return None
        fault = queue[0]
        if fault.times > 0:
            fault.times -= 1
            if fault.times == 0:
                queue.pop(0)
        return fault

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            call_type = str(json.loads(body).get("type", "?")) if body else request.path
        except (ValueError, AttributeError):
            call_type = "?"
        fault = self._take(call_type)
        self.seen.append(Seen(at=time.monotonic(), type=call_type,
                              faulted=None if fault is None else fault.kind, path=request.path,
                              authorization=request.headers.get("Authorization")))
        if fault is not None and fault.kind == "status":
            return web.Response(status=fault.status, text=f"injected {fault.status}")
        if fault is not None and fault.kind == "redirect":
            return web.Response(status=307, headers={"Location": fault.location})
        if fault is not None and fault.kind == "reset":
            return self._reset(request)
        if fault is not None and fault.kind == "garbage":
            reply = web.StreamResponse(
                status=200, headers={"Content-Type": "application/json",
                                     "Mesos-Stream-Id": "garbage"})
            await reply.prepare(request)
            await reply.write(b"<html>this is not what you asked for</html>\n")
            await reply.write_eof()
            return reply
        if fault is not None and fault.kind == "reply":
            return web.Response(status=200, body=fault.body, content_type="application/json")
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.seconds)  # the client gave up long before
            return web.Response(status=504, text="injected: gateway timeout after a hang")
        cut = fault if fault is not None and fault.kind == "cut" else None
        return await self._forward(request, body, cut=cut, stream=call_type == "SUBSCRIBE")

    @staticmethod
    def _reset(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        transport.abort()  # RST/EOF before any byte of an answer
        return web.Response(status=500)  # never sent: the connection is gone

    async def _forward(self, request: web.Request, body: bytes, *, cut: Fault | None,
                       stream: bool) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding")}
        upstream = await self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers,
            allow_redirects=False,
        )
        self._open.add(upstream)
        try:
            reply = web.StreamResponse(status=upstream.status, headers={
                k: upstream.headers[k] for k in _FORWARDED_HEADERS if k in upstream.headers
            })
            await reply.prepare(request)
            if stream:
                self._streams[id(request)] = request
            pending = b""
            while True:
                chunk = await upstream.content.readany()
                if not chunk:
                    break
                if cut is not None:
                    pending += chunk
                    first = _first_record_end(pending)
                    if first is None:
                        continue
                    # The first record whole, then half a header and body of the next.
                    await reply.write(pending[:first] + b"120\n{\"type\":\"OFF")
                    if not cut.clean:
                        return self._reset(request)
                    await reply.write_eof()
                    return reply
                await reply.write(chunk)
            await reply.write_eof()
            return reply
        except (ConnectionError, aiohttp.ClientError):
            return web.Response(status=500)  # the client went away; nothing more to send
        finally:
            self._streams.pop(id(request), None)
            self._open.discard(upstream)
            upstream.close()


def _first_record_end(data: bytes) -> int | None:
    """Where the first RecordIO record (``<length>\\n<bytes>``) ends, if it is all there."""
    newline = data.find(b"\n")
    if newline < 0:
        return None
    end = newline + 1 + int(data[:newline])
    return end if len(data) >= end else None
