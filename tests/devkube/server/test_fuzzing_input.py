"""Arbitrary JSON bodies never crash the API semantics: every outcome is a stored object or a
4xx ApiError, and whatever got stored can still be listed, printed and watched."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k8sbridge.devkube import errors, kinds, registry, selectors, store, tables, watch

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=4),
                     st.sampled_from(["a", "web", "Always", "x:1", "True", ""]))
_json: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from([
            "name", "image", "containers", "labels", "spec", "status", "metadata", "ports",
            "selector", "matchLabels", "template", "replicas", "finalizers", "conditions",
            "containerStatuses", "state", "waiting", "reason", "phase", "nodeName", "type",
            "tolerations", "resources", "requests", "limits", "annotations", "data"]),
            inner, max_size=4),
    ),
    max_leaves=20,
)


def _body(kind: kinds.Kind, name: str, payload: Any) -> Any:
    if not isinstance(payload, dict):
        return payload
    body = dict(payload)
    meta = body.get("metadata")
    if isinstance(meta, dict):
        body["metadata"] = {**meta, "name": name}
    elif meta is None:
        body["metadata"] = {"name": name}
    if kind.plural == "pods" and isinstance(body.get("spec"), dict):
        body["spec"] = {"containers": [{"name": "c", "image": "i"}], **body["spec"]}
    return body


def _mutate(reg: registry.Registry, kind: kinds.Kind, ns: str, name: str, update: Any) -> None:
    calls = (
        lambda: reg.update(kind=kind, namespace=ns, name=name, body=_body(kind, name, update)),
        lambda: reg.update(kind=kind, namespace=ns, name=name, body=_body(kind, name, update),
                           subresource="status"),
        lambda: reg.patch(kind=kind, namespace=ns, name=name,
                          content_type="application/strategic-merge-patch+json", body=update),
        lambda: reg.patch(kind=kind, namespace=ns, name=name,
                          content_type="application/merge-patch+json", body=update),
    )
    for call in calls:
        try:
            call()
        except errors.ApiError as e:
            assert 400 <= e.code < 500, e.message


KINDS = [k for k in kinds.KINDS if k.plural in (
    "pods", "deployments", "replicasets", "nodes", "services", "configmaps", "events",
    "namespaces", "secrets", "leases")]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_bodies_never_crash(data: st.DataObject) -> None:
    st_ = store.Store()
    reg = registry.Registry(store=st_)
    reg.bootstrap()
    watchers = []
    for kind in KINDS:
        w = watch.Watcher(store_key=kind.store_key, namespace=None,
                          labels=selectors.LabelSelector(), fields=selectors.FieldSelector(),
                          encoder=lambda obj, raw, k=kind: watch.encode_json(tables.table(
                              plural=k.plural, objects=[reg.view(k, obj)],
                              include_object="Object", resource_version="1")))
        st_.subscribe(w, since=st_.rv)
        watchers.append(w)
    for i in range(3):
        kind = data.draw(st.sampled_from(KINDS))
        ns = "default" if kind.namespaced else ""
        payload = data.draw(_json)
        try:
            reg.create(kind=kind, namespace=ns, body=_body(kind, f"o{i}", payload))
        except errors.ApiError as e:
            assert 400 <= e.code < 500, e.message
        _mutate(reg, kind, ns, f"o{i}", data.draw(_json))
    for kind in KINDS:
        objects = [(reg.view(kind, s.obj), s.data) for s in st_.items(kind.store_key)]
        json.loads(tables.encode_table(plural=kind.plural, objects=objects,
                                       include_object="Object", resource_version="1"))
    for w in watchers:
        assert not w.dropped
        for line in w.take():
            json.loads(line)
