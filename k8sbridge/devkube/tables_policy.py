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


def _metric_target(spec: Obj, status: list[Obj]) -> str:
    """One metric as ``formatHPAMetrics`` prints it: ``cpu: 12%/50%`` (``<unknown>`` before
    the controller measured it)."""
    source = spec.get("resource") or spec.get("containerResource") or {}
    name = str(source.get("name", ""))
    target = source.get("target") or {}
    current_of = next(((m.get("resource") or {}).get("current") or {} for m in status
                       if (m.get("resource") or {}).get("name") == name), {})
    if target.get("type") == "Utilization":
        value = current_of.get("averageUtilization")
        shown = "<unknown>" if value is None else f"{value}%"
        return f"{name}: {shown}/{target.get('averageUtilization')}%"
    key = "averageValue" if target.get("type") == "AverageValue" else "value"
    return f"{name}: {current_of.get(key, '<unknown>')}/{target.get(key)}"


def _hpa_row(obj: Obj) -> Row:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    metrics = spec.get("metrics") or []
    shown = [_metric_target(m, status.get("currentMetrics") or []) for m in metrics[:2]]
    targets = ", ".join(shown) if shown else "<none>"
    if len(metrics) > 2:
        targets += f" + {len(metrics) - 2} more..."
    minimum = spec.get("minReplicas")
    return [_name(obj), f"{ref.get('kind')}/{ref.get('name')}", targets,
            "<unset>" if minimum is None else str(minimum), int(spec.get("maxReplicas", 0)),
            int(status.get("currentReplicas", 0)), _age(obj)]


HPA_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Reference", "string", 0, ""),
    ("Targets", "string", 0, ""), ("MinPods", "string", 0, ""),
    ("MaxPods", "integer", 0, ""), ("Replicas", "integer", 0, ""), ("Age", "string", 0, ""),
]


PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], Row]]] = {
    "poddisruptionbudgets": (PDB_COLUMNS, _pdb_row),
    "horizontalpodautoscalers": (HPA_COLUMNS, _hpa_row),
}
