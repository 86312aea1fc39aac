"""``Table`` printers of policy/v1 and autoscaling kinds, as kube-apiserver's printers show them
(``kubectl get pdb`` and ``kubectl get hpa``).

Why apart: ``tables`` holds the printers of the older kinds and is near the module size limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from k8sbridge.devkube.tablecells import Column, Obj, Row
from k8sbridge.devkube.tablecells import age as _age
from k8sbridge.devkube.tablecells import name as _name

__all__ = ["PRINTERS"]


def _int_or_string(value: Any) -> str:
    return "N/A" if value is None else str(value)


def _pdb_row(obj: Obj) -> Row:
    spec = obj.get("spec") or {}
    return [_name(obj), _int_or_string(spec.get("minAvailable")),
            _int_or_string(spec.get("maxUnavailable")),
            int((obj.get("status") or {}).get("disruptionsAllowed", 0)), _age(obj)]


PDB_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Min Available", "string", 0, ""),
    ("Max Unavailable", "string", 0, ""), ("Allowed Disruptions", "integer", 0, ""),
    ("Age", "string", 0, ""),
]


PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], Row]]] = {
    "poddisruptionbudgets": (PDB_COLUMNS, _pdb_row),
}
