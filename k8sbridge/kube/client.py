"""Writes (and the few direct reads) to the Kubernetes API: raw JSON over aiohttp, with the
credentials the official client loads.

Why raw JSON: the official client's generated model classes drop fields they do not know, are
slow to build, and famously fail to decode a Binding reply. We keep the official client for what
it is good at (kubeconfig and in-cluster loading, TLS settings, tokens, exec plugins: its
``Configuration``) and exchange plain ``dict`` bodies exactly as the wire has them, over aiohttp
in the caller's event loop (``wire``: why not the official client's own transport). Errors come
out as ``k8sbridge.kube.errors`` classes.

At most ``connections`` calls are in flight (``KubeSettings.client_threads``), so a slow API
server cannot take unbounded sockets. Calls have a priority (``URGENT``, ``NORMAL``,
``BACKGROUND``): when every connection is busy, the next free one goes to the most urgent
waiting call (FIFO within a priority), so a status write that Mesos waits for never queues
behind a burst of bindings or events. ``BACKGROUND`` calls hold at most a quarter of the
connections (``BACKGROUND_SHARE``): a connection that frees while only best-effort calls wait
would otherwise go to one of them, and in a burst (a thousand launch notices and Scheduled
events queued at once) they held half the connections and as much of the API server's time,
and each status write waited behind them (measured in ``docs/bench/bridge.md``, eleventh
session).

Every call can be timed: an ``observer`` (given at construction) receives one ``RequestTiming``
per call (verb, path, status or None, seconds on the wire, seconds queued for a connection), on
the event loop, after the call. That is the hook for request-latency-by-verb metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import heapq
import itertools
import json
import logging
import os
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import cachetools
import kubernetes
import yarl

from k8sbridge.kube import errors, recorder, wire

__all__ = [
    "BACKGROUND",
    "NORMAL",
    "URGENT",
    "Connection",
    "KubeClient",
    "RawObject",
    "RequestObserver",
    "RequestTiming",
    "now_micro",
    "now_rfc3339",
]

log = logging.getLogger(__name__)

RawObject = dict[str, Any]

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
# bodies are built by code, never cyclic: no cycle check; one encoder, not one per call
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)
AUTH_HEADERS_SECONDS = 1.0  # how long the credentials' headers are reused

URGENT = 0  # someone waits for this write (e.g. a status that carries Mesos acknowledgements)
NORMAL = 1
BACKGROUND = 2  # best-effort (events)
BACKGROUND_SHARE = 0.25  # of the connections, the most BACKGROUND calls hold at once (≥ 1)


def now_rfc3339(at: float | None = None) -> str:
    """Kubernetes ``Time``: RFC 3339 in UTC with second precision (of ``at``, epoch seconds,
    when given)."""
    when = datetime.datetime.now(datetime.UTC) if at is None else \
        datetime.datetime.fromtimestamp(at, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """Kubernetes ``MicroTime``: RFC 3339 with 6 fractional digits (leases, eventTime)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True, slots=True)
class RequestTiming:
    """One finished API call, as the ``observer`` of a ``KubeClient`` sees it."""

    verb: str  # the HTTP method: GET, POST, PUT, PATCH, DELETE
    path: str  # the resource path, without the query
    status: int | None  # the HTTP status; None when no reply came (TransportError)
    seconds: float  # from the call getting a connection slot to its reply being read (or error)
    queued: float  # waiting for a free slot before that (see the priorities above)


RequestObserver = Callable[[RequestTiming], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Connection:
    """What another client (kopf, aiohttp for logs) needs to reach the same API server."""

    server: str
    token: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    username: str | None = None
    password: str | None = None
    namespace: str | None = None


class KubeClient:
    """A small raw-JSON client; one instance per process, shared by all components."""

    def __init__(
        self,
        *,
        configuration: Any,  # kubernetes.client.Configuration
        connections: int = 8,
        timeout: float = 30.0,
        observer: RequestObserver | None = None,
    ) -> None:
        self._configuration = configuration
        # The credentials' headers, read at most once a second: the official client's refresh
        # hook (exec plugins, token files) rebuilds its whole configuration on every read,
        # 7 % of the bridge's CPU in a 1,000-pod burst when read per call. A 401 reads anew.
        self._auth: cachetools.TTLCache[str, dict[str, str]] = cachetools.TTLCache(
            maxsize=1, ttl=AUTH_HEADERS_SECONDS)
        self._observer = observer
        self._connections = connections
        self._proxy = wire.proxy_of(configuration)
        wire.ssl_context(configuration)  # a bad CA or key file is a ConfigError now, not later
        self._base = str(configuration.host).rstrip("/")
        self._server_hostname: str | None = configuration.tls_server_name or None
        self._session: aiohttp.ClientSession | None = None  # made in the loop, at first use
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # the connections as slots handed out by priority (see the module docstring);
        # invariant: free slots > 0 only while no live call that may take one waits (a
        # BACKGROUND call waits while ``_background_cap`` of them are in flight)
        self._free = connections
        self._background = 0  # BACKGROUND calls holding a slot
        self._background_cap = max(1, int(connections * BACKGROUND_SHARE))
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        # events as a kubelet (core/v1, counted) or kube-scheduler (events.k8s.io/v1 series)
        # records them: ``kube.recorder``
        self.recorder = recorder.Recorder(request=self.request)

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(
        cls,
        *,
        path: Path | None,
        context: str | None = None,
        connections: int = 8,
        observer: RequestObserver | None = None,
        timeout: float = 30.0,
    ) -> KubeClient:
        """Load ``path`` (or in-cluster config when ``path`` is None and we run in a pod,
        else ``$KUBECONFIG``/``~/.kube/config``)."""
        configuration = kubernetes.client.Configuration()
        try:
            if path is None and _in_cluster():
                kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            else:
                kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=str(path) if path is not None else None,
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (kubernetes.config.ConfigException, OSError, TypeError, ValueError) as e:
            raise errors.ConfigError(f"cannot load Kubernetes credentials: {e}") from e
        return cls(configuration=configuration, connections=connections, observer=observer,
                   timeout=timeout)

    def connection(self) -> Connection:
        c = self._configuration
        token: str | None = None
        auth = (c.api_key or {}).get("authorization") or (c.api_key or {}).get("BearerToken")
        if auth:
            token = str(auth).removeprefix("Bearer ").strip()
        return Connection(
            server=str(c.host),
            token=token,
            ca_file=c.ssl_ca_cert,
            cert_file=c.cert_file,
            key_file=c.key_file,
            insecure=not c.verify_ssl,
            username=c.username or None,
            password=c.password or None,
        )

    async def close(self) -> None:
        await self.recorder.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the one raw call ----------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
        priority: int = NORMAL,
        decode: bool = True,
    ) -> RawObject:
        """One API call; returns the decoded JSON reply (``{}`` for an empty body, or when
        ``decode`` is false: the caller does not need the reply)."""
        asked = time.perf_counter()
        await self._acquire(priority)
        started = time.perf_counter()
        status: int | None = None
        try:
            status, reply = await self._call(method, path, query, body, content_type, decode)
            return reply
        except errors.ApiError as e:
            status = e.status
            raise
        finally:
            self._release(priority)
            if self._observer is not None:
                self._observe(RequestTiming(
                    verb=method, path=path, status=status,
                    seconds=time.perf_counter() - started, queued=started - asked,
                ))

    def _observe(self, timing: RequestTiming) -> None:
        assert self._observer is not None
        try:
            self._observer(timing)
        except Exception:  # a broken metrics hook must not fail the API call it measures
            log.exception("the request observer failed on %s %s", timing.verb, timing.path)

    def _may_take(self, priority: int) -> bool:
        return priority < BACKGROUND or self._background < self._background_cap

    async def _acquire(self, priority: int) -> None:
        if self._free > 0 and self._may_take(priority):
            self._free -= 1
            self._background += priority >= BACKGROUND
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(priority)  # a slot was handed over just as we were cancelled
            raise

    def _release(self, priority: int) -> None:
        """The slot passes to the most urgent waiting call that may take it (waiting calls
        are ordered by priority, so when the first may not, none may: all are BACKGROUND)."""
        self._background -= priority >= BACKGROUND
        while self._waiting:
            first, _, waiter = self._waiting[0]
            if waiter.done():
                heapq.heappop(self._waiting)  # cancelled meanwhile
                continue
            if not self._may_take(first):
                break
            heapq.heappop(self._waiting)
            self._background += first >= BACKGROUND
            waiter.set_result(None)
            return
        self._free += 1

    async def _call(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]] | Mapping[str, str] | None,
        body: Any,
        content_type: str,
        decode: bool = True,
    ) -> tuple[int, RawObject]:
        """The call on the wire: (HTTP status, decoded reply)."""
        what = f"{method} {path}"
        auth = self._auth.get("headers")
        if auth is None:
            auth = self._auth["headers"] = wire.auth_headers(self._configuration)
        headers = {"Accept": JSON, **auth}
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = _ENCODER.encode(body).encode()
        params = list(query.items()) if isinstance(query, Mapping) else list(query or [])
        url = self._base + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        if self._session is None:
            self._session = wire.session(connections=self._connections,
                                         configuration=self._configuration)
        try:
            async with self._session.request(
                method, yarl.URL(url, encoded=True), data=data, headers=headers,
                timeout=self._timeout, proxy=self._proxy,
                server_hostname=self._server_hostname,
            ) as response:
                status = response.status
                reply = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise errors.TransportError(f"{what}: {e!r}") from e
        if status == 401:
            self._auth.clear()  # a rotated token or an expired exec credential
        if not 200 <= status <= 299:
            raise errors.api_error(status=status, body=reply, what=what)
        if not reply or not decode:
            return status, {}
        try:
            decoded = json.loads(reply)
        except ValueError as e:
            raise errors.ApiError(
                f"{what}: reply is not JSON", status=status, body=reply[:200]
            ) from e
        return status, decoded if isinstance(decoded, dict) else {"items": decoded}

    async def watch(
        self, path: str, *, query: Mapping[str, str], timeout: float = 330.0
    ) -> AsyncIterator[RawObject]:
        """A watch's events (``{"type": ..., "object": ...}``) as they arrive, until the
        server ends the stream (at most ``timeout`` seconds). It does not take one of the
        ``connections`` slots: a watch holds its connection for minutes."""
        headers = {"Accept": JSON, **wire.auth_headers(self._configuration)}
        url = self._base + path + "?" + urllib.parse.urlencode({**query, "watch": "true"})
        if self._session is None:
            self._session = wire.session(connections=self._connections,
                                         configuration=self._configuration)
        try:
            async with self._session.get(
                yarl.URL(url, encoded=True), headers=headers, proxy=self._proxy,
                timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=self._timeout.total),
                server_hostname=self._server_hostname,
            ) as response:
                if not 200 <= response.status <= 299:
                    raise errors.api_error(status=response.status, body=await response.read(),
                                           what=f"GET {path} (watch)")
                async for line in response.content:
                    if line.strip():
                        yield json.loads(line)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
            raise errors.TransportError(f"GET {path} (watch): {e!r}") from e

    # -- generic verbs -------------------------------------------------------------------

    async def get(self, path: str, **query: str) -> RawObject:
        return await self.request("GET", path, query=query)

    async def create(self, path: str, body: RawObject) -> RawObject:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: RawObject) -> RawObject:
        return await self.request("PUT", path, body=body)

    async def patch(
        self, path: str, body: Any, *, content_type: str = MERGE_PATCH, priority: int = NORMAL
    ) -> RawObject:
        return await self.request(
            "PATCH", path, body=body, content_type=content_type, priority=priority
        )

    async def delete(
        self,
        path: str,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
    ) -> RawObject:
        body: RawObject = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        return await self.request("DELETE", path, body=body)

    # -- pods ----------------------------------------------------------------------------

    async def list_pods(self, *, field_selector: str | None = None) -> list[RawObject]:
        query = {"fieldSelector": field_selector} if field_selector else {}
        reply = await self.request("GET", "/api/v1/pods", query=query)
        return list(reply.get("items") or [])

    async def get_pod(self, namespace: str, name: str) -> RawObject:
        return await self.get(pod_path(namespace, name))

    async def bind_pod(self, *, namespace: str, name: str, uid: str | None, node: str) -> None:
        """``POST pods/NAME/binding``; 409 when already bound (the caller re-reads)."""
        body: RawObject = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        if uid:
            body["metadata"]["uid"] = uid
        await self.create(pod_path(namespace, name) + "/binding", body)

    async def patch_pod_status(
        self, *, namespace: str, name: str, uid: str | None, status: RawObject,
        priority: int = NORMAL,
    ) -> None:
        """Merge-patch ``pods/NAME/status`` with a UID precondition (409 if recreated); the
        reply (the whole pod) is not decoded."""
        body: RawObject = {"status": status}
        if uid:
            body["metadata"] = {"uid": uid}
        await self.request(
            "PATCH", pod_path(namespace, name) + "/status", body=body,
            content_type=MERGE_PATCH, priority=priority, decode=False,
        )

    async def delete_pod_now(self, *, namespace: str, name: str, uid: str | None) -> None:
        """The kubelet's final DELETE: grace 0, UID precondition; gone or recreated is fine."""
        try:
            await self.delete(pod_path(namespace, name), grace_period_seconds=0, uid=uid)
        except (errors.NotFound, errors.Conflict):
            return

    # -- config reads for env valueFrom ----------------------------------------------------

    async def get_config_map(self, namespace: str, name: str) -> RawObject:
        return await self.get(f"/api/v1/namespaces/{_q(namespace)}/configmaps/{_q(name)}")

    async def get_secret(self, namespace: str, name: str) -> RawObject:
        return await self.get(f"/api/v1/namespaces/{_q(namespace)}/secrets/{_q(name)}")

    async def upsert_config_map(
        self, *, namespace: str, name: str, data: Mapping[str, str]
    ) -> None:
        """Create or update a ConfigMap's data (merge: other keys are kept).

        The namespace is created only when it is missing: in a cluster the bridge runs in its
        own namespace and its RBAC (manifests/deploy/rbac.yaml) grants no namespace creation.
        """
        path = f"/api/v1/namespaces/{_q(namespace)}/configmaps/{_q(name)}"
        try:
            await self.patch(path, {"data": dict(data)})
            return
        except errors.NotFound:
            pass
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": dict(data),
        }
        collection = f"/api/v1/namespaces/{_q(namespace)}/configmaps"
        try:
            try:
                await self.create(collection, body)
            except errors.NotFound:  # the namespace itself is missing
                await self.ensure_namespace(namespace)
                await self.create(collection, body)
        except errors.Conflict:
            await self.patch(path, {"data": dict(data)})

    async def ensure_namespace(self, namespace: str) -> None:
        try:
            await self.create(
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            )
        except errors.Conflict:
            return

    # -- events ----------------------------------------------------------------------------

    async def post_event(
        self,
        *,
        involved: RawObject,
        reason: str,
        message: str,
        type_: str = "Normal",
        component: str = "k8sbridge",
        host: str | None = None,
        priority: int = BACKGROUND,
        at: float | None = None,
        action: str | None = None,
    ) -> None:
        """Record an Event about ``involved`` (a pod or node); failures are logged only.

        ``at`` is when it happened (epoch seconds; default now). The Event is named as
        client-go's recorders name it, ``<object>.<that time in hex nanoseconds>``, so listing
        an object's events (and ``kubectl describe``, whose sort keeps list order among events
        of the same second) shows them in the order they happened even when posted out of order.
        With an ``action`` (what the scheduler did: ``Scheduling``, ``Binding``) it goes to
        events.k8s.io/v1 when the server serves it, repeats counted as a ``series``; otherwise
        to core/v1 as a kubelet's, a repeat a PATCH of the first one (count + 1), similar events
        combined and a flood about one object cut off (``kube.recorder``).
        """
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        when = time.time() if at is None else at
        now = now_rfc3339(when)
        source: RawObject = {"component": component}
        if host:
            source["host"] = host
        body: RawObject = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta.get('name', 'object')}.{int(when * 1e9):x}",
                         "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", "v1"),
                "kind": involved.get("kind", "Pod"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": host or component,
        }
        await self.recorder.record(body, action=action, when=when, priority=priority)


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{_q(namespace)}/pods/{_q(name)}"


def node_path(name: str) -> str:
    return f"/api/v1/nodes/{_q(name)}"


def lease_path(name: str, namespace: str = "kube-node-lease") -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{_q(namespace)}/leases/{_q(name)}"


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and Path(
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    ).exists()
