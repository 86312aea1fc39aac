"""What devkube's RBAC authorization costs per request.

A store with the default ClusterRoles and bindings plus N namespaced Roles and RoleBindings
(one ServiceAccount each, spread over 20 namespaces) and N/10 ClusterRoleBindings to groups;
then ``authorize()`` is called for requests of a bound ServiceAccount (allowed), an unbound
one (denied), the admin (system:masters) and, apart, the cost of rebuilding the index after
an RBAC change.

    python bench/bench_rbac_authorize.py [--bindings 200] [--calls 10000]
"""

from __future__ import annotations

import argparse
import time

from k8sbridge.devkube import authz, kinds, rbac, rbacpolicy, registry, satokens, store


def _setup(bindings: int) -> tuple[registry.Registry, authz.Authorizer]:
    reg = registry.Registry(store=store.Store())
    reg.bootstrap()
    rbacpolicy.reconcile(reg)
    ns_kind = kinds.BY_KEY[kinds.ResourceKey("/namespaces")]
    role_kind = kinds.BY_KEY[kinds.ResourceKey(f"{rbac.GROUP}/roles")]
    rb_kind = kinds.BY_KEY[kinds.ResourceKey(f"{rbac.GROUP}/rolebindings")]
    crb_kind = kinds.BY_KEY[kinds.ResourceKey(f"{rbac.GROUP}/clusterrolebindings")]
    for n in range(20):
        reg.create(kind=ns_kind, namespace="", body={"metadata": {"name": f"ns{n}"}})
    for i in range(bindings):
        ns = f"ns{i % 20}"
        reg.create(kind=role_kind, namespace=ns, body={
            "metadata": {"name": f"role{i}"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"],
                       "verbs": ["get", "list"]},
                      {"apiGroups": ["apps"], "resources": ["deployments"],
                       "verbs": ["get", "list", "watch", "update"]}]})
        reg.create(kind=rb_kind, namespace=ns, body={
            "metadata": {"name": f"binding{i}"},
            "roleRef": {"apiGroup": rbac.GROUP, "kind": "Role", "name": f"role{i}"},
            "subjects": [{"kind": "ServiceAccount", "name": f"sa{i}", "namespace": ns}]})
    for i in range(bindings // 10):
        reg.create(kind=crb_kind, namespace="", body={
            "metadata": {"name": f"cluster-binding{i}"},
            "roleRef": {"apiGroup": rbac.GROUP, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "apiGroup": rbac.GROUP, "name": f"team{i}"}]})
    return reg, authz.Authorizer(st=reg.store)


def _sa(namespace: str, name: str) -> satokens.User:
    return satokens.User(username=rbac.service_account_user(namespace, name),
                         groups=(*rbac.service_account_groups(namespace),
                                 "system:authenticated"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindings", type=int, default=200)
    parser.add_argument("--calls", type=int, default=10_000)
    args = parser.parse_args()
    reg, authorizer = _setup(args.bindings)
    bound = _sa("ns7", "sa7")
    cases = {
        "allowed (bound ServiceAccount)": authz.attributes(
            bound, method="GET", path="/apis/apps/v1/namespaces/ns7/deployments", query={}),
        "denied (unbound ServiceAccount)": authz.attributes(
            _sa("ns7", "stranger"), method="GET", path="/api/v1/namespaces/ns7/pods",
            query={}),
        "admin (system:masters)": authz.attributes(
            satokens.User(username="devkube-admin", groups=("system:masters",)),
            method="GET", path="/api/v1/namespaces/ns7/pods", query={}),
    }
    print(f"{args.bindings} RoleBindings + {args.bindings // 10} ClusterRoleBindings "
          f"(+ defaults), {args.calls} calls each")
    for label, attributes in cases.items():
        authorizer.authorize(attributes)  # builds the index once
        start = time.perf_counter()
        for _ in range(args.calls):
            authorizer.authorize(attributes)
        took = time.perf_counter() - start
        print(f"  {label:34s} {took * 1000:8.1f} ms total, {took / args.calls * 1e6:6.2f} us/call")
    parse = 0.0
    for _ in range(args.calls):
        t = time.perf_counter()
        authz.attributes(bound, method="GET", path="/apis/apps/v1/namespaces/ns7/deployments",
                         query={"watch": "true"})
        parse += time.perf_counter() - t
    print(f"  request attributes (parse a path)  {parse / args.calls * 1e6:6.2f} us/call")
    rebuilds = 20
    start = time.perf_counter()
    for _ in range(rebuilds):
        authorizer._index = None  # what an RBAC change costs the next request
        authorizer.authorize(cases["allowed (bound ServiceAccount)"])
    took = (time.perf_counter() - start) / rebuilds
    print(f"  index rebuild after an RBAC change {took * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
