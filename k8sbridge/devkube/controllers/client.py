"""A small Kubernetes REST + watch client over aiohttp, just what the controllers need.

devkube may not use the kubernetes/kopf/pykube libraries (it exists to test code that does),
so this speaks the API directly: JSON bodies, bearer token, the cluster CA, Status errors
mapped to ``errors``, and watch streams parsed line by line.
"""

from __future__ import annotations

import dataclasses
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast

import aiohttp

from k8sbridge.devkube.controllers import errors
from k8sbridge.devkube.controllers.raw import RawObject, RawWatchEvent

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
USER_AGENT = "devkube-controller-manager/0.1"
MAX_WATCH_LINE = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Resource:
    """One API resource: where it lives and what its objects are called."""

    group_version: str  # "v1", "apps/v1", "coordination.k8s.io/v1"
    plural: str
    kind: str
    namespaced: bool = True

    def path(self, *, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


PODS = Resource(group_version="v1", plural="pods", kind="Pod")
NODES = Resource(group_version="v1", plural="nodes", kind="Node", namespaced=False)
LEASES = Resource(group_version="coordination.k8s.io/v1", plural="leases", kind="Lease")
DEPLOYMENTS = Resource(group_version="apps/v1", plural="deployments", kind="Deployment")
REPLICASETS = Resource(group_version="apps/v1", plural="replicasets", kind="ReplicaSet")
STATEFULSETS = Resource(group_version="apps/v1", plural="statefulsets", kind="StatefulSet")
DAEMONSETS = Resource(group_version="apps/v1", plural="daemonsets", kind="DaemonSet")
CONTROLLERREVISIONS = Resource(group_version="apps/v1", plural="controllerrevisions",
                               kind="ControllerRevision")
REPLICATIONCONTROLLERS = Resource(group_version="v1", plural="replicationcontrollers",
                                  kind="ReplicationController")
JOBS = Resource(group_version="batch/v1", plural="jobs", kind="Job")
CRONJOBS = Resource(group_version="batch/v1", plural="cronjobs", kind="CronJob")
CONFIGMAPS = Resource(group_version="v1", plural="configmaps", kind="ConfigMap")
SECRETS = Resource(group_version="v1", plural="secrets", kind="Secret")
SERVICES = Resource(group_version="v1", plural="services", kind="Service")
ENDPOINTS = Resource(group_version="v1", plural="endpoints", kind="Endpoints")
ENDPOINTSLICES = Resource(group_version="discovery.k8s.io/v1", plural="endpointslices",
                          kind="EndpointSlice")
SERVICEACCOUNTS = Resource(group_version="v1", plural="serviceaccounts", kind="ServiceAccount")
NAMESPACES = Resource(group_version="v1", plural="namespaces", kind="Namespace",
                      namespaced=False)

KNOWN: tuple[Resource, ...] = (PODS, NODES, LEASES, DEPLOYMENTS, REPLICASETS, JOBS, CRONJOBS,
                               CONFIGMAPS, SECRETS, SERVICES, ENDPOINTS, ENDPOINTSLICES,
                               SERVICEACCOUNTS, NAMESPACES, STATEFULSETS, DAEMONSETS,
                               CONTROLLERREVISIONS, REPLICATIONCONTROLLERS)


def resource_for(*, api_version: str, kind: str) -> Resource | None:
    """The resource serving ``kind`` in ``api_version`` (for ownerReference lookups)."""
    for res in KNOWN:
        if res.kind == kind and res.group_version == api_version:
            return res
    return None


def _ssl_context(ca_file: Path | None) -> ssl.SSLContext | None:
    if ca_file is None:
        return None
    return ssl.create_default_context(cafile=str(ca_file))


class ApiClient:
    """One HTTP session to the API server; every method raises ``errors.ControllerError``."""

    def __init__(self, *, url: str, token: str | None, ca_file: Path | None,
                 request_timeout: float = 30.0, unix_socket: Path | None = None) -> None:
        """``unix_socket``: connect there instead of to ``url``'s host (plain HTTP; ``url``
        then only names the server in requests, e.g. ``http://localhost``)."""
        self._url = url.rstrip("/")
        self._unix_socket = unix_socket
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._headers = headers
        self._ssl = _ssl_context(ca_file)
        self._timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        connector: aiohttp.BaseConnector
        if self._unix_socket is not None:
            connector = aiohttp.UnixConnector(path=str(self._unix_socket), limit=32)
        else:
            connector = aiohttp.TCPConnector(
                ssl=self._ssl if self._ssl is not None else True, limit=32)
        self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise errors.TransportError("client is not open (use `async with ApiClient(...)`)")
        return self._session

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        try:
            async with self.session.request(
                    method, self._url + path, params=dict(params or {}), data=data,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self._timeout)) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise errors.TransportError(f"{method} {path}: {e!r}") from e
        parsed: Any
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        if status >= 400:
            raise errors.from_status(status=status, body=parsed)
        return parsed

    # -- verbs --------------------------------------------------------------------------

    async def get(self, res: Resource, *, namespace: str | None, name: str) -> RawObject:
        return cast(RawObject, await self.request(
            "GET", res.path(namespace=namespace, name=name)))

    async def list(self, res: Resource, *, namespace: str | None = None,
                   params: Mapping[str, str] | None = None) -> RawObject:
        return cast(RawObject, await self.request(
            "GET", res.path(namespace=namespace), params=params))

    async def create(self, res: Resource, body: RawObject, *,
                     namespace: str | None = None) -> RawObject:
        return cast(RawObject, await self.request(
            "POST", res.path(namespace=namespace), body=body))

    async def replace(self, res: Resource, body: RawObject, *,
                      subresource: str | None = None) -> RawObject:
        m = body.get("metadata") or {}
        path = res.path(namespace=m.get("namespace"), name=str(m.get("name")),
                        subresource=subresource)
        return cast(RawObject, await self.request("PUT", path, body=body))

    async def patch(self, res: Resource, *, namespace: str | None, name: str, body: Any,
                    content_type: str = MERGE_PATCH,
                    subresource: str | None = None) -> RawObject:
        path = res.path(namespace=namespace, name=name, subresource=subresource)
        return cast(RawObject, await self.request(
            "PATCH", path, body=body, content_type=content_type))

    async def delete(self, res: Resource, *, namespace: str | None, name: str,
                     uid: str | None = None, propagation: str | None = None,
                     grace_seconds: int | None = None) -> RawObject | None:
        """DELETE; returns the object if it still exists (graceful/finalizers), else ``None``."""
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            options["preconditions"] = {"uid": uid}
        if propagation:
            options["propagationPolicy"] = propagation
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        reply = await self.request("DELETE", res.path(namespace=namespace, name=name),
                                   body=options)
        if isinstance(reply, dict) and reply.get("kind") not in (None, "Status"):
            m = reply.get("metadata") or {}
            # Pods echo the deleted object: it still exists only while terminating gracefully
            # or held by finalizers.
            if m.get("deletionTimestamp") and (
                    int(m.get("deletionGracePeriodSeconds") or 0) > 0 or m.get("finalizers")):
                return cast(RawObject, reply)
        return None

    async def watch(self, res: Resource, *, resource_version: str,
                    namespace: str | None = None,
                    timeout_seconds: int = 300) -> AsyncIterator[RawWatchEvent]:
        """Yield watch events until the server closes the stream (bookmarks included)."""
        params = {"watch": "true", "resourceVersion": resource_version,
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds)}
        path = res.path(namespace=namespace)
        try:
            async with self.session.get(
                    self._url + path, params=params,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout,
                                                  sock_read=timeout_seconds + 30),
                    read_bufsize=1 << 16) as resp:
                if resp.status >= 400:
                    text = await resp.text()
                    try:
                        parsed: Any = json.loads(text)
                    except ValueError:
                        parsed = text
                    raise errors.from_status(status=resp.status, body=parsed)
                buffer = b""
                async for chunk in resp.content.iter_any():
                    # one split per chunk (splitting a line off at a time copied the rest of
                    # the chunk once per event)
                    *lines, buffer = (buffer + chunk).split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield _parse_event(line)
                    if len(buffer) > MAX_WATCH_LINE:
                        raise errors.TransportError(f"watch {path}: event line too long")
                if buffer.strip():
                    yield _parse_event(buffer)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise errors.TransportError(f"watch {path}: {e!r}") from e


def _parse_event(line: bytes) -> RawWatchEvent:
    try:
        event = json.loads(line)
    except ValueError as e:
        raise errors.TransportError(f"malformed watch event: {line[:200]!r}") from e
    if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
        raise errors.TransportError(f"malformed watch event: {line[:200]!r}")
    return cast(RawWatchEvent, event)
