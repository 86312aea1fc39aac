"""The default ClusterRoles and ClusterRoleBindings kube-apiserver bootstraps, reconciled at start.

Why: with RBAC on, a new cluster is only usable because of the roles the RBAC storage's
post-start hook creates (plugin/pkg/auth/authorizer/rbac/bootstrappolicy): ``cluster-admin``
bound to ``system:masters``, the user-facing ``admin``/``edit``/``view`` (filled by the
ClusterRole aggregation controller from the ``system:aggregate-to-*`` roles), and what every
authenticated user may do (discovery, its own access reviews, public info, the service-account
issuer's OIDC documents). Each start reconciles them as that hook does: missing ones are made,
existing ones annotated ``rbac.authorization.kubernetes.io/autoupdate: "true"`` regain missing
rules, selectors, labels, annotations and subjects (additions only; a user who sets the
annotation to ``"false"`` keeps the role as edited). The state lives in the store, so it is
kept through restarts like any object.
"""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube import kinds, patch, rbac, registry

Obj = dict[str, Any]

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"

CLUSTER_ROLES_KIND = kinds.BY_KEY[kinds.ResourceKey(f"{rbac.GROUP}/clusterroles")]
CLUSTER_BINDINGS_KIND = kinds.BY_KEY[kinds.ResourceKey(f"{rbac.GROUP}/clusterrolebindings")]


def _rule(verbs: list[str], group: str, *resources: str) -> Obj:
    return {"verbs": verbs, "apiGroups": [group], "resources": list(resources)}


def _urls(verbs: list[str], *urls: str) -> Obj:
    return {"verbs": verbs, "nonResourceURLs": list(urls)}


def _role(name: str, rules: list[Obj], *, labels: dict[str, str] | None = None,
          aggregate: str | None = None) -> Obj:
    role: Obj = {"apiVersion": f"{rbac.GROUP}/v1", "kind": "ClusterRole",
                 "metadata": {"name": name, "labels": {**BOOTSTRAP_LABELS, **(labels or {})},
                              "annotations": {AUTOUPDATE: "true"}},
                 "rules": rules}
    if aggregate is not None:
        role["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {f"{AGGREGATE}{aggregate}": "true"}}]}
    return role


_VIEW_CORE = ("pods", "replicationcontrollers", "replicationcontrollers/scale",
              "serviceaccounts", "services", "services/status", "endpoints",
              "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps")
_VIEW_CORE_STATUS = ("limitranges", "resourcequotas", "bindings", "events", "pods/status",
                     "resourcequotas/status", "namespaces/status",
                     "replicationcontrollers/status", "pods/log")
_APPS = ("controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
         "daemonsets", "daemonsets/status", "deployments", "deployments/status",
         "deployments/scale", "replicasets", "replicasets/status", "replicasets/scale")

CLUSTER_ROLES: tuple[Obj, ...] = (
    _role("cluster-admin", [_rule(["*"], "*", "*"), _urls(["*"], "*")]),
    _role("system:discovery", [_urls(["get"], "/api", "/api/*", "/apis", "/apis/*", "/healthz",
                                     "/livez", "/openapi", "/openapi/*", "/readyz", "/version",
                                     "/version/")]),
    _role("system:basic-user", [
        _rule(["create"], "authentication.k8s.io", "selfsubjectreviews"),
        _rule(["create"], "authorization.k8s.io", "selfsubjectaccessreviews",
              "selfsubjectrulesreviews")]),
    _role("system:public-info-viewer", [_urls(["get"], "/healthz", "/livez", "/readyz",
                                              "/version", "/version/")]),
    _role("system:monitoring", [_urls(["get"], "/metrics", "/metrics/slis", "/livez",
                                      "/readyz", "/healthz", "/livez/*", "/readyz/*",
                                      "/healthz/*")]),
    _role("system:service-account-issuer-discovery", [_urls(
        ["get"], "/.well-known/openid-configuration", "/.well-known/openid-configuration/",
        "/openid/v1/jwks", "/openid/v1/jwks/")]),
    _role("system:auth-delegator", [
        _rule(["create"], "authentication.k8s.io", "tokenreviews"),
        _rule(["create"], "authorization.k8s.io", "subjectaccessreviews")]),
    _role("admin", [], aggregate="admin"),
    _role("edit", [], aggregate="edit", labels={f"{AGGREGATE}admin": "true"}),
    _role("view", [], aggregate="view", labels={f"{AGGREGATE}edit": "true"}),
    _role("system:aggregate-to-admin", [
        _rule(["create"], "authorization.k8s.io", "localsubjectaccessreviews"),
        _rule(READ + WRITE, rbac.GROUP, "rolebindings", "roles")],
        labels={f"{AGGREGATE}admin": "true"}),
    _role("system:aggregate-to-edit", [
        _rule(["impersonate"], "", "serviceaccounts"),
        _rule(WRITE, "", "pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"),
        _rule(["create"], "", "pods/eviction"),
        _rule(WRITE, "", "replicationcontrollers", "replicationcontrollers/scale",
              "serviceaccounts", "services", "services/proxy", "persistentvolumeclaims",
              "configmaps", "secrets", "endpoints"),
        _rule(["create"], "", "serviceaccounts/token"),
        _rule(READ, "", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward",
              "secrets", "services/proxy"),
        _rule(WRITE, "apps", "statefulsets", "statefulsets/scale", "daemonsets", "deployments",
              "deployments/scale", "deployments/rollback", "replicasets", "replicasets/scale"),
        _rule(WRITE, "autoscaling", "horizontalpodautoscalers"),
        _rule(WRITE, "batch", "jobs", "cronjobs"),
        _rule(WRITE, "policy", "poddisruptionbudgets"),
        _rule(WRITE, "networking.k8s.io", "networkpolicies", "ingresses"),
        _rule(WRITE, "coordination.k8s.io", "leases")],
        labels={f"{AGGREGATE}edit": "true"}),
    _role("system:aggregate-to-view", [
        _rule(READ, "", *_VIEW_CORE),
        _rule(READ, "", *_VIEW_CORE_STATUS),
        _rule(READ, "", "namespaces"),
        _rule(READ, "discovery.k8s.io", "endpointslices"),
        _rule(READ, "apps", *_APPS),
        _rule(READ, "autoscaling", "horizontalpodautoscalers",
              "horizontalpodautoscalers/status"),
        _rule(READ, "batch", "jobs", "jobs/status", "cronjobs", "cronjobs/status"),
        _rule(READ, "policy", "poddisruptionbudgets", "poddisruptionbudgets/status"),
        _rule(READ, "networking.k8s.io", "ingresses", "ingresses/status", "networkpolicies"),
        _rule(READ, "coordination.k8s.io", "leases")],
        labels={f"{AGGREGATE}view": "true"}),
)


def _binding(name: str, *groups: str) -> Obj:
    return {"apiVersion": f"{rbac.GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": dict(BOOTSTRAP_LABELS),
                         "annotations": {AUTOUPDATE: "true"}},
            "roleRef": {"apiGroup": rbac.GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": rbac.GROUP, "kind": "Group", "name": g} for g in groups]}


CLUSTER_ROLE_BINDINGS: tuple[Obj, ...] = (
    _binding("cluster-admin", rbac.MASTERS),
    _binding("system:discovery", AUTHENTICATED),
    _binding("system:basic-user", AUTHENTICATED),
    _binding("system:public-info-viewer", AUTHENTICATED, UNAUTHENTICATED),
    _binding("system:service-account-issuer-discovery", "system:serviceaccounts"),
    _binding("system:monitoring", "system:monitoring"),
)


def _merged_metadata(current: Obj, wanted: Obj) -> None:
    meta = current["metadata"]
    for field in ("labels", "annotations"):
        merged = {**wanted["metadata"][field], **(meta.get(field) or {})}
        meta[field] = merged


def _reconcile_role(current: Obj, wanted: Obj) -> Obj | None:
    """The role with what the default adds (None: nothing to add)."""
    new = patch.copy_json(current)
    _merged_metadata(new, wanted)
    have = rbac.parse_rules(new.get("rules"))
    if not new.get("aggregationRule"):  # aggregated rules belong to the controller
        lacking = [r for r in rbac.parse_rules(wanted["rules"]) if rbac.missing(list(have), [r])]
        new["rules"] = [*(new.get("rules") or []), *(r.raw for r in lacking)]
    if "aggregationRule" in wanted:
        selectors = (new.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        for selector in wanted["aggregationRule"]["clusterRoleSelectors"]:
            if selector not in selectors:
                selectors = [*selectors, selector]
        new["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return None if new == current else new


def _reconcile_binding(current: Obj, wanted: Obj) -> Obj | None:
    new = patch.copy_json(current)
    _merged_metadata(new, wanted)
    subjects = list(new.get("subjects") or [])
    for subject in wanted["subjects"]:
        if subject not in subjects:
            subjects.append(subject)
    new["subjects"] = subjects
    return None if new == current else new


def reconcile(reg: registry.Registry) -> None:
    """Create the default roles and bindings, or add back what is missing from them."""
    for kind, defaults, merge in ((CLUSTER_ROLES_KIND, CLUSTER_ROLES, _reconcile_role),
                                  (CLUSTER_BINDINGS_KIND, CLUSTER_ROLE_BINDINGS,
                                   _reconcile_binding)):
        for wanted in defaults:
            name = wanted["metadata"]["name"]
            found = reg.store.peek(kind.store_key, "", name)
            if found is None:
                reg.create(kind=kind, namespace="", body=patch.copy_json(wanted))
                continue
            if (found.obj["metadata"].get("annotations") or {}).get(AUTOUPDATE) == "false":
                continue
            if kind is CLUSTER_BINDINGS_KIND and found.obj.get("roleRef") != wanted["roleRef"]:
                reg.delete(kind=kind, namespace="", name=name, options={})
                reg.create(kind=kind, namespace="", body=patch.copy_json(wanted))
                continue
            new = merge(reg.current(kind, "", name), wanted)
            if new is not None:
                reg.update(kind=kind, namespace="", name=name, body=new)
