"""A stored version's JSON copies the values it shares with the previous version from that
version's JSON: the bytes must be exactly what encoding the whole object gives (watchers, LIST
and the database see them), whatever the values, their types and which of them are shared."""

from __future__ import annotations

import json
from typing import Any

import hypothesis
import hypothesis.strategies as st

from k8sbridge.devkube import store

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.0, 0.5]),
                     st.sampled_from(["", "a", "é", "\"", "\n"]))
_keys = st.sampled_from(["a", "é", "\""])
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)), max_leaves=8)
_objects = st.dictionaries(st.sampled_from(["apiVersion", "kind", "spec", "status", "data",
                                            "é\"k", "metadata"]), _values, max_size=6)


@hypothesis.settings(max_examples=300, deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(first=_objects, second=_objects, shared=st.sets(st.sampled_from(
    ["apiVersion", "kind", "spec", "status", "data", "é\"k", "metadata"])))
def test_a_version_sharing_values_encodes_as_a_whole_encoding(
        first: dict[str, Any], second: dict[str, Any], shared: set[str]) -> None:
    data, spans = store.encode_reusing(first, store.Stored(first, store.encode(first)))
    assert data == store.encode(first)
    for key, (start, end) in (spans or {}).items():
        assert json.loads(data[start:end]) == first[key]
    old = store.Stored(first, data, spans)
    new = {k: first[k] if k in shared and k in first else v for k, v in second.items()}
    assert store.encode_reusing(new, old)[0] == store.encode(new)
    assert store.encode_reusing(new, None) == (store.encode(new), None)

def test_a_version_without_spans_is_encoded_whole() -> None:
    spec = {"replicas": 1}
    old = store.Stored({"spec": spec}, b'{"spec":"not this"}')  # loaded: no spans
    assert store.encode_reusing({"spec": spec}, old)[0] == b'{"spec":{"replicas":1}}'
