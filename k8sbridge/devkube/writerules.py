"""What a write may change of a stored object: a pod update's spec rules, and what a write
through the status subresource stores, built without copying the object.

Why its own module: pod updates and status writes are the API server's busiest writes (a
1,000-replica burst writes each pod's status three times); these are the registry's pure rules
for them, kept out of registry.py (at its size limit).
"""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube import defaults, errors, patch

Obj = dict[str, Any]

# Spec fields of a pod that may change after creation (everything else is immutable).
_POD_MUTABLE_CONTAINER = frozenset({"image"})


def check_pod_update(old: Obj, new: Obj) -> None:
    """kube's ValidatePodUpdate on the spec: nodeName once set, and nothing but images,
    activeDeadlineSeconds, tolerations and the grace period may change (defaults ``new``'s
    spec in place first, as the decoder would have)."""
    old_spec = old.get("spec") or {}
    new_spec = new.get("spec") or {}
    if old_spec.get("nodeName") and new_spec.get("nodeName") != old_spec.get("nodeName"):
        raise errors.invalid(
            kind="Pod", group="", name=old["metadata"]["name"],
            causes=[("FieldValueInvalid", "spec.nodeName", "Invalid value: field is "
                     "immutable")],
        )

    def masked(spec: Obj) -> Obj:
        spec = patch.copy_json(spec)
        for group in ("containers", "initContainers"):
            for c in spec.get(group) or []:
                if isinstance(c, dict):
                    for field in _POD_MUTABLE_CONTAINER:
                        c.pop(field, None)
        for field in ("activeDeadlineSeconds", "tolerations", "nodeName",
                      "schedulingGates", "terminationGracePeriodSeconds"):
            spec.pop(field, None)
        return spec

    if isinstance(new_spec, dict):
        defaults.default_pod_spec(new_spec, template=False)
    if masked(old_spec) != masked(new_spec):
        raise errors.invalid(
            kind="Pod", group="", name=old["metadata"]["name"],
            causes=[("FieldValueForbidden", "spec",
                     "Forbidden: pod updates may not change fields other than "
                     "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                     "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
                     "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it "
                     "to be set to 1 if it was previously negative)")],
        )


def status_result(old: Obj, new: Obj) -> Obj:
    """What a write through the status subresource stores: ``old`` with ``new``'s status,
    labels and annotations (status writers, kubelets and kopf, may change those too).
    Everything else is ``old``'s own values, shared, not copied: ``old`` is never mutated
    (a stored object, or the caller's private copy) and the result's own dicts are the top
    level and its metadata, where the rest of the write (managedFields, resourceVersion)
    writes."""
    result = dict(old)
    meta = dict(old["metadata"])
    result["metadata"] = meta
    if "status" in new:
        result["status"] = new["status"]
    new_meta = new.get("metadata") or {}
    for field in ("labels", "annotations"):
        if field in new_meta:
            meta[field] = new_meta[field]
        else:
            meta.pop(field, None)
    return result
