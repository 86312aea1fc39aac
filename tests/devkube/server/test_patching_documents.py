"""The three patch flavours as pure functions (RFC 6902, RFC 7386, strategic merge)."""

from __future__ import annotations

from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest

from k8sbridge.devkube import patch

POD: dict[str, Any] = {
    "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"]},
    "spec": {
        "containers": [
            {"name": "app", "image": "nginx:1", "ports": [{"containerPort": 80}],
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "busybox"},
        ],
        "tolerations": [{"key": "t1", "operator": "Exists"}],
    },
    "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]},
}


def test_json_patch_operations() -> None:
    out = patch.json_patch(POD, [
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:2"},
        {"op": "remove", "path": "/spec/containers/1"},
        {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/c"},
        {"op": "move", "from": "/metadata/labels/c", "path": "/metadata/labels/d"},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "y"},
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
    ])
    assert out["metadata"]["labels"] == {"a": "1", "b": "2", "d": "1"}
    assert [c["name"] for c in out["spec"]["containers"]] == ["app"]
    assert out["spec"]["containers"][0]["image"] == "nginx:2"
    assert out["metadata"]["finalizers"] == ["x", "y"]
    assert POD["metadata"]["labels"] == {"a": "1"}  # input untouched


def test_json_patch_failures() -> None:
    with pytest.raises(patch.PatchTestFailed):
        patch.json_patch(POD, [{"op": "test", "path": "/metadata/labels/a", "value": "2"}])
    with pytest.raises(patch.PatchTestFailed):
        patch.json_patch(POD, [{"op": "test", "path": "/metadata/nope", "value": "2"}])
    with pytest.raises(patch.PatchError):
        patch.json_patch(POD, [{"op": "remove", "path": "/metadata/nope"}])
    with pytest.raises(patch.PatchError):
        patch.json_patch(POD, {"op": "add"})
    with pytest.raises(patch.PatchError):
        patch.json_patch(POD, [{"op": "frobnicate", "path": "/x"}])


def test_merge_patch() -> None:
    out = patch.merge_patch(POD, {"metadata": {"labels": {"a": None, "b": "2"}},
                                  "spec": {"tolerations": []}})
    assert out["metadata"]["labels"] == {"b": "2"}
    assert out["spec"]["tolerations"] == []
    assert out["spec"]["containers"] == POD["spec"]["containers"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from(["a", "b"]),
    lambda inner: st.lists(inner, max_size=2)
    | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    max_leaves=12)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(doc=_json, body=_json)
def test_a_shared_merge_patch_gives_the_copying_ones_result_and_leaves_the_doc(
        doc: Any, body: Any) -> None:
    before = patch.copy_json(doc)
    shared = patch.merge_patch_shared(doc, body)
    assert shared == patch.merge_patch(before, body)
    assert doc == before
    # what the patch did not name is the document's own value, not a copy
    if isinstance(doc, dict) and isinstance(body, dict) and isinstance(shared, dict):
        for key, value in doc.items():
            if key not in body:
                assert shared[key] is value


def test_strategic_merge_lists_by_merge_key() -> None:
    out = patch.strategic_merge(POD, {"spec": {"containers": [
        {"name": "app", "image": "nginx:2", "env": [{"name": "B", "value": "3"}]},
        {"name": "new", "image": "redis"},
    ]}})
    app, side, new = out["spec"]["containers"]
    assert app["image"] == "nginx:2" and app["ports"] == [{"containerPort": 80}]
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert side == {"name": "side", "image": "busybox"} and new["name"] == "new"


def test_strategic_merge_replaces_keyless_lists_and_merges_sets() -> None:
    out = patch.strategic_merge(POD, {
        "spec": {"tolerations": [{"key": "t2", "operator": "Exists"}]},
        "metadata": {"finalizers": ["y"]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    })
    assert out["spec"]["tolerations"] == [{"key": "t2", "operator": "Exists"}]
    assert out["metadata"]["finalizers"] == ["x", "y"]
    assert [c["type"] for c in out["status"]["conditions"]] == ["PodScheduled", "Ready"]


def test_strategic_merge_directives() -> None:
    out = patch.strategic_merge(POD, {
        "spec": {
            "containers": [{"name": "side", "$patch": "delete"}],
            "$setElementOrder/containers": [{"name": "app"}],
        },
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "labels": {"$patch": "replace",
                                                                               "z": "9"}},
    })
    assert [c["name"] for c in out["spec"]["containers"]] == ["app"]
    assert out["metadata"]["finalizers"] == []
    assert out["metadata"]["labels"] == {"z": "9"}
    out = patch.strategic_merge(POD, {"status": {
        "conditions": [{"type": "Ready", "status": "True"}],
        "$setElementOrder/conditions": [{"type": "Ready"}, {"type": "PodScheduled"}]}})
    assert [c["type"] for c in out["status"]["conditions"]] == ["Ready", "PodScheduled"]
    out = patch.strategic_merge(POD, {"spec": {"$retainKeys": ["containers"],
                                               "containers": [{"name": "app"}]}})
    assert set(out["spec"]) == {"containers"}
    out = patch.strategic_merge(POD, {"spec": {"containers": [
        {"name": "only", "image": "x"}, {"$patch": "replace"}]}})
    assert out["spec"]["containers"] == [{"name": "only", "image": "x"}]
    with pytest.raises(patch.PatchError):
        patch.strategic_merge(POD, {"spec": {"containers": [{"image": "no-name"}]}})
    with pytest.raises(patch.PatchError):
        patch.strategic_merge(POD, ["not", "a", "map"])


def test_service_ports_merge_on_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    out = patch.strategic_merge(svc, {"spec": {"ports": [{"port": 443, "targetPort": 8443}]}})
    assert out["spec"]["ports"][1] == {"port": 443, "name": "https", "targetPort": 8443}
