"""A small client of the agent's session calls for tests: launch a session, feed its input,
read its output records, wait for it (what the bridge's ``mesos.sessions`` does, written apart
so that the two are checked against each other)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

RECORDIO = "application/recordio"


def frame(body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return b"%d\n%s" % (len(data), data)


def input_records(container_id: str, chunks: list[bytes], *, eof: bool = True,
                  window: tuple[int, int] | None = None) -> bytes:
    out = frame({"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
        "type": "CONTAINER_ID", "container_id": {"value": container_id}}})
    if window is not None:
        out += frame({"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
            "type": "PROCESS_IO", "process_io": {"type": "CONTROL", "control": {
                "type": "TTY_INFO", "tty_info": {"window_size": {
                    "rows": window[0], "columns": window[1]}}}}}})
    for chunk in [*chunks, *([b""] if eof else [])]:
        out += frame({"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
            "type": "PROCESS_IO", "process_io": {"type": "DATA", "data": {
                "type": "STDIN", "data": base64.b64encode(chunk).decode()}}}})
    return out


def launch_call(parent: dict[str, Any], command: dict[str, Any], *,
                tty: tuple[int, int] | None = None, session_id: str | None = None
                ) -> dict[str, Any]:
    body: dict[str, Any] = {
        "container_id": {"value": session_id or str(uuid.uuid4()), "parent": parent},
        "command": command}
    if tty is not None:
        body["container"] = {"type": "MESOS", "tty_info": {
            "window_size": {"rows": tty[0], "columns": tty[1]}}}
    return {"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": body}


async def records(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    buffer = b""
    async for chunk in response.content.iter_any():
        buffer += chunk
        while b"\n" in buffer:
            header, _, rest = buffer.partition(b"\n")
            size = int(header)
            if len(rest) < size:
                break
            yield json.loads(rest[:size])
            buffer = rest[size:]


async def output_of(response: aiohttp.ClientResponse) -> tuple[bytes, bytes]:
    out, err = b"", b""
    async for record in records(response):
        if record.get("type") != "DATA":
            continue
        data = base64.b64decode(record["data"]["data"])
        if record["data"]["type"] == "STDOUT":
            out += data
        else:
            err += data
    return out, err


async def wait_status(session: aiohttp.ClientSession, url: str, container_id: str) -> int:
    call = {"type": "WAIT_NESTED_CONTAINER",
            "wait_nested_container": {"container_id": {"value": container_id}}}
    async with session.post(url, json=call) as reply:
        assert reply.status == 200, await reply.text()
        status: int = (await reply.json())["wait_nested_container"]["exit_status"]
        return status


async def send_input(session: aiohttp.ClientSession, url: str, body: bytes) -> int:
    async with session.post(url, data=body, headers={
            "Content-Type": RECORDIO, "Message-Content-Type": "application/json"}) as reply:
        return reply.status


STREAM_HEADERS = {"Accept": RECORDIO, "Message-Accept": "application/json"}
