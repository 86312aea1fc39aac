"""Discovery documents (/version, /api, /apis, resource lists) and the OpenAPI v3 documents.

Why: kubectl, kopf and the official client learn kinds, verbs, short names and subresources from
discovery; kubectl's default ``--validate=strict`` needs ``/openapi/v3`` to show that each kind's
PATCH accepts the ``fieldValidation`` parameter (then validation happens server-side and kubectl
needs no extra flags). We answer aggregated-discovery requests with plain JSON, which makes
clients fall back to these legacy documents.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from k8sbridge.devkube import kinds, metricsapi, openapi, openapiv2

Obj = dict[str, Any]

KUBE_MAJOR = "1"
KUBE_MINOR = "37"
GIT_VERSION = "v1.37.0-devkube"

_SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "eviction": ["create"],
    "log": ["get"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
    "token": ["create"],
}


def version() -> Obj:
    return {
        "major": KUBE_MAJOR, "minor": KUBE_MINOR, "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(*, server_address: str) -> Obj:
    return {
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


# Create-only review APIs (not stored, so not Kinds): group -> (version, resource entries).
REVIEW_GROUPS: dict[str, tuple[str, tuple[Obj, ...]]] = {
    "authentication.k8s.io": ("v1", (
        {"name": "selfsubjectreviews", "singularName": "selfsubjectreview",
         "namespaced": False, "kind": "SelfSubjectReview", "verbs": ["create"]},
        {"name": "tokenreviews", "singularName": "tokenreview", "namespaced": False,
         "kind": "TokenReview", "verbs": ["create"]},
    )),
    # Not stored either: read from the kubelets on request (``metricsapi``).
    "metrics.k8s.io": ("v1beta1", metricsapi.RESOURCES),
    "authorization.k8s.io": ("v1", (
        {"name": "localsubjectaccessreviews", "singularName": "localsubjectaccessreview",
         "namespaced": True, "kind": "LocalSubjectAccessReview", "verbs": ["create"]},
        {"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview",
         "namespaced": False, "kind": "SelfSubjectAccessReview", "verbs": ["create"]},
        {"name": "selfsubjectrulesreviews", "singularName": "selfsubjectrulesreview",
         "namespaced": False, "kind": "SelfSubjectRulesReview", "verbs": ["create"]},
        {"name": "subjectaccessreviews", "singularName": "subjectaccessreview",
         "namespaced": False, "kind": "SubjectAccessReview", "verbs": ["create"]},
    )),
}


def unstored_group_versions() -> list[tuple[str, str]]:
    """The group/versions served without stored kinds (reviews, metrics): APIServices too."""
    return [(group, version) for group, (version, _) in REVIEW_GROUPS.items()]


def _all_groups() -> list[str]:
    return sorted({*kinds.GROUPS, *REVIEW_GROUPS})


def _group(name: str) -> Obj:
    if name in REVIEW_GROUPS:
        version = REVIEW_GROUPS[name][0]
        entry = {"groupVersion": f"{name}/{version}", "version": version}
        return {"name": name, "versions": [entry], "preferredVersion": entry}
    # the newest first, kube-apiserver's preferred version (autoscaling: v2, then v1)
    versions = sorted({k.version for k in kinds.KINDS if k.group == name}, reverse=True)
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list() -> Obj:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g) for g in _all_groups()]}


def api_group(name: str) -> Obj | None:
    if name not in kinds.GROUPS and name not in REVIEW_GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def _subresource_entry(kind: kinds.Kind, sub: str) -> Obj:
    entry: Obj = {"name": f"{kind.plural}/{sub}", "singularName": "",
                  "namespaced": kind.namespaced, "kind": kind.kind, "verbs": _SUB_VERBS[sub]}
    if sub == "scale":
        entry.update(group="autoscaling", version="v1", kind="Scale")
    elif sub == "binding":
        entry["kind"] = "Binding"
    elif sub == "eviction":
        entry.update(group="policy", version="v1", kind="Eviction")
    elif sub in ("exec", "attach", "portforward"):
        entry["kind"] = {"exec": "PodExecOptions", "attach": "PodAttachOptions",
                         "portforward": "PodPortForwardOptions"}[sub]
    elif sub == "token":
        entry.update(group="authentication.k8s.io", version="v1", kind="TokenRequest")
    return entry


def resource_list(group_version: str) -> Obj | None:
    group, _, version = group_version.partition("/")
    if group in REVIEW_GROUPS and REVIEW_GROUPS[group][0] == version:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                "resources": [dict(r) for r in REVIEW_GROUPS[group][1]]}
    table = kinds.BY_GROUP_VERSION.get(group_version)
    if table is None:
        return None
    resources: list[Obj] = []
    for kind in table.values():
        entry: Obj = {
            "name": kind.plural, "singularName": kind.singular, "namespaced": kind.namespaced,
            "kind": kind.kind, "verbs": list(kinds.ALL_VERBS),
            "storageVersionHash": hashlib.sha256(kind.key.encode()).hexdigest()[:11],
        }
        if kind.short_names:
            entry["shortNames"] = list(kind.short_names)
        if kind.categories:
            entry["categories"] = list(kind.categories)
        resources.append(entry)
        resources.extend(_subresource_entry(kind, sub) for sub in kind.subresources)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}


# --- OpenAPI v3 ------------------------------------------------------------------------------

def _gv_path(group_version: str) -> str:
    return f"api/{group_version}" if "/" not in group_version else f"apis/{group_version}"


def openapi_document(group_version: str) -> Obj | None:
    """The OpenAPI v3 document of one group-version: one path per kind with the operations
    kubectl inspects, and the kinds' schemas (k8sbridge.devkube.openapi) with every schema they
    reference."""
    table = kinds.BY_GROUP_VERSION.get(group_version)
    if table is None:
        return _review_document(group_version)
    paths: Obj = {}
    schemas: Obj = {}
    roots: list[str] = []
    query = [
        {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
        for name in ("dryRun", "fieldManager", "fieldValidation", "force")
    ]
    for kind in table.values():
        gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
        base = f"/{_gv_path(group_version)}"
        if kind.namespaced:
            base += "/namespaces/{namespace}"
        item_path = f"{base}/{kind.plural}/{{name}}"
        name = openapi.kind_schema_name(kind)
        if name is None:
            name = _schema_name(kind)
            schemas[name] = {
                "type": "object",
                "description": f"{kind.kind} (devkube: free-form, validated by the server)",
                "x-kubernetes-preserve-unknown-fields": True,
            }
        else:
            roots += [name, name + "List"]
        ref = {"$ref": f"#/components/schemas/{name}"}
        response = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        op = {"x-kubernetes-group-version-kind": gvk, "responses": response}
        paths[item_path] = {
            "get": {**op, "operationId": f"read{kind.kind}", "x-kubernetes-action": "get"},
            "put": {**op, "operationId": f"replace{kind.kind}", "parameters": query,
                    "x-kubernetes-action": "put"},
            "patch": {**op, "operationId": f"patch{kind.kind}", "parameters": query,
                      "x-kubernetes-action": "patch"},
            "delete": {**op, "operationId": f"delete{kind.kind}",
                       "x-kubernetes-action": "delete"},
        }
        paths[f"{base}/{kind.plural}"] = {
            "post": {**op, "operationId": f"create{kind.kind}", "parameters": query,
                     "x-kubernetes-action": "post"},
        }
    schemas.update(openapi.v3_components(roots))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _review_gvks() -> tuple[tuple[str, str, str], ...]:
    return tuple((group, version, str(r["kind"])) for group, (version, resources)
                 in REVIEW_GROUPS.items() for r in resources)


def _review_document(group_version: str) -> Obj | None:
    """The document of a create-only review group (authentication, authorization)."""
    group, _, version = group_version.partition("/")
    if group not in REVIEW_GROUPS or REVIEW_GROUPS[group][0] != version:
        return None
    paths: Obj = {}
    roots: list[str] = []
    for resource in REVIEW_GROUPS[group][1]:
        name = openapi.gvk_schema_name(group, version, str(resource["kind"]))
        if name is None:
            continue
        roots.append(name)
        base = f"/apis/{group_version}"
        if resource["namespaced"]:
            base += "/namespaces/{namespace}"
        ref = {"$ref": f"#/components/schemas/{name}"}
        paths[f"{base}/{resource['name']}"] = {"post": {
            "operationId": f"create{resource['kind']}", "x-kubernetes-action": "post",
            "x-kubernetes-group-version-kind": {"group": group, "version": version,
                                                "kind": resource["kind"]},
            "responses": {"201": {"description": "Created",
                                  "content": {"application/json": {"schema": ref}}}}}}
    if not roots:
        return None
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": GIT_VERSION},
            "paths": paths,
            "components": {"schemas": openapi.v3_components(roots, _review_gvks())}}


def _schema_name(kind: kinds.Kind) -> str:
    group = kind.group or "core"
    return f"io.k8s.devkube.{group}.{kind.version}.{kind.kind}"


@functools.cache
def openapi_document_bytes(group_version: str) -> tuple[bytes, str] | None:
    """The v3 document as served and its hash (kube-openapi: upper-case hex SHA-512)."""
    doc = openapi_document(group_version)
    if doc is None:
        return None
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return body, hashlib.sha512(body).hexdigest().upper()


def openapi_index() -> Obj:
    paths: Obj = {}
    reviews = [f"{group}/{version}" for group, (version, _) in REVIEW_GROUPS.items()]
    for gv in [*kinds.BY_GROUP_VERSION, *reviews]:
        served = openapi_document_bytes(gv)
        if served is None:
            continue
        paths[_gv_path(gv)] = {"serverRelativeURL": f"/openapi/v3/{_gv_path(gv)}?hash={served[1]}"}
    return {"paths": paths}


# --- OpenAPI v2 -----------------------------------------------------------------------------

OPENAPI_V2_CONTENT_TYPE = openapiv2.CONTENT_TYPE


@functools.cache
def openapi_v2_protobuf() -> bytes:
    """gnostic's ``openapi_v2.Document`` with every definition (k8sbridge.devkube.openapiv2)."""
    return openapiv2.document_protobuf(GIT_VERSION, _review_gvks())


@functools.cache
def openapi_v2_json() -> bytes:
    return json.dumps(openapiv2.document_json(GIT_VERSION, _review_gvks()), sort_keys=True,
                      separators=(",", ":")).encode()
