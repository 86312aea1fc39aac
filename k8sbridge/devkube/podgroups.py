"""scheduler-plugins' PodGroups (``scheduling.x-k8s.io/v1alpha1``), served as if its CRD were
installed: the schema's checks and ``kubectl get podgroups`` columns.

Why built in: devkube serves no CustomResourceDefinitions, and gang scheduling (the
coscheduling plugin's contract: pods labelled ``scheduling.x-k8s.io/pod-group: <name>`` start
together once ``spec.minMember`` of them fit) needs the PodGroup object to exist as it does on a
cluster with the CRD. The validation is the CRD's OpenAPI schema (``minMember`` and
``scheduleTimeoutSeconds`` are integers, ``minMember`` at least 1), in the words the API server
uses for schema errors; the table is the CRD's ``additionalPrinterColumns``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from k8sbridge.devkube import errors
from k8sbridge.devkube.tablecells import Column, Obj, Row
from k8sbridge.devkube.tablecells import age as _age
from k8sbridge.devkube.tablecells import name as _name

__all__ = ["GROUP", "PLURAL", "PRINTERS", "causes"]

GROUP = "scheduling.x-k8s.io"
PLURAL = "podgroups"
_INT32 = 2**31 - 1


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "number"


def _integer(spec: Obj, field: str, minimum: int | None) -> list[errors.Cause]:
    if field not in spec:
        return []
    value = spec[field]
    path = f"spec.{field}"
    if not isinstance(value, int) or isinstance(value, bool):
        kind = _json_type(value)
        return [("FieldValueTypeInvalid", path,
                 f'Invalid value: "{kind}": {path} in body must be of type integer: "{kind}"')]
    if minimum is not None and value < minimum:
        return [("FieldValueInvalid", path,
                 f"Invalid value: {value}: {path} in body should be greater than or equal to "
                 f"{minimum}")]
    if value > _INT32:
        return [("FieldValueInvalid", path,
                 f"Invalid value: {value}: {path} in body should be less than or equal to "
                 f"{_INT32}")]
    return []


def causes(obj: Obj) -> list[errors.Cause]:
    """The CRD schema's problems with a PodGroup's spec."""
    spec = obj.get("spec")
    if spec is None:
        return []
    if not isinstance(spec, dict):
        kind = _json_type(spec)
        return [("FieldValueTypeInvalid", "spec",
                 f'Invalid value: "{kind}": spec in body must be of type object: "{kind}"')]
    return [*_integer(spec, "minMember", 1), *_integer(spec, "scheduleTimeoutSeconds", None)]


def _cell(obj: Obj, section: str, field: str) -> Any:
    part = obj.get(section)
    return part.get(field) if isinstance(part, dict) else None


def _row(obj: Obj) -> Row:
    return [_name(obj), _cell(obj, "status", "phase"), _cell(obj, "spec", "minMember"),
            _cell(obj, "status", "running"), _cell(obj, "status", "succeeded"),
            _cell(obj, "status", "failed"), _age(obj)]


COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Phase", "string", 0, ""), ("MinMember", "integer", 0, ""),
    ("Running", "integer", 0, ""), ("Succeeded", "integer", 0, ""),
    ("Failed", "integer", 0, ""), ("Age", "date", 0, ""),
]

PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], Row]]] = {PLURAL: (COLUMNS, _row)}
