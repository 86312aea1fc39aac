"""The pure parts of devkube's RBAC, from static inputs: request attributes as
requestinfo.go builds them, rule matching (wildcards, ``*/subresource``, resource names,
non-resource URL prefixes), subjects (users, groups, ServiceAccounts by the binding's
namespace), the deny reason naming missing roles, 403 messages, and escalation's Covers and
CompactString."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from k8sbridge.devkube import authz, rbac, satokens

SA = satokens.User(username="system:serviceaccount:apps:worker",
                   groups=("system:serviceaccounts", "system:serviceaccounts:apps",
                           "system:authenticated"))


def _attrs(method: str, path: str, **query: str) -> rbac.Attributes:
    return authz.attributes(SA, method=method, path=path, query=query)


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    pytest.param("GET", "/api/v1/namespaces/apps/pods", {}, ("list", "", "pods", "", "apps", ""),
                 id="list"),
    pytest.param("GET", "/api/v1/namespaces/apps/pods", {"watch": "true"},
                 ("watch", "", "pods", "", "apps", ""), id="watch"),
    pytest.param("GET", "/api/v1/namespaces/apps/pods", {"fieldSelector": "metadata.name=p"},
                 ("list", "", "pods", "", "apps", "p"), id="list one by field selector"),
    pytest.param("GET", "/api/v1/watch/namespaces/apps/pods/p", {},
                 ("watch", "", "pods", "", "apps", "p"), id="legacy watch path"),
    pytest.param("POST", "/api/v1/namespaces/apps/pods/p/eviction", {},
                 ("create", "", "pods", "eviction", "apps", "p"), id="subresource"),
    pytest.param("DELETE", "/apis/apps/v1/namespaces/apps/deployments", {},
                 ("deletecollection", "apps", "deployments", "", "apps", ""),
                 id="deletecollection"),
    pytest.param("GET", "/api/v1/namespaces/apps", {},
                 ("get", "", "namespaces", "", "apps", "apps"), id="a namespace"),
    pytest.param("PUT", "/api/v1/namespaces/apps/status", {},
                 ("update", "", "namespaces", "status", "apps", "apps"),
                 id="namespace status"),
    pytest.param("GET", "/api/v1/proxy/namespaces/apps/pods/p/x/y", {},
                 ("proxy", "", "pods", "", "apps", "p"), id="proxy (no subresource)"),
    pytest.param("PATCH", "/api/v1/nodes/n1/status", {},
                 ("patch", "", "nodes", "status", "", "n1"), id="cluster scope"),
])
def test_request_attributes(method: str, path: str, query: dict[str, str],
                            expected: tuple[str, ...]) -> None:
    a = authz.attributes(SA, method=method, path=path, query=query)
    assert a.resource_request
    assert (a.verb, a.group, a.resource, a.subresource, a.namespace, a.name) == expected


@pytest.mark.parametrize("path", ["/api", "/api/v1", "/apis/apps", "/apis/apps/v1", "/healthz",
                                  "/openapi/v3/apis/apps/v1", "/version"])
def test_non_resource_paths(path: str) -> None:
    a = _attrs("GET", path)
    assert not a.resource_request and (a.verb, a.path) == ("get", path)


def _index(*, roles: Sequence[Any] = (), cluster_roles: Sequence[Any] = (),
           bindings: Sequence[Any] = (), cluster_bindings: Sequence[Any] = ()) -> rbac.Index:
    return rbac.Index(roles=roles, cluster_roles=cluster_roles, bindings=bindings,
                      cluster_bindings=cluster_bindings)


def _role(name: str, *rules: dict[str, Any], namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"metadata": meta, "rules": list(rules)}


def _bind(name: str, kind: str, role: str, *subjects: dict[str, Any],
          namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"metadata": meta, "roleRef": {"apiGroup": rbac.GROUP, "kind": kind, "name": role},
            "subjects": list(subjects)}


WORKER = {"kind": "ServiceAccount", "name": "worker"}  # namespace: the binding's


def test_rules_match_as_rbac_rule_allows() -> None:
    index = _index(
        roles=[_role("r", {"apiGroups": [""], "resources": ["*/status", "configmaps"],
                           "verbs": ["get"], "resourceNames": ["cfg"]},
                     {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]},
                     namespace="apps")],
        cluster_roles=[_role("urls", {"nonResourceURLs": ["/metrics", "/logs/*"],
                                      "verbs": ["get"]})],
        bindings=[_bind("b", "Role", "r", WORKER, namespace="apps")],
        cluster_bindings=[_bind("c", "ClusterRole", "urls",
                                {"kind": "Group", "name": "system:serviceaccounts:apps"})])
    allowed = [("GET", "/api/v1/namespaces/apps/configmaps/cfg"),
               ("GET", "/api/v1/namespaces/apps/pods/cfg/status"),
               ("DELETE", "/apis/apps/v1/namespaces/apps/deployments/web"),
               ("GET", "/metrics"), ("GET", "/logs/a/b")]
    denied = [("GET", "/api/v1/namespaces/apps/configmaps/other"),
              ("GET", "/api/v1/namespaces/apps/configmaps"),  # list: no name
              ("GET", "/api/v1/namespaces/other/configmaps/cfg"),  # other namespace
              ("GET", "/api/v1/namespaces/apps/pods/cfg"),  # pods, not pods/status
              ("POST", "/metrics"), ("GET", "/logs")]
    for method, path in allowed:
        assert index.authorize(_attrs(method, path))[0], (method, path)
    for method, path in denied:
        assert index.authorize(_attrs(method, path)) == (False, ""), (method, path)
    ok, reason = index.authorize(_attrs("GET", "/metrics"))
    assert reason == ('RBAC: allowed by ClusterRoleBinding "c" of ClusterRole "urls" to '
                      'Group "system:serviceaccounts:apps"')


def test_missing_roles_are_the_deny_reason() -> None:
    index = _index(cluster_bindings=[_bind("c", "ClusterRole", "gone",
                                           {"kind": "User", "name": SA.username})],
                   bindings=[_bind("b", "Role", "absent", WORKER, namespace="apps")])
    a = _attrs("GET", "/api/v1/namespaces/apps/pods")
    assert index.authorize(a) == (False, (
        f'RBAC: [clusterrole.{rbac.GROUP} "gone" not found, role.{rbac.GROUP} "absent" '
        "not found]"))
    assert authz.forbidden(a, "").message == (
        'pods is forbidden: User "system:serviceaccount:apps:worker" cannot list resource '
        '"pods" in API group "" in the namespace "apps"')
    assert authz.forbidden(_attrs("GET", "/metrics"), "").message == (
        'forbidden: User "system:serviceaccount:apps:worker" cannot get path "/metrics"')
    node = authz.forbidden(_attrs("PATCH", "/api/v1/nodes/n1/status"), "why")
    assert node.message == (
        'nodes "n1" is forbidden: User "system:serviceaccount:apps:worker" cannot patch '
        'resource "nodes/status" in API group "" at the cluster scope: why')


def test_covers_and_compact_string() -> None:
    owned = list(rbac.parse_rules([
        {"apiGroups": [""], "resources": ["pods", "*/status"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"],
         "resourceNames": ["web"]},
        {"nonResourceURLs": ["/logs/*"], "verbs": ["get"]}]))
    wanted = rbac.parse_rules([
        {"apiGroups": [""], "resources": ["pods", "services/status"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"],
         "resourceNames": ["web"]},
        {"nonResourceURLs": ["/logs/x"], "verbs": ["get"]}])
    assert rbac.missing(owned, wanted) == []
    lacking = rbac.missing(owned, rbac.parse_rules([
        {"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]))
    message = rbac.escalation_message(user="u", groups=("g",), lacking=lacking, errors=[])
    assert message == (
        'user "u" (groups=["g"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["watch"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "watch"]}\n'
        '{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}')
