"""The one HTTP transport to the Mesos masters, shared by the scheduler and operator clients.

Why one transport: the scheduler API (SUBSCRIBE and calls) and the operator API (GET_AGENTS,
GET_TASKS, GET_STATE, GET_VERSION) talk to the same masters with the same credentials and CA,
and both must find the leader the same way. With one transport the leader learned by a redirect
is remembered once for both (no 307 on every poll), a master with HTTP authentication gets the
principal/secret on every request, and there is one place that turns aiohttp, status codes and
redirects into typed errors (``errors.py``).

Finding the leader (``open_on_leader``): the masters are tried in turn, starting with the last
known leader. A ``307`` is followed (its ``Location`` is protocol-relative,
``//host:port/path``; the current scheme is kept), at most ``max_redirects`` hops; a ``503``
(no leader elected / recovering), any other 5xx, a reset or a timeout moves on to the next
master. A 4xx is the master's considered answer about *our* request; it is raised only when no
master accepted the request. When every master failed the error says why for each of them.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import yarl

from k8sbridge.mesos import errors, recordio
from k8sbridge.mesos.metrics import Metrics

__all__ = ["ClientConfig", "Transport", "origin", "parse_master_urls"]

log = logging.getLogger(__name__)

# Calls are built by code, never cyclic: skipping the cycle check makes a 100-task ACCEPT ~25 %
# cheaper to serialise. Compact separators: smaller bodies.
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


@dataclasses.dataclass(frozen=True, slots=True)
class ClientConfig:
    """How to reach the masters. ``secret`` is never logged nor shown in ``repr``."""

    masters: tuple[str, ...]
    principal: str | None = None
    secret: str | None = dataclasses.field(default=None, repr=False)
    ca_file: str | None = None  # CA bundle for https:// masters (None: system CAs)
    call_timeout: float = 75.0  # the reference's advice for ordinary calls
    connect_timeout: float = 10.0
    max_redirects: int = 10
    max_record_size: int = recordio.DEFAULT_MAX_RECORD_SIZE


def parse_master_urls(masters: Sequence[str]) -> tuple[yarl.URL, ...]:
    """Normalise master addresses to base URLs (scheme, host, port; no path)."""
    if isinstance(masters, str):
        masters = [m for m in masters.split(",") if m.strip()]
    out: list[yarl.URL] = []
    for text in masters:
        text = text.strip()
        if text.startswith("zk://"):
            raise errors.ConfigError(
                f"master {text!r}: ZooKeeper (zk://) leader detection is not supported yet; "
                "list the masters as host:port (redirects to the leader are followed)"
            )
        if "://" not in text:
            text = "http://" + text
        url = yarl.URL(text)
        if url.scheme not in ("http", "https") or not url.host:
            raise errors.ConfigError(f"master {text!r}: want http(s)://host:port or host:port")
        out.append(base_of(url))
    if not out:
        raise errors.ConfigError("no master given")
    return tuple(out)


def base_of(url: yarl.URL) -> yarl.URL:
    return url.with_path("/").with_query(None).with_fragment(None)


def origin(url: yarl.URL) -> str:
    return f"{url.scheme}://{url.host}:{url.port}"


class Transport:
    """One aiohttp session, the masters, the leader and the credentials.

    The session is opened lazily and may be closed and reopened (the scheduler and operator
    clients share it and do not share a lifetime). Owned by one event loop; no locks.
    """

    def __init__(self, *, config: ClientConfig, metrics: Metrics | None = None) -> None:
        if (config.principal is None) != (config.secret is None):
            raise errors.ConfigError("HTTP authentication needs both a principal and a secret")
        self.config = config
        self.masters = parse_master_urls(config.masters)
        self.metrics = metrics if metrics is not None else Metrics()
        self.leader: yarl.URL | None = None
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ssl_ctx: ssl.SSLContext | bool = True
            if self.config.ca_file is not None:
                ssl_ctx = ssl.create_default_context(cafile=self.config.ca_file)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ssl_ctx),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self.config.connect_timeout, sock_read=None
                ),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", **extra}
        if self.config.principal is not None and self.config.secret is not None:
            # HTTP basic authentication (Mesos' --authenticate_http_frameworks/readwrite).
            token = f"{self.config.principal}:{self.config.secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        return headers

    def candidates(self) -> list[yarl.URL]:
        ordered = list(self.masters)
        if self.leader is not None:
            ordered = [self.leader] + [m for m in ordered if m != self.leader]
        return ordered

    @property
    def scheme(self) -> str:
        """The scheme agents are reached with: the leader's (TLS clusters use it everywhere)."""
        return (self.leader or self.masters[0]).scheme

    def describe(self, e: BaseException) -> str:
        """``e`` for a message; a certificate that does not verify says why and with what CA
        (an expired certificate, another CA: no retry fixes it until someone acts)."""
        if isinstance(e, aiohttp.ClientConnectorCertificateError):
            cause = e.certificate_error
            why = getattr(cause, "verify_message", None) or str(cause)
            return (f"TLS certificate verification failed: {why} (verified with "
                    f"{self.config.ca_file or 'the system CAs'}; mesos.ca_file)")
        return repr(e)

    @staticmethod
    def encode(call: Mapping[str, Any]) -> bytes:
        return _ENCODER.encode(call).encode()

    async def open_on_leader(
            self,
            *,
            path: str,
            body: bytes,
            what: str,
            head_timeout: float,
    ) -> tuple[aiohttp.ClientResponse, yarl.URL]:
        """POST ``body`` to ``path`` on the leading master; returns the unread 200/202 response.

        The caller reads (or streams) and releases the response. Raises ``NotLeader`` (503s,
        redirect loops), ``ServerError`` (other 5xx), ``ConnectionLost`` (nothing reachable)
        or the typed 4xx ``ApiError`` when no master accepted the request.
        """
        session = self.session()
        problems: list[str] = []
        refusals: list[errors.ApiError] = []
        kinds: set[type[errors.MesosError]] = set()
        for master in self.candidates():
            url = master.join(yarl.URL(path))
            for _hop in range(self.config.max_redirects + 1):
                try:
                    # A bounded wait for the response head: a hung master must not hang us.
                    async with asyncio.timeout(head_timeout):
                        response = await session.post(
                            url, data=body, headers=self.headers(), allow_redirects=False
                        )
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    problems.append(f"{origin(url)}: {self.describe(e)}")
                    # aiohttp's connect/read timeouts are TimeoutErrors too.
                    timed_out = isinstance(e, TimeoutError)
                    kinds.add(errors.CallTimedOut if timed_out else errors.ConnectionLost)
                    log.debug("%s: master %s unreachable: %r", what, origin(url), e)
                    break
                if response.status == 307:
                    location = response.headers.get("Location", "")
                    response.release()
                    try:
                        url = url.join(yarl.URL(location)) if location else url
                    except ValueError:
                        location = ""
                    if not location or url.host is None:
                        problems.append(f"{origin(url)}: 307 without a usable Location")
                        kinds.add(errors.NotLeader)
                        break
                    log.debug("%s redirected to the leading master %s", what, origin(url))
                    continue
                if response.status in (200, 202):
                    self.leader = base_of(url)
                    return response, url
                text = await _text(response, timeout=head_timeout)
                response.release()
                error = errors.api_error_for(status=response.status, body=text, what=what)
                problems.append(f"{origin(url)}: {response.status} {text.strip()[:200]}")
                kinds.add(type(error))
                if response.status < 500:
                    refusals.append(error)
                log.debug("%s: master %s answered %d", what, origin(url), response.status)
                break
            else:
                problems.append(f"{origin(url)}: more than {self.config.max_redirects} redirects")
                kinds.add(errors.NotLeader)
        summary = "; ".join(problems)
        if refusals:
            raise refusals[0]
        if errors.NotLeader in kinds:
            raise errors.NotLeader(f"{what}: no leading master: {summary}", status=503,
                                   body=summary)
        if errors.ServerError in kinds:
            raise errors.ServerError(f"{what}: no master could answer: {summary}", status=500,
                                     body=summary)
        if kinds == {errors.CallTimedOut}:
            raise errors.CallTimedOut(f"{what}: no master answered in time: {summary}")
        raise errors.ConnectionLost(f"{what}: no master reachable: {summary}")

    async def post_to_leader_json(
            self, *, path: str, call: Mapping[str, Any], timeout: float
    ) -> Any:
        """A whole request/response exchange on the leader; the decoded JSON reply.

        ``timeout`` bounds each master's answer (a hung first master leaves the next one its
        own time) and then the reading of the leader's body.
        """
        what = str(call.get("type", "UNKNOWN"))
        response, url = await self.open_on_leader(
            path=path, body=self.encode(call), what=what, head_timeout=timeout
        )
        try:
            async with asyncio.timeout(timeout):
                text = await response.text()
        except TimeoutError as e:
            raise errors.CallTimedOut(
                f"{what}: the answer of {origin(url)} took over {timeout:.1f}s"
            ) from e
        except (aiohttp.ClientError, OSError) as e:
            raise errors.ConnectionLost(f"{what}: reading the answer: {e!r}") from e
        finally:
            response.release()
        try:
            return json.loads(text)
        except ValueError as e:
            raise errors.ProtocolError(
                f"{what}: the answer of {origin(url)} is not JSON: {text[:200]!r}"
            ) from e


async def _text(response: aiohttp.ClientResponse, *, timeout: float) -> str:
    try:
        async with asyncio.timeout(timeout):
            return await response.text(errors="replace")
    except (aiohttp.ClientError, OSError, TimeoutError):
        return ""
