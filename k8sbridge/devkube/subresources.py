"""The subresources that are not plain object writes: pods/binding, pods/eviction, */scale.

Why: the scheduler binds with pods/binding (and must get the apiserver's 409s for a pod already
bound, being deleted or gated), ``kubectl drain`` evicts through pods/eviction, and ``kubectl
scale`` and HPAs read and write autoscaling/v1 Scale; each is a view or a narrow change of a
stored object, made through the Registry's own checks.
"""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube import errors, kinds, managedfields, patch, policy, registry

Obj = dict[str, Any]

PDB_KIND = kinds.BY_KEY[kinds.ResourceKey("policy/poddisruptionbudgets")]


def bind(reg: registry.Registry, *, namespace: str, name: str, body: Any) -> Obj:
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON object")
    meta = body.get("metadata") or {}
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request("the name of the binding does not match the pod name")
    target = body.get("target") or {}
    node = target.get("name")
    if not node:
        raise errors.invalid(kind="Binding", group="", name=name, causes=[
            ("FieldValueRequired", "target.name", "Required value")])
    # the stored pod's own values, shared; only the dicts written below are new
    pod = dict(reg.stored(registry.POD_KIND, namespace, name).obj)
    pmeta = pod["metadata"] = dict(pod["metadata"])
    if meta.get("uid") and meta["uid"] != pmeta["uid"]:
        raise errors.conflict(plural="pods", group="", name=name, why=(
            f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: "
            f"{pmeta['uid']}"))
    if meta.get("resourceVersion") and meta["resourceVersion"] != pmeta["resourceVersion"]:
        raise errors.conflict(plural="pods", group="", name=name, why=errors.STALE)
    spec = pod["spec"] = dict(pod.get("spec") or {})
    if pmeta.get("deletionTimestamp"):
        raise errors.conflict(plural="pods/binding", group="", name=name,
                              why=f"pod {name} is being deleted, cannot be assigned to a host")
    if spec.get("nodeName"):
        raise errors.conflict(plural="pods/binding", group="", name=name,
                              why=f'pod {name} is already assigned to node '
                              f'"{spec["nodeName"]}"')
    if spec.get("schedulingGates"):
        raise errors.conflict(plural="pods/binding", group="", name=name,
                              why=f"pod {name} has non-empty .spec.schedulingGates")
    spec["nodeName"] = node
    status = pod["status"] = dict(pod.get("status") or {})
    status.pop("nominatedNodeName", None)
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                       "lastTransitionTime": registry.rfc3339(registry.now())})
    status["conditions"] = conditions
    if meta.get("annotations"):
        pmeta["annotations"] = {**(pmeta.get("annotations") or {}), **meta["annotations"]}
    reg.store.update(registry.POD_KIND.store_key, pod)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "code": 201}


def evict(reg: registry.Registry, *, namespace: str, name: str, body: Any,
          dry_run: bool = False) -> Obj:
    """policy/v1 Eviction: a graceful delete once the pod's PodDisruptionBudget allows it
    (eviction.go): the budget is charged first (``disruptionsAllowed`` minus one, the pod in
    ``disruptedPods``), then the pod gets the ``DisruptionTarget`` condition and is deleted.
    ``dry_run`` (the query's or ``deleteOptions.dryRun``) decides and writes nothing."""
    if not isinstance(body, dict) or body.get("kind") not in (None, "Eviction"):
        raise errors.bad_request("the request body must be a policy/v1 Eviction")
    meta = body.get("metadata") or {}
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request("the name of the eviction does not match the pod name")
    options = body.get("deleteOptions") or {}
    if not isinstance(options, dict):
        raise errors.bad_request("deleteOptions must be an object")
    dry_run = dry_run or bool(options.get("dryRun"))
    pod = reg.current(registry.POD_KIND, namespace, name)
    stamp = registry.rfc3339(registry.now())
    budgets = [s.obj for s in reg.store.items(PDB_KIND.store_key, namespace)]
    verdict = policy.decide(pod, budgets, stamp=stamp)
    if dry_run:
        return _success()
    if verdict.budget is not None:
        charged = policy.record_disruption(verdict.budget, name, stamp=stamp)
        old_budget = reg.current(PDB_KIND, namespace, charged["metadata"]["name"])
        reg.replace(kind=PDB_KIND, old=old_budget, new=charged, subresource="status",
                    dry_run=False)
    status = pod.setdefault("status", {})
    status["conditions"] = [c for c in status.get("conditions") or []
                            if c.get("type") != "DisruptionTarget"]
    status["conditions"].append(policy.disruption_target(stamp))
    reg.store.update(registry.POD_KIND.store_key, pod)
    reg.delete(kind=registry.POD_KIND, namespace=namespace, name=name,
               options={k: v for k, v in options.items() if k != "dryRun"})
    return _success()


def _success() -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "code": 201}


def scale_of(kind: kinds.Kind, obj: Obj) -> Obj:
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    if kind.plural == "replicationcontrollers":  # an equality map, not a LabelSelector
        selector = {"matchLabels": selector}
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                           "creationTimestamp") if k in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                   "selector": ",".join(f"{k}={v}" for k, v in
                                        sorted((selector.get("matchLabels") or {}).items()))},
    }


def update_scale(
    reg: registry.Registry, *, kind: kinds.Kind, namespace: str, name: str, scale: Any,
    dry_run: bool = False, manager: managedfields.Manager | None = None,
) -> Obj:
    if not isinstance(scale, dict):
        raise errors.bad_request("the request body must be a Scale object")
    old = reg.current(kind, namespace, name)
    smeta = scale.get("metadata") or {}
    if smeta.get("resourceVersion") and smeta["resourceVersion"] != old["metadata"][
        "resourceVersion"
    ]:
        raise errors.conflict(plural=f"{kind.plural}.{kind.group}", group="", name=name,
                              why=errors.STALE)
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise errors.invalid(kind="Scale", group="autoscaling", name=name, causes=[
            ("FieldValueInvalid", "spec.replicas",
             f"Invalid value: {replicas}: must be greater than or equal to 0")])
    new = patch.copy_json(old)
    new["spec"]["replicas"] = replicas
    result = reg.replace(kind=kind, old=old, new=new, subresource=None, dry_run=dry_run,
                         manager=manager)
    return scale_of(kind, result)


def patch_scale(
    reg: registry.Registry, *, kind: kinds.Kind, namespace: str, name: str, content_type: str,
    body: Any, dry_run: bool = False, manager: managedfields.Manager | None = None,
) -> Obj:
    old = reg.current(kind, namespace, name)
    current = scale_of(kind, old)
    try:
        if content_type == "application/json-patch+json":
            patched = patch.json_patch(current, body)
        elif content_type in ("application/merge-patch+json", "application/apply-patch+yaml"):
            patched = patch.merge_patch(current, body)
        elif content_type == "application/strategic-merge-patch+json":
            patched = patch.strategic_merge(current, body)
        else:
            raise errors.unsupported_media_type(content_type)
    except patch.PatchTestFailed as e:
        raise errors.unprocessable(str(e)) from e
    except patch.PatchError as e:
        raise errors.unprocessable(str(e)) from e
    return update_scale(reg, kind=kind, namespace=namespace, name=name, scale=patched,
                        dry_run=dry_run, manager=manager)
