"""How a container's image is pulled: ``imagePullPolicy`` and ``imagePullSecrets`` on Mesos'
``ContainerInfo.mesos.image`` (pure).

Why: a pod that says ``imagePullPolicy: Always`` and runs last week's image, or names a pull
secret the agent never sees, fails quietly. Mesos has both knobs (``mesos.proto`` ``Image``):

* ``cached`` (default true): false makes the provisioner pull again even when the image is on
  the agent. ``Always`` → false, ``IfNotPresent`` → true. ``Never`` has no Mesos spelling (the
  provisioner pulls an image it lacks), so it is refused with ``image_mode`` ``mesos``; with
  ``local`` (a local registry directory, never a network pull) and ``none`` (no image is
  sent) nothing is ever pulled, which is what ``Never`` asks. Unset: the API server's default
  (``Always`` for ``:latest`` or no tag, else ``IfNotPresent``).
* ``Image.Docker.config`` (Mesos >= 1.3): a ``Secret`` holding a docker config file. The
  pod's ``imagePullSecrets`` (``kubernetes.io/dockerconfigjson`` or the older ``dockercfg``)
  are merged into one ``{"auths": ...}`` (the first secret naming a registry wins, as the
  kubelet tries them in order). A secret that is missing is skipped with the kubelet's
  ``FailedToRetrieveImagePullSecret`` warning and the pull goes on without it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from k8sbridge.scheduler import limits, podenv

__all__ = [
    "REASON_PULL_SECRET",
    "cached",
    "check_policy",
    "docker_config",
    "pull_policy",
    "pull_secret_names",
]

Json = dict[str, Any]
RawPod = Mapping[str, Any]

REASON_PULL_SECRET = "FailedToRetrieveImagePullSecret"
POLICIES = ("Always", "IfNotPresent", "Never")
NEVER_REFUSED = ("imagePullPolicy Never cannot be honoured with scheduler.image_mode mesos: "
                 "Mesos pulls an image the agent does not have (ContainerInfo.mesos.image."
                 "cached only skips the pull of an image already there)")


def pull_policy(container: Mapping[str, Any]) -> str:
    """The container's policy, defaulted as the API server defaults it."""
    policy = container.get("imagePullPolicy")
    if policy:
        return str(policy)
    image = str(container.get("image") or "")
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    return "Always" if not tag or tag == "latest" else "IfNotPresent"


def check_policy(container: Mapping[str, Any], *, image_mode: str, where: str) -> None:
    """Refuse a policy Mesos cannot be told (``LaunchError`` naming the field)."""
    policy = pull_policy(container)
    if policy not in POLICIES:
        raise podenv.LaunchError(f"{where}.imagePullPolicy {policy!r} is not a pull policy "
                                 "(Always, IfNotPresent or Never)")
    if policy == "Never" and image_mode == "mesos" and container.get("image"):
        raise podenv.LaunchError(f"{where}.{NEVER_REFUSED}")


def cached(container: Mapping[str, Any]) -> bool:
    """``Image.cached``: false only for ``Always`` (pull again)."""
    return pull_policy(container) != "Always"


def pull_secret_names(pod: RawPod) -> list[str]:
    spec = pod.get("spec") or {}
    return [str((ref or {}).get("name") or "") for ref in spec.get("imagePullSecrets") or []
            if (ref or {}).get("name")]


def _auths(secret: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    data = secret.get("data") or {}
    key, nested = (".dockerconfigjson", True) if ".dockerconfigjson" in data else (
        ".dockercfg", False)
    raw = data.get(key)
    if raw is None:
        raise podenv.LaunchError(f'imagePullSecrets "{name}": the secret has neither '
                                 ".dockerconfigjson nor .dockercfg")
    try:
        parsed = json.loads(base64.b64decode(str(raw), validate=True))
    except (binascii.Error, ValueError) as e:
        raise podenv.LaunchError(f'imagePullSecrets "{name}": {key} is not a docker config '
                                 f"(base64 JSON): {e}") from e
    auths = parsed.get("auths") if nested and isinstance(parsed, dict) else parsed
    if not isinstance(auths, dict):
        raise podenv.LaunchError(f'imagePullSecrets "{name}": {key} has no auths')
    return auths


def docker_config(
    pod: RawPod, secrets: Mapping[str, Mapping[str, Any] | None]
) -> tuple[Json | None, tuple[limits.Notice, ...]]:
    """``Image.Docker.config`` (a ``Secret`` VALUE) from the pod's pull secrets (None: no
    credentials) and the warnings for secrets that could not be read."""
    merged: dict[str, Any] = {}
    missing: list[str] = []
    for name in pull_secret_names(pod):
        secret = secrets.get(name)
        if secret is None:
            missing.append(name)
            continue
        for registry, auth in _auths(secret, name).items():
            merged.setdefault(str(registry), auth)
    notices = tuple(
        limits.Notice(reason=REASON_PULL_SECRET,
                      message=f"Unable to retrieve some image pull secrets ({name}); "
                              "attempting to pull the image may not succeed.")
        for name in missing)
    if not merged:
        return None, notices
    data = base64.b64encode(json.dumps({"auths": merged}, sort_keys=True).encode()).decode()
    return {"type": "VALUE", "value": {"data": data}}, notices
