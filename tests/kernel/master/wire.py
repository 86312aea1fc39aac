"""Test helpers that speak the Mesos v1 scheduler API literally over aiohttp.

Why by hand: these tests check the wire format itself (RecordIO framing, headers, status
codes), so they must not reuse the product's client or decoder.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def framework_info(**extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"user": "tester", "name": "wire-test"}
    info.update(extra)
    return info


class Stream:
    """One SUBSCRIBE connection: reads RecordIO records by hand and posts calls."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.response: aiohttp.ClientResponse | None = None
        self.stream_id = ""
        self.framework_id = ""
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    async def open(self, body: dict[str, Any], *, expect: str = "SUBSCRIBED") -> dict[str, Any]:
        self.response = await self.session.post(
            f"{self.url}/api/v1/scheduler", data=json.dumps(body), headers=JSON
        )
        assert self.response.status == 200, await self.response.text()
        self.stream_id = self.response.headers.get("Mesos-Stream-Id", "")
        event = await self.next_event()
        assert event["type"] == expect, event
        if expect == "SUBSCRIBED":
            self.framework_id = event["subscribed"]["framework_id"]["value"]
        return event

    async def subscribe(self, info: dict[str, Any] | None = None, **sub: Any) -> dict[str, Any]:
        return await self.open(
            {"type": "SUBSCRIBE", "subscribe": {"framework_info": info or framework_info(),
                                                **sub}}
        )

    async def _read_record(self) -> bytes:
        assert self.response is not None
        while True:
            if b"\n" in self._buffer:
                head, rest = self._buffer.split(b"\n", 1)
                length = int(head.decode("ascii"))
                assert length > 0
                if len(rest) >= length:
                    self._buffer = rest[length:]
                    return rest[:length]
            chunk = await self.response.content.readany()
            if not chunk:
                raise EOFError("stream ended")
            self._buffer += chunk

    async def next_event(self, *, timeout: float = 10.0) -> dict[str, Any]:
        record = await asyncio.wait_for(self._read_record(), timeout=timeout)
        event: dict[str, Any] = json.loads(record)
        self.events.append(event)
        return event

    async def wait_for(self, etype: str, *, timeout: float = 15.0, where: Any = None
                       ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {etype} event within {timeout}s")
            event = await self.next_event(timeout=left)
            if event["type"] == etype and (where is None or where(event)):
                return event

    async def call(self, body: dict[str, Any], *, headers: dict[str, str] | None = None
                   ) -> tuple[int, str]:
        body = {"framework_id": {"value": self.framework_id}, **body}
        hdrs = {**JSON, "Mesos-Stream-Id": self.stream_id, **(headers or {})}
        async with self.session.post(
            f"{self.url}/api/v1/scheduler", data=json.dumps(body), headers=hdrs
        ) as resp:
            return resp.status, await resp.text()

    async def close(self) -> None:
        if self.response is not None:
            self.response.close()


async def operator(session: aiohttp.ClientSession, url: str, body: dict[str, Any]
                   ) -> dict[str, Any]:
    async with session.post(f"{url}/api/v1", data=json.dumps(body), headers=JSON) as resp:
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


def command_task(task_id: str, agent_id: str, command: str, *, cpus: float = 0.1,
                 mem: float = 32.0, **extra: Any) -> dict[str, Any]:
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": agent_id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
        ],
        "command": {"value": command},
        **extra,
    }


async def ack(stream: Stream, status: dict[str, Any]) -> None:
    code, text = await stream.call({"type": "ACKNOWLEDGE", "acknowledge": {
        "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})
    assert code == 202, text


async def until_state(stream: Stream, task_id: str, until: str, *, timeout: float = 20.0
                      ) -> list[dict[str, Any]]:
    """Read (and acknowledge) the task's updates until it reaches ``until``."""
    seen = []
    while True:
        event = await stream.wait_for(
            "UPDATE", timeout=timeout,
            where=lambda e: e["update"]["status"]["task_id"]["value"] == task_id,
        )
        status = event["update"]["status"]
        seen.append(status)
        if "uuid" in status:
            await ack(stream, status)
        if status["state"] == until:
            return seen
