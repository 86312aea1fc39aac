"""Object semantics of the API: create/update/patch/delete rules per kind, on top of the store.

Why: this is the apiserver's "strategy" layer — metadata ownership (uid, creationTimestamp,
resourceVersion, generation, generateName), optimistic concurrency, status-subresource rules both
ways, pod graceful deletion, finalizers, binding and scale. It does no I/O: the HTTP layer parses a
request, calls one method here (synchronously, hence atomically), and renders the result.
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Callable
from typing import Any

from k8sbridge.devkube import (
    admission,
    apps,
    autoscaling,
    batch,
    defaults,
    endpointcheck,
    errors,
    eventcheck,
    events,
    kinds,
    managedfields,
    patch,
    podgroups,
    policy,
    priorityclasses,
    rbacstrategy,
    servicecheck,
    services,
    shapes,
    store,
    validation,
    writerules,
)

Obj = dict[str, Any]

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-node-lease", "kube-public")
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"

NS_KIND = kinds.BY_KEY[kinds.ResourceKey("/namespaces")]
SA_KIND = kinds.BY_KEY[kinds.ResourceKey("/serviceaccounts")]
POD_KIND = kinds.BY_KEY[kinds.ResourceKey("/pods")]
SVC_KIND = kinds.BY_KEY[kinds.ResourceKey("/services")]
PC_KIND = kinds.BY_KEY[kinds.ResourceKey(f"{priorityclasses.GROUP}/{priorityclasses.PLURAL}")]

def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


def _is_pod_finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Registry:
    """The API semantics over one Store (single owner: the event loop)."""

    def __init__(self, *, store: store.Store, service_account_admission: bool = True,
                 service_ranges: services.Ranges | None = None) -> None:
        """``service_account_admission``: run the ServiceAccount admission plugin on pod
        creation (kube-apiserver's default; off is ``--disable-admission-plugins``);
        ``service_ranges``: the service CIDR and node-port range Services are given from."""
        self.store = store
        self.service_account_admission = service_account_admission
        self.service_allocator = services.Allocator(service_ranges)
        # Called with (kind, new object, old object or None) before an RBAC object is
        # validated and stored: the authorizer's escalation checks (authz.Authorizer.guard).
        self.guard: Callable[[kinds.Kind, Obj, Obj | None], None] | None = None

    # --- helpers -------------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Create the default namespaces (and their default ServiceAccounts) if missing."""
        for name in DEFAULT_NAMESPACES:
            if self.store.peek(NS_KIND.store_key, "", name) is None:
                self.create(kind=NS_KIND, namespace="", body={
                    "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        if self.store.peek(SVC_KIND.store_key, "default", "kubernetes") is None:
            self.create(kind=SVC_KIND, namespace="default", body={
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "labels": {
                    "component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": self.service_allocator.ranges.first_ip, "ports": [
                    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
            })
        for pc in priorityclasses.system_classes():
            if self.store.peek(PC_KIND.store_key, "", pc["metadata"]["name"]) is None:
                self.create(kind=PC_KIND, namespace="", body=pc)

    def priority_classes(self) -> list[Obj]:
        return [s.obj for s in self.store.items(PC_KIND.store_key)]

    def lookup(self, plural: str, namespace: str, name: str) -> Obj | None:
        """A stored core/v1 object (never to be mutated), or None."""
        kind = kinds.lookup(group_version="v1", plural=plural)
        if kind is None:
            return None
        found = self.store.peek(kind.store_key, namespace if kind.namespaced else "", name)
        return found.obj if found is not None else None

    def current(self, kind: kinds.Kind, namespace: str, name: str) -> Obj:
        obj = self.store.get(kind.store_key, namespace, name)
        if obj is None:
            raise errors.not_found(plural=kind.plural, group=kind.group, name=name)
        return obj

    def stored(self, kind: kinds.Kind, namespace: str, name: str) -> store.Stored:
        """The stored object itself (never to be mutated), or a 404."""
        found = self.store.peek(kind.store_key, namespace, name)
        if found is None:
            raise errors.not_found(plural=kind.plural, group=kind.group, name=name)
        return found

    def view(self, kind: kinds.Kind, obj: Obj) -> Obj:
        """The object as ``kind``'s API version shows it (events have two views)."""
        if kind.group == "events.k8s.io":
            return events.to_events_v1(obj)
        if kind.group == autoscaling.GROUP and kind.version == "v1":
            return autoscaling.to_v1(obj)
        return obj

    def _check_type(self, kind: kinds.Kind, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        api_version = body.get("apiVersion")
        body_kind = body.get("kind")
        if api_version is not None and api_version != kind.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({kind.api_version})"
            )
        if body_kind is not None and body_kind != kind.kind:
            raise errors.bad_request(
                f"the kind in the data ({body_kind}) does not match the expected kind "
                f"({kind.kind})"
            )
        body["apiVersion"] = kind.api_version
        body["kind"] = kind.kind
        meta = body.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        return body

    def _storage_form(self, kind: kinds.Kind, body: Obj) -> Obj:
        if kind.group == "events.k8s.io":
            return events.to_core(body)
        if kind.group == autoscaling.GROUP and kind.version == "v1":
            return autoscaling.from_v1(body)
        return body

    def _check_namespace(self, kind: kinds.Kind, namespace: str, meta: Obj) -> None:
        if not kind.namespaced:
            meta.pop("namespace", None)
            return
        given = meta.get("namespace")
        if given and given != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        meta["namespace"] = namespace
        ns = self.store.peek(NS_KIND.store_key, "", namespace)
        if ns is None:
            raise errors.not_found(plural="namespaces", group="", name=namespace)
        if ns.obj["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(
                code=403, reason="Forbidden",
                message=f'{kind.plural} "{meta.get("name", "")}" is forbidden: unable to create '
                f"new content in namespace {namespace} because it is being terminated",
            )

    # --- create --------------------------------------------------------------------------

    def create(self, *, kind: kinds.Kind, namespace: str, body: Any, dry_run: bool = False,
               manager: managedfields.Manager | None = None,
               managed: list[Obj] | None = None) -> Obj:
        """``manager``: who creates (an Update entry in managedFields); ``managed``: the
        managedFields of an apply that creates."""
        body = self._check_type(kind, body)
        obj = self._storage_form(kind, body)
        shapes.check_shapes(kind, obj)
        meta = _meta(obj)
        self._check_namespace(kind, namespace, meta)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if kind.plural == "pods" and self.service_account_admission:
            admission.admit_pod(obj, namespace=namespace, lookup=self.lookup)
        if kind.plural == "pods":
            priorityclasses.admit_pod(obj, classes=self.priority_classes)
        if not meta.get("name") and meta.get("generateName"):
            base = str(meta["generateName"])[:58]
            for _ in range(16):
                candidate = base + "".join(random.choices(_NAME_ALPHABET, k=5))
                if self.store.peek(kind.store_key, meta.get("namespace", ""), candidate) is None:
                    meta["name"] = candidate
                    break
        for field in ("uid", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
                      "managedFields"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(now())
        if kind.has_spec:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if "status" in kind.subresources and kind.plural not in ("nodes", "namespaces"):
            obj.pop("status", None)
        if kind.plural == "events":
            events.admit(kind.group, obj)
        defaults.apply_defaults(kind, obj, create=True)
        if kind.plural == "services":
            self.service_allocator.create(obj, stored=self.store)
        self._validate(kind, obj, old=None)
        if managed:
            meta["managedFields"] = managed
        elif manager is not None:
            managedfields.track_update(kind=kind, old=None, new=obj, manager=manager)
        name = meta["name"]
        if self.store.peek(kind.store_key, meta.get("namespace", ""), name) is not None:
            raise errors.already_exists(plural=kind.plural, group=kind.group, name=name)
        if dry_run:
            return self.view(kind, obj)
        stored = self.store.create(kind.store_key, obj)
        if kind.plural == "namespaces":
            self._ensure_service_account(name)
        return self.view(kind, stored.obj)  # stored objects are never mutated: no copy

    def _ensure_service_account(self, namespace: str) -> None:
        if self.store.peek(SA_KIND.store_key, namespace, "default") is None:
            self.create(kind=SA_KIND, namespace=namespace, body={
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": namespace}})

    # --- update --------------------------------------------------------------------------

    def update(
        self, *, kind: kinds.Kind, namespace: str, name: str, body: Any,
        subresource: str | None = None, dry_run: bool = False,
        manager: managedfields.Manager | None = None,
    ) -> Obj:
        body = self._check_type(kind, body)
        new = self._storage_form(kind, body)
        meta = _meta(new)
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                f"({name})"
            )
        if kind.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        # a status write stores old's values beside the body's status, never mutating them
        old = self.stored(kind, namespace, name).obj if subresource == "status" \
            else self.current(kind, namespace, name)
        return self.replace(
            kind=kind, old=old, new=new, subresource=subresource, dry_run=dry_run,
            manager=manager,
        )

    def _preconditions(self, kind: kinds.Kind, old: Obj, meta: Obj) -> None:
        name = old["metadata"]["name"]
        rv = meta.get("resourceVersion")
        if rv and str(rv) != old["metadata"]["resourceVersion"]:
            raise errors.conflict(plural=kind.plural, group=kind.group, name=name,
                                  why=errors.STALE)
        uid = meta.get("uid")
        if uid and uid != old["metadata"]["uid"]:
            raise errors.conflict(
                plural=kind.plural, group=kind.group, name=name,
                why=f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{old['metadata']['uid']}",
            )

    def replace(
        self, *, kind: kinds.Kind, old: Obj, new: Obj, subresource: str | None, dry_run: bool,
        manager: managedfields.Manager | None = None,
    ) -> Obj:
        """Store ``new`` in place of ``old`` after an update's checks (shapes, preconditions,
        the rules of the subresource, defaults, validation). ``old``: the stored object or a
        private copy of it; a status write shares its values and never mutates them."""
        shapes.check_shapes(kind, new, old)
        meta = _meta(new)
        self._preconditions(kind, old, meta)
        old_meta = old["metadata"]
        if subresource == "status":
            new = writerules.status_result(old, new)
        else:
            for field in ("uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "namespace", "name", "generation"):
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            meta.pop("selfLink", None)
            if "status" in kind.subresources:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            if kind.plural == "pods":
                priorityclasses.keep_priority(old, new)
                writerules.check_pod_update(old, new)
            defaults.apply_defaults(kind, new, create=False)
            if kind.plural == "services":
                self.service_allocator.update(old, new, stored=self.store)
            if kind.has_spec and new.get("spec") != old.get("spec"):
                meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if old_meta.get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or []) - set(
                old_meta.get("finalizers") or []
            )
            if added:
                raise errors.invalid(
                    kind=kind.kind, group=kind.group, name=old_meta["name"],
                    causes=[("FieldValueForbidden", "metadata.finalizers",
                             "Forbidden: no new finalizers can be added if the object is being "
                             "deleted")],
                )
        self._validate(kind, new, old=old if subresource != "status" else None)
        if manager is not None:
            managedfields.track_update(kind=kind, old=old, new=new, manager=manager)
        if dry_run:
            return self.view(kind, new)
        stored, _ = self.store.update(kind.store_key, new)
        final = self._finish_if_released(kind, stored.obj)
        return self.view(kind, final)

    def _validate(self, kind: kinds.Kind, obj: Obj, *, old: Obj | None) -> None:
        """The generic checks plus a kind's own (batch/v1); ``old``: the object an update
        replaces (immutable fields), None on create and for status writes."""
        extra: list[errors.Cause] = []
        if kind.plural == "jobs" and kind.group == "batch":
            extra = batch.job_causes(obj)
            if old is not None:
                extra += batch.update_causes(kind.plural, old, obj)
        elif kind.plural == "cronjobs" and kind.group == "batch":
            extra = batch.cronjob_causes(obj, old=old)
        elif kind.plural in apps.PLURALS:
            extra = apps.causes(kind.plural, obj, old=old)
        elif kind.group == policy.GROUP:
            extra = policy.causes(obj)
        elif kind.group == priorityclasses.GROUP:
            extra = priorityclasses.causes(obj, old=old)
        elif kind.plural == autoscaling.PLURAL:
            extra = autoscaling.causes(obj)
        elif kind.group == podgroups.GROUP:
            extra = podgroups.causes(obj)
        elif kind.plural == "events" and old is not None:
            extra = eventcheck.update_causes(kind.group, obj, old)
        elif kind.plural == "services":
            extra = servicecheck.service_causes(obj, old=old)
        elif kind.plural == "endpoints":
            extra = endpointcheck.endpoints_causes(obj)
        elif kind.plural == "endpointslices":
            extra = endpointcheck.endpointslice_causes(obj, old=old)
        elif kind.group == rbacstrategy.GROUP:
            if self.guard is not None:  # escalation checks, before validation as there
                self.guard(kind, obj, old)
            extra = rbacstrategy.causes(kind, obj, old=old)
        validation.validate(kind, obj, extra=extra)
        if kind.group == priorityclasses.GROUP:  # the Priority plugin validates after
            priorityclasses.admit_class(obj, old=old, classes=self.priority_classes)

    def _finish_if_released(self, kind: kinds.Kind, obj: Obj) -> Obj:
        """Remove an object being deleted once nothing holds it (finalizers, pod grace)."""
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return obj
        if kind.plural == "pods" and meta.get("deletionGracePeriodSeconds", 0) > 0:
            return obj
        stored = self.store.delete(kind.store_key, meta.get("namespace", ""), meta["name"])
        self._cascade_if_namespace(kind, meta["name"])
        return stored.obj

    # --- patch ---------------------------------------------------------------------------

    def patch(
        self, *, kind: kinds.Kind, namespace: str, name: str, content_type: str, body: Any,
        subresource: str | None = None, dry_run: bool = False,
        manager: managedfields.Manager | None = None, force: bool = False,
    ) -> Obj:
        applying = content_type == "application/apply-patch+yaml"
        if applying:
            if not isinstance(body, dict):
                raise errors.bad_request("an apply patch must be an object")
            if manager is not None:
                body = {k: v for k, v in body.items() if v is not None}
            existing = self.store.peek(kind.store_key, namespace, name)
            if existing is None:
                _meta(body).setdefault("name", name)
                if manager is None:
                    return self.create(kind=kind, namespace=namespace, body=body,
                                       dry_run=dry_run)
                empty = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {}}
                applied = managedfields.apply(kind=kind, live=empty, config=body,
                                              manager=manager, force=force)
                return self.create(kind=kind, namespace=namespace, body=applied,
                                   dry_run=dry_run,
                                   managed=applied["metadata"].pop("managedFields"))
        # A merge patch of the status shares what it leaves alone with the stored object (the
        # status write stores old's values, not the patched object's): no copies of the pod.
        shared = subresource == "status" and content_type == "application/merge-patch+json"
        old = self.stored(kind, namespace, name).obj if shared \
            else self.current(kind, namespace, name)
        old_view = self.view(kind, old)  # the patch functions copy; old stays intact
        try:
            if content_type == "application/json-patch+json":
                patched = patch.json_patch(old_view, body)
            elif shared:
                patched = patch.merge_patch_shared(old_view, body)
            elif content_type == "application/merge-patch+json":
                patched = patch.merge_patch(old_view, body)
            elif content_type == "application/strategic-merge-patch+json":
                patched = patch.strategic_merge(old_view, body)
            elif applying and manager is not None:
                patched = managedfields.apply(kind=kind, live=old_view, config=body,
                                              manager=manager, force=force)
            elif applying:
                patched = patch.merge_patch(old_view, _apply_to_merge(body))
            else:
                raise errors.unsupported_media_type(content_type)
        except patch.PatchTestFailed as e:
            raise errors.unprocessable(str(e)) from e
        except patch.PatchError as e:
            raise errors.unprocessable(f"the server rejected our request due to an error in our "
                                       f"request: {e}") from e
        if not isinstance(patched, dict):
            raise errors.bad_request("the patched object is not a JSON object")
        meta = _meta(patched)
        if meta.get("name") != name:
            raise errors.bad_request("the name of the object cannot be changed by a patch")
        new = self._check_type(kind, patched)
        new = self._storage_form(kind, new)
        return self.replace(
            kind=kind, old=old, new=new, subresource=subresource, dry_run=dry_run,
            manager=None if applying else manager,
        )

    # --- delete --------------------------------------------------------------------------

    def delete(
        self, *, kind: kinds.Kind, namespace: str, name: str, options: Obj,
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        """Returns (object or Status body, whether the object itself is returned)."""
        old = self.current(kind, namespace, name)
        meta = old["metadata"]
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            raise errors.conflict(
                plural=kind.plural, group=kind.group, name=name,
                why=f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                f"meta: {meta['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise errors.conflict(
                plural=kind.plural, group=kind.group, name=name,
                why=f"Precondition failed: ResourceVersion in precondition: "
                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                f"{meta['resourceVersion']}",
            )
        if kind.plural == "namespaces" and name in PROTECTED_NAMESPACES:
            raise errors.ApiError(
                code=403, reason="Forbidden",
                message=f'namespaces "{name}" is forbidden: this namespace may not be deleted',
            )
        if kind.group == priorityclasses.GROUP:
            priorityclasses.check_delete(name)
        if dry_run:
            return self.view(kind, old), True
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is True and policy is None:
            policy = "Orphan"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise errors.unprocessable(f"Unsupported propagationPolicy: {policy!r}")
        gc_finalizer = {"Orphan": ORPHAN_FINALIZER, "Foreground": FOREGROUND_FINALIZER}.get(
            str(policy))
        if gc_finalizer and gc_finalizer not in (meta.get("finalizers") or []):
            # As the apiserver does: the garbage collector (controllers) orphans or deletes the
            # dependents, then removes this finalizer, which releases the object.
            meta["finalizers"] = [*(meta.get("finalizers") or []), gc_finalizer]
        grace = 0
        if kind.plural == "pods":
            requested = options.get("gracePeriodSeconds")
            if requested is None:
                requested = (old.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            grace = int(requested)
            if grace < 0:
                grace = 1
            if not (old.get("spec") or {}).get("nodeName") or _is_pod_finished(old):
                grace = 0
        if grace > 0 or meta.get("finalizers"):
            deadline = now() + datetime.timedelta(seconds=grace)
            existing = meta.get("deletionTimestamp")
            if existing and _parse_time(existing) <= deadline:
                if meta.get("deletionGracePeriodSeconds", 0) <= grace:
                    return self.view(kind, old), True
            else:
                meta["deletionTimestamp"] = rfc3339(deadline)
            meta["deletionGracePeriodSeconds"] = grace
            if not existing:
                meta["generation"] = int(meta.get("generation", 0) or 0) + 1
                if not kind.has_spec and "generation" not in old["metadata"]:
                    meta.pop("generation", None)
            stored, _ = self.store.update(kind.store_key, old)
            final = self._finish_if_released(kind, stored.obj)
            return self.view(kind, final), True
        stored = self.store.delete(kind.store_key, namespace if kind.namespaced else "", name)
        self._cascade_if_namespace(kind, name)
        if kind.plural == "pods":
            return self.view(kind, stored.obj), True
        return {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": name, "group": kind.group, "kind": kind.plural,
                        "uid": meta["uid"]},
        }, False

    def _cascade_if_namespace(self, kind: kinds.Kind, name: str) -> None:
        if kind.plural != "namespaces":
            return
        for k in kinds.STORED:
            if not k.namespaced:
                continue
            for stored in list(self.store.items(k.store_key, name)):
                m = stored.obj["metadata"]
                self.store.delete(k.store_key, name, m["name"])


def _apply_to_merge(body: Any) -> Any:
    """Server-side apply approximated as a merge patch that never deletes fields."""
    if isinstance(body, dict):
        return {k: _apply_to_merge(v) for k, v in body.items() if v is not None}
    return body
