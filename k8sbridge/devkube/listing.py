"""Serving lists and collection deletes: selectors, paging with continue tokens, Tables.

Why: lists are the largest answers devkube gives (every pod of a 5,000-pod cluster for each
informer that starts), so they are assembled from each object's stored JSON bytes rather than
re-encoded, and written in slices; the semantics (selectors, ``limit``/``continue``,
``resourceVersionMatch``) are kube-apiserver's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from k8sbridge.devkube import errors, httpio, kinds, selectors, store, tables, watch

Obj = dict[str, Any]


def select(
    *, ctx: httpio.Context, kind: kinds.Kind, namespace: str | None, query: Any,
) -> tuple[Iterable[store.Stored], selectors.LabelSelector, selectors.FieldSelector]:
    labels = selectors.parse_labels(query.get("labelSelector"))
    fields = selectors.parse_fields(query.get("fieldSelector"), supported=kind.fields)
    ns = namespace
    if ns is None:
        ns = fields.exact("metadata.namespace") if kind.namespaced else None
    return ctx.reg.store.items(kind.store_key, ns), labels, fields

async def serve_list(
    request: web.Request, *, ctx: httpio.Context, kind: kinds.Kind, namespace: str | None
) -> web.StreamResponse:
    """A list (JSON or Table), paged by ``limit``/``continue``; large ones sent in slices."""
    query = request.query
    httpio.resource_version_param(query)  # any version serves; one that does not parse is a 400
    if query.get("resourceVersionMatch") and not query.get("resourceVersion"):
        raise errors.bad_request(
            "resourceVersionMatch is forbidden unless resourceVersion is provided"
        )
    items, labels, fields = select(ctx=ctx, kind=kind, namespace=namespace, query=query)
    limit = httpio.int_param(query, "limit") or 0
    start: tuple[str, str] | None = None
    if query.get("continue"):
        start = httpio.decode_continue(query["continue"])
    rv = ctx.reg.store.rv
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
            next_token = httpio.encode_continue(rv=rv, namespace=last.get("namespace", ""),
                                          name=last["name"])
            break
        selected.append(stored)
    if kind.storage:
        views = [ctx.reg.view(kind, s.obj) for s in selected]
        pairs = [(v, watch.encode_json(v)) for v in views]
    else:
        pairs = [(s.obj, s.data) for s in selected]
    if httpio.wants_table(request):
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
    if len(body) <= httpio.LARGE_BODY:
        return httpio.raw_json(body)
    # Large lists go out in slices: asyncio's TLS transport encrypts a single multi-megabyte
    # write far more slowly than a stream of moderate ones.
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    response.content_length = len(body)
    if not await ctx.durable():
        raise ctx.unavailable()
    await response.prepare(request)
    view = memoryview(body)
    for offset in range(0, len(body), httpio.LARGE_BODY):
        await response.write(view[offset:offset + httpio.LARGE_BODY])
    await response.write_eof()
    return response

async def serve_delete_collection(
    request: web.Request, *, ctx: httpio.Context, kind: kinds.Kind, namespace: str | None
) -> web.Response:
    options = await httpio.delete_options(request)
    items, labels, fields = select(ctx=ctx, kind=kind, namespace=namespace, query=request.query)
    victims = [
        s.obj["metadata"] for s in items
        if labels.matches(s.obj["metadata"].get("labels")) and fields.matches(s.obj)
    ]
    deleted: list[Obj] = []
    for meta in victims:
        try:
            result, is_obj = ctx.reg.delete(
                kind=kind, namespace=meta.get("namespace", ""), name=meta["name"],
                options=options, dry_run=request.query.get("dryRun") == "All",
            )
        except errors.ApiError as e:
            if e.code == 404:
                continue
            raise
        deleted.append(result if is_obj else meta)
    return httpio.json_response({"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                  "metadata": {"resourceVersion": str(ctx.reg.store.rv)}, "items": deleted})
