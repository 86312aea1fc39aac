"""RBAC in devkube, driven by real kubectl (the pinned one and the machine's older one) and the
official client against a ``k8sbridge devkube`` process with its controllers: ``auth can-i``
for the admin and a ServiceAccount (no, then yes after a RoleBinding to the aggregated
``view``), kube-apiserver's 403 words, a labelled ClusterRole aggregated into ``view``,
escalation refused, impersonation, SelfSubjectRulesReview, SubjectAccessReview, validation,
and a restart that keeps roles and restores the defaults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

KUBECTLS = ["kubectl", "/usr/bin/kubectl"]  # the pinned one (test extras), the machine's
RBAC = "rbac.authorization.k8s.io"


class Cluster:
    def __init__(self, data: Path, cache: Path) -> None:
        self.data = data
        self.env = {**os.environ, "KUBECONFIG": str(data / "kubeconfig"),
                    "KUBECACHEDIR": str(cache)}

    def run(self, *args: str, kubectl: str = "kubectl", stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([kubectl, *args], input=stdin, capture_output=True, text=True,
                                env=self.env, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def apply(self, doc: dict[str, Any]) -> None:
        self.run("apply", "-f", "-", stdin=json.dumps(doc))

    def token(self, account: str) -> str:
        self.run("create", "serviceaccount", account, check=False)
        return self.run("create", "token", account).stdout.strip()

    def api(self, token: str | None = None) -> client.ApiClient:
        cfg = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(self.data / "kubeconfig"), client_configuration=cfg)
        if token is not None:  # the same server and CA, another bearer token
            admin, cfg = cfg, client.Configuration(host=cfg.host)
            cfg.ssl_ca_cert = admin.ssl_ca_cert
            cfg.api_key = {"authorization": f"Bearer {token}"}
        return client.ApiClient(cfg)


def _start(data: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "k8sbridge", "devkube", "--port", "0", "--data-dir", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "devkube serving https://" in line, line
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data = tmp_path_factory.mktemp("devkube")
    proc = _start(data)
    try:
        yield Cluster(data, tmp_path_factory.mktemp("kubecache"))
    finally:
        _stop(proc)


def _eventually(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _binding(name: str, role_kind: str, role: str, account: str) -> dict[str, Any]:
    return {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": "default"},
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "default"}]}


@pytest.mark.parametrize("kubectl", KUBECTLS)
def test_can_i_for_the_admin_and_a_service_account(cluster: Cluster, kubectl: str) -> None:
    account = "reader-" + ("pinned" if kubectl == "kubectl" else "machine")
    token = cluster.token(account)
    assert cluster.run("auth", "can-i", "list", "pods", kubectl=kubectl).stdout == "yes\n"
    assert cluster.run("auth", "can-i", "*", "*", kubectl=kubectl).stdout == "yes\n"
    whoami = cluster.run("auth", "whoami", "-o", "json", kubectl=kubectl)
    assert "system:masters" in json.loads(whoami.stdout)["status"]["userInfo"]["groups"]
    no = cluster.run("--token", token, "auth", "can-i", "list", "pods", kubectl=kubectl,
                     check=False)
    assert (no.returncode, no.stdout) == (1, "no\n")
    cluster.apply(_binding(f"{account}-view", "ClusterRole", "view", account))
    # view's rules come from the aggregation controller (system:aggregate-to-view).
    _eventually(lambda: cluster.run("--token", token, "auth", "can-i", "list", "pods",
                                    kubectl=kubectl, check=False).stdout == "yes\n",
                "the RoleBinding to view to take effect")
    assert cluster.run("--token", token, "get", "pods", kubectl=kubectl).returncode == 0
    assert cluster.run("--token", token, "auth", "can-i", "list", "secrets",
                       kubectl=kubectl, check=False).stdout == "no\n"
    assert cluster.run("--token", token, "auth", "can-i", "list", "pods", "-n", "kube-system",
                       kubectl=kubectl, check=False).stdout == "no\n"


def test_a_denied_request_gets_kube_apiservers_403(cluster: Cluster) -> None:
    token = cluster.token("nobody")
    denied = cluster.run("--token", token, "get", "pods", check=False)
    assert denied.returncode == 1
    assert denied.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User '
        '"system:serviceaccount:default:nobody" cannot list resource "pods" in API group "" '
        'in the namespace "default"')
    denied = cluster.run("--token", token, "get", "clusterroles", "view", check=False)
    assert 'clusterroles.rbac.authorization.k8s.io "view" is forbidden: User ' \
           '"system:serviceaccount:default:nobody" cannot get resource "clusterroles" in API ' \
           'group "rbac.authorization.k8s.io" at the cluster scope' in denied.stderr
    with cluster.api(token) as api:
        with pytest.raises(client.ApiException) as caught:
            client.CoreV1Api(api).read_namespaced_secret("missing", "default")
    body = json.loads(str(caught.value.body))
    assert caught.value.status == 403
    assert body["reason"] == "Forbidden"
    assert body["details"] == {"name": "missing", "kind": "secrets"}
    assert body["message"] == (
        'secrets "missing" is forbidden: User "system:serviceaccount:default:nobody" cannot '
        'get resource "secrets" in API group "" in the namespace "default"')
    # Discovery and the access reviews are every authenticated user's (default bindings).
    assert cluster.run("--token", token, "api-resources", "--api-group=apps").returncode == 0
    # A binding to a role that does not exist is named in the reason.
    cluster.apply(_binding("ghost", "Role", "ghost", "nobody"))
    denied = cluster.run("--token", token, "get", "configmaps", check=False)
    assert denied.stderr.strip().endswith(
        f': RBAC: role.{RBAC} "ghost" not found'), denied.stderr


def test_a_labelled_cluster_role_is_aggregated_into_view(cluster: Cluster) -> None:
    label = f"{RBAC}/aggregate-to-view"
    rule = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}
    cluster.apply({"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
                   "metadata": {"name": "widget-reader", "labels": {label: "true"}},
                   "rules": [rule]})

    def view_rules() -> list[Any]:
        text = cluster.run("get", "clusterrole", "view", "-o", "jsonpath={.rules}").stdout
        rules: list[Any] = json.loads(text) if text else []
        return rules

    _eventually(lambda: rule in view_rules(), "view to aggregate widget-reader")
    # edit and admin aggregate view (view carries aggregate-to-edit, edit aggregate-to-admin).
    _eventually(lambda: rule in json.loads(cluster.run(
        "get", "clusterrole", "admin", "-o", "jsonpath={.rules}").stdout),
        "admin to aggregate widget-reader through edit")
    cluster.run("label", "clusterrole", "widget-reader", f"{label}-")
    _eventually(lambda: rule not in view_rules(), "view to drop widget-reader")


def test_escalation_is_refused(cluster: Cluster) -> None:
    token = cluster.token("escalator")
    cluster.apply({"apiVersion": f"{RBAC}/v1", "kind": "Role",
                   "metadata": {"name": "rbac-writer", "namespace": "default"},
                   "rules": [{"apiGroups": [RBAC], "resources": ["roles", "rolebindings"],
                              "verbs": ["create", "get"]},
                             {"apiGroups": [""], "resources": ["configmaps"],
                              "verbs": ["get"]}]})
    cluster.apply(_binding("escalator-rbac", "Role", "rbac-writer", "escalator"))
    refused = cluster.run("--token", token, "create", "role", "secrets-reader", "--verb=get,list",
                          "--resource=secrets", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f'Error from server (Forbidden): roles.{RBAC} "secrets-reader" is forbidden: user '
        '"system:serviceaccount:default:escalator" (groups=["system:serviceaccounts" '
        '"system:serviceaccounts:default" "system:authenticated"]) is attempting to grant RBAC '
        'permissions not currently held:\n{APIGroups:[""], Resources:["secrets"], '
        'Verbs:["get" "list"]}')
    # What it holds it may grant.
    cluster.run("--token", token, "create", "role", "cm-reader", "--verb=get",
                "--resource=configmaps")
    refused = cluster.run("--token", token, "create", "rolebinding", "grab-admin",
                          "--clusterrole=cluster-admin", "--serviceaccount=default:escalator",
                          check=False)
    assert refused.returncode == 1
    assert f'rolebindings.{RBAC} "grab-admin" is forbidden: user ' \
           '"system:serviceaccount:default:escalator"' in refused.stderr
    assert "{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}" in refused.stderr
    # The bind verb on that role lets it bind what it does not hold (as kube-apiserver).
    cluster.apply({"apiVersion": f"{RBAC}/v1", "kind": "Role",
                   "metadata": {"name": "may-bind-view", "namespace": "default"},
                   "rules": [{"apiGroups": [RBAC], "resources": ["clusterroles"],
                              "verbs": ["bind"], "resourceNames": ["view"]}]})
    cluster.apply(_binding("escalator-bind", "Role", "may-bind-view", "escalator"))
    cluster.run("--token", token, "create", "rolebinding", "escalator-view",
                "--clusterrole=view", "--serviceaccount=default:escalator")


def test_impersonation_is_authorized_by_the_impersonate_verb(cluster: Cluster) -> None:
    can = cluster.run("auth", "can-i", "list", "pods", "--as=system:serviceaccount:default:x",
                      check=False)
    assert can.stdout == "no\n"
    whoami = json.loads(cluster.run("auth", "whoami", "--as=alice", "--as-group=devs",
                                    "-o", "json").stdout)
    assert whoami["status"]["userInfo"] == {"username": "alice",
                                            "groups": ["devs", "system:authenticated"]}
    token = cluster.token("impersonator")
    refused = cluster.run("--token", token, "get", "pods", "--as=alice", check=False)
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): users "alice" is forbidden: User '
        '"system:serviceaccount:default:impersonator" cannot impersonate resource "users" in '
        'API group "" at the cluster scope')
    cluster.apply({"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
                   "metadata": {"name": "impersonate-alice"},
                   "rules": [{"apiGroups": [""], "resources": ["users"],
                              "verbs": ["impersonate"], "resourceNames": ["alice"]}]})
    cluster.apply({"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": "impersonator"},
                   "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole",
                               "name": "impersonate-alice"},
                   "subjects": [{"kind": "ServiceAccount", "name": "impersonator",
                                 "namespace": "default"}]})
    as_alice = cluster.run("--token", token, "get", "pods", "--as=alice", check=False)
    assert 'User "alice" cannot list resource "pods"' in as_alice.stderr  # now alice's rights
    refused = cluster.run("--token", token, "get", "pods", "--as=bob", check=False)
    assert 'users "bob" is forbidden' in refused.stderr


def test_rules_and_subject_access_reviews(cluster: Cluster) -> None:
    token = cluster.token("lister")
    cluster.apply({"apiVersion": f"{RBAC}/v1", "kind": "Role",
                   "metadata": {"name": "lease-lister", "namespace": "default"},
                   "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                              "verbs": ["list"], "resourceNames": ["one"]}]})
    cluster.apply(_binding("lister", "Role", "lease-lister", "lister"))
    listing = cluster.run("--token", token, "auth", "can-i", "--list").stdout
    assert "leases.coordination.k8s.io" in listing and "[one]" in listing
    assert "selfsubjectaccessreviews.authorization.k8s.io" in listing
    assert "leases" not in cluster.run("--token", token, "auth", "can-i", "--list",
                                       "--namespace=kube-system").stdout
    with cluster.api(token) as api:
        review = client.AuthorizationV1Api(api).create_self_subject_rules_review(
            client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(
                namespace="default")))
    assert review.status is not None and review.status.incomplete is False
    assert {"verbs": ["list"], "api_groups": ["coordination.k8s.io"], "resources": ["leases"],
            "resource_names": ["one"]} in [r.to_dict() for r in review.status.resource_rules]
    with cluster.api() as api:
        authz = client.AuthorizationV1Api(api)
        sar = authz.create_subject_access_review(client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user="system:serviceaccount:default:lister",
                groups=["system:serviceaccounts", "system:authenticated"],
                resource_attributes=client.V1ResourceAttributes(
                    namespace="default", verb="list", group="coordination.k8s.io",
                    resource="leases", name="one"))))
        assert sar.status is not None and sar.status.allowed is True
        assert sar.status.reason == (
            'RBAC: allowed by RoleBinding "lister/default" of Role "lease-lister" to '
            'ServiceAccount "lister/default"')
        local = authz.create_namespaced_local_subject_access_review(
            "default", client.V1LocalSubjectAccessReview(
                metadata=client.V1ObjectMeta(namespace="default"),
                spec=client.V1SubjectAccessReviewSpec(
                    user="system:serviceaccount:default:lister",
                    resource_attributes=client.V1ResourceAttributes(
                        namespace="default", verb="delete", resource="pods"))))
        assert local.status is not None and local.status.allowed is False
        with pytest.raises(client.ApiException) as caught:
            authz.create_subject_access_review(client.V1SubjectAccessReview(
                spec=client.V1SubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(verb="get"))))
    assert caught.value.status == 422
    assert json.loads(str(caught.value.body))["message"] == (
        'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": '
        "at least one of user or group must be specified")


def test_rbac_objects_are_validated_in_kube_apiservers_words(cluster: Cluster) -> None:
    bad = cluster.run("apply", "-f", "-", check=False, stdin=json.dumps({
        "apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "bad"},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "x"},
        "subjects": [{"kind": "Robot", "name": "r2"}]}))
    assert 'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"' \
        in bad.stderr
    assert 'subjects[0].kind: Unsupported value: "Robot": supported values: ' \
           '"ServiceAccount", "User", "Group"' in bad.stderr
    bad = cluster.run("apply", "-f", "-", check=False, stdin=json.dumps({
        "apiVersion": f"{RBAC}/v1", "kind": "Role",
        "metadata": {"name": "bad", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["pods"]},
                  {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}))
    assert "rules[0].verbs: Required value: verbs must contain at least one value" in bad.stderr
    assert "namespaced rules cannot apply to non-resource URLs" in bad.stderr
    # Verbs are free-form on the server (custom verbs such as "use" are legal).
    cluster.apply({"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
                   "metadata": {"name": "custom-verb"},
                   "rules": [{"apiGroups": ["policy"], "resources": ["podsecuritypolicies"],
                              "verbs": ["use", "frobnicate"]}]})
    cluster.apply(_binding("immutable", "ClusterRole", "view", "nobody"))
    changed = cluster.run("apply", "-f", "-", check=False, stdin=json.dumps(
        _binding("immutable", "ClusterRole", "edit", "nobody")))
    assert "roleRef: Invalid value:" in changed.stderr and "cannot change roleRef" in \
        changed.stderr
    wide = cluster.run("get", "rolebindings", "immutable", "-o", "wide").stdout.split("\n")
    assert wide[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert wide[1].split()[:2] == ["immutable", "ClusterRole/view"]
    assert wide[1].split()[-1] == "default/nobody"
    assert cluster.run("get", "clusterroles", "view").stdout.split()[:3] == [
        "NAME", "CREATED", "AT"]


def test_a_restart_keeps_roles_and_restores_the_defaults(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    data = tmp_path / "data"
    proc = _start(data)
    try:
        cluster = Cluster(data, tmp_path_factory.mktemp("kubecache"))
        token = cluster.token("kept")
        cluster.run("create", "role", "kept", "--verb=get", "--resource=pods")
        cluster.run("create", "rolebinding", "kept", "--role=kept",
                    "--serviceaccount=default:kept")
        cluster.run("patch", "clusterrole", "system:basic-user", "--type=merge",
                    "-p", '{"rules": []}')
        cluster.run("delete", "clusterrolebinding", "system:discovery")
    finally:
        _stop(proc)
    proc = _start(data)
    try:
        assert cluster.run("--token", token, "auth", "can-i", "get", "pods").stdout == "yes\n"
        rules = json.loads(cluster.run("get", "clusterrole", "system:basic-user", "-o",
                                       "jsonpath={.rules}").stdout)
        assert {"apiGroups": ["authorization.k8s.io"], "verbs": ["create"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]} in rules
        cluster.run("get", "clusterrolebinding", "system:discovery")
    finally:
        _stop(proc)


def test_metrics_are_kube_apiservers_families_behind_system_monitoring(
    cluster: Cluster,
) -> None:
    cluster.run("get", "pods", "-n", "default")
    cluster.run("get", "pod", "nothing-here", "-n", "default", check=False)
    text = cluster.run("get", "--raw", "/metrics").stdout
    assert "# TYPE apiserver_request_total counter" in text
    assert ('apiserver_request_total{code="200",component="apiserver",dry_run="",group="",'
            'resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"}') in text
    assert ('apiserver_request_total{code="404",component="apiserver",dry_run="",group="",'
            'resource="pods",scope="resource",subresource="",verb="GET",version="v1"}') in text
    assert "apiserver_request_duration_seconds_bucket{" in text
    token = cluster.token("scraper")
    refused = cluster.run("--token", token, "get", "--raw", "/metrics", check=False)
    assert refused.returncode != 0
    assert '"system:serviceaccount:default:scraper" cannot get path "/metrics"' in refused.stderr
    cluster.run("create", "clusterrolebinding", "scraper-monitoring",
                "--clusterrole=system:monitoring", "--serviceaccount=default:scraper")
    allowed = cluster.run("--token", token, "get", "--raw", "/metrics")
    assert "apiserver_request_duration_seconds_count{" in allowed.stdout
