"""Every field of the Kubernetes PodSpec models is in the bridge's table, and docs/pod-spec.md is
what the table renders (the official client's models are the schema: openapi_types and
attribute_map, walked recursively)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes.client

from k8sbridge.scheduler import podspec_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "pod-spec.md"
_INNER = re.compile(r"^(?:list\[(\w+)\]|dict\[str, (\w+)\]|dict\(str, (\w+)\)|(\w+))$",
                    re.IGNORECASE)
# where the table's sections start: PodSpec fields that are tables of their own
_SECTIONS = {"spec.containers": "container", "spec.initContainers": "container",
             "spec.volumes": "volume"}


def _model(type_name: str) -> Any:
    match = _INNER.match(type_name)
    assert match, type_name
    inner = next(g for g in match.groups() if g)
    model = getattr(kubernetes.client, inner, None)
    return model if model is not None and hasattr(model, "openapi_types") else None


def _walk(model: Any, prefix: str, out: set[str], seen: frozenset[str]) -> None:
    types: dict[str, str] = model.openapi_types
    names: dict[str, str] = model.attribute_map
    for attr, type_name in types.items():
        path = f"{prefix}.{names[attr]}"
        out.add(path)
        inner = _model(type_name)
        if path in _SECTIONS or inner is None or inner.__name__ in seen:
            continue
        _walk(inner, path, out, seen | {inner.__name__})


def _schema_paths() -> set[str]:
    out: set[str] = set()
    _walk(kubernetes.client.V1PodSpec, "spec", out, frozenset({"V1PodSpec"}))
    _walk(kubernetes.client.V1Container, "container", out, frozenset({"V1Container"}))
    _walk(kubernetes.client.V1Volume, "volume", out, frozenset({"V1Volume"}))
    return out


def test_every_field_of_the_pod_spec_is_in_the_table() -> None:
    paths = _schema_paths()
    assert len(paths) > 500  # the walk really went into the models
    missing = []
    for path in sorted(paths):
        try:
            podspec_table.row(path)
        except KeyError:
            missing.append(path)
    assert missing == []


def test_every_row_names_a_field_of_the_schema() -> None:
    paths = _schema_paths()
    assert [r.path for r in podspec_table.ROWS if r.path not in paths] == []
    assert len({r.path for r in podspec_table.ROWS}) == len(podspec_table.ROWS)


def test_refusals_enforced_by_podfields_say_which_values_pass() -> None:
    for r in podspec_table.ROWS:
        if r.accepts is not None:
            assert r.verdict == podspec_table.REFUSED and None in r.accepts, r


def test_the_doc_is_what_the_table_renders() -> None:
    assert DOC.read_text(encoding="utf-8") == podspec_table.render()
