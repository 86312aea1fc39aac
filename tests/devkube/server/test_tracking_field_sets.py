"""Pure tests of field sets: fieldsV1 encoding, path strings and the list kinds from OpenAPI."""

from __future__ import annotations

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
