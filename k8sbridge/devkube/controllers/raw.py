"""Wire JSON of the Kubernetes API as the controllers see it (``Raw*`` = exactly as sent).

Objects stay plain dicts: the controllers read a handful of fields and write whole objects
back, so a full typed model would be mostly ceremony. The few shapes that the code builds or
branches on are spelled out as ``TypedDict``s.
"""

from __future__ import annotations

from typing import Any, Literal, NewType, TypedDict

RawObject = dict[str, Any]
"""Any Kubernetes object (pod, replicaset, ...) as JSON."""

ObjectKey = NewType("ObjectKey", str)
"""``"namespace/name"`` (or ``"name"`` for cluster-scoped objects): the work-queue item."""

ObjectUid = NewType("ObjectUid", str)

WatchEventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]


class RawOwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class RawWatchEvent(TypedDict):
    type: WatchEventType
    object: RawObject


def key_of(obj: RawObject) -> ObjectKey:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = str(meta.get("name", ""))
    return ObjectKey(f"{ns}/{name}" if ns else name)


def split_key(key: ObjectKey) -> tuple[str | None, str]:
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)


def uid_of(obj: RawObject) -> ObjectUid:
    return ObjectUid(str((obj.get("metadata") or {}).get("uid", "")))


def owner_refs(obj: RawObject) -> list[RawOwnerReference]:
    refs: list[RawOwnerReference] = (obj.get("metadata") or {}).get("ownerReferences") or []
    return refs


def controller_ref(obj: RawObject) -> RawOwnerReference | None:
    for ref in owner_refs(obj):
        if ref.get("controller"):
            return ref
    return None


def owner_key(obj: RawObject | None, kind: str) -> ObjectKey | None:
    """The key of ``obj``'s controller when it is a ``kind`` (same namespace), else None:
    what a controller queues when one of its dependents changes."""
    if obj is None:
        return None
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    ns = (obj.get("metadata") or {}).get("namespace") or ""
    return ObjectKey(f"{ns}/{ref.get('name')}")


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value, several times faster than ``copy.deepcopy`` (the
    controllers copy cached objects before every write; they share no code with the server)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value
