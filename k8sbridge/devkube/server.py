"""The HTTP layer of devkube: routing, auth, content negotiation, list/watch streaming, log proxy.

Why: this module turns HTTP requests into calls on the Registry (the semantics) and renders the
answers the way real clients expect (Status bodies, Tables, chunked watch streams with in-stream
errors and bookmarks). It owns no object state itself.

Bearer tokens are checked by ``authn`` (devkube's own token and the service-account tokens
it issues through ``serviceaccounts/NAME/token``), which also answers ``TokenReview`` (so a
kubelet API with webhook token authentication can check the tokens it is shown),
``SelfSubjectReview`` and the service-account issuer's OIDC discovery. Like kube-apiserver
towards kubelets, it presents its kubelet client certificate (``--kubelet-client-certificate``)
when it proxies ``pods/log``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from typing import Any

from aiohttp import web

from k8sbridge.devkube import (
    accessreviews,
    admission,
    apimetrics,
    authn,
    authz,
    discovery,
    errors,
    httpio,
    kinds,
    listing,
    logproxy,
    managedfields,
    metricsapi,
    openapiroutes,
    persistence,
    registry,
    sakeys,
    satokens,
    schemafields,
    store,
    streamproxy,
    subresources,
    tables,
    watching,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

BOOKMARK_INTERVAL = httpio.BOOKMARK_INTERVAL
ANONYMOUS_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
TOKEN_REVIEW_PATH = ("apis", "authentication.k8s.io", "v1", "tokenreviews")
SELF_REVIEW_PATH = ("apis", "authentication.k8s.io", "v1", "selfsubjectreviews")
ADMIN_USER = authn.ADMIN_USER
ADMIN_GROUPS = authn.ADMIN_GROUPS
USER = web.RequestKey("devkube.user", satokens.User)  # the request's authenticated user
NOT_FOUND = "the server could not find the requested resource"


_json = httpio.json_response


def _storage_failed(e: Exception) -> errors.ApiError:
    return errors.ApiError(code=503, reason="ServiceUnavailable",
                           message=f"devkube cannot persist its state and must be restarted: {e}")


class ApiServer:
    """aiohttp application wiring one Registry to HTTP (single event loop owns everything)."""

    def __init__(
        self, *, reg: registry.Registry, token: str | None, server_address: str,
        stop: asyncio.Event, bookmark_interval: float = BOOKMARK_INTERVAL,
        kubelet_client_cert: tuple[str, str] | None = None,  # (cert, key) shown to kubelets
        durability: persistence.GroupCommit | None = None,  # replies wait for its commits
        signing_key: sakeys.SigningKey | None = None,  # None: a new one (not kept)
        server_url: str = "",  # how clients reach this server (the JWKS address)
    ) -> None:
        self.reg = reg
        self.authn = authn.Authenticator(
            token=token, key=signing_key or sakeys.SigningKey.generate(), lookup=reg.lookup)
        self.server_url = server_url or f"https://{server_address}"
        self.authz = authz.Authorizer(st=reg.store)  # RBAC (+ system:masters) on each request
        reg.guard = self.authz.guard  # escalation checks on Roles and bindings
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
        self.metrics = apimetrics.RequestMetrics()  # /metrics: apiserver_request_*
        self.ctx = httpio.Context(
            reg=reg, durable=self._durable, unavailable=self._unavailable, stop=stop,
            bookmark_interval=bookmark_interval, kubelet_ssl=self._kubelet_ssl,
        )

    def app(self) -> web.Application:
        app = web.Application(client_max_size=httpio.MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # --- entry ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        durability = self.durability
        if durability is not None and durability.failure is not None:
            return httpio.error_response(_storage_failed(durability.failure))
        started = time.perf_counter()
        response = await self._answer(request)
        self.metrics.observe(method=request.method, path=request.path, query=request.query,
                             content_type=request.headers.get("Content-Type", ""),
                             code=response.status, seconds=time.perf_counter() - started)
        # Durable before visible: nothing this reply may show (or imply) goes out before the
        # changes staged so far are committed. Streams wait before each of their own writes.
        if not response.prepared and not await self._durable():
            return httpio.error_response(self._unavailable())
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
        current = None
        try:
            self._authenticate(request)
            current = self._authorize(request)
            return await self._dispatch(request)
        except errors.ApiError as e:
            return httpio.error_response(e)
        except store.TooLarge as e:
            return httpio.error_response(errors.too_large(str(e)))
        except web.HTTPRequestEntityTooLarge as e:
            return httpio.error_response(errors.too_large(f"the request is too large: {e.text}"))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:  # a bug must never take the server down: answer 500 and log
            log.exception("internal error serving %s %s", request.method, request.path)
            return httpio.error_response(errors.ApiError(code=500, reason="InternalError",
                                          message=f"Internal error occurred: {e}"))
        finally:
            if current is not None:
                authz.CURRENT.reset(current)

    def _authenticate(self, request: web.Request) -> None:
        if request.path in ANONYMOUS_PATHS:
            return
        request[USER] = self.authn.request_user(request.headers.get("Authorization", ""))

    def _authorize(self, request: web.Request) -> Any:
        """Impersonation, then RBAC: 403 unless the request is allowed; the user and the
        request's attributes are kept for the escalation checks (a reset token)."""
        if request.path in ANONYMOUS_PATHS:
            return None
        user = self.authz.impersonate(request[USER], request.headers, request.headers)
        request[USER] = user
        if authz.PRIVILEGED in user.groups:  # allowed whatever it asks: no attributes needed
            return authz.CURRENT.set(authz.Current(user=user, attributes=None))
        attributes = authz.attributes(user, method=request.method, path=request.path,
                                      query=request.query)
        self.authz.check(attributes)
        return authz.CURRENT.set(authz.Current(user=user, attributes=attributes))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return _json(discovery.version())
        if path == "/metrics":
            return web.Response(body=self.metrics.exposition(),
                                headers={"Content-Type": apimetrics.CONTENT_TYPE})
        if path == "/api":
            return _json(discovery.api_versions(server_address=self.server_address))
        if path == "/apis":
            return _json(discovery.api_group_list())
        if tuple(parts) in (TOKEN_REVIEW_PATH, SELF_REVIEW_PATH):
            return await self._review(request, parts[-1])
        if parts[:3] == ["apis", accessreviews.GROUP, "v1"] and parts[-1] in accessreviews.KINDS \
                and (len(parts) == 4 or (len(parts) == 6 and parts[3] == "namespaces")):
            return await self._access_review(request, parts)
        if path == authn.OPENID_PATH:
            return _json(self.authn.openid_configuration(server_url=self.server_url))
        if path == authn.JWKS_PATH:
            return web.json_response(self.authn.jwks(), content_type="application/jwk-set+json")
        if parts[:2] == ["openapi", "v3"]:
            return openapiroutes.v3(request, parts[2:])
        if parts == ["openapi", "v2"]:
            return openapiroutes.v2(request)
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
        if group_version == metricsapi.GROUP_VERSION:
            return await metricsapi.serve(request, ctx=self.ctx, rest=rest)
        return await self._resource(request, group_version, rest)

    async def _review(self, request: web.Request, plural: str) -> web.Response:
        """authentication.k8s.io/v1 TokenReview and SelfSubjectReview (create only)."""
        if request.method != "POST":
            raise errors.method_not_allowed(
                f"{request.method} is not supported on {plural} (create only)")
        body = await httpio.read_body(request)
        if plural == "tokenreviews":
            return _json(self.authn.token_review(body), status=201)
        return _json(self.authn.self_subject_review(request[USER], body), status=201)

    async def _access_review(self, request: web.Request, parts: list[str]) -> web.Response:
        """authorization.k8s.io/v1 access and rules reviews (create only, not stored)."""
        plural = parts[-1]
        namespaced = plural.startswith("local")
        if namespaced != (len(parts) == 6):
            raise errors.ApiError(code=404, reason="NotFound", message=NOT_FOUND)
        if request.method != "POST":
            raise errors.method_not_allowed(
                f"{request.method} is not supported on {plural} (create only)")
        body = await httpio.read_body(request)
        return _json(accessreviews.review(self.authz, plural=plural, body=body,
                                          user=request[USER],
                                          namespace=parts[4] if namespaced else ""),
                     status=201)

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
                if httpio.bool_param(query, "watch"):
                    return await watching.serve_watch(request, ctx=self.ctx, kind=kind,
                                                    namespace=namespace)
                return await listing.serve_list(request, ctx=self.ctx, kind=kind,
                                                namespace=namespace)
            if method == "POST":
                if kind.namespaced and namespace is None:
                    raise errors.method_not_allowed(
                        f"POST is not supported on cluster-wide {kind.plural}"
                    )
                body = await httpio.read_body(request)
                warnings = self._field_validation(request, kind, body)
                if kind.plural == "pods" and self.reg.service_account_admission:
                    await self._await_default_service_account(ns, body)
                obj = self.reg.create(kind=kind, namespace=ns, body=body, dry_run=dry_run,
                                      manager=_manager(request, kind, ""))
                return httpio.with_warnings(self._object(kind, obj, status=201), warnings)
            if method == "DELETE":
                return await listing.serve_delete_collection(request, ctx=self.ctx, kind=kind,
                                                             namespace=namespace)
            raise errors.method_not_allowed(f"{method} is not supported on a collection")
        if sub == "log":
            return await logproxy.proxy_log(request, ctx=self.ctx, ns=ns, name=name)
        if sub in ("exec", "attach", "portforward"):
            return await streamproxy.proxy_stream(request, ctx=self.ctx, sub=sub, ns=ns,
                                                  name=name)
        if sub == "token":
            if method != "POST":
                raise errors.method_not_allowed("serviceaccounts/token only supports POST")
            body = await httpio.read_body(request)
            return _json(satokens.token_request(
                key=self.authn.key, lookup=self.reg.lookup, namespace=ns, name=name,
                body=body, now=self.authn.clock()), status=201)
        if sub == "binding":
            if method != "POST":
                raise errors.method_not_allowed("pods/binding only supports POST")
            body = await httpio.read_body(request)
            bound = subresources.bind(self.reg, namespace=ns, name=name, body=body)
            return _json(bound, status=201)
        if sub == "eviction":
            if method != "POST":
                raise errors.method_not_allowed("pods/eviction only supports POST")
            body = await httpio.read_body(request)
            evicted = subresources.evict(self.reg, namespace=ns, name=name, body=body,
                                         dry_run=dry_run)
            return _json(evicted, status=201)
        if sub == "scale":
            return await self._scale(request, kind, ns, name, dry_run=dry_run)
        if method == "GET":
            if not httpio.wants_table(request):
                return self._object(kind, self.reg.view(kind, self.reg.stored(kind, ns, name).obj))
            obj = self.reg.view(kind, self.reg.current(kind, ns, name))
            return _json(tables.table(
                plural=kind.plural, objects=[obj],
                include_object=query.get("includeObject", "Object"),
                resource_version=str(self.store.rv),
            ))
        if method == "PUT":
            body = await httpio.read_body(request)
            warnings = self._field_validation(request, kind, body)
            obj = self.reg.update(kind=kind, namespace=ns, name=name, body=body, subresource=sub,
                                  dry_run=dry_run, manager=_manager(request, kind, sub or ""))
            return httpio.with_warnings(self._object(kind, obj), warnings)
        if method == "PATCH":
            content_type = httpio.media_type(request)
            body = await httpio.read_body(request, patch=True)
            warnings = []
            if content_type != "application/json-patch+json":
                warnings = self._field_validation(request, kind, body)
            managedfields.check_options(apply=content_type == "application/apply-patch+yaml",
                                        field_manager=query.get("fieldManager"),
                                        force=query.get("force"))
            creating = content_type == "application/apply-patch+yaml" and \
                self.store.peek(kind.store_key, ns, name) is None  # an apply that creates: 201
            obj = self.reg.patch(kind=kind, namespace=ns, name=name, content_type=content_type,
                                 body=body, subresource=sub, dry_run=dry_run,
                                 manager=_manager(request, kind, sub or ""),
                                 force=query.get("force") == "true")
            return httpio.with_warnings(
                self._object(kind, obj, status=201 if creating else 200), warnings)
        if method == "DELETE":
            options = await httpio.delete_options(request)
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
                return httpio.raw_json(stored.data, status=status)
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

    async def _await_default_service_account(self, namespace: str, pod: object) -> None:
        """Like the admission plugin, look a missing ``default`` ServiceAccount up again for
        a while (its controller makes it) before the pod is refused."""
        name = admission.service_account_name(pod)
        if name != admission.DEFAULT_SERVICE_ACCOUNT:
            return
        interval = random.uniform(0.1, 0.2)
        for _ in range(admission.DEFAULT_RETRIES - 1):
            if self.reg.lookup("namespaces", "", namespace) is None or \
                    self.reg.lookup("serviceaccounts", namespace, name) is not None:
                return
            await asyncio.sleep(interval)

    # --- scale ---------------------------------------------------------------------------

    async def _scale(
        self, request: web.Request, kind: kinds.Kind, ns: str, name: str, *, dry_run: bool
    ) -> web.Response:
        if request.method == "GET":
            return _json(subresources.scale_of(kind, self.reg.current(kind, ns, name)))
        if request.method == "PUT":
            body = await httpio.read_body(request)
            return _json(subresources.update_scale(self.reg, 
                kind=kind, namespace=ns, name=name, scale=body, dry_run=dry_run,
                manager=_manager(request, kind, "scale")))
        if request.method == "PATCH":
            content_type = httpio.media_type(request)
            body = await httpio.read_body(request, patch=True)
            return _json(subresources.patch_scale(self.reg, 
                kind=kind, namespace=ns, name=name, content_type=content_type, body=body,
                dry_run=dry_run, manager=_manager(request, kind, "scale")))
        raise errors.method_not_allowed(f"{request.method} is not supported on scale")


def _manager(request: web.Request, kind: kinds.Kind, sub: str) -> managedfields.Manager:
    """Who writes, for managedFields: fieldManager, else the user agent's product."""
    return managedfields.Manager.from_request(
        request.query.get("fieldManager"), request.headers.get("User-Agent", ""),
        subresource=sub, api_version=kind.api_version, moment=registry.now())
