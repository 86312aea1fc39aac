"""A pod's QoS class, computed as kube-apiserver computes ``status.qosClass`` when it creates a pod.

Why: clients (kubectl describe, the bridge's placement, eviction) read ``status.qosClass`` from the
server, so devkube sets it the way the apiserver's pod strategy does (pkg/apis/core/helper/qos):
only cpu and memory count, only values above zero count, quantities are summed over app and init
containers and compared by value ("1" equals "1000m"), and pod-level resources, when the pod sets
cpu or memory there, replace the per-container sums (PodLevelResources, on by default since 1.34).
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from typing import Any

from k8sbridge.devkube import quantity

_COUNTED = ("cpu", "memory")


def _positive(values: Any) -> dict[str, decimal.Decimal]:
    """The counted resources of a ResourceList whose value is above zero (values that do not
    decode count as absent: they were refused before a pod is created)."""
    out: dict[str, decimal.Decimal] = {}
    if not isinstance(values, Mapping):
        return out
    for name in _COUNTED:
        if name not in values:
            continue
        try:
            value = quantity.parse_json(values[name]).value
        except quantity.QuantityError:
            continue
        if value > 0:
            out[name] = value
    return out


def _add(total: dict[str, decimal.Decimal], more: Mapping[str, decimal.Decimal]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, decimal.Decimal(0)) + value


def _pod_level(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    resources = spec.get("resources")
    if not isinstance(resources, Mapping):
        return None
    for section in ("requests", "limits"):
        values = resources.get(section)
        if isinstance(values, Mapping) and any(name in values for name in _COUNTED):
            return resources
    return None


def _containers(spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for group in ("containers", "initContainers"):  # ephemeral containers have no resources
        items = spec.get(group)
        for item in items if isinstance(items, list) else ():
            if isinstance(item, Mapping):
                yield item


def qos_class(spec: Mapping[str, Any]) -> str:
    """"Guaranteed", "Burstable" or "BestEffort" for a (defaulted) pod spec."""
    requests: dict[str, decimal.Decimal] = {}
    limits: dict[str, decimal.Decimal] = {}
    guaranteed = True
    pod_level = _pod_level(spec)
    if pod_level is not None:
        _add(requests, _positive(pod_level.get("requests")))
        if isinstance(pod_level.get("limits"), Mapping) and pod_level["limits"]:
            found = _positive(pod_level["limits"])
            _add(limits, found)
            guaranteed = set(found) == set(_COUNTED)
    else:
        for container in _containers(spec):
            resources = container.get("resources")
            if not isinstance(resources, Mapping):
                resources = {}
            _add(requests, _positive(resources.get("requests")))
            found = _positive(resources.get("limits"))
            _add(limits, found)
            if set(found) != set(_COUNTED):
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(name) == value for name, value in requests.items()) and len(
        requests
    ) == len(limits):
        return "Guaranteed"
    return "Burstable"
