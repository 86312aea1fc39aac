"""The one-pass shape check accepts exactly the objects the per-path walk finds no fault in.

``check_shapes`` walks a tree merged from each kind's shape table and falls back to the
per-path walk (``shape_causes``) only to name the faults; both must agree on every object.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.devkube import errors, kinds, patch, shapes

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(["", "a"]),
                     st.just(1.5))


def _shaped(kind: kinds.Kind) -> st.SearchStrategy[Any]:
    """Well-typed objects that follow the kind's paths (so deep paths are reached)."""
    tree = shapes._shape_tree(shapes._SHAPES.get(kind.plural, shapes._META_SHAPES))

    def value(node: shapes._ShapeNode, depth: int) -> st.SearchStrategy[Any]:
        wanted = {t for types, _ in node.checks for t in types} or {dict, list, str, int}
        good: list[st.SearchStrategy[Any]] = []
        if dict in wanted:
            good.append(st.fixed_dictionaries({}, optional={
                k: st.deferred(lambda c=c: value(c, depth + 1))
                for k, c in node.children.items()}) if depth < 6 else st.just({}))
        if list in wanted:
            each = node.each
            good.append(st.lists(st.deferred(lambda: value(each, depth + 1)), max_size=2)
                        if each is not None and depth < 6 else st.just([]))
        if str in wanted:
            good.append(st.just("a"))
        if int in wanted:
            good.append(st.integers(-2, 2))
        if bool in wanted:
            good.append(st.booleans())
        return st.one_of(*good)

    return st.fixed_dictionaries(
        {}, optional={k: value(c, 1) for k, c in tree.children.items()})


_KINDS = [k for k in kinds.KINDS if k.plural in ("pods", "deployments", "replicasets", "nodes",
                                                  "services", "secrets", "events", "leases")]


@pytest.mark.parametrize("kind", _KINDS, ids=lambda k: k.plural)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_one_pass_agrees_with_the_per_path_walk(kind: kinds.Kind, data: st.DataObject) -> None:
    obj = data.draw(_shaped(kind))
    # then one wrong value (None, a bool for an int, a float, a wrong container) somewhere
    slots: list[tuple[Any, Any]] = []
    stack: list[Any] = [obj]
    while stack:
        node = stack.pop()
        keys = node.keys() if isinstance(node, dict) else range(len(node))
        for key in keys:
            slots.append((node, key))
            if isinstance(node[key], dict | list):
                stack.append(node[key])
    if slots and data.draw(st.booleans()):
        node, key = data.draw(st.sampled_from(slots))
        node[key] = data.draw(_scalars | st.just({}) | st.just([]))
    causes = shapes.shape_causes(kind, obj)
    if causes:
        with pytest.raises(errors.ApiError) as raised:
            shapes.check_shapes(kind, obj)
        assert raised.value.code == 422
        details = raised.value.body()
        for _, field, _ in causes:
            assert field.encode() in details
    else:
        shapes.check_shapes(kind, obj)


_POD = kinds.BY_KEY[kinds.ResourceKey("/pods")]
_RS = kinds.BY_KEY[kinds.ResourceKey("apps/replicasets")]


@pytest.mark.parametrize(("kind", "obj", "field"), [
    (_RS, {"spec": {"replicas": True}}, "spec.replicas"),
    (_POD, {"status": {"containerStatuses": [{"restartCount": False}]}},
     "status.containerStatuses[0].restartCount"),
    (_POD, {"spec": {"containers": [None]}}, "spec.containers[0]"),
    (_POD, {"spec": {"containers": [{"name": "c", "ports": [{}, 3]}]}},
     "spec.containers[0].ports[1]"),
    (_POD, {"metadata": {"ownerReferences": [{"uid": 1}]}}, "metadata.ownerReferences[0].uid"),
    (_POD, {"spec": {"priority": 1.5}}, "spec.priority"),
])
def test_faults_deep_in_lists_and_bools_for_ints_are_found(
        kind: kinds.Kind, obj: dict[str, Any], field: str) -> None:
    with pytest.raises(errors.ApiError) as raised:
        shapes.check_shapes(kind, obj)
    assert raised.value.code == 422
    assert f'"field":"{field}"'.encode() in raised.value.body().replace(b" ", b"")


def test_nulls_are_absent_fields() -> None:
    shapes.check_shapes(_POD, {"spec": {"priority": None, "containers": None},
                                   "metadata": {"labels": None}})


def _answer(kind: kinds.Kind, obj: dict[str, Any], old: dict[str, Any] | None) -> int:
    try:
        shapes.check_shapes(kind, obj, old)
    except errors.ApiError as e:
        return e.code
    return 0


@pytest.mark.parametrize("kind", _KINDS, ids=lambda k: k.plural)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_patched_object_is_checked_as_if_whole(kind: kinds.Kind, data: st.DataObject) -> None:
    # A status merge patch shares what it leaves alone with the stored object; the check
    # skips those values and must answer as a check of the whole object does.
    old = data.draw(_shaped(kind))
    hypothesis.assume(_answer(kind, patch.copy_json(old), None) == 0)
    body = data.draw(_shaped(kind) | st.fixed_dictionaries(
        {}, optional={"status": _scalars | st.just({}), "spec": _scalars,
                      "metadata": st.just({"labels": {"a": "b"}, "name": None})}))
    shapes.check_shapes(kind, old)  # the stored object is canonical
    stored = patch.copy_json(old)
    new = patch.merge_patch_shared(old, body)
    assert _answer(kind, new, old) == _answer(kind, patch.copy_json(new), None)
    assert old == stored  # never written to
