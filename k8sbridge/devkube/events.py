"""Events are stored once (core/v1 shape) and shown through two APIs: core/v1 and events.k8s.io/v1.

Why: the kubelet, kopf and kubectl describe use core/v1 events while kube-scheduler-style
components write events.k8s.io/v1; on a real cluster both are the same stored object, so a
kubectl describe shows either. The field mapping follows the reference (§3 "Events").
"""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube import errors, eventcheck, patch

Obj = dict[str, Any]

_RENAMES = (  # events.k8s.io/v1 field -> core/v1 field
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)
_SHARED = ("metadata", "eventTime", "series", "action", "related", "reason", "type",
           "reportingInstance")


def to_core(obj: Obj) -> Obj:
    """An events.k8s.io/v1 Event as the stored core/v1 Event."""
    core: Obj = {"apiVersion": "v1", "kind": "Event"}
    for field in _SHARED:
        if field in obj:
            core[field] = patch.copy_json(obj[field])
    for new, old in _RENAMES:
        if new in obj:
            core[old] = patch.copy_json(obj[new])
    series = obj.get("series")
    if isinstance(series, dict):
        core["series"] = {"count": series.get("count"),
                          "lastObservedTime": series.get("lastObservedTime")}
    if core.get("eventTime") and core["eventTime"] in (core.get("lastTimestamp"),
                                                       core.get("firstTimestamp")):
        del core["eventTime"]  # the stand-in ``to_events_v1`` shows, not a stored value
    return core


def to_events_v1(obj: Obj) -> Obj:
    """The stored core/v1 Event as an events.k8s.io/v1 Event."""
    view: Obj = {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for field in _SHARED:
        if field in obj:
            view[field] = patch.copy_json(obj[field])
    for new, old in _RENAMES:
        if old in obj:
            view[new] = patch.copy_json(obj[old])
    if not view.get("eventTime"):  # null on a real cluster, which the official Python
        # client's model refuses (event_time is required): show when it was last seen
        view["eventTime"] = obj.get("lastTimestamp") or obj.get("firstTimestamp")
    return view


def admit(group: str, obj: Obj) -> None:
    """A new event (stored form, as sent through ``group``): kube-apiserver's create
    validation (``eventcheck``), then the defaults kubectl describe and kopf expect. No
    ``eventTime`` is made up: a core/v1 event with one must name its action and reporter."""
    meta = obj.setdefault("metadata", {})
    causes = eventcheck.create_causes(group, obj)
    if causes:
        raise errors.invalid(kind="Event", group=group, name=str(meta.get("name") or ""),
                             causes=causes)
    involved = obj.get("involvedObject") or {}
    if not meta.get("namespace") and involved.get("namespace"):
        meta["namespace"] = involved["namespace"]
    obj.setdefault("type", "Normal")
    obj.setdefault("reportingComponent", (obj.get("source") or {}).get("component", ""))
    obj.setdefault("reportingInstance", "")
