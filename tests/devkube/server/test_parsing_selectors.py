"""Label and field selector parsing and matching (pure)."""

from __future__ import annotations

import pytest

from k8sbridge.devkube import errors, kinds, selectors


@pytest.mark.parametrize(("text", "labels", "expected"), [
    ("a=b", {"a": "b"}, True),
    ("a==b", {"a": "c"}, False),
    ("a!=b", {}, True),
    ("a in (x, y),b", {"a": "y", "b": ""}, True),
    ("a notin (x)", {"a": "x"}, False),
    ("!a", {"b": "1"}, True),
    ("a,!b", {"a": "1", "b": "2"}, False),
    ("example.com/tier=web", {"example.com/tier": "web"}, True),
])
def test_label_selectors(text: str, labels: dict[str, str], expected: bool) -> None:
    assert selectors.parse_labels(text).matches(labels) is expected


def test_bad_label_selector() -> None:
    with pytest.raises(errors.ApiError) as err:
        selectors.parse_labels("a b c")
    assert err.value.code == 400


def test_label_selector_objects() -> None:
    sel = selectors.from_label_selector_object({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                             {"key": "legacy", "operator": "DoesNotExist"}]})
    assert sel.matches({"app": "web", "tier": "a"})
    assert not sel.matches({"app": "web", "tier": "a", "legacy": "1"})
    with pytest.raises(ValueError):
        selectors.from_label_selector_object({"matchExpressions": [{"key": "a",
                                                                    "operator": "Near"}]})


def test_field_selectors() -> None:
    pod = kinds.BY_KEY[kinds.ResourceKey("/pods")]
    sel = selectors.parse_fields("spec.nodeName=,status.phase!=Failed", supported=pod.fields)
    assert sel.matches({"spec": {}, "status": {"phase": "Pending"}})
    assert not sel.matches({"spec": {"nodeName": "n"}, "status": {"phase": "Pending"}})
    alias = selectors.parse_fields("spec.host=n1", supported=pod.fields)
    assert alias.matches({"spec": {"nodeName": "n1"}})
    node = kinds.BY_KEY[kinds.ResourceKey("/nodes")]
    unsched = selectors.parse_fields("spec.unschedulable=false", supported=node.fields)
    assert unsched.matches({"spec": {"unschedulable": False}})
    assert unsched.matches({"spec": {}})  # a missing boolean field reads as false
    with pytest.raises(errors.ApiError) as err:
        selectors.parse_fields("spec.containers=x", supported=pod.fields)
    assert err.value.code == 400 and err.value.message == "field label not supported: " \
        "spec.containers"
