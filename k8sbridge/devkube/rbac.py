"""RBAC decisions: who may do what, from Roles, ClusterRoles and their bindings (pure).

Why: kube-apiserver started with ``--authorization-mode=Node,RBAC`` answers every request with
plugin/pkg/auth/authorizer/rbac: the rules of the (Cluster)Roles bound to the user (by name,
by group, or as a ServiceAccount) either allow the request or the answer is "no opinion", and
the reason names the bindings whose roles could not be found. The same resolution serves
SelfSubjectRulesReview (``RulesFor``) and the escalation checks of pkg/registry/rbac (a user
may only grant rules it holds: ``Covers``, with its missing rules in ``CompactString`` form).

Everything here works on plain objects given by the caller; ``Index`` is rebuilt by the caller
whenever a Role, ClusterRole or binding changes, so one decision costs a few dictionary
lookups plus the rules of the bindings that name the user or one of its groups.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

Obj = dict[str, Any]

GROUP = "rbac.authorization.k8s.io"
SA_PREFIX = "system:serviceaccount:"
MASTERS = "system:masters"  # user.SystemPrivilegedGroup: always allowed, may escalate


@dataclasses.dataclass(frozen=True, slots=True)
class Attributes:
    """authorizer.Attributes: what one request (or one access review) asks."""

    user: str
    groups: tuple[str, ...]
    verb: str
    resource_request: bool
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """A PolicyRule as sets; ``raw`` keeps the rule as written (for reviews and messages)."""

    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    names: frozenset[str]
    urls: tuple[str, ...]
    raw: Obj

    def allows(self, a: Attributes) -> bool:
        """rbac.RuleAllows."""
        if "*" not in self.verbs and a.verb not in self.verbs:
            return False
        if not a.resource_request:
            return any(u == "*" or u == a.path or (u.endswith("*") and a.path.startswith(u[:-1]))
                       for u in self.urls)
        if "*" not in self.groups and a.group not in self.groups:
            return False
        combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        if not ("*" in self.resources or combined in self.resources
                or (a.subresource and f"*/{a.subresource}" in self.resources)):
            return False
        return not self.names or a.name in self.names


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def parse_rule(raw: Any) -> Rule | None:
    if not isinstance(raw, dict):
        return None
    return Rule(verbs=frozenset(_strings(raw.get("verbs"))),
                groups=frozenset(_strings(raw.get("apiGroups"))),
                resources=frozenset(_strings(raw.get("resources"))),
                names=frozenset(_strings(raw.get("resourceNames"))),
                urls=tuple(_strings(raw.get("nonResourceURLs"))), raw=raw)


def parse_rules(raw: Any) -> tuple[Rule, ...]:
    rules = raw if isinstance(raw, list) else []
    return tuple(r for r in (parse_rule(x) for x in rules) if r is not None)


def service_account_user(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")


def _subject_keys(subject: Any, binding_namespace: str) -> tuple[str, str] | None:
    """("user" | "group", name) a binding subject applies to (rbac appliesTo)."""
    if not isinstance(subject, dict):
        return None
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if kind == "User":
        return "user", name
    if kind == "Group":
        return "group", name
    if kind == "ServiceAccount":
        namespace = str(subject.get("namespace") or binding_namespace)
        return "user", service_account_user(namespace, name)
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    """One binding's rules as they apply to its subjects (or why they cannot be found)."""

    order: int
    description: str  # 'ClusterRoleBinding "x" of ClusterRole "y" to User "z"' minus subject
    rules: tuple[Rule, ...]
    error: str  # the role is missing: 'clusterrole.rbac.authorization.k8s.io "y" not found'


def _describe_subject(subject: Obj, binding_namespace: str) -> str:
    """describeSubject (a ServiceAccount as "name/namespace")."""
    kind = subject.get("kind")
    name = subject.get("name")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


class Index:
    """Bindings by subject, with their roles' rules resolved (rebuilt on every RBAC change).

    ``roles``: namespace -> name -> rules; ``cluster_roles``: name -> rules;
    ``cluster_bindings`` and ``bindings`` the binding objects in (namespace, name) order.
    """

    def __init__(self, *, cluster_roles: Iterable[Obj], roles: Iterable[Obj],
                 cluster_bindings: Iterable[Obj], bindings: Iterable[Obj]) -> None:
        self.cluster_roles: dict[str, tuple[Rule, ...]] = {
            str(r["metadata"]["name"]): parse_rules(r.get("rules")) for r in cluster_roles}
        self.roles: dict[tuple[str, str], tuple[Rule, ...]] = {
            (str(r["metadata"].get("namespace", "")), str(r["metadata"]["name"])):
                parse_rules(r.get("rules")) for r in roles}
        # scope ("" = cluster) -> ("user"|"group", name) -> grants with their subjects
        self._grants: dict[str, dict[tuple[str, str], list[tuple[Grant, str]]]] = {}
        order = 0
        for binding in cluster_bindings:
            order += 1
            self._add(binding, "", order)
        for binding in bindings:
            order += 1
            self._add(binding, str(binding["metadata"].get("namespace", "")), order)

    def _role_rules(self, ref: Any, namespace: str) -> tuple[tuple[Rule, ...], str]:
        """GetRoleReferenceRules: (rules, "" ) or ((), the not-found error)."""
        ref = ref if isinstance(ref, dict) else {}
        name = str(ref.get("name") or "")
        if ref.get("kind") == "Role" and namespace:
            rules = self.roles.get((namespace, name))
            if rules is None:
                return (), f'role.{GROUP} "{name}" not found'
            return rules, ""
        if ref.get("kind") == "ClusterRole":
            rules = self.cluster_roles.get(name)
            if rules is None:
                return (), f'clusterrole.{GROUP} "{name}" not found'
            return rules, ""
        return (), f"unsupported role reference kind: {ref.get('kind')!r}"

    def _add(self, binding: Obj, namespace: str, order: int) -> None:
        raw_ref = binding.get("roleRef")
        ref: Obj = raw_ref if isinstance(raw_ref, dict) else {}
        rules, error = self._role_rules(ref, namespace)
        kind = "RoleBinding" if namespace else "ClusterRoleBinding"
        name = binding["metadata"]["name"]
        where = f'{kind} "{name}/{namespace}"' if namespace else f'{kind} "{name}"'
        grant = Grant(order=order, rules=rules, error=error,
                      description=f'{where} of {ref.get("kind")} "{ref.get("name")}"')
        scope = self._grants.setdefault(namespace, {})
        for subject in binding.get("subjects") or []:
            key = _subject_keys(subject, namespace)
            if key is not None:
                scope.setdefault(key, []).append((grant, _describe_subject(subject, namespace)))

    def _applicable(self, user: str, groups: Iterable[str],
                    namespace: str) -> list[tuple[Grant, str]]:
        """VisitRulesFor's bindings: cluster-wide ones, then those of ``namespace``."""
        found: list[tuple[Grant, str]] = []
        for scope_name in ("", namespace) if namespace else ("",):
            scope = self._grants.get(scope_name)
            if not scope:
                continue
            found += scope.get(("user", user), ())
            for group in groups:
                found += scope.get(("group", group), ())
        found.sort(key=lambda pair: pair[0].order)
        seen: set[int] = set()
        unique: list[tuple[Grant, str]] = []
        for grant, subject in found:  # a binding naming the user twice is visited once
            if grant.order not in seen:
                seen.add(grant.order)
                unique.append((grant, subject))
        return unique

    def authorize(self, a: Attributes) -> tuple[bool, str]:
        """(allowed, reason) as the RBAC authorizer gives them (deny = no opinion)."""
        errors: list[str] = []
        for grant, subject in self._applicable(a.user, a.groups, a.namespace):
            if grant.error:
                errors.append(grant.error)
                continue
            for rule in grant.rules:
                if rule.allows(a):
                    return True, f"RBAC: allowed by {grant.description} to {subject}"
        if not errors:
            return False, ""
        return False, "RBAC: " + (errors[0] if len(errors) == 1 else
                                  "[" + ", ".join(errors) + "]")

    def rules_for(self, user: str, groups: Iterable[str],
                  namespace: str) -> tuple[list[Rule], list[str]]:
        """RulesFor: every rule the user holds in ``namespace`` (and cluster-wide), plus the
        errors of bindings whose roles are missing."""
        rules: list[Rule] = []
        errors: list[str] = []
        for grant, _ in self._applicable(user, groups, namespace):
            if grant.error:
                errors.append(grant.error)
            rules.extend(grant.rules)
        return rules, errors


# --- escalation (pkg/registry/rbac/validation) ------------------------------------------------

def breakdown(rule: Rule) -> Iterator[Rule]:
    """BreakdownRule: one rule per verb x group x resource (x name), and per verb x URL."""
    raw = rule.raw
    for group in _strings(raw.get("apiGroups")):
        for resource in _strings(raw.get("resources")):
            for verb in _strings(raw.get("verbs")):
                names: list[str | None] = [*_strings(raw.get("resourceNames"))] or [None]
                for name in names:
                    sub: Obj = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                    if name is not None:
                        sub["resourceNames"] = [name]
                    parsed = parse_rule(sub)
                    assert parsed is not None
                    yield parsed
    for url in _strings(raw.get("nonResourceURLs")):
        for verb in _strings(raw.get("verbs")):
            parsed = parse_rule({"nonResourceURLs": [url], "verbs": [verb]})
            assert parsed is not None
            yield parsed


def _resource_covers(owner: frozenset[str], wanted: frozenset[str]) -> bool:
    if "*" in owner or wanted <= owner:
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    return owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def _covers_one(owner: Rule, sub: Rule) -> bool:
    """ruleCovers."""
    if not ("*" in owner.verbs or sub.verbs <= owner.verbs):
        return False
    if not ("*" in owner.groups or sub.groups <= owner.groups):
        return False
    if not _resource_covers(owner.resources, sub.resources):
        return False
    if not all(any(_url_covers(o, u) for o in owner.urls) for u in sub.urls):
        return False
    if not sub.names:
        return not owner.names
    return not owner.names or sub.names <= owner.names


def missing(owned: list[Rule], wanted: Iterable[Rule]) -> list[Rule]:
    """Covers: the atomic rules of ``wanted`` that no owned rule covers."""
    return [sub for rule in wanted for sub in breakdown(rule)
            if not any(_covers_one(o, sub) for o in owned)]


def _go_quoted(values: list[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "]"


def compact_string(raw: Obj) -> str:
    """rbacv1helpers.CompactString."""
    parts = []
    for label, key in (("APIGroups", "apiGroups"), ("Resources", "resources"),
                       ("NonResourceURLs", "nonResourceURLs"),
                       ("ResourceNames", "resourceNames"), ("Verbs", "verbs")):
        values = _strings(raw.get(key))
        if values:
            parts.append(f"{label}:{_go_quoted(values)}")
    return "{" + ", ".join(parts) + "}"


def compact(rules: list[Rule]) -> list[Obj]:
    """CompactRules: simple rules (one group, one resource, no names) differing only by verb
    become one rule."""
    merged: dict[tuple[str, str], Obj] = {}
    out: list[Obj] = []
    for rule in rules:
        raw = rule.raw
        groups, resources = _strings(raw.get("apiGroups")), _strings(raw.get("resources"))
        if len(groups) == 1 and len(resources) == 1 and not raw.get("resourceNames") \
                and not raw.get("nonResourceURLs"):
            key = (groups[0], resources[0])
            if key in merged:
                merged[key]["verbs"] += [v for v in _strings(raw.get("verbs"))
                                         if v not in merged[key]["verbs"]]
                continue
            merged[key] = {"apiGroups": groups, "resources": resources,
                           "verbs": _strings(raw.get("verbs"))}
            out.append(merged[key])
        else:
            out.append(dict(raw))
    return out


def escalation_message(*, user: str, groups: tuple[str, ...], lacking: list[Rule],
                       errors: list[str]) -> str:
    """ConfirmNoEscalation's refusal."""
    descriptions = sorted({compact_string(r) for r in compact(lacking)})
    message = (f'user "{user}" (groups={_go_quoted(list(groups))}) is attempting to grant RBAC '
               "permissions not currently held:\n" + "\n".join(descriptions))
    if errors:
        message += "; resolution errors: [" + ", ".join(errors) + "]"
    return message


FULL_AUTHORITY = parse_rules([
    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
    {"verbs": ["*"], "nonResourceURLs": ["*"]},
])
