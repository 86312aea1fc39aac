"""rbac.authorization.k8s.io/v1 objects at the API: defaults and validation, in kube's words.

Why: Roles, ClusterRoles and their bindings are checked by pkg/apis/rbac/validation before
they are stored: names are path segments (``system:basic-user`` is fine, ``a/b`` is not),
every rule has verbs and either resources (with API groups) or non-resource URLs (cluster
roles only), a binding's ``roleRef`` names a Role or ClusterRole of this group and never
changes, and subjects are Users, Groups or ServiceAccounts (SetDefaults_Subject fills the API
group of the first two). Verbs are free-form, as on a real cluster (``use``, ``bind``,
``escalate``, ``impersonate`` and custom verbs are all legal; kubectl checks its own list).
Pure functions over dicts.
"""

from __future__ import annotations

import json
from typing import Any

from k8sbridge.devkube import errors, kinds, rbac

Obj = dict[str, Any]
Cause = errors.Cause

GROUP = rbac.GROUP


def name_causes(name: str, field: str = "metadata.name") -> list[Cause]:
    """ValidateRBACName (path.IsValidPathSegmentName)."""
    problems = []
    if name in (".", ".."):
        problems.append(f"may not be '{name}'")
    for bad in ("/", "%"):
        if bad in name:
            problems.append(f"may not contain '{bad}'")
    return [("FieldValueInvalid", field, f'Invalid value: "{name}": {p}') for p in problems]


def default(obj: Obj) -> None:
    """SetDefaults_Subject and SetDefaults_RoleRef (roleRef.apiGroup for an empty one)."""
    for subject in obj.get("subjects") or []:
        if isinstance(subject, dict) and not subject.get("apiGroup") and subject.get(
                "kind") in ("User", "Group"):
            subject["apiGroup"] = GROUP
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP


def _unsupported(field: str, value: Any, supported: list[str]) -> Cause:
    return ("FieldValueNotSupported", field, f"Unsupported value: {json.dumps(value)}: "
            "supported values: " + ", ".join(f'"{s}"' for s in supported))


def _rule_causes(rule: Obj, field: str, *, namespaced: bool) -> list[Cause]:
    """ValidatePolicyRule."""
    causes: list[Cause] = []
    if not rule.get("verbs"):
        causes.append(("FieldValueRequired", f"{field}.verbs",
                       "Required value: verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs")
    if urls:
        value = "[]string{" + ", ".join(json.dumps(str(u)) for u in urls) + "}"  # Go's %#v
        if namespaced:
            causes.append(("FieldValueInvalid", f"{field}.nonResourceURLs", f"Invalid value: "
                           f"{value}: namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            causes.append(("FieldValueInvalid", f"{field}.nonResourceURLs", f"Invalid value: "
                           f"{value}: rules cannot apply to both regular resources and "
                           "non-resource URLs"))
        return causes
    if not rule.get("apiGroups"):
        causes.append(("FieldValueRequired", f"{field}.apiGroups",
                       "Required value: resource rules must supply at least one api group"))
    if not rule.get("resources"):
        causes.append(("FieldValueRequired", f"{field}.resources",
                       "Required value: resource rules must supply at least one resource"))
    return causes


def _subject_causes(subject: Obj, field: str, *, namespaced: bool) -> list[Cause]:
    """ValidateRoleBindingSubject."""
    causes: list[Cause] = []
    name, kind, group = subject.get("name") or "", subject.get("kind"), subject.get("apiGroup")
    if not name:
        causes.append(("FieldValueRequired", f"{field}.name", "Required value"))
    if kind == "ServiceAccount":
        if name:
            causes += [(r, f, m) for r, f, m in name_causes(name, f"{field}.name")]
        if group:
            causes.append(_unsupported(f"{field}.apiGroup", group, [""]))
        if not namespaced and not subject.get("namespace"):
            causes.append(("FieldValueRequired", f"{field}.namespace", "Required value"))
    elif kind in ("User", "Group"):
        if group != GROUP:
            causes.append(_unsupported(f"{field}.apiGroup", group or "", [GROUP]))
    else:
        causes.append(_unsupported(f"{field}.kind", kind or "",
                                   ["ServiceAccount", "User", "Group"]))
    return causes


def causes(kind: kinds.Kind, obj: Obj, *, old: Obj | None) -> list[Cause]:
    """The kind's own problems (the generic metadata checks run besides)."""
    found: list[Cause] = []
    if kind.plural in ("roles", "clusterroles"):
        for i, rule in enumerate(obj.get("rules") or []):
            found += _rule_causes(rule, f"rules[{i}]", namespaced=kind.namespaced)
        return found
    ref = obj.get("roleRef") or {}
    if ref.get("apiGroup") != GROUP:
        found.append(_unsupported("roleRef.apiGroup", ref.get("apiGroup") or "", [GROUP]))
    allowed = ["Role", "ClusterRole"] if kind.namespaced else ["ClusterRole"]
    if ref.get("kind") not in allowed:
        found.append(_unsupported("roleRef.kind", ref.get("kind") or "", allowed))
    if not ref.get("name"):
        found.append(("FieldValueRequired", "roleRef.name", "Required value"))
    else:
        found += name_causes(str(ref["name"]), "roleRef.name")
    for i, subject in enumerate(obj.get("subjects") or []):
        found += _subject_causes(subject, f"subjects[{i}]", namespaced=kind.namespaced)
    if old is not None and old.get("roleRef") != obj.get("roleRef"):
        value = ref if isinstance(ref, dict) else {}
        shown = (f'rbac.RoleRef{{APIGroup:"{value.get("apiGroup", "")}", '
                 f'Kind:"{value.get("kind", "")}", Name:"{value.get("name", "")}"}}')
        found.append(("FieldValueInvalid", "roleRef",
                      f"Invalid value: {shown}: cannot change roleRef"))
    return found
