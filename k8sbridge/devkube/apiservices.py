"""``apiregistration.k8s.io/v1`` APIServices: one per group/version devkube serves, as
kube-aggregator's autoregister controller keeps them on a real cluster.

Why: ``kubectl get apiservices`` is how people check that an API (``metrics.k8s.io`` above all)
is served and available; tools that wait for ``v1beta1.metrics.k8s.io`` to be Available (Helm
charts, the HPA docs) read it. devkube serves every group itself, metrics included
(``metricsapi``), so every APIService is local: no ``service``, Available=True with reason
``Local``, exactly what kube-aggregator shows for the groups kube-apiserver serves in-process.
They are created at start when missing (``bootstrap``), with kube-apiserver's group and
version priorities; like any stored kind they can be read, listed, watched and changed.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable

from k8sbridge.devkube import kinds, registry
from k8sbridge.devkube.tablecells import Column, Obj, Row
from k8sbridge.devkube.tablecells import age as _age
from k8sbridge.devkube.tablecells import name as _name

__all__ = ["KIND", "PRINTERS", "bootstrap", "desired"]

KIND = kinds.BY_KEY[kinds.ResourceKey("apiregistration.k8s.io/apiservices")]
AUTOMANAGED = {"kube-aggregator.kubernetes.io/automanaged": "onstart"}
LOCAL_MESSAGE = "Local APIServices are always available"

# kube-apiserver's (group, version) -> (groupPriorityMinimum, versionPriority); metrics.k8s.io
# as metrics-server's manifest registers it.
PRIORITIES: dict[tuple[str, str], tuple[int, int]] = {
    ("", "v1"): (18000, 1),
    ("apiregistration.k8s.io", "v1"): (18000, 15),
    ("apps", "v1"): (17800, 15),
    ("events.k8s.io", "v1"): (17750, 15),
    ("authentication.k8s.io", "v1"): (17700, 15),
    ("authorization.k8s.io", "v1"): (17600, 15),
    ("autoscaling", "v2"): (17500, 30),
    ("autoscaling", "v1"): (17500, 15),
    ("batch", "v1"): (17400, 15),
    ("policy", "v1"): (17100, 15),
    ("rbac.authorization.k8s.io", "v1"): (17000, 15),
    ("scheduling.k8s.io", "v1"): (16600, 15),
    ("coordination.k8s.io", "v1"): (16500, 15),
    ("discovery.k8s.io", "v1"): (16200, 15),
    ("metrics.k8s.io", "v1beta1"): (100, 100),
}
OTHER_PRIORITY = (1000, 15)  # a group this table does not know (kept low, as CRD groups are)


def name_of(group: str, version: str) -> str:
    """``v1.`` for the core group, ``v1beta1.metrics.k8s.io`` for metrics."""
    return f"{version}.{group}"


def desired(group_versions: Iterable[tuple[str, str]], *, now: str) -> list[Obj]:
    """The APIServices of ``group_versions`` ((group, version) pairs, core as ``""``)."""
    out: list[Obj] = []
    for group, version in sorted(set(group_versions)):
        group_priority, version_priority = PRIORITIES.get((group, version), OTHER_PRIORITY)
        out.append({
            "apiVersion": KIND.api_version, "kind": KIND.kind,
            "metadata": {"name": name_of(group, version), "labels": dict(AUTOMANAGED)},
            "spec": {"group": group, "version": version,
                     "groupPriorityMinimum": group_priority,
                     "versionPriority": version_priority},
            "status": {"conditions": [{
                "type": "Available", "status": "True", "lastTransitionTime": now,
                "reason": "Local", "message": LOCAL_MESSAGE}]},
        })
    return out


def served_group_versions(extra: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Every group/version of the kinds table, plus ``extra`` (the APIs that are not stored
    kinds: reviews, metrics)."""
    return sorted({(k.group, k.version) for k in kinds.KINDS} | set(extra))


def bootstrap(reg: registry.Registry, *, extra: Iterable[tuple[str, str]] = ()) -> None:
    """Create the APIServices that are missing (those present are left as they are), with
    their status as kube-aggregator's availability controller sets it for local ones."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for obj in desired(served_group_versions(extra), now=now):
        name = obj["metadata"]["name"]
        if reg.store.peek(KIND.store_key, "", name) is None:
            status = obj.pop("status")  # a create drops it: written through the subresource
            created = reg.create(kind=KIND, namespace="", body=obj)
            reg.update(kind=KIND, namespace="", name=name, subresource="status",
                       body={**created, "status": status})


def _service(obj: Obj) -> str:
    service = (obj.get("spec") or {}).get("service")
    if not isinstance(service, dict):
        return "Local"
    return f"{service.get('namespace')}/{service.get('name')}"


def _available(obj: Obj) -> str:
    """kube-aggregator's AVAILABLE cell: the condition's status, with its reason unless True."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Available":
            if c.get("status") == "True":
                return "True"
            return f"{c.get('status')} ({c.get('reason')})"
    return "Unknown"


def _row(obj: Obj) -> Row:
    return [_name(obj), _service(obj), _available(obj), _age(obj)]


COLUMNS: list[Column] = [
    ("Name", "string", 0, "name"), ("Service", "string", 0, ""),
    ("Available", "string", 0, ""), ("Age", "string", 0, ""),
]

PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], Row]]] = {
    "apiservices": (COLUMNS, _row),
}
