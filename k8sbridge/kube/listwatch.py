"""List then watch one kind of object, as client-go's reflector does, feeding a store that
always holds the whole set.

Why not kopf here: kopf's event handlers see each object as it changes but never learn that an
object was deleted while the watch was down (after a relist it only announces what exists).
A consumer that must hold exactly the objects that exist (the service proxy: a deleted Service
left in its rules keeps routing) needs the reflector's contract: a relist *replaces* the
store. ``run`` lists, hands the complete list to ``replace``, then watches from the list's
resourceVersion and hands each event to ``update``; a watch that ends is resumed from the last
resourceVersion seen, a 410 Gone (or any error) relists after a short back-off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors

__all__ = ["run"]

log = logging.getLogger(__name__)

RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


async def _watch(
    kube: kube_client.KubeClient, path: str, *, version: str,
    update: Callable[[str, kube_client.RawObject], None],
) -> str:
    """Follow one watch stream from ``version``; the last resourceVersion seen."""
    query = {"resourceVersion": version, "allowWatchBookmarks": "true",
             "timeoutSeconds": "300"}
    async for event in kube.watch(path, query=query):
        kind = str(event.get("type") or "")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise errors.Gone(f"watch {path}: {obj.get('message')}", status=410)
            raise errors.TransportError(f"watch {path}: {obj.get('message')}")
        version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            update(kind, obj)
    return version


async def run(
    kube: kube_client.KubeClient,
    path: str,
    *,
    replace: Callable[[list[kube_client.RawObject]], None],
    update: Callable[[str, kube_client.RawObject], None],
    stop: asyncio.Event,
) -> None:
    """List and watch ``path`` (a collection, e.g. ``/api/v1/services``) until ``stop``."""
    failures = 0
    while not stop.is_set():
        try:
            listed = await kube.get(path)
            replace(list(listed.get("items") or []))
            version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
            failures = 0
            while not stop.is_set():
                version = await _watch(kube, path, version=version, update=update)
        except errors.Gone:
            log.info("watch of %s expired: listing again", path)
        except errors.KubeError as e:
            delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            failures += 1
            log.warning("list/watch of %s failed (%s): again in %gs", path, e, delay)
            try:
                async with asyncio.timeout(delay):
                    await stop.wait()
            except TimeoutError:
                pass
