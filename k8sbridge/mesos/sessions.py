"""Nested container sessions through a Mesos agent's v1 API: what ``kubectl exec`` (and ``cp``
and ``port-forward``) become on the Mesos side.

Why these calls, in this order (as ``dcos task exec`` does against Apache Mesos >= 1.2):
``LAUNCH_NESTED_CONTAINER_SESSION`` under the task's container (its ``ContainerID`` with the
executor's as parent, from the agent's ``/state``) answers with a RecordIO stream of
``ProcessIO`` records (stdout, stderr, heartbeats) that ends when the command has ended; its
stdin is a second request, ``ATTACH_CONTAINER_INPUT``, whose body is a RecordIO stream of calls
(the container id first, then data, an empty data record for EOF, TTY window sizes and
heartbeats); ``WAIT_NESTED_CONTAINER`` then gives the command's wait status. Closing the output
connection destroys the session's container on the agent, so a client that goes away leaves
nothing running.

One ``OperatorClient`` transport is used (the agents' credentials and CA, as for the files API).
Every failure is an ``errors.OperatorError`` with the agent's answer in its message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, Protocol

import aiohttp

from k8sbridge.mesos import errors, recordio
from k8sbridge.mesos.operator import OPERATOR_PATH, OperatorClient

__all__ = ["ContainerInput", "Input", "Session", "decode_status", "launch", "output_records",
           "task_container"]

log = logging.getLogger(__name__)

RECORDIO = "application/recordio"
INPUT_HEARTBEAT_SECONDS = 30.0
MAX_OUTPUT_RECORD = 16 * 1024 * 1024
_INPUT_RETRIES = 10  # the agent may not accept input the very moment the session started


def decode_status(raw: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal."""
    if raw & 0x7F == 0:
        return (raw >> 8) & 0xFF
    return 128 + (raw & 0x7F)


def task_container(state: dict[str, Any], *, task_id: str) -> dict[str, Any] | None:
    """The ContainerID (with its parents) the agent's ``/state`` names for a running task:
    its latest status's ``container_status.container_id``."""
    for fw in state.get("frameworks") or []:
        for ex in (fw.get("executors") or []) if isinstance(fw, dict) else []:
            for task in (ex.get("tasks") or []) if isinstance(ex, dict) else []:
                if not isinstance(task, dict) or task.get("id") != task_id:
                    continue
                for status in reversed(task.get("statuses") or []):
                    cid = ((status or {}).get("container_status") or {}).get("container_id")
                    if isinstance(cid, dict) and cid.get("value"):
                        return cid
                if ex.get("container"):
                    return {"value": str(ex["container"])}
    return None


def _input_call(body: dict[str, Any]) -> bytes:
    return recordio.encode(json.dumps(
        {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": body},
        separators=(",", ":")).encode())


def _process_io(process_io: dict[str, Any]) -> bytes:
    return _input_call({"type": "PROCESS_IO", "process_io": process_io})


class Input(Protocol):
    """What the kubelet API feeds a client's input to: a session, or an attachment."""

    async def send(self, data: bytes) -> None: ...

    async def close_input(self) -> None: ...

    async def resize(self, *, rows: int, columns: int) -> None: ...

    async def close(self) -> None: ...


class ContainerInput:
    """``ATTACH_CONTAINER_INPUT`` to one container: one streaming request opened at the first
    input, fed by ``send``/``close_input``/``resize``, with heartbeats while idle. ``refused``
    holds the agent's answer when it did not take the input."""

    def __init__(self, *, client: OperatorClient, url: str, container: dict[str, Any],
                 eof: bytes | None = None) -> None:
        self.container = container  # the full ContainerID (Mesos finds a nested one by its
        self.container_id = str(container.get("value"))  # parents)
        self.refused: str | None = None
        self._client = client
        self._url = url
        self._eof = eof  # what ends input (a terminal's EOT); None: an empty DATA record
        self._input: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)
        self._input_task: asyncio.Task[None] | None = None
        self._input_closed = False

    def _start_input(self) -> None:
        if self._input_task is None:
            self._input_task = asyncio.create_task(self._pump_input(),
                                                   name=f"input-{self.container_id}")

    async def send(self, data: bytes) -> None:
        """Bytes for the container's stdin."""
        if data and not self._input_closed:
            self._start_input()
            await self._input.put(_process_io({"type": "DATA", "data": {
                "type": "STDIN", "data": base64.b64encode(data).decode("ascii")}}))

    async def close_input(self) -> None:
        """End of stdin: an empty DATA record, as Mesos reads EOF (on a terminal, ``eof``)."""
        if not self._input_closed:
            if self._eof is not None:
                await self.send(self._eof)
            else:
                self._start_input()
                await self._input.put(_process_io({"type": "DATA", "data": {
                    "type": "STDIN", "data": ""}}))
            self._input_closed = True
            await self._input.put(None)

    async def resize(self, *, rows: int, columns: int) -> None:
        if not self._input_closed:
            self._start_input()
            await self._input.put(_process_io({"type": "CONTROL", "control": {
                "type": "TTY_INFO", "tty_info": {"window_size": {
                    "rows": rows, "columns": columns}}}}))

    async def _body(self, first: list[bytes]) -> AsyncIterator[bytes]:
        for opening in first:
            yield opening
        while True:
            try:
                async with asyncio.timeout(INPUT_HEARTBEAT_SECONDS):
                    record = await self._input.get()
            except TimeoutError:
                yield _process_io({"type": "CONTROL", "control": {
                    "type": "HEARTBEAT", "heartbeat": {"interval": {
                        "nanoseconds": int(INPUT_HEARTBEAT_SECONDS * 1e9)}}}})
                continue
            if record is None:
                return
            yield record

    async def _pump_input(self) -> None:
        opening = _input_call({"type": "CONTAINER_ID", "container_id": self.container})
        headers = self._client.transport.headers(
            **{"Content-Type": RECORDIO, "Message-Content-Type": "application/json"})
        for attempt in range(_INPUT_RETRIES):
            try:
                async with self._client.transport.session().post(
                        self._url, data=self._body([opening]), headers=headers,
                        timeout=aiohttp.ClientTimeout(total=None)) as reply:
                    if reply.status in (500, 503) and attempt + 1 < _INPUT_RETRIES:
                        await asyncio.sleep(0.1 * (attempt + 1))
                        continue
                    if reply.status != 200:
                        self.refused = (f"the agent refused the input ({reply.status}): "
                                        f"{(await reply.text()).strip()[:200]}")
                        log.info("container %s: %s", self.container_id, self.refused)
                    return
            except (aiohttp.ClientError, OSError) as e:
                log.info("container %s: input connection ended: %s", self.container_id, e)
                return

    async def close(self, *, grace: float = 0.0) -> None:
        """End the input connection (after ``grace`` seconds for what is queued, once
        ``close_input`` was called)."""
        if self._input_task is not None and grace > 0 and self._input_closed:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(grace):
                    await asyncio.shield(self._input_task)
        if self._input_task is not None:
            self._input_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._input_task


class Session:
    """A launched session: read ``output()``, feed ``send``/``close_input``/``resize``, then
    ``wait()``; ``close()`` always (it destroys the container if it still runs)."""

    def __init__(self, *, client: OperatorClient, url: str, container: dict[str, Any],
                 response: aiohttp.ClientResponse) -> None:
        self.container_id = str(container.get("value"))
        self._container = container
        self._client = client
        self._url = url
        self._response = response
        self._stdin = ContainerInput(client=client, url=url, container=container)

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """("STDOUT" | "STDERR", bytes) until the command's output ends."""
        async for item in output_records(self._response, self.container_id):
            yield item

    async def send(self, data: bytes) -> None:
        """Bytes for the command's stdin."""
        await self._stdin.send(data)

    async def close_input(self) -> None:
        """End of stdin (an empty DATA record, as Mesos reads EOF)."""
        await self._stdin.close_input()

    async def resize(self, *, rows: int, columns: int) -> None:
        await self._stdin.resize(rows=rows, columns=columns)

    async def wait(self) -> int:
        """The command's raw wait status (``decode_status`` makes it an exit code)."""
        reply = await self._client.agent_call(self._url, {
            "type": "WAIT_NESTED_CONTAINER",
            "wait_nested_container": {"container_id": self._container}})
        body = reply.get("wait_nested_container") if isinstance(reply, dict) else None
        status = body.get("exit_status") if isinstance(body, dict) else None
        if not isinstance(status, int):
            raise errors.OperatorError(f"session {self.container_id}: no exit status")
        return status

    async def close(self) -> None:
        """Hang up: the agent destroys the container if it still runs."""
        self._response.close()
        await self._stdin.close()


async def output_records(response: aiohttp.ClientResponse, container_id: str
                         ) -> AsyncGenerator[tuple[str, bytes], None]:
    """The DATA of a RecordIO stream of ``ProcessIO`` records (heartbeats skipped)."""
    decoder = recordio.Decoder(max_record_size=MAX_OUTPUT_RECORD)
    try:
        async for chunk in response.content.iter_any():
            for record in decoder.feed(chunk):
                message = json.loads(record)
                if message.get("type") != "DATA":
                    continue  # CONTROL: heartbeats
                data = message.get("data") or {}
                yield str(data.get("type") or "STDOUT"), base64.b64decode(
                    str(data.get("data") or ""))
    except (aiohttp.ClientError, ValueError, errors.RecordIOError) as e:
        raise errors.OperatorError(f"container {container_id}: output broke: {e}") from e


async def launch(client: OperatorClient, address: str, *, parent: dict[str, Any],
                 command: Sequence[str], tty: bool = False,
                 window: tuple[int, int] | None = None) -> Session:
    """Start ``command`` (argv, no shell) in the container ``parent`` on the agent at
    ``address``; ``errors.OperatorError`` with the agent's answer if it is refused."""
    container_id = str(uuid.uuid4())
    body: dict[str, Any] = {
        "container_id": {"value": container_id, "parent": parent},
        "command": {"shell": False, "value": command[0] if command else "",
                    "arguments": list(command)},
    }
    if tty:
        tty_info: dict[str, Any] = {}
        if window is not None:
            tty_info["window_size"] = {"rows": window[0], "columns": window[1]}
        body["container"] = {"type": "MESOS", "tty_info": tty_info}
    url = client.agent_url(address, OPERATOR_PATH)
    call = {"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": body}
    headers = client.transport.headers(Accept=RECORDIO, **{"Message-Accept": "application/json"})
    try:
        response = await client.transport.session().post(
            url, data=client.transport.encode(call), headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=None))
    except (aiohttp.ClientError, OSError) as e:
        raise errors.OperatorError(f"{url}: {e!r}") from e
    if response.status != 200:
        text = (await response.text(errors="replace"))[:500]
        response.release()
        raise errors.OperatorError(f"the agent refused the session ({response.status}): "
                                   f"{text.strip()}")
    return Session(client=client, url=url, container=body["container_id"], response=response)
