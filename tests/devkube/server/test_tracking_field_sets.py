"""Pure tests of field sets: fieldsV1 encoding, path strings and the list kinds from OpenAPI."""

from __future__ import annotations

import copy
from typing import Any

import hypothesis
import hypothesis.strategies as st

from k8sbridge.devkube import fieldsets, kinds, managedfields

POD = {"$ref": "#/definitions/io.k8s.api.core.v1.Pod"}


def test_fields_v1_round_trips_members_and_leaves() -> None:
    paths = {("f:spec", "f:containers", 'k:{"name":"c"}'),
             ("f:spec", "f:containers", 'k:{"name":"c"}', "f:image"),
             ("f:metadata", "f:labels", "f:a")}
    tree = fieldsets.to_fields_v1(paths)
    assert tree == {"f:metadata": {"f:labels": {"f:a": {}}},
                    "f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:image": {}}}}}
    assert fieldsets.from_fields_v1(tree) == paths


def test_path_strings_as_fieldpath_prints_them() -> None:
    assert fieldsets.path_string(("f:spec", "f:containers", 'k:{"name":"c"}', "f:ports",
                                  'k:{"containerPort":80,"protocol":"TCP"}')) == \
        '.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"]'
    assert fieldsets.path_string(("f:metadata", "f:finalizers", 'v:"x"')) == \
        '.metadata.finalizers[="x"]'
    assert fieldsets.path_string(("f:spec", "f:args", "i:2")) == ".spec.args[2]"


def test_list_kinds_come_from_the_schema() -> None:
    pod = {"metadata": {"finalizers": ["a"]},
           "spec": {"containers": [{"name": "c", "args": ["x", "y"],
                                    "ports": [{"containerPort": 80}]}]}}
    flat = fieldsets.flatten(pod, POD)
    container = ("f:spec", "f:containers", 'k:{"name":"c"}')
    assert flat[container] is fieldsets.MEMBER
    assert flat[container + ("f:args",)] == '["x","y"]'  # atomic list: one leaf
    assert container + ("f:ports", 'k:{"containerPort":80,"protocol":"TCP"}') in flat
    assert ("f:metadata", "f:finalizers", 'v:"a"') in flat  # a set


def test_merge_keeps_live_items_and_replaces_atomic_lists() -> None:
    live = {"spec": {"containers": [{"name": "a", "image": "1", "args": ["x"]},
                                    {"name": "b", "image": "2"}]}}
    config = {"spec": {"containers": [{"name": "b", "image": "3"},
                                      {"name": "a", "args": ["y"]}]}}
    merged = fieldsets.merge(live, config, POD)
    assert merged == {"spec": {"containers": [{"name": "a", "image": "1", "args": ["y"]},
                                              {"name": "b", "image": "3"}]}}


def test_an_update_of_nothing_adds_no_entry() -> None:
    kind = kinds.by_kind(api_version="v1", kind="ConfigMap")
    assert kind is not None
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    new = {**obj, "metadata": {"name": "x"}}
    managedfields.track_update(kind=kind, old=obj, new=new,
                               manager=managedfields.Manager(name="m", api_version="v1"))
    assert "managedFields" not in new["metadata"]


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(["a", "b"]))
_labels = st.dictionaries(st.sampled_from(["app", "tier", ""]), st.sampled_from(["x", "y"]),
                          max_size=2)
_container = st.fixed_dictionaries(
    {"name": st.sampled_from(["c", "d"])},
    optional={"image": _scalars, "args": st.lists(st.sampled_from(["x", "y"]), max_size=2),
              "ports": st.lists(st.fixed_dictionaries(
                  {"containerPort": st.sampled_from([80, 81])},
                  optional={"protocol": st.sampled_from(["TCP", "UDP"]), "name": _scalars}),
                  max_size=2),
              "env": st.just({"not": "a list"})})
_pod = st.fixed_dictionaries({}, optional={
    "metadata": st.fixed_dictionaries({}, optional={
        "labels": _labels, "annotations": st.one_of(_labels, st.just({})),
        "finalizers": st.lists(st.sampled_from(["f", "g"]), max_size=2),
        "resourceVersion": st.sampled_from(["1", "2"]), "unknown": _scalars}),
    "spec": st.fixed_dictionaries({}, optional={
        "containers": st.lists(_container, max_size=3), "nodeName": _scalars,
        "nodeSelector": st.one_of(_labels, _scalars)}),
    "status": st.one_of(_scalars, st.fixed_dictionaries({}, optional={
        "phase": _scalars, "conditions": st.lists(st.fixed_dictionaries(
            {"type": st.sampled_from(["Ready", "Initialized"])},
            optional={"status": _scalars}), max_size=2),
        "containerStatuses": st.lists(st.fixed_dictionaries(
            {"name": st.sampled_from(["c", "d"])},
            optional={"ready": _scalars, "state": st.one_of(_scalars, st.fixed_dictionaries(
                {}, optional={"running": st.fixed_dictionaries(
                    {}, optional={"startedAt": _scalars}), "waiting": _labels}))}),
            max_size=2)}))})


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(old=_pod, new=_pod, maps=st.booleans())
def test_flattening_a_pair_compares_as_flattening_both_whole(
    old: dict[str, Any], new: dict[str, Any], maps: bool
) -> None:
    # An update's diff skips the fields equal on both sides; duplicate list keys, fields the
    # schema does not know, maps and atomic values must still give the same changes.
    whole = fieldsets.compare(fieldsets.flatten(old, POD, maps=maps),
                              fieldsets.flatten(new, POD, maps=maps))
    pair = fieldsets.compare(*fieldsets.flatten_pair(old, new, POD, maps=maps))
    assert pair == whole
    shared = {"metadata": old.get("metadata", {}), "spec": new.get("spec", {})}
    assert fieldsets.compare(*fieldsets.flatten_pair(shared, {**shared, "status": {}}, POD,
                                                     maps=maps)) == \
        fieldsets.compare(fieldsets.flatten(shared, POD, maps=maps),
                          fieldsets.flatten({**shared, "status": {}}, POD, maps=maps))


def _track_whole(kind: kinds.Kind, old: dict[str, Any] | None, new: dict[str, Any],
                 manager: managedfields.Manager) -> list[dict[str, Any]]:
    """track_update as first written: every entry decoded, both objects flattened whole."""
    schema = managedfields._schema(kind)
    assert schema is not None
    entries = managedfields._decode(old or {})
    sub = manager.subresource
    changed, removed = fieldsets.compare(
        managedfields._owned(fieldsets.flatten(old or {}, schema, maps=True), sub),
        managedfields._owned(fieldsets.flatten(new, schema, maps=True), sub))
    key = (manager.name, "Update", sub, manager.api_version)
    for other, (paths, time, version) in entries.items():
        if other != key:
            entries[other] = (paths - changed - removed, time, version)
    mine, time, _ = entries.get(key, (set(), manager.time, ""))
    updated = (mine | changed) - removed
    entries[key] = (updated, manager.time if updated != mine else time, manager.api_version)
    return managedfields._encode(entries)


_managers = st.sampled_from([
    managedfields.Manager(name="kubectl", api_version="v1", time="t1"),
    managedfields.Manager(name="k8sbridge", subresource="status", api_version="v1", time="t2"),
    managedfields.Manager(name="kcm", api_version="v1", time="t3")])


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(steps=st.lists(st.tuples(_pod, _managers), min_size=1, max_size=4))
def test_tracking_keeps_untouched_entries_as_the_whole_computation_would(
    steps: list[tuple[dict[str, Any], managedfields.Manager]]
) -> None:
    kind = kinds.by_kind(api_version="v1", kind="Pod")
    assert kind is not None
    old: dict[str, Any] | None = None
    for body, manager in steps:
        new = {"apiVersion": "v1", "kind": "Pod", **copy.deepcopy(body)}
        new.setdefault("metadata", {})
        if old is not None and old["metadata"].get("managedFields"):
            new["metadata"]["managedFields"] = old["metadata"]["managedFields"]
        expected = _track_whole(kind, old, new, manager)
        managedfields.track_update(kind=kind, old=old, new=new, manager=manager)
        assert new["metadata"].get("managedFields", []) == expected
        old = new
