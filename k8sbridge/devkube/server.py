"""The HTTP layer of devkube: routing, auth, content negotiation, list/watch streaming, log proxy.

Why: this module turns HTTP requests into calls on the Registry (the semantics) and renders the
answers the way real clients expect (Status bodies, Tables, chunked watch streams with in-stream
errors and bookmarks). It owns no object state itself.

Like kube-apiserver towards kubelets, it answers ``TokenReview``
(``POST /apis/authentication.k8s.io/v1/tokenreviews``) for its own bearer token, so a kubelet
API with webhook token authentication can check the tokens it is shown, and it presents its
kubelet client certificate (``--kubelet-client-certificate``) when it proxies ``pods/log``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import ssl
import time
from collections.abc import Iterable
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from k8sbridge.devkube import (
    discovery,
    errors,
    kinds,
    persistence,
    protobuf,
    registry,
    schemafields,
    selectors,
    store,
    tables,
    watch,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

MAX_REQUEST_BYTES = 3 * 1024 * 1024  # the apiserver's request body limit
BOOKMARK_INTERVAL = 60.0
DEFAULT_WATCH_TIMEOUT = 1800.0
LARGE_BODY = 256 * 1024  # responses above this are written in slices of this size
WATCH_BATCH = 256  # lines per socket write while replaying initial events
ANONYMOUS_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
TOKEN_REVIEW_PATH = ("apis", "authentication.k8s.io", "v1", "tokenreviews")
ADMIN_USER = "devkube-admin"  # who devkube's own bearer token authenticates as
ADMIN_GROUPS = ("system:masters", "system:authenticated")
PATCH_TYPES = frozenset({
    "application/json-patch+json", "application/merge-patch+json",
    "application/strategic-merge-patch+json", "application/apply-patch+yaml",
})


def _json(body: Any, *, status: int = 200) -> web.Response:
    return web.Response(
        body=watch.encode_json(body), status=status,
        content_type="application/json",
    )


def _raw_json(data: bytes, *, status: int = 200) -> web.Response:
    return web.Response(body=data, status=status, content_type="application/json")


def _storage_failed(e: Exception) -> errors.ApiError:
    return errors.ApiError(code=503, reason="ServiceUnavailable",
                           message=f"devkube cannot persist its state and must be restarted: {e}")


def _error(e: errors.ApiError) -> web.Response:
    return web.Response(body=e.body(), status=e.code, content_type="application/json")


def _with_warnings(response: web.Response, warnings: list[str]) -> web.Response:
    for text in warnings:
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')
    return response


def _bool(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _int_param(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as e:
        raise errors.bad_request(f"invalid value for {name}: {value!r}") from e


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _encode_continue(*, rv: int, namespace: str, name: str) -> str:
    raw = json.dumps({"v": "devkube/v1", "rv": rv, "start": [namespace, name]}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        start = data["start"]
        return str(start[0]), str(start[1])
    except (ValueError, KeyError, TypeError, IndexError, binascii.Error) as e:
        raise errors.bad_request(f"continue key is not valid: {e}") from e


class ApiServer:
    """aiohttp application wiring one Registry to HTTP (single event loop owns everything)."""

    def __init__(
        self, *, reg: registry.Registry, token: str | None, server_address: str,
        stop: asyncio.Event, bookmark_interval: float = BOOKMARK_INTERVAL,
        kubelet_client_cert: tuple[str, str] | None = None,  # (cert, key) shown to kubelets
        durability: persistence.GroupCommit | None = None,  # replies wait for its commits
    ) -> None:
        self.reg = reg
        self.durability = durability
        self.store = reg.store
        self.token = token
        self.server_address = server_address
        self.stop = stop
        self.bookmark_interval = bookmark_interval
        self._kubelet_ssl = ssl.create_default_context()
        # Like kube-apiserver without --kubelet-certificate-authority: kubelet serving
        # certificates are self-signed, so they are not verified (the connection is still TLS).
        self._kubelet_ssl.check_hostname = False
        self._kubelet_ssl.verify_mode = ssl.CERT_NONE
        if kubelet_client_cert is not None:
            self._kubelet_ssl.load_cert_chain(*kubelet_client_cert)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # --- entry ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        durability = self.durability
        if durability is not None and durability.failure is not None:
            return _error(_storage_failed(durability.failure))
        response = await self._answer(request)
        # Durable before visible: nothing this reply may show (or imply) goes out before the
        # changes staged so far are committed. Streams wait before each of their own writes.
        if not response.prepared and not await self._durable():
            return _error(self._unavailable())
        return response

    async def _durable(self) -> bool:
        """Wait for staged changes to be committed; False if they cannot be."""
        if self.durability is None or not self.durability.pending:
            return self.durability is None or self.durability.failure is None
        try:
            await self.durability.durable()
        except persistence.StorageFailed:
            return False
        return True

    def _unavailable(self) -> errors.ApiError:
        """The 503 of a server whose commits failed (after ``_durable`` returned False)."""
        failure = self.durability.failure if self.durability is not None else None
        return _storage_failed(failure or persistence.StorageFailed("a commit failed"))

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        try:
            self._authenticate(request)
            return await self._dispatch(request)
        except errors.ApiError as e:
            return _error(e)
        except store.TooLarge as e:
            return _error(errors.too_large(str(e)))
        except web.HTTPRequestEntityTooLarge as e:
            return _error(errors.too_large(f"the request is too large: {e.text}"))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:  # a bug must never take the server down: answer 500 and log
            log.exception("internal error serving %s %s", request.method, request.path)
            return _error(errors.ApiError(code=500, reason="InternalError",
                                          message=f"Internal error occurred: {e}"))

    def _authenticate(self, request: web.Request) -> None:
        if self.token is None or request.path in ANONYMOUS_PATHS:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self.token.encode()
        ):
            raise errors.unauthorized()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return _json(discovery.version())
        if path == "/api":
            return _json(discovery.api_versions(server_address=self.server_address))
        if path == "/apis":
            return _json(discovery.api_group_list())
        if tuple(parts) == TOKEN_REVIEW_PATH:
            return await self._token_review(request)
        if parts[:2] == ["openapi", "v3"]:
            return self._openapi(parts[2:])
        if parts == ["openapi", "v2"]:
            return web.Response(body=discovery.openapi_v2_protobuf(),
                                content_type=discovery.OPENAPI_V2_CONTENT_TYPE)
        if parts and parts[0] == "openapi":
            raise errors.ApiError(code=404, reason="NotFound",
                                  message="the server could not find the requested resource")
        if parts[:1] == ["api"] and len(parts) >= 2:
            group_version, rest = parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) == 2:
            group = discovery.api_group(parts[1])
            if group is None:
                raise errors.ApiError(code=404, reason="NotFound",
                                      message="the server could not find the requested resource")
            return _json(group)
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            raise errors.ApiError(code=404, reason="NotFound",
                                  message="the server could not find the requested resource")
        if not rest:
            doc = discovery.resource_list(group_version)
            if doc is None:
                raise errors.ApiError(code=404, reason="NotFound",
                                      message="the server could not find the requested resource")
            return _json(doc)
        return await self._resource(request, group_version, rest)

    async def _token_review(self, request: web.Request) -> web.Response:
        """authentication.k8s.io/v1 TokenReview: is this one of devkube's tokens?"""
        if request.method != "POST":
            raise errors.method_not_allowed(
                f"{request.method} is not supported on tokenreviews (create only)")
        body = await self._body(request)
        if not isinstance(body, dict) or body.get("kind") not in (None, "TokenReview"):
            raise errors.bad_request("the body must be a TokenReview")
        spec = body.get("spec")
        token = spec.get("token") if isinstance(spec, dict) else None
        if not isinstance(token, str) or not token:
            raise errors.ApiError(
                code=422, reason="Invalid",
                message='TokenReview.authentication.k8s.io "" is invalid: spec.token: '
                "Required value",
            )
        audiences = spec.get("audiences") if isinstance(spec, dict) else None
        status: Obj
        if self.token is not None and hmac.compare_digest(token.encode(), self.token.encode()):
            status = {"authenticated": True,
                      "user": {"username": ADMIN_USER, "groups": list(ADMIN_GROUPS)}}
            if isinstance(audiences, list) and audiences:
                status["audiences"] = [str(a) for a in audiences]
        else:
            status = {"user": {}, "error": "invalid bearer token"}
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        return _json({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                      "metadata": {k: v for k, v in (meta or {}).items() if k == "name"},
                      "spec": spec, "status": status}, status=201)

    def _openapi(self, rest: list[str]) -> web.Response:
        if not rest:
            return _json(discovery.openapi_index())
        if rest[0] == "api" and len(rest) == 2:
            doc = discovery.openapi_document(rest[1])
        elif rest[0] == "apis" and len(rest) == 3:
            doc = discovery.openapi_document(f"{rest[1]}/{rest[2]}")
        else:
            doc = None
        if doc is None:
            raise errors.ApiError(code=404, reason="NotFound",
                                  message="the server could not find the requested resource")
        return _json(doc)

    # --- resources -----------------------------------------------------------------------

    def _kind(self, group_version: str, plural: str) -> kinds.Kind:
        kind = kinds.lookup(group_version=group_version, plural=plural)
        if kind is None:
            raise errors.ApiError(code=404, reason="NotFound",
                                  message="the server could not find the requested resource")
        return kind

    async def _resource(
        self, request: web.Request, group_version: str, rest: list[str]
    ) -> web.StreamResponse:
        namespace: str | None = None
        if (
            rest[0] == "namespaces" and len(rest) >= 3
            and (k := kinds.lookup(group_version=group_version, plural=rest[2])) is not None
            and k.namespaced
        ):
            namespace, rest = rest[1], rest[2:]
        kind = self._kind(group_version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3:
            raise errors.ApiError(code=404, reason="NotFound",
                                  message="the server could not find the requested resource")
        if kind.namespaced and namespace is None and name is not None:
            raise errors.ApiError(code=404, reason="NotFound",
                                  message="the server could not find the requested resource")
        if sub is not None and sub not in kind.subresources:
            raise errors.ApiError(code=404, reason="NotFound",
                                  message="the server could not find the requested resource")
        ns = namespace or ""
        method = request.method
        query = request.query
        dry_run = query.get("dryRun") == "All"
        if name is None:
            if method == "GET":
                if _bool(query.get("watch")):
                    return await self._watch(request, kind, namespace)
                return await self._list(request, kind, namespace)
            if method == "POST":
                if kind.namespaced and namespace is None:
                    raise errors.method_not_allowed(
                        f"POST is not supported on cluster-wide {kind.plural}"
                    )
                body = await self._body(request)
                warnings = self._field_validation(request, kind, body)
                obj = self.reg.create(kind=kind, namespace=ns, body=body, dry_run=dry_run)
                return _with_warnings(self._object(kind, obj, status=201), warnings)
            if method == "DELETE":
                return await self._delete_collection(request, kind, namespace)
            raise errors.method_not_allowed(f"{method} is not supported on a collection")
        if sub == "log":
            return await self._log(request, ns, name)
        if sub == "exec":
            raise errors.ApiError(
                code=400, reason="BadRequest",
                message="pods/exec is not supported by devkube yet (no streaming "
                "subresources); use the node's kubelet API directly",
            )
        if sub == "binding":
            if method != "POST":
                raise errors.method_not_allowed("pods/binding only supports POST")
            body = await self._body(request)
            return _json(self.reg.bind(namespace=ns, name=name, body=body), status=201)
        if sub == "eviction":
            if method != "POST":
                raise errors.method_not_allowed("pods/eviction only supports POST")
            body = await self._body(request)
            return _json(self.reg.evict(namespace=ns, name=name, body=body), status=201)
        if sub == "scale":
            return await self._scale(request, kind, ns, name, dry_run=dry_run)
        if method == "GET":
            if not _wants_table(request):
                return self._object(kind, self.reg.view(kind, self.reg.stored(kind, ns, name).obj))
            obj = self.reg.view(kind, self.reg.current(kind, ns, name))
            return _json(tables.table(
                plural=kind.plural, objects=[obj],
                include_object=query.get("includeObject", "Object"),
                resource_version=str(self.store.rv),
            ))
        if method == "PUT":
            body = await self._body(request)
            warnings = self._field_validation(request, kind, body)
            obj = self.reg.update(kind=kind, namespace=ns, name=name, body=body, subresource=sub,
                                  dry_run=dry_run)
            return _with_warnings(self._object(kind, obj), warnings)
        if method == "PATCH":
            content_type = request.content_type
            if content_type not in PATCH_TYPES:
                raise errors.unsupported_media_type(content_type)
            body = await self._body(request, patch=content_type)
            warnings = []
            if content_type != "application/json-patch+json":
                warnings = self._field_validation(request, kind, body)
            obj = self.reg.patch(kind=kind, namespace=ns, name=name, content_type=content_type,
                                 body=body, subresource=sub, dry_run=dry_run)
            return _with_warnings(self._object(kind, obj), warnings)
        if method == "DELETE":
            options = await self._delete_options(request)
            result, _ = self.reg.delete(kind=kind, namespace=ns, name=name, options=options,
                                        dry_run=dry_run)
            return self._object(kind, result)
        raise errors.method_not_allowed(f"{method} is not supported")

    def _object(self, kind: kinds.Kind, obj: Obj, *, status: int = 200) -> web.Response:
        """``obj`` as JSON; a stored object's bytes are reused (encoded once, at commit)."""
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            stored = self.store.peek(kind.store_key, meta.get("namespace", ""),
                                     str(meta.get("name", "")))
            if stored is not None and stored.obj is obj:
                return _raw_json(stored.data, status=status)
        return _json(obj, status=status)

    def _field_validation(self, request: web.Request, kind: kinds.Kind, body: Any) -> list[str]:
        """fieldValidation: Strict -> 400 on unknown fields, Warn (default) -> warnings."""
        mode = request.query.get("fieldValidation", "Warn")
        if mode not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(
                f"fieldValidation must be one of Ignore, Warn or Strict, got {mode!r}"
            )
        if mode == "Ignore":
            return []
        unknown = schemafields.unknown_fields(kind, body)
        if unknown and mode == "Strict":
            raise errors.bad_request(
                f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: '
                "strict decoding error: "
                + ", ".join(f'unknown field "{field}"' for field in unknown)
            )
        return [f'unknown field "{field}"' for field in unknown]

    async def _body(self, request: web.Request, *, patch: str | None = None) -> Any:
        raw = await request.read()
        if len(raw) > MAX_REQUEST_BYTES:
            raise errors.too_large("the request body is too large")
        if not raw:
            raise errors.bad_request("the request body is empty")
        content_type = request.content_type
        if content_type == protobuf.CONTENT_TYPE:
            try:
                return protobuf.decode(raw)
            except protobuf.ProtobufError as e:
                raise errors.bad_request(f"error decoding protobuf body: {e}") from e
        if "protobuf" in content_type or "cbor" in content_type:
            # client-go falls back to JSON after a 415 for CBOR.
            raise errors.unsupported_media_type(content_type)
        try:
            if "yaml" in content_type:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as e:
            what = "patch" if patch else "object"
            raise errors.bad_request(f"error decoding {what} body: {e}") from e

    async def _delete_options(self, request: web.Request) -> Obj:
        options: Obj = {}
        raw = await request.read()
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except ValueError as e:
                raise errors.bad_request(f"error decoding DeleteOptions: {e}") from e
            if not isinstance(parsed, dict):
                raise errors.bad_request("DeleteOptions must be a JSON object")
            options.update(parsed)
        grace = _int_param(request.query, "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        if request.query.get("propagationPolicy"):
            options["propagationPolicy"] = request.query["propagationPolicy"]
        return options

    # --- list ----------------------------------------------------------------------------

    def _selected(
        self, kind: kinds.Kind, namespace: str | None, query: Any,
    ) -> tuple[Iterable[store.Stored], selectors.LabelSelector, selectors.FieldSelector]:
        labels = selectors.parse_labels(query.get("labelSelector"))
        fields = selectors.parse_fields(query.get("fieldSelector"), supported=kind.fields)
        ns = namespace
        if ns is None:
            ns = fields.exact("metadata.namespace") if kind.namespaced else None
        return self.store.items(kind.store_key, ns), labels, fields

    async def _list(
        self, request: web.Request, kind: kinds.Kind, namespace: str | None
    ) -> web.StreamResponse:
        query = request.query
        if query.get("resourceVersionMatch") and not query.get("resourceVersion"):
            raise errors.bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided"
            )
        items, labels, fields = self._selected(kind, namespace, query)
        limit = _int_param(query, "limit") or 0
        start: tuple[str, str] | None = None
        if query.get("continue"):
            start = _decode_continue(query["continue"])
        rv = self.store.rv
        selected: list[store.Stored] = []
        next_token: str | None = None
        for stored in items:
            meta = stored.obj["metadata"]
            if start is not None and (meta.get("namespace", ""), meta["name"]) <= start:
                continue
            if not labels.empty and not labels.matches(meta.get("labels")):
                continue
            if not fields.empty and not fields.matches(stored.obj):
                continue
            if limit and len(selected) == limit:
                last = selected[-1].obj["metadata"]
                next_token = _encode_continue(rv=rv, namespace=last.get("namespace", ""),
                                              name=last["name"])
                break
            selected.append(stored)
        if kind.storage:
            views = [self.reg.view(kind, s.obj) for s in selected]
            pairs = [(v, watch.encode_json(v)) for v in views]
        else:
            pairs = [(s.obj, s.data) for s in selected]
        if _wants_table(request):
            body = tables.encode_table(
                plural=kind.plural, objects=pairs,
                include_object=query.get("includeObject", "Object"), resource_version=str(rv),
                continue_token=next_token,
            )
        else:
            meta_out: Obj = {"resourceVersion": str(rv)}
            if next_token:
                meta_out["continue"] = next_token
            head = json.dumps({"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                               "metadata": meta_out}, separators=(",", ":")).encode()
            body = head[:-1] + b',"items":[' + b",".join(data for _, data in pairs) + b"]}"
        if len(body) <= LARGE_BODY:
            return _raw_json(body)
        # Large lists go out in slices: asyncio's TLS transport encrypts a single multi-megabyte
        # write far more slowly than a stream of moderate ones.
        response = web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.content_length = len(body)
        if not await self._durable():
            raise self._unavailable()
        await response.prepare(request)
        view = memoryview(body)
        for offset in range(0, len(body), LARGE_BODY):
            await response.write(view[offset:offset + LARGE_BODY])
        await response.write_eof()
        return response

    async def _delete_collection(
        self, request: web.Request, kind: kinds.Kind, namespace: str | None
    ) -> web.Response:
        options = await self._delete_options(request)
        items, labels, fields = self._selected(kind, namespace, request.query)
        victims = [
            s.obj["metadata"] for s in items
            if labels.matches(s.obj["metadata"].get("labels")) and fields.matches(s.obj)
        ]
        deleted: list[Obj] = []
        for meta in victims:
            try:
                result, is_obj = self.reg.delete(
                    kind=kind, namespace=meta.get("namespace", ""), name=meta["name"],
                    options=options, dry_run=request.query.get("dryRun") == "All",
                )
            except errors.ApiError as e:
                if e.code == 404:
                    continue
                raise
            deleted.append(result if is_obj else meta)
        return _json({"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                      "metadata": {"resourceVersion": str(self.store.rv)}, "items": deleted})

    # --- watch ---------------------------------------------------------------------------

    async def _watch(
        self, request: web.Request, kind: kinds.Kind, namespace: str | None
    ) -> web.StreamResponse:
        query = request.query
        _, labels, fields = self._selected(kind, namespace, query)
        rv_param = query.get("resourceVersion", "")
        since: int | None = None
        if rv_param not in ("", "0"):
            try:
                since = int(rv_param)
            except ValueError as e:
                raise errors.bad_request(f"invalid resourceVersion {rv_param!r}") from e
        send_initial = query.get("sendInitialEvents")
        if send_initial is not None:
            if query.get("resourceVersionMatch") != "NotOlderThan":
                raise errors.invalid(kind="ListOptions", group="meta.k8s.io", name="", causes=[(
                    "FieldValueForbidden", "sendInitialEvents",
                    "Forbidden: sendInitialEvents is forbidden for watch unless the "
                    "WatchList feature gate is enabled and resourceVersionMatch is NotOlderThan")])
            since = None if _bool(send_initial) else since
        timeout = _int_param(query, "timeoutSeconds")
        deadline = time.monotonic() + (timeout if timeout and timeout > 0 else
                                        DEFAULT_WATCH_TIMEOUT)
        bookmarks = _bool(query.get("allowWatchBookmarks"))
        table = _wants_table(request)
        include = query.get("includeObject", "Object")
        first_table = [True]

        def encoder(obj: Obj, data: bytes) -> bytes:
            if table:
                t = tables.table(plural=kind.plural, objects=[self.reg.view(kind, obj)],
                                 include_object=include,
                                 resource_version=obj["metadata"].get("resourceVersion", ""),
                                 headers=first_table[0])
                first_table[0] = False
                return watch.encode_json(t)
            if kind.storage:
                return watch.encode_json(self.reg.view(kind, obj))
            return data

        watcher = watch.Watcher(store_key=kind.store_key, namespace=namespace, labels=labels,
                                fields=fields, encoder=encoder)
        response = web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        try:
            self.store.subscribe(watcher, since=since)
        except store.TooOld as e:
            await self._durable()
            await response.prepare(request)
            status = errors.gone(str(e)).status()
            await response.write(watch.line("ERROR", watch.encode_json(status)))
            await response.write_eof()
            return response
        snapshot_rv = self.store.rv  # the initial events reflect exactly this version
        transport = request.transport
        watcher_ref = watcher

        def abort() -> None:
            if transport is not None:
                transport.abort()

        # A client that stops reading blocks our writes; dropping it must also unblock them.
        watcher.on_drop = abort

        async def send(data: bytes) -> None:
            if not await self._durable():  # never show a change that is not on disk
                abort()
                raise ConnectionResetError("devkube cannot persist its state")
            await response.write(data)

        try:
            await response.prepare(request)
            batch: list[bytes] = []
            for item in watcher_ref.initial:
                batch.append(item)
                if len(batch) >= WATCH_BATCH:
                    await send(b"".join(batch))
                    batch = []
            if batch:
                await send(b"".join(batch))
            watcher_ref.initial = ()
            if since is None and _bool(send_initial) and bookmarks:
                await send(self._bookmark(kind, initial_end=True, rv=snapshot_rv))
            last_bookmark = time.monotonic()
            pre_deadline_sent = False
            stop_wait = asyncio.ensure_future(self.stop.wait())
            try:
                while not self.stop.is_set():
                    if watcher_ref.dropped:
                        log.info("dropping a watcher of %s that does not keep up", kind.key)
                        abort()
                        break
                    lines = watcher_ref.take()
                    if lines:
                        await send(b"".join(lines))
                        continue
                    now = time.monotonic()
                    if now >= deadline:
                        break
                    if bookmarks and (
                        now >= last_bookmark + self.bookmark_interval
                        or (not pre_deadline_sent and now >= deadline - 2)
                    ):
                        # Bookmarks: periodically and about 2 s before the stream times out.
                        await send(self._bookmark(kind))
                        last_bookmark = now
                        pre_deadline_sent = pre_deadline_sent or now >= deadline - 2
                        continue
                    wake_at = deadline
                    if bookmarks:
                        wake_at = min(wake_at, last_bookmark + self.bookmark_interval)
                        if not pre_deadline_sent:
                            wake_at = min(wake_at, deadline - 2)
                    wake = asyncio.ensure_future(watcher_ref.wakeup.wait())
                    await asyncio.wait({wake, stop_wait}, timeout=max(wake_at - now, 0.0),
                                       return_when=asyncio.FIRST_COMPLETED)
                    wake.cancel()
            finally:
                stop_wait.cancel()
            if not watcher_ref.dropped:
                await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        finally:
            self.store.unsubscribe(watcher)
        return response

    def _bookmark(
        self, kind: kinds.Kind, *, initial_end: bool = False, rv: int | None = None
    ) -> bytes:
        meta: Obj = {"resourceVersion": str(self.store.rv if rv is None else rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return watch.line("BOOKMARK", watch.encode_json(
            {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta}))

    # --- scale ---------------------------------------------------------------------------

    async def _scale(
        self, request: web.Request, kind: kinds.Kind, ns: str, name: str, *, dry_run: bool
    ) -> web.Response:
        if request.method == "GET":
            return _json(self.reg.scale_of(kind, self.reg.current(kind, ns, name)))
        if request.method == "PUT":
            body = await self._body(request)
            return _json(self.reg.update_scale(kind=kind, namespace=ns, name=name, scale=body,
                                               dry_run=dry_run))
        if request.method == "PATCH":
            content_type = request.content_type
            if content_type not in PATCH_TYPES:
                raise errors.unsupported_media_type(content_type)
            body = await self._body(request, patch=content_type)
            return _json(self.reg.patch_scale(kind=kind, namespace=ns, name=name,
                                              content_type=content_type, body=body,
                                              dry_run=dry_run))
        raise errors.method_not_allowed(f"{request.method} is not supported on scale")

    # --- pods/log ------------------------------------------------------------------------

    async def _log(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        if request.method != "GET":
            raise errors.method_not_allowed("pods/log only supports GET")
        pod = self.reg.current(registry.POD_KIND, ns, name)
        spec = pod.get("spec") or {}
        containers = [c.get("name") for c in (spec.get("initContainers") or []) +
                      (spec.get("containers") or []) + (spec.get("ephemeralContainers") or [])]
        container = request.query.get("container")
        if not container:
            annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(
                "kubectl.kubernetes.io/default-container")
            if annotated:
                container = annotated
            elif len(spec.get("containers") or []) == 1:
                container = spec["containers"][0].get("name")
            else:
                names = " ".join(str(c.get("name")) for c in spec.get("containers") or [])
                raise errors.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: [{names}]"
                )
        if container not in containers:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        node_name = spec.get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting")
            if cs.get("name") == container and waiting and not (cs.get("lastState") or {}):
                raise errors.bad_request(
                    f'container "{container}" in pod "{name}" is waiting to start: '
                    f"{waiting.get('reason', '')}"
                )
        node = self.store.get("/nodes", "", node_name)
        if node is None:
            raise errors.not_found(plural="nodes", group="", name=node_name)
        status = node.get("status") or {}
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
        address = next((addresses[t] for t in ("InternalIP", "ExternalIP", "Hostname")
                        if addresses.get(t)), None)
        if not address:
            raise errors.bad_request(f"node {node_name} has no address to reach its kubelet")
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get(
            "Port", 10250)
        host = f"[{address}]" if ":" in str(address) else str(address)
        params = {k: v for k, v in request.query.items() if k != "container"}
        url = f"https://{host}:{port}/containerLogs/{ns}/{name}/{container}"
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                upstream = await session.get(url, params=params, ssl=self._kubelet_ssl)
            except aiohttp.ClientError as e:
                raise errors.ApiError(
                    code=500, reason="InternalError", message=f'Get "{url}": {e}',
                ) from e
            try:
                if upstream.status != 200:
                    text = (await upstream.text())[:2000]
                    raise errors.ApiError(code=upstream.status if upstream.status >= 400 else 500,
                                          reason="InternalError" if upstream.status >= 500
                                          else "BadRequest", message=text.strip())
                response = web.StreamResponse(status=200)
                response.content_type = "text/plain"
                response.enable_chunked_encoding()
                await response.prepare(request)
                stop_wait = asyncio.ensure_future(self.stop.wait())
                try:
                    while True:
                        read = asyncio.ensure_future(upstream.content.readany())
                        await asyncio.wait({read, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                        if not read.done():
                            read.cancel()
                            break
                        chunk = read.result()
                        if not chunk:
                            break
                        await response.write(chunk)
                    await response.write_eof()
                except ConnectionResetError:
                    # The log reader hung up (Ctrl-C on `kubectl logs -f`): normal, not an error.
                    log.debug("pods/log client for %s/%s went away", ns, name)
                finally:
                    stop_wait.cancel()
                return response
            finally:
                upstream.release()
