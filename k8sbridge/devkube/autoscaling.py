"""autoscaling HorizontalPodAutoscalers in the API server: v2 defaults and validation, and the
autoscaling/v1 view of the stored v2 objects.

Why: ``kubectl autoscale``, charts and operators create HPAs in either version and read them
back in the other; kube-apiserver stores one object and converts (v1's
``targetCPUUtilizationPercentage`` is v2's cpu Utilization metric; the v2-only fields ride in
v1 annotations there, which devkube leaves out), so devkube stores v2 and converts at the edge.
"""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube import errors

Obj = dict[str, Any]
Cause = errors.Cause

GROUP = "autoscaling"
PLURAL = "horizontalpodautoscalers"
DEFAULT_CPU_UTILIZATION = 80
_SOURCE_TYPES = ("Object", "Pods", "Resource", "ContainerResource", "External")
_TARGET_TYPES = ("AverageValue", "Utilization", "Value")


def _default_rules(rules: Obj | None, *, up: bool) -> Obj:
    """``GenerateHPAScaleUpRules`` / ``GenerateHPAScaleDownRules``."""
    rules = dict(rules or {})
    if up:
        rules.setdefault("stabilizationWindowSeconds", 0)
        rules.setdefault("policies", [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                      {"type": "Percent", "value": 100, "periodSeconds": 15}])
    else:
        rules.setdefault("policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}])
    rules.setdefault("selectPolicy", "Max")
    return rules


def default_hpa(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = _default_rules(behavior.get("scaleUp"), up=True)
        behavior["scaleDown"] = _default_rules(behavior.get("scaleDown"), up=False)


def causes(obj: Obj) -> list[Cause]:
    """ValidateHorizontalPodAutoscalerSpec's problems, in its words (the parts devkube uses)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    found: list[Cause] = []
    minimum = spec.get("minReplicas")
    maximum = spec.get("maxReplicas")
    if isinstance(minimum, int) and minimum < 1:
        found.append(("FieldValueInvalid", "spec.minReplicas",
                      f"Invalid value: {minimum}: must be greater than or equal to 1"))
    if not isinstance(maximum, int) or maximum < 1:
        found.append(("FieldValueInvalid", "spec.maxReplicas",
                      f"Invalid value: {maximum or 0}: must be greater than 0"))
    elif isinstance(minimum, int) and minimum > maximum:
        found.append(("FieldValueInvalid", "spec.maxReplicas",
                      f"Invalid value: {maximum}: must be greater than or equal to "
                      "`minReplicas`"))
    ref = spec.get("scaleTargetRef") or {}
    for field in ("kind", "name"):
        if not ref.get(field):
            found.append(("FieldValueRequired", f"spec.scaleTargetRef.{field}", "Required value"))
    for i, metric in enumerate(spec.get("metrics") or []):
        where = f"spec.metrics[{i}]"
        kind = metric.get("type") if isinstance(metric, dict) else None
        if kind not in _SOURCE_TYPES:
            found.append(("FieldValueNotSupported", f"{where}.type",
                          f'Unsupported value: "{kind or ""}": supported values: '
                          + ", ".join(f'"{t}"' for t in _SOURCE_TYPES)))
            continue
        if kind != "Resource":
            continue
        resource = metric.get("resource") or {}
        if not resource.get("name"):
            found.append(("FieldValueRequired", f"{where}.resource.name", "Required value"))
        target = resource.get("target") or {}
        if target.get("type") not in _TARGET_TYPES:
            found.append(("FieldValueNotSupported", f"{where}.resource.target.type",
                          f'Unsupported value: "{target.get("type") or ""}": supported values: '
                          + ", ".join(f'"{t}"' for t in _TARGET_TYPES)))
        utilization = target.get("averageUtilization")
        if isinstance(utilization, int) and utilization <= 0:
            found.append(("FieldValueInvalid", f"{where}.resource.target.averageUtilization",
                          f"Invalid value: {utilization}: must be greater than 0"))
    return found


# --- the autoscaling/v1 view -----------------------------------------------------------------

def to_v1(obj: Obj) -> Obj:
    """A stored v2 HPA as autoscaling/v1 shows it."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    view: Obj = {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v1",
                 "metadata": obj.get("metadata") or {}}
    v1_spec: Obj = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas")
                    if k in spec}
    for metric in spec.get("metrics") or []:
        resource = metric.get("resource") or {}
        if metric.get("type") == "Resource" and resource.get("name") == "cpu" and \
                "averageUtilization" in (resource.get("target") or {}):
            v1_spec["targetCPUUtilizationPercentage"] = resource["target"]["averageUtilization"]
    view["spec"] = v1_spec
    v1_status: Obj = {k: status[k] for k in ("observedGeneration", "lastScaleTime",
                                             "currentReplicas", "desiredReplicas")
                      if k in status}
    for metric in status.get("currentMetrics") or []:
        current = (metric.get("resource") or {}).get("current") or {}
        if metric.get("type") == "Resource" and (metric.get("resource") or {}).get(
                "name") == "cpu" and "averageUtilization" in current:
            v1_status["currentCPUUtilizationPercentage"] = current["averageUtilization"]
    v1_status.setdefault("currentReplicas", 0)
    v1_status.setdefault("desiredReplicas", 0)
    view["status"] = v1_status
    return view


def from_v1(body: Obj) -> Obj:
    """An autoscaling/v1 HPA as the v2 object devkube stores."""
    spec = body.get("spec") or {}
    v2_spec: Obj = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas")
                    if k in spec}
    if spec.get("targetCPUUtilizationPercentage") is not None:
        v2_spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization",
            "averageUtilization": spec["targetCPUUtilizationPercentage"]}}}]
    stored: Obj = {**body, "apiVersion": "autoscaling/v2", "spec": v2_spec}
    stored.pop("status", None)
    return stored
