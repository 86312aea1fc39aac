"""Serving watch streams: initial events, changes, bookmarks and in-stream errors.

Why: informers (client-go, kopf, the official client, kubectl --watch) depend on the exact
stream semantics of kube-apiserver: a 410 Expired ERROR event for a version that is too old, a
BOOKMARK marking the end of the initial events (WatchList), bookmarks before the timeout, and a
stream that never shows a change that is not yet durable. A client that stops reading is
dropped so it cannot block the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web

from k8sbridge.devkube import errors, httpio, kinds, listing, store, tables, watch

log = logging.getLogger(__name__)

Obj = dict[str, Any]


async def serve_watch(
    request: web.Request, *, ctx: httpio.Context, kind: kinds.Kind, namespace: str | None
) -> web.StreamResponse:
    """A chunked watch stream: initial events, changes, bookmarks, until timeout or stop."""
    query = request.query
    _, labels, fields = listing.select(ctx=ctx, kind=kind, namespace=namespace, query=query)
    since = httpio.resource_version_param(query)
    send_initial = query.get("sendInitialEvents")
    if send_initial is not None:
        if query.get("resourceVersionMatch") != "NotOlderThan":
            raise errors.invalid(kind="ListOptions", group="meta.k8s.io", name="", causes=[(
                "FieldValueForbidden", "sendInitialEvents",
                "Forbidden: sendInitialEvents is forbidden for watch unless the "
                "WatchList feature gate is enabled and resourceVersionMatch is NotOlderThan")])
        since = None if httpio.bool_param(query, "sendInitialEvents") else since
    timeout = httpio.int_param(query, "timeoutSeconds")
    deadline = time.monotonic() + (timeout if timeout and timeout > 0 else
                                    httpio.DEFAULT_WATCH_TIMEOUT)
    bookmarks = httpio.bool_param(query, "allowWatchBookmarks")
    table = httpio.wants_table(request)
    include = query.get("includeObject", "Object")
    first_table = [True]

    def encoder(obj: Obj, data: bytes) -> bytes:
        if table:
            t = tables.table(plural=kind.plural, objects=[ctx.reg.view(kind, obj)],
                             include_object=include,
                             resource_version=obj["metadata"].get("resourceVersion", ""),
                             headers=first_table[0])
            first_table[0] = False
            return watch.encode_json(t)
        if kind.storage:
            return watch.encode_json(ctx.reg.view(kind, obj))
        return data

    watcher = watch.Watcher(store_key=kind.store_key, namespace=namespace, labels=labels,
                            fields=fields, encoder=encoder)
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    response.enable_chunked_encoding()
    try:
        ctx.reg.store.subscribe(watcher, since=since)
    except store.TooOld as e:
        await ctx.durable()
        await response.prepare(request)
        status = errors.gone(str(e)).status()
        await response.write(watch.line("ERROR", watch.encode_json(status)))
        await response.write_eof()
        return response
    snapshot_rv = ctx.reg.store.rv  # the initial events reflect exactly this version
    transport = request.transport
    watcher_ref = watcher

    def abort() -> None:
        if transport is not None:
            transport.abort()

    # A client that stops reading blocks our writes; dropping it must also unblock them.
    watcher.on_drop = abort

    async def send(data: bytes) -> None:
        if not await ctx.durable():  # never show a change that is not on disk
            abort()
            raise ConnectionResetError("devkube cannot persist its state")
        await response.write(data)

    try:
        await response.prepare(request)
        batch: list[bytes] = []
        for item in watcher_ref.initial:
            batch.append(item)
            if len(batch) >= httpio.WATCH_BATCH:
                await send(b"".join(batch))
                batch = []
        if batch:
            await send(b"".join(batch))
        watcher_ref.initial = ()
        if since is None and httpio.bool_param(query, "sendInitialEvents") and bookmarks:
            await send(_bookmark(ctx=ctx, kind=kind, initial_end=True, rv=snapshot_rv))
        last_bookmark = time.monotonic()
        pre_deadline_sent = False
        stop_wait = asyncio.ensure_future(ctx.stop.wait())
        try:
            while not ctx.stop.is_set():
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
                    now >= last_bookmark + ctx.bookmark_interval
                    or (not pre_deadline_sent and now >= deadline - 2)
                ):
                    # Bookmarks: periodically and about 2 s before the stream times out.
                    await send(_bookmark(ctx=ctx, kind=kind))
                    last_bookmark = now
                    pre_deadline_sent = pre_deadline_sent or now >= deadline - 2
                    continue
                wake_at = deadline
                if bookmarks:
                    wake_at = min(wake_at, last_bookmark + ctx.bookmark_interval)
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
        ctx.reg.store.unsubscribe(watcher)
    return response

def _bookmark(
    *, ctx: httpio.Context, kind: kinds.Kind, initial_end: bool = False, rv: int | None = None
) -> bytes:
    meta: Obj = {"resourceVersion": str(ctx.reg.store.rv if rv is None else rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return watch.line("BOOKMARK", watch.encode_json(
        {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta}))
