"""The I/O switchboard of a task launched with ``ContainerInfo.tty_info``: a terminal for the
task, its output kept in the sandbox's ``stdout`` and handed to attached readers, its input
taken from one attached writer at a time.

Why (Mesos' ``src/slave/containerizer/mesos/io/switchboard.cpp``): Mesos starts a switchboard
server for a container only when it has a TTY (or is a DEBUG container, which tasks never
are); the server owns the terminal's master end, copies the output to the container logger
(so the sandbox files still have it) and serves ``ATTACH_CONTAINER_OUTPUT`` /
``ATTACH_CONTAINER_INPUT``, the latter one connection at a time ("Multiple input connections
are not allowed"); with a TTY an empty DATA record is not the end of input (the client sends
EOT), and ``TTY_INFO`` sets the window size. The switchboard lives here, in the container
daemon beside the task's supervisor (not in the agent), so the terminal outlives an agent
restart as the task does.

The agent reaches it on an abstract Unix socket (``io_socket_name``) with a small protocol:
the first line is ``output`` (then the raw output bytes follow until the terminal closes) or
``input`` (answered ``ok`` or ``conflict``; then one JSON object a line: ``{"data": B64}`` or
``{"rows": R, "columns": C}``). ``http_attach`` turns those into the agent API's records.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import struct
import termios
from typing import Any

__all__ = ["Switchboard", "io_socket_name"]

READ_CHUNK = 64 * 1024
MAX_LINE = 8 * 1024 * 1024  # an input line larger than this ends that input connection
_KEPT_OUTPUT = 256  # chunks queued for a slow reader before it is cut off


def io_socket_name(container_socket: str, task_id: str) -> str:
    """The switchboard's abstract socket name for ``task_id`` of the container whose own
    socket is ``container_socket`` (hashed: abstract names are limited to 107 bytes)."""
    return f"{container_socket}-io-{hashlib.sha256(task_id.encode()).hexdigest()[:16]}"


class Switchboard:
    """One TTY task's terminal; ``child_setup`` runs in the task's process before exec."""

    def __init__(self, *, log_path: str, socket_name: str,
                 window: tuple[int, int] | None) -> None:
        self.master, self.slave = os.openpty()
        os.set_blocking(self.master, False)
        if window is not None:
            _set_window(self.master, *window)
        self._log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                            0o666)
        self._socket_name = socket_name
        self._readers: set[asyncio.Queue[bytes | None]] = set()
        self._input_attached = False
        self._server: asyncio.AbstractServer | None = None
        self._pump: asyncio.Task[None] | None = None
        self.ended = asyncio.Event()

    @classmethod
    def for_task(cls, task: dict[str, Any], *, container_socket: str) -> Switchboard:
        window = task["tty"].get("window") if isinstance(task.get("tty"), dict) else None
        return cls(log_path=str(task.get("host_stdout", task["stdout"])),
                   socket_name=io_socket_name(container_socket, str(task["task_id"])),
                   window=tuple(window) if window else None)

    def child_setup(self) -> None:
        """In the child (a session leader already): the terminal becomes its controlling one."""
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._client, path="\0" + self._socket_name, limit=MAX_LINE)
        self._pump = asyncio.create_task(self._read_output())

    def spawned(self) -> None:
        """The task has its end of the terminal: the daemon's copy is closed, so the output
        ends when the task's last process lets go of it."""
        with contextlib.suppress(OSError):
            os.close(self.slave)

    async def close(self) -> None:
        """After the task ended: read what is left, then stop serving."""
        with contextlib.suppress(OSError):
            os.close(self.slave)
        if self._pump is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await asyncio.shield(self._pump)
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        self._end()
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(OSError):
            os.close(self._log)

    # -- output --------------------------------------------------------------------------------

    async def _read_output(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = os.read(self.master, READ_CHUNK)
            except BlockingIOError:
                await _readable(loop, self.master)
                continue
            except OSError:  # EIO: every process let go of the terminal
                break
            if not data:
                break
            with contextlib.suppress(OSError):
                os.write(self._log, data)
            for queue in list(self._readers):
                if queue.qsize() >= _KEPT_OUTPUT:
                    self._readers.discard(queue)  # too slow: cut off
                    queue.put_nowait(None)
                else:
                    queue.put_nowait(data)
        self._end()

    def _end(self) -> None:
        if self.ended.is_set():
            return
        self.ended.set()
        for queue in self._readers:
            queue.put_nowait(None)
        self._readers.clear()
        with contextlib.suppress(OSError):
            os.close(self.master)

    # -- the agent's connections ---------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            kind = (await reader.readline()).strip()
            if kind == b"output":
                await self._serve_output(reader, writer)
            elif kind == b"input":
                await self._serve_input(reader, writer)
        except (ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()

    async def _serve_output(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        if self.ended.is_set():
            return
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._readers.add(queue)
        gone = asyncio.ensure_future(reader.read())  # the agent hung up (EOF)
        try:
            while True:
                step = asyncio.ensure_future(queue.get())
                await asyncio.wait({step, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    step.cancel()
                    return
                data = step.result()
                if data is None:
                    return
                writer.write(data)
                await writer.drain()
        finally:
            gone.cancel()
            self._readers.discard(queue)

    async def _serve_input(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        if self._input_attached:
            writer.write(b"conflict\n")
            await writer.drain()
            return
        self._input_attached = True
        try:
            writer.write(b"ok\n")
            await writer.drain()
            while line := await reader.readline():
                message = json.loads(line)
                if not isinstance(message, dict) or self.ended.is_set():
                    continue
                if "data" in message:
                    await self._write(base64.b64decode(str(message["data"])))
                elif "rows" in message:
                    _set_window(self.master, int(message["rows"]), int(message["columns"]))
        finally:
            self._input_attached = False

    async def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.ended.is_set():
            try:
                written = os.write(self.master, view)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            except OSError:
                return
            view = view[written:]


async def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, settle)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _set_window(fd: int, rows: int, columns: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
