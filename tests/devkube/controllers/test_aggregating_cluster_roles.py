"""The ClusterRole aggregation controller's pure part: which rules an aggregated role holds
(selectors in order, matched roles by name, itself excluded, each rule once). Its work through
the API is tested in tests/devkube/server/test_authorizing_with_rbac.py."""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube.controllers.clusterroleaggregation import aggregated_rules

LABEL = "rbac.authorization.k8s.io/aggregate-to-view"


def _role(name: str, rules: list[Any], labels: dict[str, str] | None = None,
          selectors: list[Any] | None = None) -> dict[str, Any]:
    role: dict[str, Any] = {"metadata": {"name": name, "labels": labels or {}}, "rules": rules}
    if selectors is not None:
        role["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return role


READ_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
READ_CMS = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
READ_JOBS = {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]}


def test_rules_of_matched_roles_in_selector_then_name_order_once_each() -> None:
    view = _role("view", [READ_JOBS], {LABEL: "true"}, selectors=[
        {"matchLabels": {LABEL: "true"}},
        {"matchExpressions": [{"key": "extra", "operator": "Exists"}]}])
    roles = [view,
             _role("b", [READ_CMS, READ_PODS], {LABEL: "true"}),
             _role("a", [READ_PODS], {LABEL: "true"}),
             _role("c", [READ_JOBS], {"extra": "1"}),
             _role("unlabelled", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])]
    # view's own (stale) rules are not read; "a" before "b"; READ_PODS once.
    assert aggregated_rules(view, roles) == [READ_PODS, READ_CMS, READ_JOBS]


def test_a_bad_selector_matches_nothing() -> None:
    view = _role("view", [], selectors=[{"matchExpressions": [{"key": "k", "operator": "Nope"}]}])
    assert aggregated_rules(view, [view, _role("a", [READ_PODS], {"k": "v"})]) == []
