"""HTTP answers of ``/openapi/v2`` and ``/openapi/v3`` with kube-openapi's caching headers.

Why: client-go caches the per-group-version v3 documents by the ``hash`` query parameter the
index hands out, and revalidates with ETags; answering as kube-openapi's handlers do (an ETag
of the document's SHA-512, ``public, immutable`` for a URL with the current hash, a 301 to the
current hash for a stale one, 304 for a matching ``If-None-Match``) keeps kubectl's caches
correct. The documents themselves come from discovery (v3) and openapiv2.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import time

from aiohttp import web

from k8sbridge.devkube import discovery, errors

YEAR = 365 * 24 * 3600
PROTOBUF_ACCEPTS = ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")


def _not_found() -> errors.ApiError:
    return errors.ApiError(code=404, reason="NotFound",
                           message="the server could not find the requested resource")


def _answer(request: web.Request, body: bytes, content_type: str, etag: str,
            cache: str) -> web.Response:
    headers = {"ETag": f'"{etag}"', "Cache-Control": cache, "Vary": "Accept"}
    if cache.startswith("public"):
        headers["Expires"] = email.utils.formatdate(time.time() + YEAR, usegmt=True)
    if etag in request.headers.get("If-None-Match", "").replace('"', " ").split():
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=content_type, headers=headers)


def _etag(body: bytes) -> str:
    return hashlib.sha512(body).hexdigest().upper()


def v2(request: web.Request) -> web.Response:
    accept = request.headers.get("Accept", "")
    if any(kind in accept for kind in PROTOBUF_ACCEPTS):
        body = discovery.openapi_v2_protobuf()
        content_type = discovery.OPENAPI_V2_CONTENT_TYPE
    else:
        body, content_type = discovery.openapi_v2_json(), "application/json"
    return _answer(request, body, content_type, _etag(body), "no-cache, private")


def v3(request: web.Request, rest: list[str]) -> web.Response:
    if not rest:
        body = json.dumps(discovery.openapi_index(), sort_keys=True).encode()
        return _answer(request, body, "application/json", _etag(body), "no-cache, private")
    if rest[0] == "api" and len(rest) == 2:
        served = discovery.openapi_document_bytes(rest[1])
    elif rest[0] == "apis" and len(rest) == 3:
        served = discovery.openapi_document_bytes(f"{rest[1]}/{rest[2]}")
    else:
        served = None
    if served is None:
        raise _not_found()
    body, digest = served
    asked = request.query.get("hash")
    if asked is None:
        return _answer(request, body, "application/json", digest, "no-cache, private")
    if asked != digest:
        return web.Response(status=301, headers={"Location": f"{request.path}?hash={digest}"})
    return _answer(request, body, "application/json", digest, "public, immutable")
