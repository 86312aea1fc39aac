"""The master<->agent link: one gRPC bidi stream per agent carrying JSON messages.

Why gRPC with JSON and no generated code: the link is internal to the embedded kernel (real Mesos
uses libprocess here), so it needs no public schema, but it does need flow control, keepalive and
a clean notion of "the peer went away" -- which HTTP/2 streams give us. Payloads stay in the Mesos
v1 JSON shapes the rest of the kernel already speaks, so nothing is translated twice.

Both ends see the same ``AgentStream``: ``send`` (raises ``LinkError`` once the stream is gone),
``post`` (queue without waiting), async iteration (ends when the peer goes away) and ``close``.
Reads and writes are pumped by small tasks so that one slow reader never blocks writers and
concurrent ``send`` calls are serialised (gRPC allows only one write in flight per call); what
queues up behind a write goes out as one ``BATCH`` frame that the other end unpacks in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

__all__ = ["BATCH", "AgentStream", "LinkError", "LinkServer", "Message", "SERVICE", "connect"]

log = logging.getLogger(__name__)

Message = dict[str, Any]

SERVICE = "k8sbridge.kernel.v1.AgentLink"
METHOD = "Connect"
_PATH = f"/{SERVICE}/{METHOD}"

# Keepalive so that a peer that vanishes without closing (killed, partitioned) is noticed.
_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
_SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),  # a port already taken must fail, not be silently shared
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


class LinkError(Exception):
    """The link cannot be used: peer unreachable, stream gone, or a malformed message."""


def _serialize(message: Message | bytes) -> bytes:
    if isinstance(message, bytes):  # a frame the writer already encoded (a batch)
        return message
    return json.dumps(message, separators=(",", ":")).encode("utf-8")


# Messages queued while a write is in flight go out as one frame
# ``{"type": "BATCH", "messages": [...]}`` that the reading end unpacks in order, so a burst
# (a thousand RUN_TASKs, a storm of status updates) costs a few gRPC writes, not one each.
BATCH = "BATCH"
_BATCH_MAX_BYTES = 1024 * 1024
_BATCH_MAX_MESSAGES = 512


def _deserialize(data: bytes) -> Any:
    # Decoding errors are reported per message by the reader (never crash the stream owner).
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return _Malformed(str(e))


class _Malformed:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


_END = object()

ReadFn = Callable[[], Awaitable[Any]]
WriteFn = Callable[[Message | bytes], Awaitable[None]]


class AgentStream:
    """One live link stream; the same shape at the master and at the agent."""

    def __init__(self, *, peer: str, read: ReadFn, write: WriteFn,
                 on_close: Callable[[], Awaitable[None]] | None = None) -> None:
        self.peer = peer
        self._read = read
        self._write = write
        self._on_close = on_close
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._outbox: asyncio.Queue[tuple[Message, asyncio.Future[None]]] = asyncio.Queue()
        self._gone = asyncio.Event()
        self._closed = False
        self._reader = asyncio.create_task(self._read_loop(), name=f"link-read {peer}")
        self._writer = asyncio.create_task(self._write_loop(), name=f"link-write {peer}")

    # -- public --------------------------------------------------------------------------------

    @property
    def gone(self) -> bool:
        return self._gone.is_set()

    async def wait_gone(self) -> None:
        await self._gone.wait()

    async def send(self, message: Message) -> None:
        """Queue ``message`` and wait until gRPC took it; ``LinkError`` if the stream is gone."""
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise LinkError("a link message must be a JSON object with a string 'type'")
        if self._gone.is_set():
            raise LinkError(f"link to {self.peer} is gone")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._outbox.put((message, done))
        gone: asyncio.Future[Any] = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if done.done():
            done.result()  # raises LinkError when the write failed
            return
        done.cancel()
        raise LinkError(f"link to {self.peer} went away before the message was sent")

    def post(self, message: Message) -> bool:
        """Queue ``message`` without waiting (order with ``send`` is kept); False when the
        stream is already gone. For fire-and-forget traffic whose loss is handled elsewhere
        (status updates are retried, PONGs are periodic)."""
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise LinkError("a link message must be a JSON object with a string 'type'")
        if self._gone.is_set():
            return False
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)
        self._outbox.put_nowait((message, done))
        return True

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            item = await self._inbox.get()
            if item is _END:
                self._inbox.put_nowait(_END)  # later iterators end too
                return
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._mark_gone()
        self._writer.cancel()
        self._reader.cancel()
        for task in (self._writer, self._reader):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._on_close is not None:
            await self._on_close()

    # -- internals -----------------------------------------------------------------------------

    def _mark_gone(self) -> None:
        if not self._gone.is_set():
            self._gone.set()
            self._inbox.put_nowait(_END)
            while not self._outbox.empty():
                _, fut = self._outbox.get_nowait()
                if not fut.done():
                    fut.set_exception(LinkError(f"link to {self.peer} is gone"))

    async def _read_loop(self) -> None:
        try:
            while True:
                item = await self._read()
                if item is grpc.aio.EOF or item is None:
                    return
                if isinstance(item, _Malformed) or not isinstance(item, dict):
                    reason = item.reason if isinstance(item, _Malformed) else "not an object"
                    log.warning("link %s: dropped a malformed message (%s)", self.peer, reason)
                    continue
                if item.get("type") == BATCH and isinstance(item.get("messages"), list):
                    for message in item["messages"]:
                        self._accept(message)
                    continue
                self._accept(item)
        except asyncio.CancelledError:
            raise
        except (grpc.aio.AioRpcError, grpc.RpcError, asyncio.InvalidStateError) as e:
            log.info("link %s: stream ended: %s", self.peer, _describe(e))
        except Exception:
            log.exception("link %s: reader failed", self.peer)
        finally:
            self._mark_gone()

    def _accept(self, item: Any) -> None:
        if not isinstance(item, dict):
            log.warning("link %s: dropped a malformed message (not an object)", self.peer)
        elif not isinstance(item.get("type"), str):
            log.warning("link %s: dropped a message without a string 'type'", self.peer)
        else:
            self._inbox.put_nowait(item)

    def _next_frame(self, first: tuple[Message, asyncio.Future[None]]
                    ) -> tuple[bytes | None, list[asyncio.Future[None]]]:
        """``first`` alone, or with whatever else is queued as one BATCH frame (bounded). A
        message that cannot be encoded fails its own future and is left out."""
        parts: list[bytes] = []
        futures: list[asyncio.Future[None]] = []
        size = 0
        item: tuple[Message, asyncio.Future[None]] | None = first
        while item is not None:
            message, fut = item
            if not fut.done():
                try:
                    data = _serialize(message)
                except (TypeError, ValueError) as e:
                    err = LinkError(f"link to {self.peer}: cannot encode a message: {e}")
                    err.__cause__ = e
                    fut.set_exception(err)
                else:
                    parts.append(data)
                    futures.append(fut)
                    size += len(data)
            if (self._outbox.empty() or size >= _BATCH_MAX_BYTES
                    or len(parts) >= _BATCH_MAX_MESSAGES):
                break
            item = self._outbox.get_nowait()
        if len(parts) <= 1:
            return (parts[0] if parts else None), futures
        return b'{"type":"BATCH","messages":[' + b",".join(parts) + b"]}", futures

    async def _write_loop(self) -> None:
        while True:
            first = await self._outbox.get()
            # One turn of the event loop lets the rest of a burst (the other updates of the
            # same executor event, the RUN_TASKs of the same ACCEPT) join this frame: a gRPC
            # write costs far more than the few microseconds of the turn.
            await asyncio.sleep(0)
            frame, futures = self._next_frame(first)
            if frame is None:
                continue
            try:
                await self._write(frame)
            except asyncio.CancelledError:
                for fut in futures:
                    if not fut.done():
                        fut.set_exception(LinkError(f"link to {self.peer} closed"))
                raise
            except Exception as e:
                for fut in futures:
                    if not fut.done():
                        err = LinkError(f"link to {self.peer}: send failed: {_describe(e)}")
                        err.__cause__ = e
                        fut.set_exception(err)
                self._mark_gone()
                return
            for fut in futures:
                if not fut.done():
                    fut.set_result(None)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # looked at: a lost fire-and-forget message is not an error here


def _describe(e: BaseException) -> str:
    if isinstance(e, grpc.aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    return f"{type(e).__name__}: {e}"


# --------------------------------------------------------------------------------------------
# Master side


Handler = Callable[[AgentStream], Awaitable[None]]


class LinkServer:
    """Serves ``AgentLink/Connect``; calls ``handler(stream)`` once per connecting agent."""

    def __init__(self, *, host: str, port: int, handler: Handler,
                 credentials: grpc.ServerCredentials | None = None) -> None:
        self._host = host
        self._credentials = credentials  # None: plaintext (TLS off, as libprocess' default)
        self._port = port
        self._handler = handler
        self._server: grpc.aio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._streams: set[AgentStream] = set()

    async def start(self) -> int:
        if self._server is not None:
            raise LinkError("link server already started")
        server = grpc.aio.server(options=_SERVER_OPTIONS)
        rpc = grpc.stream_stream_rpc_method_handler(
            self._connect, request_deserializer=_deserialize, response_serializer=_serialize
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {METHOD: rpc}),)
        )
        try:
            address = f"{self._host}:{self._port}"
            bound = (server.add_insecure_port(address) if self._credentials is None
                     else server.add_secure_port(address, self._credentials))
        except RuntimeError as e:
            await server.stop(None)
            raise LinkError(f"cannot bind the link to {self._host}:{self._port}: {e}") from e
        if bound == 0:
            await server.stop(None)
            raise LinkError(f"cannot bind the link to {self._host}:{self._port}")
        await server.start()
        self._server = server
        self._port = int(bound)
        return self._port

    @property
    def port(self) -> int:
        return self._port

    async def stop(self, *, grace: float = 1.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        for stream in list(self._streams):
            stream._mark_gone()
        await server.stop(grace)
        if self._handlers:
            _, pending = await asyncio.wait(set(self._handlers), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)

    async def _connect(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        del request_iterator  # we read through the context
        peer = str(context.peer())
        finished = asyncio.Event()

        async def on_close() -> None:
            finished.set()

        stream = AgentStream(peer=peer, read=context.read, write=context.write, on_close=on_close)
        self._streams.add(stream)
        task = asyncio.create_task(self._run_handler(stream), name=f"link-handler {peer}")
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        try:
            gone = asyncio.ensure_future(stream.wait_gone())
            done_wait = asyncio.ensure_future(finished.wait())
            try:
                await asyncio.wait({gone, done_wait, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gone.cancel()
                done_wait.cancel()
        finally:
            # Returning ends the RPC: the agent's iteration ends. Our reader/writer stop too.
            stream._mark_gone()
            self._streams.discard(stream)
            stream._reader.cancel()
            stream._writer.cancel()

    async def _run_handler(self, stream: AgentStream) -> None:
        try:
            await self._handler(stream)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("link handler for %s failed", stream.peer)
        finally:
            await stream.close()


# --------------------------------------------------------------------------------------------
# Agent side


async def connect(address: str, *, timeout: float = 5.0,
                  credentials: grpc.ChannelCredentials | None = None) -> AgentStream:
    """Open the link to the master's link address ``host:port`` (over TLS with
    ``credentials``); ``LinkError`` if unreachable (a certificate the agent does not trust
    looks the same to gRPC: the channel never becomes ready, and the master logs the
    handshake's failure)."""
    if not address or ":" not in address:
        raise LinkError(f"link address {address!r} is not host:port")
    channel = (grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
               if credentials is None else
               grpc.aio.secure_channel(address, credentials, options=_CHANNEL_OPTIONS))
    try:
        async with asyncio.timeout(timeout):
            await channel.channel_ready()
    except TimeoutError as e:
        await channel.close(None)
        hint = ("" if credentials is None else " (over TLS: a master certificate the agent "
                "cannot verify with LIBPROCESS_SSL_CA_FILE/CA_DIR, e.g. an expired one or "
                "another CA's, looks the same)")
        raise LinkError(f"link {address} unreachable within {timeout:g}s{hint}") from e
    except BaseException:
        await channel.close(None)
        raise
    call = channel.stream_stream(
        _PATH, request_serializer=_serialize, response_deserializer=_deserialize
    )()

    async def on_close() -> None:
        call.cancel()
        await channel.close(None)

    return AgentStream(peer=address, read=call.read, write=call.write, on_close=on_close)
