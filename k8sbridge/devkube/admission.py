"""The ServiceAccount admission plugin: what kube-apiserver does to every pod it creates.

Why: on Kubernetes every pod runs as a ServiceAccount and, unless told otherwise, finds its
credentials at ``/var/run/secrets/kubernetes.io/serviceaccount`` (``token``, ``ca.crt``,
``namespace``). That comes from ``plugin/pkg/admission/serviceaccount``: it defaults
``spec.serviceAccountName`` to ``default``, refuses a pod naming a ServiceAccount that does not
exist, and adds the ``kube-api-access-xxxxx`` projected volume (a bound token, the
``kube-root-ca.crt`` ConfigMap, the namespace) mounted read-only in every container and init
container that does not mount that path itself, unless ``automountServiceAccountToken: false``
(the pod's word wins over the ServiceAccount's). Mirror pods are left alone but may not
reference ServiceAccounts or secrets; ``kubernetes.io/enforce-mountable-secrets: "true"`` on a
ServiceAccount limits the secrets its pods may use. Applied on create only, before defaults
and validation, like a mutating-then-validating plugin; no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from k8sbridge.devkube import errors

Obj = dict[str, Any]
Lookup = Callable[[str, str, str], "Obj | None"]  # (plural, namespace, name) -> stored object

PLUGIN = "ServiceAccount"
DEFAULT_SERVICE_ACCOUNT = "default"
VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
TOKEN_SECONDS = 3607  # serviceaccount.WarnOnlyBoundTokenExpirationSeconds
PROJECTED_DEFAULT_MODE = 0o644
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
ENFORCE_MOUNTABLE_SECRETS = "kubernetes.io/enforce-mountable-secrets"
DEFAULT_RETRIES = 10  # lookups of a missing "default" ServiceAccount (its controller makes it)
_PARSE_BOOL_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # names.SimpleNameGenerator


def token_volume(name: str) -> Obj:
    """The volume the plugin adds (``TokenVolumeSource``), exactly as it writes it."""
    return {"name": name, "projected": {
        "defaultMode": PROJECTED_DEFAULT_MODE,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
            {"configMap": {"name": ROOT_CA_CONFIG_MAP,
                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ],
    }}


def _spec(pod: Obj) -> Obj:
    spec = pod.get("spec")
    return spec if isinstance(spec, dict) else {}


def _is_mirror(pod: Obj) -> bool:
    meta = pod.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return isinstance(annotations, dict) and MIRROR_ANNOTATION in annotations


def service_account_name(pod: Any) -> str | None:
    """The ServiceAccount admission will look up for ``pod`` (None: it looks up none)."""
    if not isinstance(pod, dict) or _is_mirror(pod):
        return None
    spec = _spec(pod)
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount")
               or DEFAULT_SERVICE_ACCOUNT)


def _containers(spec: Obj) -> list[Obj]:
    return [c for group in ("initContainers", "containers")
            for c in spec.get(group) or [] if isinstance(c, dict)]


def _secret_names(spec: Obj) -> list[str]:
    """Every secret a pod refers to (``podutil.VisitPodSecretNames``, the common fields)."""
    names: list[str] = []
    for volume in spec.get("volumes") or []:
        if isinstance(volume, dict) and isinstance(volume.get("secret"), dict):
            names.append(str(volume["secret"].get("secretName") or ""))
        projected = volume.get("projected") if isinstance(volume, dict) else None
        for source in (projected or {}).get("sources") or []:
            if isinstance(source, dict) and isinstance(source.get("secret"), dict):
                names.append(str(source["secret"].get("name") or ""))
    for c in _containers(spec):
        for env in c.get("env") or []:
            ref = ((env or {}).get("valueFrom") or {}).get("secretKeyRef")
            if isinstance(ref, dict):
                names.append(str(ref.get("name") or ""))
        for source in c.get("envFrom") or []:
            ref = (source or {}).get("secretRef")
            if isinstance(ref, dict):
                names.append(str(ref.get("name") or ""))
    names += [str((s or {}).get("name") or "") for s in spec.get("imagePullSecrets") or []]
    return names


def _limit_secret_references(account: Obj, spec: Obj) -> str | None:
    """Why the pod may not use a secret its ServiceAccount does not list (None: it may)."""
    sa_name = (account.get("metadata") or {}).get("name")
    mountable = {str((s or {}).get("name")) for s in account.get("secrets") or []}
    for volume in spec.get("volumes") or []:
        secret = (volume or {}).get("secret")
        if isinstance(secret, dict) and secret.get("secretName") not in mountable:
            return (f'volume with secret.secretName="{secret.get("secretName")}" is not allowed '
                    f"because service account {sa_name} does not reference that secret")
    for group, label in (("initContainers", "init container"), ("containers", "container")):
        for c in spec.get(group) or []:
            for env in (c or {}).get("env") or []:
                ref = ((env or {}).get("valueFrom") or {}).get("secretKeyRef")
                if isinstance(ref, dict) and ref.get("name") not in mountable:
                    return (f"{label} {c.get('name')} with envVar {env.get('name')} referencing "
                            f'secret.secretName="{ref.get("name")}" is not allowed because '
                            f"service account {sa_name} does not reference that secret")
    pull = {str((s or {}).get("name")) for s in account.get("imagePullSecrets") or []}
    for i, ref in enumerate(spec.get("imagePullSecrets") or []):
        if (ref or {}).get("name") not in pull:
            return (f'imagePullSecrets[{i}].name="{(ref or {}).get("name")}" is not allowed '
                    f"because service account {sa_name} does not reference that "
                    "imagePullSecret")
    return None


def _automount(account: Obj, spec: Obj) -> bool:
    if isinstance(spec.get("automountServiceAccountToken"), bool):
        return bool(spec["automountServiceAccountToken"])
    if isinstance(account.get("automountServiceAccountToken"), bool):
        return bool(account["automountServiceAccountToken"])
    return True


def _mount_token(spec: Obj, *, generate: Callable[[str], str]) -> None:
    volumes = spec.get("volumes")
    volumes = volumes if isinstance(volumes, list) else []
    existing = next((str(v["name"]) for v in volumes if isinstance(v, dict)
                     and str(v.get("name") or "").startswith(VOLUME_PREFIX)), None)
    name = existing or generate(VOLUME_PREFIX)
    needed = False
    for c in _containers(spec):
        mounts = c.get("volumeMounts")
        mounts = mounts if isinstance(mounts, list) else []
        if any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH for m in mounts):
            continue
        c["volumeMounts"] = [*mounts,
                             {"name": name, "readOnly": True, "mountPath": MOUNT_PATH}]
        needed = True
    if needed and existing is None:
        spec["volumes"] = [*volumes, token_volume(name)]


def generate_name(prefix: str) -> str:
    return prefix + "".join(random.choices(_NAME_ALPHABET, k=5))


def admit_pod(pod: Obj, *, namespace: str, lookup: Lookup,
              generate: Callable[[str], str] = generate_name) -> None:
    """Mutate ``pod`` (being created in ``namespace``) as the plugin does, or refuse it with
    kube-apiserver's 403."""
    meta = pod.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    shown = str(meta.get("name") or meta.get("generateName") or "Unknown")

    def forbidden(why: str) -> errors.ApiError:
        return errors.forbidden(plural="pods", group="", name=shown, why=why)

    spec = _spec(pod)
    if _is_mirror(pod):
        if spec.get("serviceAccountName") or spec.get("serviceAccount"):
            raise forbidden("a mirror pod may not reference service accounts")
        if _secret_names(spec):
            raise forbidden("a mirror pod may not reference secrets")
        for volume in spec.get("volumes") or []:
            for source in ((volume or {}).get("projected") or {}).get("sources") or []:
                if isinstance(source, dict) and source.get("serviceAccountToken") is not None:
                    raise forbidden("a mirror pod may not use ServiceAccountToken volume "
                                    "projections")
        return
    name = service_account_name(pod) or DEFAULT_SERVICE_ACCOUNT
    if isinstance(pod.get("spec"), dict):
        spec["serviceAccountName"] = name
    account = lookup("serviceaccounts", namespace, name)
    if account is None:
        raise forbidden(f"error looking up service account {namespace}/{name}: "
                        f'serviceaccount "{name}" not found')
    if _automount(account, spec):
        _mount_token(spec, generate=generate)
    pull = [{"name": str((s or {}).get("name") or "")}
            for s in account.get("imagePullSecrets") or []]
    if not spec.get("imagePullSecrets") and pull:
        spec["imagePullSecrets"] = pull
    annotations = (account.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ENFORCE_MOUNTABLE_SECRETS) in _PARSE_BOOL_TRUE:
        why = _limit_secret_references(account, spec)
        if why is not None:
            raise forbidden(why)
