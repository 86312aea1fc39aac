"""List + watch one resource into a local cache and tell handlers what changed (a reflector).

The cache belongs to this informer's task; controllers read it synchronously (one event loop,
so no locks) and react to ``(old, new)`` notifications by queueing keys. After their own writes
controllers put the server's reply into the cache (``upsert``/``remove``) so a second pass
before the watch catches up does not create or delete twice; older watch events are then
recognised by their resourceVersion and dropped. An expired resourceVersion (in-stream ERROR
410, or HTTP 410) triggers a relist.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import errors
from k8sbridge.devkube.controllers.raw import (
    ObjectKey,
    ObjectUid,
    RawObject,
    controller_ref,
    key_of,
    owner_refs,
    uid_of,
)

log = logging.getLogger(__name__)

Handler = Callable[[RawObject | None, RawObject | None], None]
"""Called with (old, new): new is None on deletion, old is None on creation."""

GONE_SECONDS = 120.0  # how long a deleted UID is remembered to drop late, stale updates


def _rv(obj: RawObject) -> int | None:
    try:
        return int(str((obj.get("metadata") or {}).get("resourceVersion")))
    except (TypeError, ValueError):
        return None


def is_older(candidate: RawObject, current: RawObject) -> bool:
    """True if ``candidate`` is known to be an older state than ``current``.

    resourceVersions are opaque in general, but devkube's are one global integer counter,
    which is the only server these controllers run against; non-integers never compare.
    """
    a, b = _rv(candidate), _rv(current)
    return a is not None and b is not None and a < b


class Informer:
    def __init__(self, *, client: api.ApiClient, resource: api.Resource,
                 namespace: str | None = None, watch_timeout: int = 290) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.synced = asyncio.Event()
        self._cache: dict[ObjectKey, RawObject] = {}
        self._by_namespace: dict[str, dict[ObjectKey, RawObject]] = {}
        self._by_owner: dict[ObjectUid, set[ObjectKey]] = {}
        self._uncontrolled: dict[str, set[ObjectKey]] = {}  # namespace → keys w/o controller
        self._gone: dict[ObjectUid, float] = {}  # deleted UIDs → when (monotonic)
        self._handlers: list[Handler] = []
        self._rv = ""
        self.relists = 0  # how many full LISTs were needed (1 + one per expired watch)
        self._watch_timeout = watch_timeout

    # -- reading ------------------------------------------------------------------------

    def get(self, key: ObjectKey) -> RawObject | None:
        return self._cache.get(key)

    def items(self, namespace: str | None = None) -> list[RawObject]:
        if namespace is None:
            return list(self._cache.values())
        return list(self._by_namespace.get(namespace, {}).values())

    def owned_by(self, uid: ObjectUid) -> list[RawObject]:
        """Objects with an ownerReference (controller or not) to ``uid``."""
        return [self._cache[k] for k in self._by_owner.get(uid, ()) if k in self._cache]

    def controlled_by(self, uid: ObjectUid) -> list[RawObject]:
        """Objects whose controller ownerReference points to ``uid``."""
        return [o for o in self.owned_by(uid) if (controller_ref(o) or {}).get("uid") == uid]

    def uncontrolled(self, namespace: str) -> list[RawObject]:
        """Objects in ``namespace`` without a controller (candidates for adoption)."""
        return [self._cache[k] for k in self._uncontrolled.get(namespace, ())
                if k in self._cache]

    def __iter__(self) -> Iterator[RawObject]:
        return iter(list(self._cache.values()))

    def __len__(self) -> int:
        return len(self._cache)

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    # -- writing (the informer's own watch, and write-through after our writes) ------------

    def upsert(self, obj: RawObject) -> None:
        key = key_of(obj)
        old = self._cache.get(key)
        if old is not None and is_older(obj, old):
            return
        if uid_of(obj) in self._gone:
            return  # a reply or event that raced with the object's deletion
        self._store(key, obj, old)
        self._notify(old, obj)

    def remove(self, obj: RawObject) -> None:
        """Forget ``obj`` (it was deleted); late updates about the same UID are then ignored."""
        key = key_of(obj)
        self._mark_gone(uid_of(obj))
        old = self._cache.get(key)
        if old is not None and uid_of(old) != uid_of(obj):
            return  # a newer object of the same name is cached
        if old is not None:
            self._drop(key, old)
            self._notify(old, None)

    def _store(self, key: ObjectKey, obj: RawObject, old: RawObject | None) -> None:
        if old is not None:
            self._unindex(key, old)
        self._cache[key] = obj
        ns = (obj.get("metadata") or {}).get("namespace") or ""
        self._by_namespace.setdefault(ns, {})[key] = obj
        for ref in owner_refs(obj):
            self._by_owner.setdefault(ObjectUid(str(ref.get("uid", ""))), set()).add(key)
        if controller_ref(obj) is None:
            self._uncontrolled.setdefault(ns, set()).add(key)

    def _unindex(self, key: ObjectKey, old: RawObject) -> None:
        ns = (old.get("metadata") or {}).get("namespace") or ""
        bucket = self._by_namespace.get(ns)
        if bucket is not None:
            bucket.pop(key, None)
            if not bucket:
                del self._by_namespace[ns]
        free = self._uncontrolled.get(ns)
        if free is not None:
            free.discard(key)
            if not free:
                del self._uncontrolled[ns]
        for ref in owner_refs(old):
            uid = ObjectUid(str(ref.get("uid", "")))
            keys = self._by_owner.get(uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_owner[uid]

    def _drop(self, key: ObjectKey, old: RawObject) -> None:
        self._unindex(key, old)
        del self._cache[key]

    def _notify(self, old: RawObject | None, new: RawObject | None) -> None:
        for handler in self._handlers:
            try:
                handler(old, new)
            except Exception:  # a handler bug must not kill the watch
                log.exception("%s informer handler failed", self.resource.plural)

    def _apply_event(self, kind: str, obj: RawObject) -> None:
        if kind in ("ADDED", "MODIFIED"):
            self.upsert(obj)
        elif kind == "DELETED":
            key = key_of(obj)
            self._mark_gone(uid_of(obj))
            old = self._cache.get(key)
            if old is not None and uid_of(old) == uid_of(obj):
                self._drop(key, old)
                self._notify(old, None)

    def _mark_gone(self, uid: ObjectUid) -> None:
        now = time.monotonic()
        self._gone[uid] = now
        if len(self._gone) > 4096:  # bounded: forget the old ones
            limit = now - GONE_SECONDS
            for old_uid in [u for u, t in self._gone.items() if t < limit]:
                del self._gone[old_uid]

    # -- the list/watch loop ------------------------------------------------------------

    async def _relist(self) -> None:
        reply = await self.client.list(self.resource, namespace=self.namespace)
        self.relists += 1
        self._rv = str((reply.get("metadata") or {}).get("resourceVersion") or "")
        fresh: dict[ObjectKey, RawObject] = {}
        for item in reply.get("items") or []:
            if isinstance(item, dict):
                item.setdefault("kind", self.resource.kind)
                item.setdefault("apiVersion", self.resource.group_version)
                fresh[key_of(item)] = item
        for key, gone in list(self._cache.items()):
            if key not in fresh:
                self._drop(key, gone)
                self._notify(gone, None)
        for key, obj in fresh.items():
            old = self._cache.get(key)
            if old is not None and old == obj:
                continue
            self._store(key, obj, old)
            self._notify(old, obj)

    async def run(self, *, stop: asyncio.Event) -> None:
        delay = 0.05
        need_list = True
        while not stop.is_set():
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                    self.synced.set()
                async for event in self.client.watch(
                        self.resource, namespace=self.namespace, resource_version=self._rv,
                        timeout_seconds=self._watch_timeout):
                    kind = event["type"]
                    obj = event["object"]
                    if kind == "ERROR":
                        code = obj.get("code")
                        log.info("%s watch error %s: %s; relisting", self.resource.plural,
                                 code, obj.get("message"))
                        need_list = True
                        break
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if rv:
                        self._rv = str(rv)
                    if kind != "BOOKMARK":
                        self._apply_event(kind, obj)
                    delay = 0.05
            except errors.Gone:
                need_list = True
            except errors.ControllerError as e:
                log.warning("%s list/watch failed (%s); retrying in %.2fs",
                            self.resource.plural, e, delay)
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, 5.0)
                need_list = need_list or not self._rv
            except Exception:  # unexpected data must not end the informer: start over
                log.exception("%s informer failed; relisting in %.2fs", self.resource.plural,
                              delay)
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, 5.0)
                need_list = True


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        pass
