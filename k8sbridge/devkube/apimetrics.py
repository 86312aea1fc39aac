"""devkube's ``/metrics``: kube-apiserver's request families, so dashboards and alerts written
for a cluster (``apiserver_request_total``, ``apiserver_request_duration_seconds``) read the same
names here.

Why its own module: the labels are kube-apiserver's (``verb`` the canonical verb: GET, LIST,
WATCH, POST, PUT, PATCH, APPLY, DELETE, CONNECT; ``resource``, ``subresource``, ``group``,
``version``, ``scope`` = resource / namespace / cluster, ``component`` = apiserver, ``code``),
derived from the request as its RequestInfo is; one registry per server (tests run several).
Served behind RBAC as kube-apiserver serves it: ``get`` on the non-resource URL ``/metrics``
(``system:monitoring``, or cluster-admin).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from k8sbridge.devkube import authz, satokens

__all__ = ["CONTENT_TYPE", "RequestMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_VERBS = {"get": "GET", "list": "LIST", "watch": "WATCH", "create": "POST", "update": "PUT",
          "patch": "PATCH", "delete": "DELETE", "deletecollection": "DELETE",
          "proxy": "CONNECT"}
_NOBODY = satokens.User(username="", groups=())
# kube-apiserver's buckets for apiserver_request_duration_seconds
_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0,
            6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)
_LABELS = ["verb", "dry_run", "group", "version", "resource", "subresource", "scope",
           "component"]


class RequestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "apiserver_request", "Counter of apiserver requests broken out for each verb, dry "
            "run value, group, version, resource, scope, component, and HTTP response code.",
            [*_LABELS, "code"], registry=self.registry)
        self.duration = Histogram(
            "apiserver_request_duration_seconds", "Response latency distribution in seconds "
            "for each verb, dry run value, group, version, resource, subresource, scope and "
            "component.", _LABELS, buckets=_BUCKETS, registry=self.registry)
        # the two series of each label set, looked up once
        self._children: dict[tuple[str | int, ...], tuple[Any, Any]] = {}

    def observe(self, *, method: str, path: str, query: Mapping[str, str],
                content_type: str, code: int, seconds: float) -> None:
        """One answered request (resource requests only, as kube-apiserver counts them)."""
        attrs = authz.attributes(_NOBODY, method=method, path=path, query=query)
        if not attrs.resource_request:
            return
        verb = _VERBS.get(attrs.verb, attrs.verb.upper())
        if verb == "PATCH" and content_type.startswith("application/apply-patch"):
            verb = "APPLY"
        scope = "resource" if attrs.name else "namespace" if attrs.namespace else "cluster"
        key = (verb, "All" if query.get("dryRun") else "", attrs.group, attrs.version,
               attrs.resource, attrs.subresource, scope, code)
        children = self._children.get(key)
        if children is None:  # prometheus_client's labels() checks and locks on every call
            labels = dict(zip(_LABELS, (*key[:-1], "apiserver"), strict=True))
            children = self._children[key] = (self.requests.labels(**labels, code=str(code)),
                                              self.duration.labels(**labels))
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
