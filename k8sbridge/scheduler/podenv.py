"""A container's environment, resolved before launch as the kubelet resolves it.

Why a module of its own: the same lookups (``fieldRef``, ``resourceFieldRef``, ConfigMap and
Secret keys) feed both ``env`` and the downwardAPI/configMap/secret volumes (``volumes``), and
a missing source must stop the pod with the same ``CreateContainerConfigError`` either way.
Rules: ``envFrom`` first (later sources win), then ``env`` (later entries win, ``$(VAR)``
references to earlier ones, or to the Service variables, expanded), then the Service
variables (``serviceenv``) the container did not set; a missing required key is a
``LaunchError``.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from k8sbridge.model import pods as model_pods

__all__ = [
    "ConfigLookup", "LaunchError", "expand", "field_ref", "resolve_env", "resource_ref",
]

RawPod = Mapping[str, Any]


class LaunchError(Exception):
    """A pod that cannot be launched as written; ``reason`` is the container waiting reason."""

    def __init__(self, message: str, *, reason: str = "CreateContainerConfigError") -> None:
        super().__init__(message)
        self.reason = reason




ConfigLookup = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]


async def resolve_env(
    *,
    pod: RawPod,
    container: Mapping[str, Any],
    node_name: str,
    host_ip: str,
    config_map: ConfigLookup,
    secret: ConfigLookup,
    pod_ip: str | None = None,
    services: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """The container's environment as (name, value) pairs, in the order Kubernetes applies.

    ``envFrom`` first (later sources win), then ``env`` (later entries win, ``$(VAR)``
    references to earlier ones expanded as the kubelet does). ``pod_ip`` is what
    ``status.podIP(s)`` resolve to (``podnet.ip_marker`` on a CNI network); None: the pod's
    written IP, else the agent's address (the pod is on the agent's network).
    ``services``: the Service variables the pod sees (``serviceenv.pod_service_env``); ``env``
    values may reference them and they fill in every name the container did not set, first.
    """
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    cname = str(container.get("name", ""))
    out: dict[str, str] = {}

    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        if "configMapRef" in source:
            ref = source["configMapRef"] or {}
            obj = await config_map(namespace, str(ref.get("name", "")))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise LaunchError(f'configmap "{ref.get("name")}" not found')
            for key, value in sorted((obj.get("data") or {}).items()):
                out[prefix + key] = str(value)
        elif "secretRef" in source:
            ref = source["secretRef"] or {}
            obj = await secret(namespace, str(ref.get("name", "")))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise LaunchError(f'secret "{ref.get("name")}" not found')
            for key, value in sorted((obj.get("data") or {}).items()):
                out[prefix + key] = _b64(value)

    for var in container.get("env") or []:
        name = str(var.get("name", ""))
        if not name:
            continue
        if "valueFrom" not in var or var.get("valueFrom") is None:
            out[name] = expand(str(var.get("value", "")), out, services)
            continue
        vf = var["valueFrom"]
        resolved: str | None
        if "configMapKeyRef" in vf:
            resolved = await _key_ref(vf["configMapKeyRef"], namespace, config_map, "configmap")
        elif "secretKeyRef" in vf:
            raw = await _key_ref(vf["secretKeyRef"], namespace, secret, "secret")
            resolved = None if raw is None else _b64(raw)
        elif "fieldRef" in vf:
            path = str((vf["fieldRef"] or {}).get("fieldPath", ""))
            resolved = field_ref(path, pod, node_name, host_ip, pod_ip=pod_ip)
        elif "resourceFieldRef" in vf:
            resolved = resource_ref(vf["resourceFieldRef"] or {}, container, cname)
        else:
            raise LaunchError(f"env {name}: unsupported valueFrom {sorted(vf)}")
        if resolved is not None:
            out[name] = resolved
    added = [(k, v) for k, v in (services or {}).items() if k not in out]
    return added + list(out.items())


def _b64(value: Any) -> str:
    try:
        return base64.b64decode(str(value)).decode("utf-8", "replace")
    except ValueError as e:
        raise LaunchError(f"secret value is not base64: {e}") from e


async def _key_ref(
    ref: Mapping[str, Any], namespace: str, lookup: ConfigLookup, kind: str
) -> str | None:
    name = str(ref.get("name", ""))
    key = str(ref.get("key", ""))
    obj = await lookup(namespace, name)
    data = None if obj is None else (obj.get("data") or {})
    if data is None or key not in data:
        if ref.get("optional"):
            return None
        if data is None:
            raise LaunchError(f'{kind} "{name}" not found')
        raise LaunchError(f'couldn\'t find key {key} in {kind.capitalize()} {namespace}/{name}')
    return str(data[key])


def field_ref(path: str, pod: RawPod, node_name: str, host_ip: str, *,
              pod_ip: str | None = None) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    own_ip = pod_ip if pod_ip is not None else status.get("podIP") or host_ip
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace") or "default",
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": own_ip,
        "status.podIPs": own_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    for prefix, field in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((meta.get(field) or {}).get(path[len(prefix) + 2 : -2], ""))
    raise LaunchError(f"unsupported fieldRef {path!r}")


def resource_ref(ref: Mapping[str, Any], container: Mapping[str, Any], cname: str) -> str:
    resource = str(ref.get("resource", ""))
    section, _, name = resource.partition(".")
    values = ((container.get("resources") or {}).get(section) or {}) if section else {}
    raw = values.get(name)
    if raw is None:
        return "0"
    divisor = ref.get("divisor") or "1"
    try:
        number = model_pods.parse_quantity(raw, what=f"{cname} {resource}")
        div = model_pods.parse_quantity(divisor, what=f"{cname} divisor")
    except model_pods.PodSpecError as e:
        raise LaunchError(str(e)) from e
    if div == 0:
        raise LaunchError(f"{cname} {resource}: divisor is zero")
    quotient = number / div
    whole = int(quotient) if quotient == int(quotient) else int(quotient) + 1  # ceil, as kubelet
    return str(whole)


def expand(value: str, env: Mapping[str, str], more: Mapping[str, str] | None = None) -> str:
    """Kubernetes ``$(VAR)`` expansion; ``$$`` escapes; unknown references stay as written.
    A name not in ``env`` is looked up in ``more`` (the kubelet's ``MappingFuncFor``)."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i + 2 :]:
            end = value.index(")", i + 2)
            ref = value[i + 2 : end]
            if ref in env:
                out.append(env[ref])
            elif more is not None and ref in more:
                out.append(more[ref])
            else:
                out.append(value[i : end + 1])
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)
