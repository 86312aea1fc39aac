"""The HTTP transport of the v1 scheduler API: find the leader, open the event stream, POST calls.

Why separate from ``framework.py``: this layer knows aiohttp, status codes, redirects, TLS and
RecordIO, and turns all of them into typed values and typed errors (``errors.py``). The framework
driver above it only sees "a stream of events" and "a call that succeeded or raised".

* SUBSCRIBE finds the leader through the shared ``transport.Transport`` (307s followed, 503s,
  other 5xx and resets move on to the next master; ``zk://`` URLs are refused).
* Calls go to the master that accepted the subscription, on other connections, with the
  ``Mesos-Stream-Id`` it returned; 200/202 is success, anything else a typed ``ApiError``.
* A stream read never waits longer than the caller's timeout (the heartbeat watchdog); a
  record that is not valid JSON or not a valid event is logged and skipped, a broken RecordIO
  framing or a cut stream ends the stream with ``RecordIOError``/``ConnectionLost``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import aiohttp
import yarl

from k8sbridge.mesos import errors, events, recordio
from k8sbridge.mesos.metrics import Metrics
from k8sbridge.mesos.transport import ClientConfig, Transport, parse_master_urls
from k8sbridge.mesos.transport import origin as _origin

__all__ = ["ClientConfig", "EventStream", "MesosClient", "parse_master_urls"]

log = logging.getLogger(__name__)

SCHEDULER_PATH = "/api/v1/scheduler"
STREAM_ID_HEADER = "Mesos-Stream-Id"


class EventStream:
    """One open SUBSCRIBE response: RecordIO-framed JSON events until EOF or close."""

    def __init__(
            self,
            *,
            response: aiohttp.ClientResponse,
            stream_id: str,
            master: yarl.URL,
            max_record_size: int,
            metrics: Metrics,
    ) -> None:
        self.stream_id = stream_id
        self.master = master
        self._response = response
        self._decoder = recordio.Decoder(max_record_size=max_record_size)
        self._records: list[bytes] = []
        self._metrics = metrics

    async def next_event(self, *, timeout: float) -> events.Event:
        """The next well-formed event; ``ConnectionLost`` on EOF, a cut stream or ``timeout``."""
        while True:
            while self._records:
                record = self._records.pop(0)
                try:
                    return events.decode(record)
                except errors.ProtocolError as e:
                    # One bad event must not cost the subscription: log it and read on.
                    self._metrics.inc("decode_errors")
                    log.error("skipping an undecodable event from %s: %s", self.master, e)
            try:
                async with asyncio.timeout(timeout):
                    chunk = await self._response.content.readany()
            except TimeoutError as e:
                raise errors.ConnectionLost(
                    f"no event from {_origin(self.master)} for {timeout:.1f}s (heartbeat missed)"
                ) from e
            except (aiohttp.ClientError, OSError) as e:
                raise errors.ConnectionLost(f"event stream from {_origin(self.master)}: {e}") from e
            if not chunk:
                if self._decoder.buffered:
                    raise errors.ConnectionLost(
                        f"event stream from {_origin(self.master)} cut mid-record "
                        f"({self._decoder.buffered} bytes pending)"
                    )
                raise errors.ConnectionLost(f"event stream from {_origin(self.master)} ended")
            self._records.extend(self._decoder.feed(chunk))

    async def close(self) -> None:
        self._response.close()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
    ) -> None:
        await self.close()


class MesosClient:
    """The scheduler API over a ``Transport`` (its own, or one shared with the operator client).

    Use as an async context manager; leaving it closes the transport's session (a shared
    transport reopens it on its next request).
    """

    def __init__(
            self,
            *,
            config: ClientConfig,
            metrics: Metrics | None = None,
            transport: Transport | None = None,  # None: a transport of its own
    ) -> None:
        self._config = config
        self._transport = (
            transport if transport is not None else Transport(config=config, metrics=metrics)
        )
        self._metrics = metrics if metrics is not None else self._transport.metrics
        self._leader: yarl.URL | None = None
        self._stream_id: str | None = None

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def leader(self) -> yarl.URL | None:
        """Base URL of the master that accepted the current subscription."""
        return self._leader

    @property
    def stream_id(self) -> str | None:
        return self._stream_id

    @property
    def metrics(self) -> Metrics:
        return self._metrics

    async def __aenter__(self) -> MesosClient:
        await self.open()
        return self

    async def __aexit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        self._transport.session()

    async def close(self) -> None:
        await self._transport.close()

    # -- SUBSCRIBE --------------------------------------------------------------------------

    async def subscribe(self, call: Mapping[str, Any]) -> EventStream:
        """Open the event stream on the leading master; the caller closes it.

        Raises ``NotLeader`` when no master leads (all 503 or redirect loops), ``ServerError``
        when the masters answered other 5xx, ``ConnectionLost`` when none is reachable, and
        the typed ``ApiError`` of a 4xx when no master accepted the subscription.
        """
        try:
            response, url = await self._transport.open_on_leader(
                path=SCHEDULER_PATH,
                body=self._transport.encode(call),
                what="SUBSCRIBE",
                head_timeout=self._config.call_timeout,
            )
        except errors.ApiError as e:
            self._metrics.call("SUBSCRIBE", type(e).__name__)
            raise
        except errors.ConnectionLost as e:
            self._metrics.call("SUBSCRIBE", type(e).__name__)
            raise
        stream_id = response.headers.get(STREAM_ID_HEADER)
        if not stream_id:
            response.close()
            self._metrics.call("SUBSCRIBE", "ProtocolError")
            raise errors.ProtocolError(
                f"SUBSCRIBE answer from {_origin(url)} has no {STREAM_ID_HEADER} header"
            )
        self._leader = self._transport.leader
        self._stream_id = stream_id
        self._metrics.call("SUBSCRIBE", "ok")
        assert self._leader is not None
        return EventStream(
            response=response,
            stream_id=stream_id,
            master=self._leader,
            max_record_size=self._config.max_record_size,
            metrics=self._metrics,
        )

    # -- other calls ------------------------------------------------------------------------

    async def call(self, call: Mapping[str, Any]) -> str:
        """POST a non-SUBSCRIBE call to the subscribed master; returns the (usually empty) body.

        Never follows a redirect: a 307 means our master lost leadership (``NotLeader``); the
        stream breaks and the driver re-subscribes to the new leader.
        """
        kind = str(call.get("type", "UNKNOWN"))
        session = self._transport.session()
        if self._leader is None or self._stream_id is None:
            self._metrics.call(kind, "ConnectionLost")
            raise errors.ConnectionLost(f"{kind}: not subscribed")
        url = self._leader.join(yarl.URL(SCHEDULER_PATH))
        try:
            async with session.post(
                url,
                data=self._transport.encode(call),
                headers=self._transport.headers(**{STREAM_ID_HEADER: self._stream_id}),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._config.call_timeout),
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            self._metrics.call(kind, "ConnectionLost")
            raise errors.ConnectionLost(f"{kind} to {_origin(url)}: {e!r}") from e
        if status in (200, 202):
            self._metrics.call(kind, "ok")
            log.debug("%s accepted by %s (%d)", kind, _origin(url), status)
            return text
        error = errors.api_error_for(status=status, body=text, what=kind)
        self._metrics.call(kind, type(error).__name__)
        raise error
