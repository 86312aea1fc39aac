"""The garbage collector: dependents follow their owners (ownerReferences).

Background cascading deletion: an object all of whose owners are gone is deleted; an owner
that no longer exists (or exists with another UID) is verified with a live GET before anything
is deleted, since our caches of different kinds lag independently. Dangling references next to
a live owner are removed. Owners deleted with ``propagationPolicy=Orphan`` carry the
``orphan`` finalizer: their dependents lose the ownerReference, then the finalizer is removed;
``Foreground`` owners carry ``foregroundDeletion``: their blocking dependents are deleted
first, then the finalizer is removed.
"""

from __future__ import annotations

import asyncio
import logging

from k8sbridge.devkube.controllers import base, errors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.informer import Handler, Informer
from k8sbridge.devkube.controllers.raw import (
    ObjectKey,
    ObjectUid,
    RawObject,
    RawOwnerReference,
    key_of,
    owner_refs,
    uid_of,
)
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)

ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"


class GarbageCollector:
    """Watches the given informers; queue keys are ``"<plural>:<ns/name>"``."""

    def __init__(self, *, client: api.ApiClient, informers: list[Informer]) -> None:
        self.client = client
        self.informers = {inf.resource.plural: inf for inf in informers}
        self.queue = WorkQueue(name="garbagecollector")
        for inf in informers:
            inf.add_handler(self._handler_for(inf))

    def _handler_for(self, inf: Informer) -> Handler:
        plural = inf.resource.plural

        def handle(old: RawObject | None, new: RawObject | None) -> None:
            if new is not None:
                if owner_refs(new):
                    self.queue.add(ObjectKey(f"{plural}:{key_of(new)}"))
                finalizers = (new.get("metadata") or {}).get("finalizers") or []
                if podfacts.is_terminating(new) and (
                        ORPHAN_FINALIZER in finalizers or FOREGROUND_FINALIZER in finalizers):
                    self.queue.add(ObjectKey(f"owner|{plural}:{key_of(new)}"))
            else:
                assert old is not None
                self._enqueue_dependents(uid_of(old))
                # a foreground owner may be waiting for this dependent
                for ref in owner_refs(old):
                    self._enqueue_owner_of(old, ref)

        return handle

    def _enqueue_dependents(self, uid: ObjectUid) -> None:
        for plural, inf in self.informers.items():
            for dep in inf.owned_by(uid):
                self.queue.add(ObjectKey(f"{plural}:{key_of(dep)}"))

    def _enqueue_owner_of(self, dependent: RawObject, ref: RawOwnerReference) -> None:
        res = api.resource_for(api_version=str(ref.get("apiVersion", "")),
                               kind=str(ref.get("kind", "")))
        if res is None or res.plural not in self.informers:
            return
        ns = (dependent.get("metadata") or {}).get("namespace")
        key = f"{ns}/{ref.get('name')}" if res.namespaced and ns else str(ref.get("name"))
        self.queue.add(ObjectKey(f"owner|{res.plural}:{key}"))

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=list(self.informers.values()))
        finally:
            self.queue.close()

    async def sync(self, item: ObjectKey) -> float | None:
        if item.startswith("owner|"):
            plural, _, key = item.removeprefix("owner|").partition(":")
            await self._process_owner(plural, ObjectKey(key))
        else:
            plural, _, key = item.partition(":")
            await self._process_dependent(plural, ObjectKey(key))
        return None

    # -- dependents ----------------------------------------------------------------------

    async def _owner_state(self, dependent: RawObject,
                           ref: RawOwnerReference) -> RawObject | None:
        """The owner if it exists with the referenced UID, else ``None`` (verified live)."""
        res = api.resource_for(api_version=str(ref.get("apiVersion", "")),
                               kind=str(ref.get("kind", "")))
        if res is None:
            # A kind we cannot look up: never delete on a guess; treat it as present.
            return {"metadata": {"uid": ref.get("uid")}}
        ns = (dependent.get("metadata") or {}).get("namespace") if res.namespaced else None
        name = str(ref.get("name", ""))
        inf = self.informers.get(res.plural)
        if inf is not None:
            cached = inf.get(ObjectKey(f"{ns}/{name}" if ns else name))
            if cached is not None and uid_of(cached) == ref.get("uid"):
                return cached
        try:
            live = await self.client.get(res, namespace=ns, name=name)
        except errors.NotFound:
            return None
        return live if uid_of(live) == ref.get("uid") else None

    async def _process_dependent(self, plural: str, key: ObjectKey) -> None:
        inf = self.informers.get(plural)
        obj = inf.get(key) if inf is not None else None
        if inf is None or obj is None or podfacts.is_terminating(obj):
            return
        refs = owner_refs(obj)
        if not refs:
            return
        absent: list[RawOwnerReference] = []
        foreground = False
        for ref in refs:
            owner = await self._owner_state(obj, ref)
            if owner is None:
                absent.append(ref)
            elif podfacts.is_terminating(owner) and FOREGROUND_FINALIZER in (
                    (owner.get("metadata") or {}).get("finalizers") or []) and \
                    ref.get("blockOwnerDeletion"):
                foreground = True
        if len(absent) == len(refs) or foreground:
            await self._delete(inf, obj, propagation="Foreground" if foreground else
                               "Background")
        elif absent:
            gone = {r.get("uid") for r in absent}
            await self._patch_owner_refs(
                inf, obj, [dict(r) for r in refs if r.get("uid") not in gone])

    async def _delete(self, inf: Informer, obj: RawObject, *, propagation: str) -> None:
        m = obj.get("metadata") or {}
        log.info("garbage collecting %s %s/%s (%s)", inf.resource.kind, m.get("namespace"),
                 m.get("name"), propagation)
        try:
            reply = await self.client.delete(inf.resource, namespace=m.get("namespace"),
                                             name=str(m.get("name")), uid=str(m.get("uid")),
                                             propagation=propagation)
        except (errors.NotFound, errors.Conflict):
            return  # already gone, or replaced by a new object of that name
        if reply is not None:
            inf.upsert(reply)
        else:
            inf.remove(obj)

    async def _patch_owner_refs(self, inf: Informer, obj: RawObject,
                                refs: list[dict[str, object]]) -> None:
        m = obj.get("metadata") or {}
        body = {"metadata": {"ownerReferences": refs or None, "uid": m.get("uid"),
                             "resourceVersion": m.get("resourceVersion")}}
        try:
            reply = await self.client.patch(inf.resource, namespace=m.get("namespace"),
                                            name=str(m.get("name")), body=body)
        except errors.NotFound:
            return
        inf.upsert(reply)

    # -- owners with orphan / foreground finalizers --------------------------------------

    async def _process_owner(self, plural: str, key: ObjectKey) -> None:
        inf = self.informers.get(plural)
        owner = inf.get(key) if inf is not None else None
        if inf is None or owner is None or not podfacts.is_terminating(owner):
            return
        finalizers = list((owner.get("metadata") or {}).get("finalizers") or [])
        uid = uid_of(owner)
        dependents = [(dinf, dep) for dinf in self.informers.values()
                      for dep in dinf.owned_by(uid)]
        if ORPHAN_FINALIZER in finalizers:
            for dinf, dep in dependents:
                refs = [dict(r) for r in owner_refs(dep) if r.get("uid") != uid]
                await self._patch_owner_refs(dinf, dep, refs)
            await self._drop_finalizer(inf, owner, ORPHAN_FINALIZER)
        elif FOREGROUND_FINALIZER in finalizers:
            blocking = [(dinf, dep) for dinf, dep in dependents
                        if any(r.get("uid") == uid and r.get("blockOwnerDeletion")
                               for r in owner_refs(dep))]
            for dinf, dep in blocking:
                if not podfacts.is_terminating(dep):
                    await self._delete(dinf, dep, propagation="Foreground")
            if not blocking:
                await self._drop_finalizer(inf, owner, FOREGROUND_FINALIZER)

    async def _drop_finalizer(self, inf: Informer, owner: RawObject, finalizer: str) -> None:
        def mutate(obj: RawObject) -> bool:
            meta = obj.setdefault("metadata", {})
            current = list(meta.get("finalizers") or [])
            if finalizer not in current:
                return False
            meta["finalizers"] = [f for f in current if f != finalizer]
            return True

        try:
            await base.update(client=self.client, resource=inf.resource, informer=inf,
                              current=owner, mutate=mutate)
        except errors.NotFound:
            pass  # the owner is already gone
