"""Server-side defaults of incoming objects (the apiserver's SetDefaults_* and PrepareForCreate).

Why: clients rely on what the apiserver fills in: a pod's restartPolicy, schedulerName,
default tolerations, requests taken from limits, ``status.qosClass`` and phase; a Deployment's
strategy and revision limits; a Secret's ``stringData`` merged into ``data``. Pure functions that
default a dict in place; anything that is not the expected type is left for validation.
"""

from __future__ import annotations

import base64
from typing import Any

from k8sbridge.devkube import (
    apps,
    autoscaling,
    batch,
    endpointcheck,
    kinds,
    policy,
    priorityclasses,
    qos,
    rbacstrategy,
)

_DEFAULT_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
)


def _default_handler(handler: Any) -> None:
    """SetDefaults_HTTPGetAction: path ``/``, scheme ``HTTP`` (probes and lifecycle hooks)."""
    if isinstance(handler, dict) and isinstance(handler.get("httpGet"), dict):
        handler["httpGet"].setdefault("path", "/")
        handler["httpGet"].setdefault("scheme", "HTTP")


def _default_probes(c: dict[str, Any]) -> None:
    """SetDefaults_Probe: timeout 1 s, period 10 s, success 1, failure 3."""
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            _default_handler(probe)
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            _default_handler(lifecycle.get(hook))


_MODE_SOURCES = ("configMap", "secret", "downwardAPI", "projected")


def _default_volumes(spec: dict[str, Any]) -> None:
    """SetDefaults_{ConfigMap,Secret,DownwardAPI,Projected}VolumeSource: defaultMode 0644;
    SetDefaults_HostPathVolumeSource: type "" (no check)."""
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for source in _MODE_SOURCES:
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 0o644)
        if isinstance(volume.get("hostPath"), dict):
            volume["hostPath"].setdefault("type", "")


def _default_container(c: dict[str, Any]) -> None:
    _default_probes(c)
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


def _requests_from_limits(resources: Any) -> None:
    """A limit with no request of the same resource makes that request (SetDefaults_Pod)."""
    if not isinstance(resources, dict) or not isinstance(resources.get("limits"), dict):
        return
    if resources.get("requests") is None:
        resources["requests"] = {}
    requests = resources["requests"]
    if isinstance(requests, dict):
        for name, value in resources["limits"].items():
            requests.setdefault(name, value)


def default_pod_spec(spec: dict[str, Any], *, template: bool) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    _default_volumes(spec)
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
                if not template:  # a pod's, not a template's (SetDefaults_Pod)
                    _requests_from_limits(c["resources"])



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
                obj["status"] = {"phase": "Pending", "qosClass": qos.qos_class(spec)}
    elif kind.plural == "deployments":
        _default_workload(obj, deployment=True)
    elif kind.plural == "replicasets":
        _default_workload(obj, deployment=False)
    elif kind.plural in apps.PLURALS:
        apps.apply_defaults(kind.plural, obj, create=create, default_pod_spec=default_pod_spec)
    elif kind.plural == "jobs":
        batch.default_job(obj, create=create, default_pod_spec=default_pod_spec)
    elif kind.plural == "cronjobs":
        batch.default_cronjob(obj, create=create, default_pod_spec=default_pod_spec)
    elif kind.plural == policy.PLURAL:
        policy.default_pdb(obj, create=create)
    elif kind.group == priorityclasses.GROUP:
        priorityclasses.default_class(obj)
    elif kind.plural == autoscaling.PLURAL:
        autoscaling.default_hpa(obj)
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
            _default_service(spec)
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
    elif kind.plural == "endpoints":
        endpointcheck.default_endpoints(obj)
    elif kind.plural == "endpointslices":
        endpointcheck.default_endpointslice(obj)
    elif kind.plural == "nodes" and create:
        _section(obj, "spec")
    elif kind.group == rbacstrategy.GROUP:
        rbacstrategy.default(obj)


def _default_service(spec: dict[str, Any]) -> None:
    """SetDefaults_Service (core/v1)."""
    kind = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP" and not spec.get("sessionAffinityConfig"):
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
    if kind in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer") or (kind == "ClusterIP" and spec.get("externalIPs")):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)


def _section(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``obj[key]`` as a dict to default into: null becomes {} (as the apiserver decodes it);
    another non-object is left for validation to report and gets no defaults."""
    value = obj.get(key)
    if value is None:
        value = obj[key] = {}
    return value if isinstance(value, dict) else None

