"""The patch functions never touch their input, and their results share nothing with it.

The registry hands the stored object's private copy straight to the patch functions (no
defensive copy of its own) and keeps using it as "the old object" afterwards, so this matters.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.devkube import patch

_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["a", "b", ""])
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "c", "name"]), inner, max_size=3),
    max_leaves=12,
)
_docs = st.dictionaries(st.sampled_from(["a", "b", "c", "spec"]), _json, max_size=4)


def _reference_merge(doc: Any, p: Any) -> Any:
    """RFC 7386 as the server implemented it before (deep copy at every level)."""
    if not isinstance(p, dict):
        return copy.deepcopy(p)
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in p.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _reference_merge(result.get(key), value)
    return result


def _ids(value: Any) -> set[int]:
    if isinstance(value, dict):
        return {id(value)}.union(*(_ids(v) for v in value.values()))
    if isinstance(value, list):
        return {id(value)}.union(*(_ids(v) for v in value))
    return set()


@settings(max_examples=200, deadline=None)
@given(doc=_docs, p=_docs)
def test_merge_patch_is_rfc7386_and_leaves_both_inputs_alone(doc: Any, p: Any) -> None:
    doc_before, p_before = json.dumps(doc), json.dumps(p)
    result = patch.merge_patch(doc, p)
    assert result == _reference_merge(doc, p)
    assert json.dumps(doc) == doc_before and json.dumps(p) == p_before
    assert not (_ids(result) & (_ids(doc) | _ids(p)))


@settings(max_examples=200, deadline=None)
@given(doc=_docs, p=_docs)
def test_strategic_merge_leaves_its_inputs_alone(doc: Any, p: Any) -> None:
    doc_before, p_before = json.dumps(doc), json.dumps(p)
    try:
        result = patch.strategic_merge(doc, p)
    except patch.PatchError:
        return
    assert json.dumps(doc) == doc_before and json.dumps(p) == p_before
    assert not (_ids(result) & (_ids(doc) | _ids(p)))


def test_json_patch_leaves_its_input_alone() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}, "spec": {"items": [1, {"x": 2}]}}
    before = json.dumps(doc)
    result = patch.json_patch(doc, [
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "remove", "path": "/spec/items/0"},
        {"op": "copy", "from": "/spec/items/0", "path": "/spec/copied"},
        {"op": "replace", "path": "/spec/items/0/x", "value": 3},
    ])
    assert json.dumps(doc) == before
    assert result == {"metadata": {"labels": {"a": "1", "b": "2"}},
                      "spec": {"items": [{"x": 3}], "copied": {"x": 2}}}
    assert not (_ids(result) & _ids(doc))


@given(value=_json)
def test_copy_json_is_an_equal_unshared_copy(value: Any) -> None:
    copied = patch.copy_json(value)
    assert copied == value
    assert not (_ids(copied) & _ids(value))
