"""The agent's HTTP server drops idle and slow clients (the audit found idle connections never
timed out): a connection that sends nothing, one that dribbles its headers (slowloris), one
idle after a response, and a body that never completes -- checked with raw sockets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from k8sbridge.kernel.agent import http as agent_http
from tests.kernel.agent import fakemaster as fm

_IDLE = 1.0
_BODY = 1.0


async def _read_until_closed(reader: asyncio.StreamReader, *, within: float) -> bytes:
    data = b""
    async with asyncio.timeout(within):
        while chunk := await reader.read(65536):
            data += chunk
    return data


async def _connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = address.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


def test_durations_print_as_stout_does() -> None:
    assert agent_http.duration(7 * 86400.0) == "1weeks"
    assert agent_http.duration(60.0) == "1mins"
    assert agent_http.duration(0.5) == "500ms"
    assert agent_http.duration(90.0) == "1.5mins"


async def test_slow_and_idle_clients_are_dropped(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path, http_idle_timeout_seconds=_IDLE,
                                http_body_timeout_seconds=_BODY,
                                gc_delay_seconds=3600.0) as run:
        address = run.agent.http_address

        # Connects and sends nothing.
        reader, writer = await _connect(address)
        started = time.monotonic()
        assert await _read_until_closed(reader, within=_IDLE + 5) == b""
        assert _IDLE * 0.8 <= time.monotonic() - started
        writer.close()

        # Slowloris: a header line every 0.2 s, never the blank line that ends them.
        reader, writer = await _connect(address)
        started = time.monotonic()
        writer.write(b"GET /health HTTP/1.1\r\nHost: agent\r\n")
        closed_after: float | None = None
        for i in range(int((_IDLE + 4) / 0.2)):
            await asyncio.sleep(0.2)
            if reader.at_eof() or writer.is_closing():
                break
            try:
                writer.write(f"X-Slow-{i}: x\r\n".encode())
                await writer.drain()
            except ConnectionError:
                break
            try:
                async with asyncio.timeout(0.01):
                    if await reader.read(1) == b"":
                        break
            except TimeoutError:
                continue
        closed_after = time.monotonic() - started
        assert closed_after < _IDLE + 2, closed_after  # dropped despite its steady trickle
        writer.close()

        # A request answered, then the connection left idle: closed after the idle timeout.
        reader, writer = await _connect(address)
        writer.write(b"GET /health HTTP/1.1\r\nHost: agent\r\n\r\n")
        status = await asyncio.wait_for(reader.readline(), 5)
        assert status.startswith(b"HTTP/1.1 200"), status
        started = time.monotonic()
        await _read_until_closed(reader, within=_IDLE + 5)
        assert _IDLE * 0.8 <= time.monotonic() - started < _IDLE + 3
        writer.close()

        # A body announced but never sent in full: 408, then the connection is closed.
        reader, writer = await _connect(address)
        writer.write(b"POST /api/v1 HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 100\r\n\r\n{\"type\":")
        started = time.monotonic()
        answer = await _read_until_closed(reader, within=_BODY * 2 + 5)
        assert time.monotonic() - started < _BODY * 2 + 3
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"Timed out reading the request body" in answer
        writer.close()

        # An ordinary client is unaffected.
        reader, writer = await _connect(address)
        body = b'{"type":"GET_HEALTH"}'
        writer.write(b"POST /api/v1 HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json"
                     b"\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\n\r\n" + body)
        answer = await _read_until_closed(reader, within=5)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert b'"healthy":true' in answer.replace(b" ", b"")
        writer.close()
