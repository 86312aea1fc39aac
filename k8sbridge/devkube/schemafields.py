"""The fields each kind's schema has, for ``fieldValidation=Strict|Warn``.

Why: kubectl (server-side field validation) and the official client ask the server to refuse
or warn about fields the schema does not have, with the paths of those fields; devkube knows the
fields of the parts it checks (top level, metadata, pod specs and containers, workload specs).
"""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube import kinds

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
    "statefulsets": frozenset({"replicas", "selector", "template", "volumeClaimTemplates",
                               "serviceName", "podManagementPolicy", "updateStrategy",
                               "revisionHistoryLimit", "minReadySeconds",
                               "persistentVolumeClaimRetentionPolicy", "ordinals"}),
    "daemonsets": frozenset({"selector", "template", "updateStrategy", "minReadySeconds",
                             "revisionHistoryLimit"}),
    "replicationcontrollers": frozenset({"replicas", "minReadySeconds", "selector",
                                         "template"}),
    "jobs": frozenset({"parallelism", "completions", "activeDeadlineSeconds", "podFailurePolicy",
                       "successPolicy", "backoffLimit", "backoffLimitPerIndex",
                       "maxFailedIndexes", "selector", "manualSelector", "template",
                       "ttlSecondsAfterFinished", "completionMode", "suspend",
                       "podReplacementPolicy", "managedBy", "scheduling"}),
    "poddisruptionbudgets": frozenset({"minAvailable", "selector", "maxUnavailable",
                                       "unhealthyPodEvictionPolicy"}),
    "horizontalpodautoscalers": frozenset({"scaleTargetRef", "minReplicas", "maxReplicas",
                                           "metrics", "behavior"}),
}
_HPA_V1_SPEC_FIELDS = frozenset({"scaleTargetRef", "minReplicas", "maxReplicas",
                                 "targetCPUUtilizationPercentage"})
_TOP_FIELDS: dict[str, frozenset[str]] = {
    "pods": frozenset({"spec", "status"}),
    "nodes": frozenset({"spec", "status"}),
    "namespaces": frozenset({"spec", "status"}),
    "services": frozenset({"spec", "status"}),
    "deployments": frozenset({"spec", "status"}),
    "replicasets": frozenset({"spec", "status"}),
    "statefulsets": frozenset({"spec", "status"}),
    "daemonsets": frozenset({"spec", "status"}),
    "replicationcontrollers": frozenset({"spec", "status"}),
    "controllerrevisions": frozenset({"data", "revision"}),
    "jobs": frozenset({"spec", "status"}),
    "cronjobs": frozenset({"spec", "status"}),
    "poddisruptionbudgets": frozenset({"spec", "status"}),
    "podgroups": frozenset({"spec", "status"}),
    "horizontalpodautoscalers": frozenset({"spec", "status"}),
    "leases": frozenset({"spec"}),
    "apiservices": frozenset({"spec", "status"}),
    "priorityclasses": frozenset({"value", "globalDefault", "description", "preemptionPolicy"}),
    "configmaps": frozenset({"data", "binaryData", "immutable"}),
    "secrets": frozenset({"data", "stringData", "type", "immutable"}),
    "serviceaccounts": frozenset({"secrets", "imagePullSecrets", "automountServiceAccountToken"}),
    "endpoints": frozenset({"subsets"}),
    "endpointslices": frozenset({"addressType", "endpoints", "ports"}),
    "roles": frozenset({"rules"}),
    "clusterroles": frozenset({"rules", "aggregationRule"}),
    "rolebindings": frozenset({"subjects", "roleRef"}),
    "clusterrolebindings": frozenset({"subjects", "roleRef"}),
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
    elif kind.plural == "horizontalpodautoscalers" and kind.version == "v1":
        _unknown(spec, _HPA_V1_SPEC_FIELDS, "spec.", out)
    elif kind.plural in _WORKLOAD_SPEC_FIELDS and isinstance(spec, dict):
        _unknown(spec, _WORKLOAD_SPEC_FIELDS[kind.plural], "spec.", out)
        template = spec.get("template")
        if isinstance(template, dict):
            _unknown(template, frozenset({"metadata", "spec"}), "spec.template.", out)
            _unknown(template.get("metadata"), _META_FIELDS, "spec.template.metadata.", out)
            _unknown_pod_spec(template.get("spec"), "spec.template.spec.", out)
    return out

