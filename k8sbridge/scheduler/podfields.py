"""Pod and container fields the bridge cannot honour yet: refused before launch (pure).

Why: a container that asked for ``runAsUser: 1000`` and runs as the agent's user (root on the
embedded kernel) is the silent failure a kubelet never allows. Until the bridge maps users and
capabilities onto ``CommandInfo.user`` and ``LinuxInfo``, every security setting that would
change what a container may do is refused with a ``LaunchError`` naming the field; values that
ask for nothing (absent, ``runAsUser: 0``, ``runAsNonRoot: false``, ``privileged: false``) pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8sbridge.scheduler import podenv

__all__ = ["NOT_MAPPED", "check_pod"]

NOT_MAPPED = ("is not supported yet: k8sbridge does not map it onto Mesos (CommandInfo.user, "
              "LinuxInfo), and the container would run as the agent's user without it")

# field → the values that ask for nothing (anything else is refused)
_POD_SECURITY: dict[str, tuple[Any, ...]] = {
    "runAsUser": (None, 0), "runAsGroup": (None, 0), "runAsNonRoot": (None, False),
    "supplementalGroups": (None, []), "fsGroup": (None,), "fsGroupChangePolicy": (None,),
    "seLinuxOptions": (None, {}), "seccompProfile": (None, {}),
    "appArmorProfile": (None, {}), "sysctls": (None, []), "windowsOptions": (None, {}),
    "supplementalGroupsPolicy": (None,), "seLinuxChangePolicy": (None,),
}
_CONTAINER_SECURITY: dict[str, tuple[Any, ...]] = {
    "runAsUser": (None, 0), "runAsGroup": (None, 0), "runAsNonRoot": (None, False),
    "privileged": (None, False), "capabilities": (None, {}),
    "allowPrivilegeEscalation": (None,), "readOnlyRootFilesystem": (None, False),
    "procMount": (None, "Default"), "seLinuxOptions": (None, {}), "seccompProfile": (None, {}),
    "appArmorProfile": (None, {}), "windowsOptions": (None, {}),
}


def _check(security: Mapping[str, Any], allowed: Mapping[str, tuple[Any, ...]],
           where: str) -> None:
    for field, value in security.items():
        ok = allowed.get(field)
        if ok is None or value not in ok:
            raise podenv.LaunchError(f"{where}.{field} {NOT_MAPPED}")


def check_pod(pod: Mapping[str, Any]) -> None:
    spec = pod.get("spec") or {}
    _check(spec.get("securityContext") or {}, _POD_SECURITY, "spec.securityContext")
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            _check(container.get("securityContext") or {}, _CONTAINER_SECURITY,
                   f"spec.{field}{{{container.get('name')}}}.securityContext")
