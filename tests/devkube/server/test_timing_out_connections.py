"""Connections that hold devkube without using it are closed, as kube-apiserver's http.Server
closes them (ReadHeaderTimeout, IdleTimeout): one that never sends a request, one that trickles
its headers byte by byte, an idle keep-alive; a body that stalls gets kube's 504 Timeout. A watch
that streams for longer than all of these is not cut."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from k8sbridge.devkube import main

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
async def quick() -> AsyncIterator[main.Devkube]:
    config = main.DevkubeConfig(port=0, controllers=False, insecure_http=True,
                                header_timeout=0.6, idle_timeout=0.8, body_timeout=0.6)
    async with main.running(config) as dk:
        yield dk


async def _connect(dk: main.Devkube) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = dk.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sent until it closed the connection (fails if it did not). A
    server that closes while the client's bytes are still unread in its socket makes the kernel
    answer with a reset instead of a FIN (seen under load in the trickling test): closed too."""
    async with asyncio.timeout(seconds):
        try:
            return await reader.read()
        except ConnectionResetError:
            return b""


async def test_a_connection_that_sends_nothing_is_closed(quick: main.Devkube) -> None:
    reader, writer = await _connect(quick)
    start = time.monotonic()
    assert await _closed_within(reader, 5) == b""
    assert time.monotonic() - start >= 0.5
    writer.close()


async def test_headers_trickled_byte_by_byte_are_cut_off(quick: main.Devkube) -> None:
    reader, writer = await _connect(quick)
    request = f"GET {PODS} HTTP/1.1\r\nHost: x\r\n" + "X-Slow: " + "a" * 200

    async def trickle() -> None:
        for ch in request:
            writer.write(ch.encode())
            await writer.drain()
            await asyncio.sleep(0.02)

    feeder = asyncio.create_task(trickle())
    try:
        assert await _closed_within(reader, 5) == b""
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed(quick: main.Devkube) -> None:
    reader, writer = await _connect(quick)
    writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    answer = await _closed_within(reader, 5)
    assert answer.startswith(b"HTTP/1.1 200")  # answered, then closed for idling
    writer.close()


async def test_a_stalled_body_gets_504_timeout(quick: main.Devkube) -> None:
    reader, writer = await _connect(quick)
    writer.write(f"POST {PODS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 1000\r\n\r\n{\"a\":".encode())
    await writer.drain()
    answer = await _closed_within(reader, 5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 504"), answer[:200]
    status = json.loads(body)
    assert status["reason"] == "Timeout" and status["code"] == 504
    writer.close()


async def test_a_watch_outlives_the_idle_timeouts(quick: main.Devkube) -> None:
    reader, writer = await _connect(quick)
    writer.write(f"GET {PODS}?watch=1&timeoutSeconds=2 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    start = time.monotonic()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    await _closed_within(reader, 6)  # the stream ends at its own timeout, then idles out
    assert time.monotonic() - start >= 1.9
    writer.close()
