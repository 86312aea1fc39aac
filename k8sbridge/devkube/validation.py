"""Validation of incoming objects (the part of the apiserver's strategies' Validate we need).

Why: clients rely on 422 ``Invalid`` answers with causes, in the apiserver's words, for bad names,
labels, missing fields, a selector that does not match the template, negative resource
quantities and requests above limits. Pure functions over dicts, run after defaulting; type
errors and quantities that do not decode were refused before (``shapes``).
"""

from __future__ import annotations

import re
from typing import Any

from k8sbridge.devkube import (
    apiservicerules,
    errors,
    eventcheck,
    kinds,
    quantity,
    rbacstrategy,
    selectors,
    shapes,
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")

Cause = errors.Cause

MAX_ANNOTATIONS = 256 * 1024  # total size of keys and values, as on the real apiserver

_LABEL_NAME_KINDS = frozenset({"namespaces", "statefulsets"})  # NameIsDNSLabel
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _name_causes(kind: kinds.Kind, name: str) -> list[Cause]:
    if kind.group == rbacstrategy.GROUP:
        return rbacstrategy.name_causes(name)
    if kind.group == apiservicerules.GROUP:
        return []  # apiservicerules.causes checks it against the spec
    if kind.plural == "services":  # ValidateServiceName: NameIsDNS1035Label
        if len(name) > 63 or not _DNS_1035_LABEL.match(name):
            return [(
                "FieldValueInvalid", "metadata.name",
                f'Invalid value: "{name}": a DNS-1035 label must consist of lower case '
                "alphanumeric characters or '-', start with an alphabetic character, and end "
                "with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
                "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            )]
        return []
    if kind.plural in _LABEL_NAME_KINDS:
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return [(
                "FieldValueInvalid", "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                "alphanumeric characters or '-', and must start and end with an alphanumeric "
                "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            )]
        return []
    if kind.plural == "events" and name and kind.group != eventcheck.NEW_GROUP:
        return []  # core/v1 events' names are not checked (ValidateEventCreate)
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return [(
            "FieldValueInvalid", "metadata.name",
            f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )]
    return []


def label_causes(field: str, labels: Any) -> list[Cause]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [("FieldValueInvalid", field, "Invalid value: must be a map of strings")]
    causes: list[Cause] = []
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition("/")
        if (prefix and not _DNS_SUBDOMAIN.match(prefix)) or len(name) > 63 or not _LABEL_NAME.match(
            name
        ):
            causes.append(("FieldValueInvalid", field, f'Invalid value: "{key}": name part must '
                           "consist of alphanumeric characters, '-', '_' or '.'"))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(("FieldValueInvalid", f"{field}", f'Invalid value: "{value}": a valid '
                           "label must be an empty string or consist of alphanumeric characters, "
                           "'-', '_' or '.', and must start and end with an alphanumeric "
                           "character"))
    return causes


def pod_spec_causes(spec: Any, field: str, *, in_template: bool) -> list[Cause]:
    if not isinstance(spec, dict):
        return [("FieldValueRequired", field, "Required value")]
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append(("FieldValueRequired", f"{field}.containers", "Required value"))
        containers = []
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            where = f"{field}.{group}[{i}]"
            if not isinstance(c, dict):
                causes.append(("FieldValueInvalid", where, "Invalid value: must be an object"))
                continue
            name = c.get("name")
            if not name:
                causes.append(("FieldValueRequired", f"{where}.name", "Required value"))
            elif not isinstance(name, str) or len(name) > 63 or not _DNS_LABEL.match(name):
                causes.append(("FieldValueInvalid", f"{where}.name",
                               f'Invalid value: "{name}": must be a lowercase RFC 1123 label'))
            elif name in seen:
                causes.append(("FieldValueDuplicate", f"{where}.name",
                               f'Duplicate value: "{name}"'))
            else:
                seen.add(name)
            if not c.get("image") and not in_template:
                causes.append(("FieldValueRequired", f"{where}.image", "Required value"))
            elif not c.get("image"):
                causes.append(("FieldValueRequired", f"{where}.image", "Required value"))
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in ("Always", "OnFailure", "Never"):
        causes.append(("FieldValueNotSupported", f"{field}.restartPolicy",
                       f'Unsupported value: "{policy}": supported values: "Always", '
                       '"OnFailure", "Never"'))
    return causes


def _workload_causes(obj: dict[str, Any]) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("FieldValueRequired", "spec", "Required value")]
    causes: list[Cause] = []
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
        causes.append(("FieldValueInvalid", "spec.replicas",
                       f"Invalid value: {replicas}: must be greater than or equal to 0"))
    raw_selector = spec.get("selector")
    if not isinstance(raw_selector, dict):
        raw_selector = {}
    raw_template = spec.get("template")
    template: dict[str, Any] = raw_template if isinstance(raw_template, dict) else {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not raw_selector or not (
        raw_selector.get("matchLabels") or raw_selector.get("matchExpressions")
    ):
        causes.append(("FieldValueRequired", "spec.selector", "Required value"))
    else:
        try:
            selector = selectors.from_label_selector_object(raw_selector)
        except ValueError as e:
            causes.append(("FieldValueInvalid", "spec.selector", f"Invalid value: {e}"))
        else:
            if not selector.matches(labels):
                causes.append((
                    "FieldValueInvalid", "spec.template.metadata.labels",
                    f"Invalid value: {_go_map(labels)}: `selector` does not match template "
                    "`labels`",
                ))
    causes += label_causes("spec.template.metadata.labels", labels)
    causes += pod_spec_causes(template.get("spec"), "spec.template.spec", in_template=True)
    policy = (template.get("spec") or {}).get("restartPolicy") if template else None
    if policy not in (None, "Always"):
        causes.append(("FieldValueNotSupported", "spec.template.spec.restartPolicy",
                       f'Unsupported value: "{policy}": supported values: "Always"'))
    return causes


def is_dns_label(name: str) -> bool:
    """An RFC 1123 label (at most 63 characters)."""
    return len(name) <= 63 and _DNS_LABEL.match(name) is not None


def go_map(labels: dict[str, Any]) -> str:
    """A label map as Go's ``%#v`` prints it in a validation message."""
    return _go_map(labels)


def _go_map(labels: dict[str, Any]) -> str:
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in labels.items()) + "}"


def _resource_causes(kind: kinds.Kind, obj: dict[str, Any]) -> list[Cause]:
    """Quantities are not negative and a request is not above its limit (as
    ValidateResourceRequirements; the quantities were decoded, to canonical form, before)."""
    causes: list[Cause] = []
    lists = dict(shapes.resource_lists(kind, obj))
    for where, values in lists.items():
        for name, text in values.items():
            if quantity.parse_json(text).value < 0:
                causes.append(("FieldValueInvalid", f"{where}[{name}]",
                               f'Invalid value: "{text}": must be greater than or equal to 0'))
    for where, requests in lists.items():
        if not where.endswith(".requests"):
            continue
        limits = lists.get(where.removesuffix(".requests") + ".limits", {})
        for name, text in requests.items():
            if name in limits and quantity.parse_json(text).value > quantity.parse_json(
                    limits[name]).value:
                causes.append(("FieldValueInvalid", f"{where}[{name}]",
                               f'Invalid value: "{text}": must be less than or equal to {name} '
                               f"limit of {limits[name]}"))
    return causes


def validate(kind: kinds.Kind, obj: dict[str, Any], *, extra: list[Cause] | None = None) -> None:
    """Raise a 422 Invalid ApiError listing every problem found in ``obj`` (and ``extra``, the
    problems a kind's own module found, e.g. ``batch``)."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    causes: list[Cause] = []
    if not name:
        causes.append(("FieldValueRequired", "metadata.name", "Required value: name or "
                       "generateName is required"))
    else:
        causes += _name_causes(kind, name)
    causes += label_causes("metadata.labels", meta.get("labels"))
    annotations = meta.get("annotations")
    if annotations is not None and (
        not isinstance(annotations, dict)
        or not all(isinstance(v, str) for v in annotations.values())
    ):
        causes.append(("FieldValueInvalid", "metadata.annotations",
                       "Invalid value: must be a map of strings"))
    elif annotations and sum(len(k) + len(v) for k, v in annotations.items()) > MAX_ANNOTATIONS:
        causes.append(("FieldValueTooLong", "metadata.annotations",
                       f"Too long: must have at most {MAX_ANNOTATIONS} bytes"))
    causes += _resource_causes(kind, obj)
    if kind.plural == "pods":
        causes += pod_spec_causes(obj.get("spec"), "spec", in_template=False)
    elif kind.plural in ("deployments", "replicasets", "statefulsets", "daemonsets"):
        causes += _workload_causes(obj)
    elif kind.plural == "secrets" and "stringData" in obj:
        causes.append(("FieldValueInvalid", "stringData",
                       "Invalid value: must be a map of string keys to string values"))
    elif kind.group == apiservicerules.GROUP:
        causes += apiservicerules.causes(obj)
    causes += extra or []
    if causes:
        raise errors.invalid(kind=kind.kind, group=kind.group, name=name, causes=causes)

