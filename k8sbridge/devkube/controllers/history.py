"""Reading and writing the ControllerRevisions of a StatefulSet or DaemonSet (the I/O half of
``revisions``): make sure the owner's template has a revision, and trim old ones beyond
``revisionHistoryLimit``."""

from __future__ import annotations

import contextlib
from typing import Any

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import errors, revisions
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import RawObject, uid_of


def owned(informer: Informer, owner: RawObject) -> list[RawObject]:
    return informer.controlled_by(uid_of(owner))


async def ensure(client: api.ApiClient, informer: Informer, owner: RawObject, *,
                 kind: str) -> revisions.Decision:
    """The revision of ``owner``'s current template, created (or renumbered) if needed."""
    decision = revisions.decide(owner, owned(informer, owner), kind=kind)
    if decision.create is not None:
        try:
            reply = await client.create(api.CONTROLLERREVISIONS, decision.create,
                                        namespace=decision.create["metadata"]["namespace"])
        except errors.AlreadyExists:
            reply = await client.get(api.CONTROLLERREVISIONS,
                                     namespace=decision.create["metadata"]["namespace"],
                                     name=decision.name)
        reply.setdefault("kind", "ControllerRevision")
        reply.setdefault("apiVersion", "apps/v1")
        informer.upsert(reply)
    elif decision.existing is not None and decision.renumber is not None:
        m = decision.existing.get("metadata") or {}
        reply = await client.patch(api.CONTROLLERREVISIONS, namespace=m.get("namespace"),
                                   name=str(m.get("name")),
                                   body={"revision": decision.renumber})
        informer.upsert(reply)
    return decision


def template_of(informer: Informer, owner: RawObject, name: str) -> dict[str, Any] | None:
    """The pod template a revision of ``owner`` restores (None if the revision is gone)."""
    for rev in owned(informer, owner):
        if (rev.get("metadata") or {}).get("name") == name:
            template = dict(((rev.get("data") or {}).get("spec") or {}).get("template") or {})
            template.pop("$patch", None)
            return template
    return None


async def trim(client: api.ApiClient, informer: Informer, owner: RawObject, *,
               live: set[str]) -> None:
    keep = (owner.get("spec") or {}).get("revisionHistoryLimit")
    keep = 10 if keep is None else int(keep)
    for rev in revisions.surplus(owned(informer, owner), live=live, keep=keep):
        m = rev.get("metadata") or {}
        with contextlib.suppress(errors.NotFound):
            await client.delete(api.CONTROLLERREVISIONS, namespace=m.get("namespace"),
                                name=str(m.get("name")))
        informer.remove(rev)
