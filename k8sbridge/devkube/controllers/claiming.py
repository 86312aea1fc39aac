"""Adopting orphan pods for a StatefulSet or DaemonSet (the ControllerRefManager's claim), and
deleting one of their pods by name.

A pod without a controller whose labels match the owner's selector (and that ``belongs``, e.g.
a StatefulSet's ``<set>-<ordinal>``) gets the owner's controller reference, through a merge
patch guarded by the pod's uid and resourceVersion; a pod that changed meanwhile is skipped
(its notification queues the owner again).
"""

from __future__ import annotations

from collections.abc import Callable

from k8sbridge.devkube.controllers import base, errors, selectors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject


async def adopt_orphans(client: api.ApiClient, pods: Informer, owner: RawObject, *,
                        kind: str, belongs: Callable[[RawObject], bool] | None = None) -> None:
    try:
        selector = selectors.parse_selector((owner.get("spec") or {}).get("selector"))
    except selectors.SelectorError:
        return
    ns = (owner.get("metadata") or {}).get("namespace") or ""
    for pod in pods.uncontrolled(ns):
        m = pod.get("metadata") or {}
        if (not selector.matches(m.get("labels") or {}) or podfacts.is_terminating(pod)
                or (belongs is not None and not belongs(pod))):
            continue
        body = base.adoption_patch(pod, owner, adopt=True, kind=kind)
        try:
            reply = await client.patch(api.PODS, namespace=ns, name=str(m.get("name")),
                                       body=body)
        except (errors.NotFound, errors.Conflict):
            continue
        pods.upsert(reply)


async def delete_pod(client: api.ApiClient, pods: Informer, *, namespace: str | None,
                     name: str) -> bool:
    """Delete the pod ``namespace/name`` the cache holds (guarded by its uid); True if this
    call deleted it (gone already or recreated meanwhile: False, nothing to report)."""
    pod = pods.get(ObjectKey(f"{namespace}/{name}"))
    if pod is None:
        return False
    try:
        reply = await client.delete(api.PODS, namespace=namespace, name=name,
                                    uid=str(pod["metadata"].get("uid")))
    except errors.NotFound:
        pods.remove(pod)
        return False
    except errors.Conflict:
        return False
    if reply is not None:
        pods.upsert(reply)
    else:
        pods.remove(pod)
    return True
