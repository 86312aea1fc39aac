"""ControllerRevisions of StatefulSets and DaemonSets, pure: what a revision holds and its name.

Like pkg/controller/history and the two controllers' ``newRevision``: a revision's ``data`` is
the patch that restores the pod template (``{"spec": {"template": {..., "$patch": "replace"}}}``),
its name is ``<owner>-<hash>`` where the hash (``controller.kubernetes.io/hash``) covers the
data and the owner's ``collisionCount``, and its ``revision`` number is one more than the
highest so far. An existing revision with equal data is reused (a rollback bumps its number).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from k8sbridge.devkube.controllers import hashing
from k8sbridge.devkube.controllers.raw import RawObject, copy_json

HASH_LABEL = "controller.kubernetes.io/hash"
REVISION_LABEL = "controller-revision-hash"


def revision_data(owner: RawObject) -> dict[str, Any]:
    template = copy_json((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_hash(data: dict[str, Any], *, collision_count: int) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashing.safe_encode(str(hashing.fnv32a(f"{canonical}#{collision_count}".encode())))


def number(revision: RawObject) -> int:
    return int(revision.get("revision") or 0)


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """What to do for the owner's current template: reuse ``existing`` (after setting its
    number to ``renumber`` if that is not None) or create ``create``."""

    name: str
    hash: str
    existing: RawObject | None = None
    renumber: int | None = None
    create: RawObject | None = None


def decide(owner: RawObject, revisions: Sequence[RawObject], *, kind: str) -> Decision:
    """The revision for ``owner``'s template among its ``revisions``."""
    meta = owner.get("metadata") or {}
    data = revision_data(owner)
    collisions = int((owner.get("status") or {}).get("collisionCount") or 0)
    ordered = sorted(revisions, key=number)
    highest = number(ordered[-1]) if ordered else 0
    for rev in reversed(ordered):
        if rev.get("data") == data:
            name = str((rev.get("metadata") or {}).get("name"))
            rev_hash = str(((rev.get("metadata") or {}).get("labels") or {}).get(HASH_LABEL, ""))
            renumber = None if rev is ordered[-1] else highest + 1
            return Decision(name=name, hash=rev_hash, existing=rev, renumber=renumber)
    rev_hash = revision_hash(data, collision_count=collisions)
    name = f"{meta.get('name')}-{rev_hash}"
    labels = dict(((owner.get("spec") or {}).get("template") or {}).get("metadata", {}).get(
        "labels") or {})
    labels[HASH_LABEL] = rev_hash
    body = {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": name, "namespace": meta.get("namespace"), "labels": labels,
                     "ownerReferences": [{
                         "apiVersion": "apps/v1", "kind": kind, "name": meta.get("name"),
                         "uid": meta.get("uid"), "controller": True,
                         "blockOwnerDeletion": True}]},
        "data": data, "revision": highest + 1,
    }
    return Decision(name=name, hash=rev_hash, create=body)


def surplus(revisions: Sequence[RawObject], *, live: set[str], keep: int) -> list[RawObject]:
    """The oldest revisions beyond the history limit ``keep``, never one in ``live`` use."""
    idle = [r for r in sorted(revisions, key=number)
            if (r.get("metadata") or {}).get("name") not in live]
    return idle[:max(0, len(idle) - keep)]
