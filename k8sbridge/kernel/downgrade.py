"""TLS and plain HTTP on one port: libprocess' ``LIBPROCESS_SSL_SUPPORT_DOWNGRADE``.

Why a site of its own: with downgrade on, libprocess' accepting socket looks at a connection's
first bytes and speaks TLS only when they open a TLS handshake, plain HTTP otherwise (so a
cluster can move to TLS one component at a time). aiohttp's sites hand every connection of a
port to one SSL context, so this site accepts the connections itself, peeks at the first byte
(``MSG_PEEK``: nothing is consumed) and gives each to aiohttp's protocol with or without TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import typing

from aiohttp import web

__all__ = ["DowngradeSite"]

log = logging.getLogger(__name__)

_HANDSHAKE = 0x16  # a TLS record of type "handshake" opens every TLS connection
_FIRST_BYTE_TIMEOUT = 30.0  # a connection that sends nothing this long is closed


class _Listener:
    """What aiohttp keeps of a started site (``_server``): aiohttp only closes it, the kernel
    reads ``sockets`` for the bound port."""

    def __init__(self, sock: socket.socket, task: asyncio.Task[None]) -> None:
        self.sockets = [sock]
        self._task = task

    def close(self) -> None:
        self._task.cancel()
        self.sockets[0].close()


def _set(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class DowngradeSite(web.BaseSite):
    """Serves ``runner`` on ``host:port``: TLS with ``ssl_context`` for connections that open
    with a TLS handshake, plain HTTP for the others."""

    __slots__ = ("_host", "_port", "_tasks")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *,
                 ssl_context: ssl.SSLContext) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host, self._port = host, port
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return f"https+http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(self._backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._port = int(sock.getsockname()[1])
        task = asyncio.create_task(self._accept(sock), name=f"accept {self.name}")
        self._server = typing.cast(asyncio.AbstractServer, _Listener(sock, task))

    async def stop(self) -> None:
        await super().stop()
        for task in list(self._tasks):
            task.cancel()

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as e:  # out of descriptors, a reset before accept: keep serving
                log.warning("%s: accept failed: %s", self.name, e)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._hand_over(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _hand_over(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(conn.fileno(), _set, readable)
            try:
                async with asyncio.timeout(_FIRST_BYTE_TIMEOUT):
                    await readable
            finally:
                loop.remove_reader(conn.fileno())
            first = conn.recv(1, socket.MSG_PEEK)
            if not first:
                conn.close()
                return
            tls = first[0] == _HANDSHAKE
            factory = self._runner.server
            assert factory is not None
            await loop.connect_accepted_socket(
                factory, conn, ssl=self._ssl_context if tls else None)
        except (OSError, TimeoutError, ssl.SSLError) as e:
            log.debug("%s: connection dropped before its first request: %s", self.name, e)
            with contextlib.suppress(OSError):
                conn.close()
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                conn.close()
            raise
