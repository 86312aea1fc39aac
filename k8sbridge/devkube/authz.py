"""Authorization of every request: request attributes, RBAC, impersonation, escalation checks.

Why: kube-apiserver with ``--authorization-mode=Node,RBAC`` runs each authenticated request
through WithImpersonation then WithAuthorization: the request becomes attributes
(staging/.../endpoints/request/requestinfo.go: verb from the method — ``list``/``watch`` for a
collection GET, ``deletecollection`` for a collection DELETE —, API group, resource,
subresource, namespace, name, or a non-resource path), the privileged-group authorizer allows
``system:masters`` (the group of devkube's admin token, as of kubeadm's admin), and RBAC
decides for everyone else. A refusal is 403 with responsewriters.Forbidden's words. The Node
authorizer is not modelled: no client of devkube authenticates as a ``system:node:*`` user
(the bridge's kubelet uses the admin kubeconfig or a ServiceAccount), so it would always
abstain.

The RBAC storage's escalation checks (pkg/registry/rbac) need the request's user while the
registry works; ``CURRENT`` carries it (Go passes it in the request context) and
``Authorizer.guard`` is the registry's hook.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from k8sbridge.devkube import errors, httpio, kinds, rbac, satokens, store

Obj = dict[str, Any]

ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
PRIVILEGED = rbac.MASTERS  # the privileged group authorizer's group: always allowed
RBAC_KEYS = tuple(kinds.ResourceKey(f"{rbac.GROUP}/{p}") for p in (
    "clusterroles", "roles", "clusterrolebindings", "rolebindings"))
_GC_FIELDS = ("ownerReferences", "finalizers", "resourceVersion", "managedFields")


@dataclasses.dataclass(frozen=True, slots=True)
class Current:
    """The request being served: who, and what it asked (for the escalation checks)."""

    user: satokens.User
    attributes: rbac.Attributes | None  # None for system:masters (never checked further)


CURRENT: contextvars.ContextVar[Current | None] = contextvars.ContextVar(
    "devkube_authz_current", default=None)


def attributes(user: satokens.User, *, method: str, path: str,
               query: Mapping[str, str]) -> rbac.Attributes:
    """RequestInfoFactory.NewRequestInfo plus the user: what the authorizer is asked."""
    parts = [p for p in path.split("/") if p]
    non_resource = rbac.Attributes(user=user.username, groups=user.groups,
                                   verb=method.lower(), resource_request=False, path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    rest = parts[1:]
    group = ""
    if parts[0] == "apis":
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    verb = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update",
            "PATCH": "patch", "DELETE": "delete"}.get(method, "")
    special = False
    if rest[0] in ("proxy", "watch") and len(rest) >= 2:
        verb, rest, special = rest[0], rest[1:], True
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb != "proxy" else ""
    if not name and verb == "get" and not special:
        try:
            verb = "watch" if httpio.bool_param(query, "watch") else "list"
        except errors.ApiError:
            verb = "list"
    if not name and verb in ("get", "list", "watch"):
        selector = query.get("fieldSelector", "")
        for term in selector.split(","):
            key, eq, value = term.partition("=")
            if key.strip() == "metadata.name" and eq and "/" not in value and "%" not in value:
                name = value.lstrip("=").strip()
    if not name and verb == "delete":
        verb = "deletecollection"
    return rbac.Attributes(user=user.username, groups=user.groups, verb=verb,
                           resource_request=True, group=group,
                           version=version, resource=resource, subresource=subresource,
                           namespace=namespace, name=name, path=path)


def forbidden_message(a: rbac.Attributes) -> str:
    """responsewriters.forbiddenMessage."""
    if not a.resource_request:
        return f'User "{a.user}" cannot {a.verb} path "{a.path}"'
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    where = (f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope")
    return (f'User "{a.user}" cannot {a.verb} resource "{resource}" in API group '
            f'"{a.group}" {where}')


def forbidden(a: rbac.Attributes, reason: str) -> errors.ApiError:
    """responsewriters.Forbidden: apierrors.NewForbidden of the request's resource."""
    why = forbidden_message(a) + (f": {reason}" if reason else "")
    if not a.resource_request or not a.resource:
        return errors.ApiError(code=403, reason="Forbidden", message=f"forbidden: {why}",
                               details={})
    qualified = errors.qualified(plural=a.resource, group=a.group)
    message = (f'{qualified} "{a.name}" is forbidden: {why}' if a.name
               else f"{qualified} is forbidden: {why}")
    details: errors.RawStatusDetails = {"kind": a.resource}
    if a.name:
        details["name"] = a.name
    if a.group:
        details["group"] = a.group
    return errors.ApiError(code=403, reason="Forbidden", message=message, details=details)


def _strip_gc(obj: Obj | None) -> Obj | None:
    if obj is None:
        return None
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _GC_FIELDS}
    return {**obj, "metadata": meta}


class Authorizer:
    """RBAC over one store, with the privileged group first (single owner: the event loop)."""

    def __init__(self, *, st: store.Store) -> None:
        self.store = st
        self._index: rbac.Index | None = None
        self._versions: tuple[int, ...] = ()

    def index(self) -> rbac.Index:
        """The bindings index, rebuilt when a Role, ClusterRole or binding changed."""
        versions = tuple(self.store.version(k) for k in RBAC_KEYS)
        if self._index is None or versions != self._versions:
            objs = [[s.obj for s in self.store.items(k)] for k in RBAC_KEYS]
            self._index = rbac.Index(cluster_roles=objs[0], roles=objs[1],
                                     cluster_bindings=objs[2], bindings=objs[3])
            self._versions = versions
        return self._index

    def authorize(self, a: rbac.Attributes) -> tuple[bool, str]:
        if rbac.MASTERS in a.groups:
            return True, ""
        return self.index().authorize(a)

    def check(self, a: rbac.Attributes) -> None:
        """403 unless ``a`` is allowed."""
        allowed, reason = self.authorize(a)
        if not allowed:
            raise forbidden(a, reason)

    def rules_for(self, user: str, groups: tuple[str, ...],
                  namespace: str) -> tuple[list[rbac.Rule], list[str]]:
        """The union authorizer's RulesFor (the privileged group holds everything)."""
        rules, problems = self.index().rules_for(user, groups, namespace)
        if rbac.MASTERS in groups:
            rules = [*rbac.FULL_AUTHORITY, *rules]
        return rules, problems

    # --- impersonation (endpoints/filters/impersonation.go) ------------------------------

    def impersonate(self, user: satokens.User, headers: Mapping[str, str],
                    all_headers: Any) -> satokens.User:
        """The user a request acts as, after checking the ``impersonate`` verb for each
        requested user, group, uid and extra; ``user`` when nothing is impersonated."""
        name = headers.get("Impersonate-User")
        groups = list(all_headers.getall("Impersonate-Group", []))
        uid = headers.get("Impersonate-Uid")
        extra: dict[str, list[str]] = {}
        for key in headers:
            if key.lower().startswith("impersonate-extra-"):
                extra.setdefault(key[len("impersonate-extra-"):].lower(), []).extend(
                    all_headers.getall(key, []))
        if name is None:
            if groups or uid is not None or extra:
                raise errors.ApiError(code=500, reason="InternalError", message=(
                    "Internal error occurred: requested impersonation of groups, uid or extra "
                    "without impersonating a user"))
            return user
        base = rbac.Attributes(user=user.username, groups=user.groups, verb="impersonate",
                               resource_request=True)
        checks: list[rbac.Attributes] = []
        if name.startswith(rbac.SA_PREFIX) and name.count(":") == 3:
            namespace, sa = name[len(rbac.SA_PREFIX):].split(":")
            checks.append(dataclasses.replace(base, resource="serviceaccounts", namespace=namespace,
                                          name=sa))
            if not groups:
                groups = list(rbac.service_account_groups(namespace))
        else:
            checks.append(dataclasses.replace(base, resource="users", name=name))
        checks += [dataclasses.replace(base, resource="groups", name=g)
                   for g in all_headers.getall("Impersonate-Group", [])]
        if uid is not None:
            checks.append(dataclasses.replace(base, group="authentication.k8s.io",
                                          resource="uids", name=uid))
        for key, values in extra.items():
            checks += [dataclasses.replace(base, group="authentication.k8s.io",
                                       resource="userextras", subresource=key, name=v)
                       for v in values]
        for check in checks:
            self.check(check)
        if name != ANONYMOUS:
            if not any(g in (ALL_AUTHENTICATED, ALL_UNAUTHENTICATED) for g in groups):
                groups.append(ALL_AUTHENTICATED)
        elif ALL_UNAUTHENTICATED not in groups:
            groups.append(ALL_UNAUTHENTICATED)
        return satokens.User(username=name, uid=uid or "", groups=tuple(groups),
                             extra=tuple((k, tuple(v)) for k, v in extra.items()))

    # --- escalation (pkg/registry/rbac/*/policybased) ------------------------------------

    def guard(self, kind: kinds.Kind, new: Obj, old: Obj | None) -> None:
        """Refuse a Role or binding that grants more than its writer holds (403), unless the
        writer is in ``system:masters`` or may ``escalate`` (roles) / ``bind`` (bindings)."""
        current = CURRENT.get()
        if current is None:  # devkube's own writes (bootstrap policy)
            return
        user, request = current.user, current.attributes
        if rbac.MASTERS in user.groups or request is None:
            return
        if old is not None and _strip_gc(new) == _strip_gc(old):
            return  # only fields the garbage collector needs (IsOnlyMutatingGCFields)
        name = str((new.get("metadata") or {}).get("name") or "")
        namespace = str((new.get("metadata") or {}).get("namespace") or "")
        base = rbac.Attributes(user=user.username, groups=user.groups, verb="",
                               resource_request=True, group=rbac.GROUP)

        def refuse(why: str) -> errors.ApiError:
            return errors.forbidden(plural=kind.plural, group=kind.group, name=name, why=why)

        if kind.plural in ("roles", "clusterroles"):
            escalate = dataclasses.replace(base, verb="escalate", resource=kind.plural,
                                           name=request.name, namespace=request.namespace)
            if request.resource == kind.plural and self.authorize(escalate)[0]:
                return
            wanted = list(rbac.parse_rules(new.get("rules")))
            self._confirm(user, namespace, wanted, refuse)
            aggregated = [o for o in (new, old) if o is not None
                          and ((o.get("aggregationRule") or {}).get("clusterRoleSelectors"))]
            if aggregated:
                owned, _ = self.rules_for(user.username, user.groups, namespace)
                if rbac.missing(owned, rbac.FULL_AUTHORITY):
                    raise refuse("must have cluster-admin privileges to use the aggregationRule")
            return
        ref = new.get("roleRef") if isinstance(new.get("roleRef"), dict) else {}
        assert isinstance(ref, dict)
        ref_plural = "roles" if ref.get("kind") == "Role" else "clusterroles"
        if self.authorize(dataclasses.replace(base, verb="bind", resource=ref_plural,
                                          name=str(ref.get("name") or ""),
                                          namespace=namespace))[0]:
            return
        index = self.index()
        if ref.get("kind") == "Role":
            rules = index.roles.get((namespace, str(ref.get("name"))))
            missing_role = f'roles.{rbac.GROUP} "{ref.get("name")}" not found'
        else:
            rules = index.cluster_roles.get(str(ref.get("name")))
            missing_role = f'clusterroles.{rbac.GROUP} "{ref.get("name")}" not found'
        if rules is None:
            raise refuse(missing_role)
        self._confirm(user, namespace, list(rules), refuse)

    def _confirm(self, user: satokens.User, namespace: str, wanted: list[rbac.Rule],
                 refuse: Callable[[str], errors.ApiError]) -> None:
        """ConfirmNoEscalation."""
        owned, problems = self.rules_for(user.username, user.groups, namespace)
        lacking = rbac.missing(owned, wanted)
        if lacking:
            raise refuse(rbac.escalation_message(user=user.username, groups=user.groups,
                                                 lacking=lacking, errors=problems))
