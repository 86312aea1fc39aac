"""StatefulSets, DaemonSets, ControllerRevisions and ReplicationControllers at the API.

Why: ``kubectl apply`` of these kinds must get what kube-apiserver gives: SetDefaults_StatefulSet
(OrderedReady, RollingUpdate with partition 0, 10 revisions, Retain PVC policies),
SetDefaults_DaemonSet (RollingUpdate with maxUnavailable 1 and maxSurge 0), the
ReplicationController's selector and labels taken from its template, and the refusals of
pkg/apis/apps/validation (and core's for ReplicationControllers) in its words. devkube has no
storage, so a StatefulSet's ``volumeClaimTemplates`` are refused with a reason naming the field.
Pure functions over dicts, run after the generic checks of ``validation``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from k8sbridge.devkube import errors, validation

Obj = dict[str, Any]
Cause = errors.Cause

PLURALS = frozenset({"statefulsets", "daemonsets", "controllerrevisions",
                     "replicationcontrollers"})
NO_STORAGE = ("Forbidden: devkube has no storage: PersistentVolumeClaims cannot be "
              "provisioned, so volumeClaimTemplates are not supported (use emptyDir volumes)")
STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
               "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
STS_UPDATE_FORBIDDEN = (
    "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
    "'template', 'updateStrategy', 'revisionHistoryLimit', "
    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")
_RETENTION = ("Retain", "Delete")


def _section(obj: Obj, key: str) -> Obj | None:
    if obj.get(key) is None:
        obj[key] = {}
    value = obj[key]
    return value if isinstance(value, dict) else None


def _default_template(spec: Obj, default_pod_spec: Callable[..., None]) -> None:
    template = spec.get("template")
    if not isinstance(template, dict):
        return
    tmeta = _section(template, "metadata")
    if tmeta is not None:
        tmeta.setdefault("creationTimestamp", None)
    if isinstance(template.get("spec"), dict):
        default_pod_spec(template["spec"], template=True)


def apply_defaults(plural: str, obj: Obj, *, create: bool,
                   default_pod_spec: Callable[..., None]) -> None:
    """The kind's SetDefaults_* (and, on create, the strategy's empty status)."""
    if plural == "controllerrevisions":
        return
    spec = _section(obj, "spec")
    if spec is None:
        return
    _default_template(spec, default_pod_spec)
    if plural == "statefulsets":
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = _section(spec, "updateStrategy")
        if strategy is not None:
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = _section(strategy, "rollingUpdate")
                if rolling is not None:
                    rolling.setdefault("partition", 0)
        policy = _section(spec, "persistentVolumeClaimRetentionPolicy")
        if policy is not None:
            policy.setdefault("whenDeleted", "Retain")
            policy.setdefault("whenScaled", "Retain")
        if create:
            obj["status"] = {"replicas": 0, "availableReplicas": 0}
    elif plural == "daemonsets":
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = _section(spec, "updateStrategy")
        if strategy is not None:
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = _section(strategy, "rollingUpdate")
                if rolling is not None:
                    rolling.setdefault("maxUnavailable", 1)
                    rolling.setdefault("maxSurge", 0)
        if create:
            obj["status"] = {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                             "desiredNumberScheduled": 0, "numberReady": 0}
    elif plural == "replicationcontrollers":
        spec.setdefault("replicas", 1)
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") \
            if isinstance(spec.get("template"), dict) else None
        if isinstance(labels, dict) and labels:
            if not spec.get("selector"):
                spec["selector"] = dict(labels)
            meta = _section(obj, "metadata")
            if meta is not None and not meta.get("labels"):
                meta["labels"] = dict(labels)
        if create:
            obj["status"] = {"replicas": 0}


# --- validation ----------------------------------------------------------------------------

def _go(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, int)) else str(value)


def go_label_selector(selector: Any) -> str:
    """A LabelSelector as Go's ``%#v`` prints it (the immutable-field message)."""
    if not isinstance(selector, dict):
        return "nil"
    labels = selector.get("matchLabels")
    expressions = selector.get("matchExpressions")
    shown_labels = validation.go_map(labels) if isinstance(labels, dict) else \
        "map[string]string(nil)"
    shown_expressions = "[]v1.LabelSelectorRequirement(nil)" if not expressions else \
        "[]v1.LabelSelectorRequirement{" + ", ".join(
            f'v1.LabelSelectorRequirement{{Key:"{e.get("key")}", Operator:"{e.get("operator")}",'
            f' Values:[]string{{{", ".join(json.dumps(v) for v in e.get("values") or [])}}}}}'
            for e in expressions if isinstance(e, dict)) + "}"
    return f"v1.LabelSelector{{MatchLabels:{shown_labels}, MatchExpressions:{shown_expressions}}}"


def _nonnegative(spec: Obj, field: str, where: str) -> list[Cause]:
    value = spec.get(field)
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return []
    return [("FieldValueInvalid", f"{where}.{field}",
             f"Invalid value: {_go(value)}: must be greater than or equal to 0")]


def _int_or_percent(value: Any, where: str) -> tuple[int, list[Cause]]:
    """``getIntOrPercentValue`` (the number, a percentage's too) and ValidatePositiveIntOrPercent
    with IsNotMoreThan100Percent's causes."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            return value, [("FieldValueInvalid", where, f"Invalid value: {value}: must be "
                            "greater than or equal to 0")]
        return value, []
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        if int(value[:-1]) > 100:
            return int(value[:-1]), [("FieldValueInvalid", where, f'Invalid value: "{value}": '
                                      "must not be greater than 100%")]
        return int(value[:-1]), []
    return 0, [("FieldValueInvalid", where, f"Invalid value: {_go(value)}: a valid percent "
                "string must be a numeric string followed by an ending '%' (e.g. '1%',  or "
                "'93%', regex used for validation is '[0-9]+%')")]


def _template_causes(spec: Obj, kind: str) -> list[Cause]:
    tspec = (spec.get("template") or {}).get("spec") if isinstance(spec.get("template"),
                                                                  dict) else None
    if isinstance(tspec, dict) and tspec.get("activeDeadlineSeconds") is not None:
        return [("FieldValueForbidden", "spec.template.spec.activeDeadlineSeconds",
                 f"Forbidden: activeDeadlineSeconds in {kind} is not Supported")]
    return []


def _go_strategy(kind: str, strategy: Obj) -> str:
    """An update strategy as Go's ``%#v`` prints it (``kind``: StatefulSet or DaemonSet)."""
    rolling = "RollingUpdateStatefulSetStrategy" if kind == "StatefulSet" else \
        "RollingUpdateDaemonSet"
    shown = f"(*apps.{rolling})(nil)" if strategy.get("rollingUpdate") is None else \
        f"&apps.{rolling}{{...}}"
    return (f"apps.{kind}UpdateStrategy{{Type:{json.dumps(str(strategy.get('type') or ''))}, "
            f"RollingUpdate:{shown}}}")


def _statefulset_strategy_causes(strategy: Obj) -> list[Cause]:
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    where = "spec.updateStrategy.rollingUpdate"
    if kind == "OnDelete":
        if rolling is None:
            return []
        return [("FieldValueInvalid", where, "Invalid value: only allowed for updateStrategy "
                 "'RollingUpdate'")]
    if kind != "RollingUpdate":
        return [("FieldValueInvalid", "spec.updateStrategy",
                 f"Invalid value: {_go_strategy('StatefulSet', strategy)}: must be "
                 "'RollingUpdate' or 'OnDelete'")]
    if not isinstance(rolling, dict):
        return []
    causes = _nonnegative(rolling, "partition", where)
    if rolling.get("maxUnavailable") is not None:
        value, found = _int_or_percent(rolling["maxUnavailable"], f"{where}.maxUnavailable")
        causes += found
        if value == 0:
            causes.append(("FieldValueInvalid", f"{where}.maxUnavailable",
                           f"Invalid value: {_go(rolling['maxUnavailable'])}: cannot be 0"))
    return causes


def _daemonset_strategy_causes(strategy: Obj) -> list[Cause]:
    """ValidateDaemonSetUpdateStrategy: exactly one of maxUnavailable and maxSurge non-zero."""
    kind = strategy.get("type")
    if kind == "OnDelete":
        return []
    if kind != "RollingUpdate":
        return [("FieldValueNotSupported", "spec.updateStrategy",
                 f"Unsupported value: {_go_strategy('DaemonSet', strategy)}: supported values: "
                 '"RollingUpdate", "OnDelete"')]
    rolling = strategy.get("rollingUpdate")
    where = "spec.updateStrategy.rollingUpdate"
    if not isinstance(rolling, dict):
        return [("FieldValueRequired", where, "Required value")]
    unavailable, causes = _int_or_percent(rolling.get("maxUnavailable", 0),
                                          f"{where}.maxUnavailable")
    surge, found = _int_or_percent(rolling.get("maxSurge", 0), f"{where}.maxSurge")
    causes += found
    if unavailable != 0 and surge != 0:
        causes.append(("FieldValueInvalid", f"{where}.maxSurge",
                       f"Invalid value: {_go(rolling.get('maxSurge'))}: may not be set when "
                       "maxUnavailable is non-zero"))
    elif unavailable == 0 and surge == 0:
        causes.append(("FieldValueRequired", f"{where}.maxUnavailable",
                       "Required value: cannot be 0 when maxSurge is 0"))
    return causes


def _strategy_causes(spec: Obj, kind: str) -> list[Cause]:
    strategy = spec.get("updateStrategy")
    if not isinstance(strategy, dict):
        return []
    if kind == "StatefulSet":
        return _statefulset_strategy_causes(strategy)
    return _daemonset_strategy_causes(strategy)


def _statefulset_causes(obj: Obj) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    causes: list[Cause] = []
    policy = spec.get("podManagementPolicy")
    if policy not in ("OrderedReady", "Parallel"):
        causes.append(("FieldValueInvalid", "spec.podManagementPolicy",
                       f"Invalid value: {_go(policy)}: must be 'OrderedReady' or 'Parallel'"))
    causes += _strategy_causes(spec, "StatefulSet")
    causes += _nonnegative(spec, "minReadySeconds", "spec")
    causes += _nonnegative(spec, "revisionHistoryLimit", "spec")
    ordinals = spec.get("ordinals")
    if isinstance(ordinals, dict):
        causes += _nonnegative(ordinals, "start", "spec.ordinals")
    if spec.get("volumeClaimTemplates"):
        causes.append(("FieldValueForbidden", "spec.volumeClaimTemplates", NO_STORAGE))
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if isinstance(retention, dict):
        for field in ("whenDeleted", "whenScaled"):
            if retention.get(field) not in _RETENTION:
                causes.append((
                    "FieldValueNotSupported",
                    f"spec.persistentVolumeClaimRetentionPolicy.{field}",
                    f'Unsupported value: {_go(retention.get(field))}: supported values: '
                    '"Retain", "Delete"'))
    service = spec.get("serviceName")
    if service and not validation.is_dns_label(str(service)):
        causes.append(("FieldValueInvalid", "spec.serviceName",
                       f'Invalid value: "{service}": a lowercase RFC 1123 label must consist '
                       "of lower case alphanumeric characters or '-', and must start and end "
                       "with an alphanumeric character"))
    return causes + _template_causes(spec, "StatefulSet")


def _replicationcontroller_causes(obj: Obj) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("FieldValueRequired", "spec", "Required value")]
    causes = _nonnegative(spec, "replicas", "spec") + _nonnegative(spec, "minReadySeconds",
                                                                    "spec")
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not selector:
        causes.append(("FieldValueRequired", "spec.selector", "Required value"))
    else:
        causes += validation.label_causes("spec.selector", selector)
    template = spec.get("template")
    if not isinstance(template, dict):
        causes.append(("FieldValueRequired", "spec.template", "Required value"))
        return causes
    labels = (template.get("metadata") or {}).get("labels") or {}
    if isinstance(selector, dict) and selector and any(
            labels.get(k) != v for k, v in selector.items()):
        causes.append(("FieldValueInvalid", "spec.template.metadata.labels",
                       f"Invalid value: {validation.go_map(labels)}: `selector` does not match "
                       "template `labels`"))
    causes += validation.label_causes("spec.template.metadata.labels", labels)
    causes += validation.pod_spec_causes(template.get("spec"), "spec.template.spec",
                                         in_template=True)
    policy = (template.get("spec") or {}).get("restartPolicy")
    if policy not in (None, "Always"):
        causes.append(("FieldValueNotSupported", "spec.template.spec.restartPolicy",
                       f'Unsupported value: "{policy}": supported values: "Always"'))
    return causes


def _controllerrevision_causes(obj: Obj, old: Obj | None) -> list[Cause]:
    causes = [(t, f.lstrip("."), m) for t, f, m in _nonnegative(obj, "revision", "")]
    if obj.get("data") is None:
        causes.append(("FieldValueRequired", "data", "Required value: data is mandatory"))
    if old is not None and obj.get("data") != old.get("data"):
        causes.append(("FieldValueInvalid", "data", "Invalid value: field is immutable"))
    return causes


def causes(plural: str, obj: Obj, *, old: Obj | None) -> list[Cause]:
    """The kind's own refusals; ``old``: the object an update replaces (None on create and
    for status writes)."""
    found: list[Cause] = []
    if plural == "statefulsets":
        found = _statefulset_causes(obj)
        if old is not None:
            new_spec = {k: v for k, v in (obj.get("spec") or {}).items() if k not in STS_MUTABLE}
            old_spec = {k: v for k, v in (old.get("spec") or {}).items() if k not in STS_MUTABLE}
            if new_spec != old_spec:
                found.append(("FieldValueForbidden", "spec", STS_UPDATE_FORBIDDEN))
    elif plural == "daemonsets":
        spec = obj.get("spec")
        if isinstance(spec, dict):
            found = _strategy_causes(spec, "DaemonSet")
            found += _nonnegative(spec, "minReadySeconds", "spec")
            found += _nonnegative(spec, "revisionHistoryLimit", "spec")
            found += _template_causes(spec, "DaemonSet")
            if old is not None and spec.get("selector") != (old.get("spec") or {}).get(
                    "selector"):
                found.append(("FieldValueInvalid", "spec.selector",
                              f"Invalid value: {go_label_selector(spec.get('selector'))}: field is "
                              "immutable"))
    elif plural == "replicationcontrollers":
        found = _replicationcontroller_causes(obj)
    elif plural == "controllerrevisions":
        found = _controllerrevision_causes(obj, old)
    return found
