"""Fetch what a pod's volumes read (ConfigMaps, Secrets, service-account tokens) before launch.

Why apart from ``volumes``: rendering stays pure (tested from static objects); this is the only
I/O, done once per launch, concurrently. The pod's ``imagePullSecrets`` are read here too
(``imagepull``: a missing one is None, the pull goes on without it). A token comes from the
TokenRequest API (``serviceaccounts/<name>/token``), bound to the pod as the kubelet binds it;
Mesos SECRET volumes cannot be rewritten, so it is not rotated (a restarted container gets a
fresh one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from k8sbridge.kube import errors as kube_errors
from k8sbridge.scheduler import imagepull, podenv, volumes

__all__ = ["Kube", "Reads", "fetch"]


class Kube(Protocol):
    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...


async def _get(what: str, name: str, call: Any) -> Mapping[str, Any] | None:
    try:
        return dict(await call)
    except kube_errors.NotFound:
        return None
    except kube_errors.KubeError as e:
        raise podenv.LaunchError(f'reading {what} "{name}" failed: {e}') from e


class Reads:
    """The ConfigMaps and Secrets of one commit, each read once however many of its pods
    name it (a Deployment's replicas all name the same ones, and every pod the namespace's
    ``kube-root-ca.crt``): what pods launched together see is one version, as the kubelet's
    object cache gives the pods of a node. Rendering only reads the objects."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._reads: dict[tuple[str, str, str], asyncio.Future[Mapping[str, Any] | None]] = {}

    async def get(self, what: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        key = (what, namespace, name)
        read = self._reads.get(key)
        if read is None:
            call = (self._kube.get_config_map(namespace, name) if what == "configmap"
                    else self._kube.get_secret(namespace, name))
            read = self._reads[key] = asyncio.ensure_future(_get(what, name, call))
        return await read


async def _token(kube: Kube, pod: Mapping[str, Any], want: volumes.TokenWant) -> str:
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    spec: dict[str, Any] = {
        "expirationSeconds": want.expiration_seconds,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": str(meta.get("name")),
                           "uid": str(meta.get("uid"))},
    }
    if want.audience:
        spec["audiences"] = [want.audience]
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{want.service_account}/token"
    try:
        reply = await kube.create(path, {"apiVersion": "authentication.k8s.io/v1",
                                         "kind": "TokenRequest", "spec": spec})
    except kube_errors.KubeError as e:
        raise podenv.LaunchError(
            f'failed to fetch token for service account "{want.service_account}": {e}'
        ) from e
    token = (reply.get("status") or {}).get("token")
    if not isinstance(token, str) or not token:
        raise podenv.LaunchError(
            f'failed to fetch token for service account "{want.service_account}": '
            "the TokenRequest gave no token")
    return token


async def fetch(kube: Kube, pod: Mapping[str, Any], reads: Reads | None = None) -> volumes.Sources:
    """The objects ``volumes.container_volumes`` needs; ``LaunchError`` when one cannot be
    read (a missing one is None: rendering decides with ``optional``). ``reads`` shares the
    ConfigMap and Secret reads of the pods launched together."""
    reads = reads if reads is not None else Reads(kube)
    config_maps, secrets, tokens = volumes.wanted(pod)
    secrets |= set(imagepull.pull_secret_names(pod))
    if not (config_maps or secrets or tokens):
        return volumes.Sources()
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    cm_names, sec_names, token_wants = sorted(config_maps), sorted(secrets), sorted(
        tokens, key=lambda t: (t.service_account, t.audience, t.expiration_seconds))
    results = await asyncio.gather(
        *(reads.get("configmap", namespace, n) for n in cm_names),
        *(reads.get("secret", namespace, n) for n in sec_names),
    )
    token_values = await asyncio.gather(*(_token(kube, pod, t) for t in token_wants))
    return volumes.Sources(
        config_maps=dict(zip(cm_names, results[: len(cm_names)], strict=True)),
        secrets=dict(zip(sec_names, results[len(cm_names):], strict=True)),
        tokens=dict(zip(token_wants, token_values, strict=True)),
    )
