"""``Table`` printers of the apps/v1 workload kinds added beside Deployments and ReplicaSets:
StatefulSets, DaemonSets and ControllerRevisions, as kube-apiserver's printers show them.

Why apart: ``tables`` holds the printers of the older kinds and is near the module size limit.
"""

from __future__ import annotations

from collections.abc import Callable

from k8sbridge.devkube.tablecells import Column, Obj, Row
from k8sbridge.devkube.tablecells import age as _age
from k8sbridge.devkube.tablecells import name as _name
from k8sbridge.devkube.tablecells import selector as _selector
from k8sbridge.devkube.tablecells import template_containers as _template_containers

__all__ = ["PRINTERS"]


def _statefulset_row(obj: Obj) -> Row:
    names, images = _template_containers(obj)
    ready = (obj.get("status") or {}).get("readyReplicas", 0)
    return [_name(obj), f"{ready}/{(obj.get('spec') or {}).get('replicas', 0)}", _age(obj),
            names, images]


STATEFULSET_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Ready", "string", 0, ""), ("Age", "string", 0, ""),
    ("Containers", "string", 1, ""), ("Images", "string", 1, ""),
]


def _daemonset_row(obj: Obj) -> Row:
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    names, images = _template_containers(obj)
    return [_name(obj)] + [status.get(f, 0) for f in (
        "desiredNumberScheduled", "currentNumberScheduled", "numberReady",
        "updatedNumberScheduled", "numberAvailable")] + [
        _selector({"matchLabels": node_selector}), _age(obj), names, images,
        _selector(spec.get("selector"))]


DAEMONSET_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Desired", "integer", 0, ""), ("Current", "integer", 0, ""),
    ("Ready", "integer", 0, ""), ("Up-to-date", "integer", 0, ""),
    ("Available", "integer", 0, ""), ("Node Selector", "string", 0, ""),
    ("Age", "string", 0, ""), ("Containers", "string", 1, ""), ("Images", "string", 1, ""),
    ("Selector", "string", 1, ""),
]


def _controllerrevision_row(obj: Obj) -> Row:
    ref = next((r for r in (obj.get("metadata") or {}).get("ownerReferences") or []
                if r.get("controller")), None)
    owner = "<none>"
    if ref is not None:
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        owner = f"{str(ref.get('kind', '')).lower()}.{group}/{ref.get('name')}"
    return [_name(obj), owner, obj.get("revision", 0), _age(obj)]


CONTROLLERREVISION_COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Controller", "string", 0, ""),
    ("Revision", "integer", 0, ""), ("Age", "string", 0, ""),
]


PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], Row]]] = {
    "statefulsets": (STATEFULSET_COLUMNS, _statefulset_row),
    "daemonsets": (DAEMONSET_COLUMNS, _daemonset_row),
    "controllerrevisions": (CONTROLLERREVISION_COLUMNS, _controllerrevision_row),
}
