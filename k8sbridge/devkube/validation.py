"""Defaulting and validation of incoming objects (the part of the apiserver's strategies we need).

Why: clients rely on server defaults (a pod's restartPolicy, schedulerName, qosClass, phase,
default tolerations; a Deployment's strategy) and on 422 ``Invalid`` answers with causes for bad
names, missing fields and a selector that does not match the template. Pure functions over dicts.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from k8sbridge.devkube import errors, kinds, selectors
from k8sbridge.model import pods as model_pods

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")

Cause = tuple[str, str, str]

MAX_ANNOTATIONS = 256 * 1024  # total size of keys and values, as on the real apiserver

_LABEL_NAME_KINDS = frozenset({"namespaces", "services"})


def _name_causes(kind: kinds.Kind, name: str) -> list[Cause]:
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
    if kind.plural == "events" and name:
        return []
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return [(
            "FieldValueInvalid", "metadata.name",
            f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )]
    return []


def _label_causes(field: str, labels: Any) -> list[Cause]:
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


def _pod_spec_causes(spec: Any, field: str, *, in_template: bool) -> list[Cause]:
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
    causes += _label_causes("spec.template.metadata.labels", labels)
    causes += _pod_spec_causes(template.get("spec"), "spec.template.spec", in_template=True)
    policy = (template.get("spec") or {}).get("restartPolicy") if template else None
    if policy not in (None, "Always"):
        causes.append(("FieldValueNotSupported", "spec.template.spec.restartPolicy",
                       f'Unsupported value: "{policy}": supported values: "Always"'))
    return causes


def _go_map(labels: dict[str, Any]) -> str:
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in labels.items()) + "}"


def validate(kind: kinds.Kind, obj: dict[str, Any]) -> None:
    """Raise a 422 Invalid ApiError listing every problem found in ``obj``."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    causes: list[Cause] = []
    if not name:
        causes.append(("FieldValueRequired", "metadata.name", "Required value: name or "
                       "generateName is required"))
    else:
        causes += _name_causes(kind, name)
    causes += _label_causes("metadata.labels", meta.get("labels"))
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
    if kind.plural == "pods":
        causes += _pod_spec_causes(obj.get("spec"), "spec", in_template=False)
    elif kind.plural in ("deployments", "replicasets"):
        causes += _workload_causes(obj)
    elif kind.plural == "secrets" and "stringData" in obj:
        causes.append(("FieldValueInvalid", "stringData",
                       "Invalid value: must be a map of string keys to string values"))
    elif kind.plural == "events" and not obj.get("involvedObject") and not obj.get("regarding"):
        causes.append(("FieldValueRequired", "involvedObject", "Required value"))
    if causes:
        raise errors.invalid(kind=kind.kind, group=kind.group, name=name, causes=causes)


# --- defaults ------------------------------------------------------------------------------

_DEFAULT_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
)


def _default_container(c: dict[str, Any]) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = str(c.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    if "imagePullPolicy" not in c:
        latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
        c["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def default_pod_spec(spec: dict[str, Any], *, template: bool) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    if not template:
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        if spec.get("tolerations") is None:
            spec["tolerations"] = []
        tolerations = spec["tolerations"]
        for t in _DEFAULT_TOLERATIONS if isinstance(tolerations, list) else ():
            if not any(isinstance(x, dict) and x.get("key") == t["key"] for x in tolerations):
                tolerations.append(dict(t))
    for group in ("initContainers", "containers"):
        for c in spec.get(group) or []:
            if isinstance(c, dict):
                _default_container(c)


def qos_class(spec: dict[str, Any]) -> str:
    """The pod's qosClass, as the kubelet computes it (quantities compared by value: a request
    of "1" and a limit of "1000m" are equal). Quantities were checked by ``check_shapes``."""
    return model_pods.qos_class([
        c for g in ("initContainers", "containers") for c in spec.get(g) or []
        if isinstance(c, dict)
    ])


# kube-apiserver's words when a quantity does not decode (resource.Quantity's UnmarshalJSON)
_QUANTITY_MESSAGE = ("quantities must match the regular expression "
                     "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


def _pod_specs(kind: kinds.Kind, obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    if kind.plural == "pods":
        return [("spec", spec)]
    if kind.plural in ("deployments", "replicasets"):
        template = spec.get("template")
        tspec = template.get("spec") if isinstance(template, dict) else None
        return [("spec.template.spec", tspec)] if isinstance(tspec, dict) else []
    return []


def _check_quantities(kind: kinds.Kind, obj: dict[str, Any]) -> None:
    """Resource quantities decode (400, as the apiserver's decoding answers) and are not
    negative (422 with the field, as its validation answers)."""
    causes: list[Cause] = []
    for field, spec in _pod_specs(kind, obj):
        for group in ("initContainers", "containers"):
            for i, c in enumerate(spec.get(group) or []):
                res = c.get("resources") if isinstance(c, dict) else None
                for section in ("requests", "limits"):
                    values = res.get(section) if isinstance(res, dict) else None
                    if not isinstance(values, dict):
                        continue
                    for name, value in values.items():
                        text = str(value).strip()
                        try:
                            model_pods.parse_quantity(text.removeprefix("-"))
                        except model_pods.QuantityError:
                            raise errors.bad_request(
                                f'{kind.kind} in version "{kind.version}" cannot be handled as '
                                f"a {kind.kind}: {_QUANTITY_MESSAGE}"
                            ) from None
                        if text.startswith("-") and model_pods.parse_quantity(text[1:]) != 0:
                            causes.append((
                                "FieldValueInvalid",
                                f"{field}.{group}[{i}].resources.{section}[{name}]",
                                f'Invalid value: "{text}": must be greater than or equal to 0',
                            ))
    if causes:
        name = (obj.get("metadata") or {}).get("name") if isinstance(
            obj.get("metadata"), dict) else ""
        raise errors.invalid(kind=kind.kind, group=kind.group, name=str(name or ""),
                             causes=causes)


def _default_workload(obj: dict[str, Any], *, deployment: bool) -> None:
    spec = _section(obj, "spec")
    if spec is None:
        return
    spec.setdefault("replicas", 1)
    if deployment:
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = _section(spec, "strategy")
        if strategy is not None:
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = _section(strategy, "rollingUpdate")
                if rolling is not None:
                    rolling.setdefault("maxSurge", "25%")
                    rolling.setdefault("maxUnavailable", "25%")
    template = spec.get("template")
    if isinstance(template, dict):
        if (tmeta := _section(template, "metadata")) is not None:
            tmeta.setdefault("creationTimestamp", None)
        tspec = template.get("spec")
        if isinstance(tspec, dict):
            default_pod_spec(tspec, template=True)


def apply_defaults(kind: kinds.Kind, obj: dict[str, Any], *, create: bool) -> None:
    if kind.plural == "pods":
        spec = obj.get("spec")
        if isinstance(spec, dict):
            default_pod_spec(spec, template=False)
            if create:
                obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}
    elif kind.plural == "deployments":
        _default_workload(obj, deployment=True)
    elif kind.plural == "replicasets":
        _default_workload(obj, deployment=False)
    elif kind.plural == "namespaces":
        if (spec := _section(obj, "spec")) is not None:
            spec.setdefault("finalizers", ["kubernetes"])
        if (status := _section(obj, "status")) is not None:
            status.setdefault("phase", "Active")
        meta = _section(obj, "metadata")
        labels = _section(meta, "labels") if meta is not None else None
        if meta is not None and labels is not None:
            labels["kubernetes.io/metadata.name"] = meta.get("name", "")
    elif kind.plural == "services":
        if (spec := _section(obj, "spec")) is not None:
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            for port in spec.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
                    port.setdefault("targetPort", port.get("port"))
        if (status := _section(obj, "status")) is not None:
            status.setdefault("loadBalancer", {})
    elif kind.plural == "secrets":
        obj.setdefault("type", "Opaque")
        string_data = obj.get("stringData")
        data = _section(obj, "data")
        if (data is not None and isinstance(string_data, dict)
                and all(isinstance(v, str) for v in string_data.values())):
            # stringData is write-only: merged into data (base64), as the apiserver does.
            del obj["stringData"]
            for key, value in string_data.items():
                data[key] = base64.b64encode(value.encode()).decode()
    elif kind.plural == "nodes" and create:
        _section(obj, "spec")


def _section(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``obj[key]`` as a dict to default into: null becomes {} (as the apiserver decodes it);
    another non-object is left for validation to report and gets no defaults."""
    value = obj.get(key)
    if value is None:
        value = obj[key] = {}
    return value if isinstance(value, dict) else None


# --- unknown fields (fieldValidation=Strict|Warn) -------------------------------------------

_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
})
_POD_SPEC_FIELDS = frozenset({
    "volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy",
    "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy", "nodeSelector",
    "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName",
    "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "securityContext",
    "imagePullSecrets", "hostname", "subdomain", "affinity", "schedulerName", "tolerations",
    "hostAliases", "priorityClassName", "priority", "dnsConfig", "readinessGates",
    "runtimeClassName", "enableServiceLinks", "preemptionPolicy", "overhead",
    "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates",
    "resourceClaims", "resources", "hostnameOverride",
})
_CONTAINER_FIELDS = frozenset({
    "name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources",
    "resizePolicy", "restartPolicy", "restartPolicyRules", "volumeMounts", "volumeDevices",
    "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "terminationMessagePath",
    "terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty",
    "targetContainerName",
})
_WORKLOAD_SPEC_FIELDS = {
    "deployments": frozenset({"replicas", "selector", "template", "strategy", "minReadySeconds",
                              "revisionHistoryLimit", "paused", "progressDeadlineSeconds"}),
    "replicasets": frozenset({"replicas", "minReadySeconds", "selector", "template"}),
}
_TOP_FIELDS: dict[str, frozenset[str]] = {
    "pods": frozenset({"spec", "status"}),
    "nodes": frozenset({"spec", "status"}),
    "namespaces": frozenset({"spec", "status"}),
    "services": frozenset({"spec", "status"}),
    "deployments": frozenset({"spec", "status"}),
    "replicasets": frozenset({"spec", "status"}),
    "leases": frozenset({"spec"}),
    "configmaps": frozenset({"data", "binaryData", "immutable"}),
    "secrets": frozenset({"data", "stringData", "type", "immutable"}),
    "serviceaccounts": frozenset({"secrets", "imagePullSecrets", "automountServiceAccountToken"}),
    "endpoints": frozenset({"subsets"}),
}
_CORE_EVENT_FIELDS = frozenset({
    "involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count",
    "type", "eventTime", "series", "action", "related", "reportingComponent",
    "reportingInstance",
})
_NEW_EVENT_FIELDS = frozenset({
    "eventTime", "series", "reportingController", "reportingInstance", "action", "reason",
    "regarding", "related", "note", "type", "deprecatedSource", "deprecatedFirstTimestamp",
    "deprecatedLastTimestamp", "deprecatedCount",
})


def _unknown(obj: Any, allowed: frozenset[str], prefix: str, out: list[str]) -> None:
    if not isinstance(obj, dict):
        return
    for key in obj:
        if not str(key).startswith("$") and key not in allowed:
            out.append(f"{prefix}{key}")


def _unknown_pod_spec(spec: Any, prefix: str, out: list[str]) -> None:
    _unknown(spec, _POD_SPEC_FIELDS, prefix, out)
    if not isinstance(spec, dict):
        return
    for group in ("initContainers", "containers", "ephemeralContainers"):
        items = spec.get(group)
        if isinstance(items, list):
            for i, c in enumerate(items):
                _unknown(c, _CONTAINER_FIELDS, f"{prefix}{group}[{i}].", out)


def unknown_fields(kind: kinds.Kind, obj: Any) -> list[str]:
    """Field paths in ``obj`` that the kind's schema does not have (the checked parts only:
    top level, metadata, pod specs and containers, workload specs)."""
    out: list[str] = []
    if not isinstance(obj, dict):
        return out
    if kind.plural == "events":
        top = _NEW_EVENT_FIELDS if kind.group == "events.k8s.io" else _CORE_EVENT_FIELDS
    else:
        top = _TOP_FIELDS.get(kind.plural, frozenset())
    _unknown(obj, top | {"apiVersion", "kind", "metadata"}, "", out)
    _unknown(obj.get("metadata"), _META_FIELDS, "metadata.", out)
    spec = obj.get("spec")
    if kind.plural == "pods":
        _unknown_pod_spec(spec, "spec.", out)
    elif kind.plural in _WORKLOAD_SPEC_FIELDS and isinstance(spec, dict):
        _unknown(spec, _WORKLOAD_SPEC_FIELDS[kind.plural], "spec.", out)
        template = spec.get("template")
        if isinstance(template, dict):
            _unknown(template, frozenset({"metadata", "spec"}), "spec.template.", out)
            _unknown(template.get("metadata"), _META_FIELDS, "spec.template.metadata.", out)
            _unknown_pod_spec(template.get("spec"), "spec.template.spec.", out)
    return out


# --- shapes (checked before defaulting, so bad input can never crash the server) -------------

Shape = tuple[tuple[str, ...], type | tuple[type, ...]]

_META_SHAPES: list[Shape] = [
    (("metadata",), dict),
    (("metadata", "name"), str), (("metadata", "generateName"), str),
    (("metadata", "namespace"), str), (("metadata", "uid"), str),
    (("metadata", "resourceVersion"), str), (("metadata", "labels"), dict),
    (("metadata", "annotations"), dict), (("metadata", "finalizers"), list),
    (("metadata", "finalizers", "*"), str), (("metadata", "ownerReferences"), list),
    (("metadata", "ownerReferences", "*"), dict),
    (("metadata", "ownerReferences", "*", "uid"), str),
    (("metadata", "ownerReferences", "*", "name"), str),
    (("metadata", "ownerReferences", "*", "kind"), str),
]


def _pod_spec_shapes(prefix: tuple[str, ...]) -> list[Shape]:
    shapes: list[Shape] = [
        (prefix, dict), ((*prefix, "nodeName"), str), ((*prefix, "schedulerName"), str),
        ((*prefix, "restartPolicy"), str), ((*prefix, "serviceAccountName"), str),
        ((*prefix, "serviceAccount"), str), ((*prefix, "priority"), int),
        ((*prefix, "terminationGracePeriodSeconds"), int),
        ((*prefix, "activeDeadlineSeconds"), int), ((*prefix, "hostNetwork"), bool),
        ((*prefix, "nodeSelector"), dict), ((*prefix, "securityContext"), dict),
        ((*prefix, "readinessGates"), list), ((*prefix, "readinessGates", "*"), dict),
    ]
    for group in ("tolerations", "volumes", "schedulingGates", "imagePullSecrets"):
        shapes += [((*prefix, group), list), ((*prefix, group, "*"), dict)]
    for group in ("containers", "initContainers", "ephemeralContainers"):
        item = (*prefix, group, "*")
        shapes += [
            ((*prefix, group), list), (item, dict), ((*item, "name"), str),
            ((*item, "image"), str), ((*item, "ports"), list), ((*item, "ports", "*"), dict),
            ((*item, "env"), list), ((*item, "env", "*"), dict),
            ((*item, "resources"), dict), ((*item, "resources", "requests"), dict),
            ((*item, "resources", "limits"), dict), ((*item, "command"), list),
            ((*item, "args"), list), ((*item, "volumeMounts"), list),
            ((*item, "volumeMounts", "*"), dict),
        ]
    return shapes


_STATUS_SHAPES: list[Shape] = [
    (("status",), dict), (("status", "phase"), str), (("status", "reason"), str),
    (("status", "conditions"), list), (("status", "conditions", "*"), dict),
    (("status", "addresses"), list), (("status", "addresses", "*"), dict),
    (("status", "nodeInfo"), dict), (("status", "daemonEndpoints"), dict),
    (("status", "daemonEndpoints", "kubeletEndpoint"), dict),
    (("status", "podIPs"), list), (("status", "podIPs", "*"), dict),
]
for _group in ("containerStatuses", "initContainerStatuses"):
    _STATUS_SHAPES += [
        (("status", _group), list), (("status", _group, "*"), dict),
        (("status", _group, "*", "state"), dict), (("status", _group, "*", "lastState"), dict),
        (("status", _group, "*", "restartCount"), int),
    ]
for _state in ("waiting", "running", "terminated"):
    for _group in ("containerStatuses", "initContainerStatuses"):
        _STATUS_SHAPES.append((("status", _group, "*", "state", _state), dict))

_WORKLOAD_SHAPES: list[Shape] = [
    (("spec", "replicas"), int), (("spec", "selector"), dict),
    (("spec", "selector", "matchLabels"), dict), (("spec", "selector", "matchExpressions"), list),
    (("spec", "selector", "matchExpressions", "*"), dict),
    (("spec", "selector", "matchExpressions", "*", "values"), list),
    (("spec", "template"), dict), (("spec", "template", "metadata"), dict),
    (("spec", "template", "metadata", "labels"), dict), (("spec", "strategy"), dict),
    (("spec", "strategy", "rollingUpdate"), dict),
]

_SHAPES: dict[str, list[Shape]] = {
    "pods": _META_SHAPES + _pod_spec_shapes(("spec",)) + _STATUS_SHAPES,
    "deployments": _META_SHAPES + [(("spec",), dict)] + _WORKLOAD_SHAPES
    + _pod_spec_shapes(("spec", "template", "spec")) + [(("status",), dict)],
    "replicasets": _META_SHAPES + [(("spec",), dict)] + _WORKLOAD_SHAPES
    + _pod_spec_shapes(("spec", "template", "spec")) + [(("status",), dict)],
    "nodes": _META_SHAPES + [(("spec",), dict), (("spec", "taints"), list),
                             (("spec", "taints", "*"), dict)] + _STATUS_SHAPES,
    "services": _META_SHAPES + [(("spec",), dict), (("spec", "ports"), list),
                                (("spec", "ports", "*"), dict), (("spec", "selector"), dict),
                                (("status",), dict)],
    "configmaps": _META_SHAPES + [(("data",), dict), (("binaryData",), dict)],
    "secrets": _META_SHAPES + [(("data",), dict), (("stringData",), dict), (("type",), str)],
    "namespaces": _META_SHAPES + [(("spec",), dict), (("status",), dict)],
    "events": _META_SHAPES + [(("involvedObject",), dict), (("regarding",), dict),
                              (("source",), dict), (("series",), dict)],
    "leases": _META_SHAPES + [(("spec",), dict)],
}

_TYPE_NAMES = {dict: "object", list: "array", str: "string", int: "integer", bool: "boolean"}


def _values(obj: Any, path: tuple[str, ...], where: str) -> list[tuple[str, Any]]:
    if not path:
        return [(where, obj)]
    head, rest = path[0], path[1:]
    if head == "*":
        if not isinstance(obj, list):
            return []
        out: list[tuple[str, Any]] = []
        for i, item in enumerate(obj):
            out += _values(item, rest, f"{where}[{i}]")
        return out
    if not isinstance(obj, dict) or head not in obj or obj[head] is None:
        return []
    return _values(obj[head], rest, f"{where}.{head}" if where else head)


def shape_causes(kind: kinds.Kind, obj: dict[str, Any]) -> list[Cause]:
    """Type errors at the paths the server reads (wrong JSON types become 422, not crashes)."""
    causes: list[Cause] = []
    for path, expected in _SHAPES.get(kind.plural, _META_SHAPES):
        for where, value in _values(obj, path, ""):
            types = expected if isinstance(expected, tuple) else (expected,)
            ok = isinstance(value, types) and not (
                isinstance(value, bool) and bool not in types
            )
            if not ok:
                names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
                causes.append(("FieldValueTypeInvalid", where,
                               f"Invalid value: {type(value).__name__}: expected {names}"))
    return causes


class _ShapeNode:
    """One path segment of a kind's shape table, merged into a tree walked once per object."""

    __slots__ = ("checks", "children", "each")

    def __init__(self) -> None:
        self.checks: list[tuple[tuple[type, ...], bool]] = []  # (types, bool is allowed)
        self.children: dict[str, _ShapeNode] = {}
        self.each: _ShapeNode | None = None  # the "*" child: every item of a list


def _shape_tree(shapes: list[Shape]) -> _ShapeNode:
    root = _ShapeNode()
    for path, expected in shapes:
        node = root
        for head in path:
            if head == "*":
                if node.each is None:
                    node.each = _ShapeNode()
                node = node.each
            else:
                node = node.children.setdefault(head, _ShapeNode())
        types = expected if isinstance(expected, tuple) else (expected,)
        node.checks.append((types, bool in types))
    return root


def _well_shaped(node: _ShapeNode, value: Any) -> bool:
    """True if no check of ``node``'s subtree fails for ``value`` (what ``shape_causes`` walks,
    in one pass over the object instead of one walk from the root per path)."""
    for types, bool_ok in node.checks:
        if not isinstance(value, types) or (not bool_ok and isinstance(value, bool)):
            return False
    if node.children and isinstance(value, dict):
        for key, child in node.children.items():
            item = value.get(key)
            if item is not None and not _well_shaped(child, item):
                return False
    if node.each is not None and isinstance(value, list):
        each = node.each
        for item in value:
            if not _well_shaped(each, item):
                return False
    return True


_SHAPE_TREES: dict[str, _ShapeNode] = {}


def check_shapes(kind: kinds.Kind, obj: dict[str, Any]) -> None:
    tree = _SHAPE_TREES.get(kind.plural)
    if tree is None:
        tree = _SHAPE_TREES[kind.plural] = _shape_tree(_SHAPES.get(kind.plural, _META_SHAPES))
    if not _well_shaped(tree, obj):
        causes = shape_causes(kind, obj)  # the slow walk names every bad path, in table order
        if causes:
            name = (obj.get("metadata") or {}).get("name") if isinstance(
                obj.get("metadata"), dict) else ""
            raise errors.invalid(kind=kind.kind, group=kind.group, name=str(name or ""),
                                 causes=causes)
    _check_quantities(kind, obj)
