"""``common::validation::validateContainerInfo`` and ``validateVolume``, as Mesos' master
applies them to a task's and an executor's ``ContainerInfo`` before anything is launched.

Why apart from ``launching``: the same checks run for tasks and executors and their wording
is Mesos' own; the agent repeats the volume check (``kernel.agent.volumes``) for launches that
come from elsewhere, as Mesos' isolators do.
"""

from __future__ import annotations

from typing import Any

__all__ = ["container_info_error"]

_SOURCE_FIELDS = {
    "DOCKER_VOLUME": ("docker_volume", "'source.docker_volume' is not set for DOCKER_VOLUME "
                      "volume"),
    "HOST_PATH": ("host_path", "'source.host_path' is not set for HOST_PATH volume"),
    "SANDBOX_PATH": ("sandbox_path", "'source.sandbox_path' is not set for SANDBOX_PATH volume"),
    "SECRET": ("secret", "'source.secret' is not set for SECRET volume"),
    "CSI_VOLUME": ("csi_volume", "'source.csi_volume' is not set for CSI volume"),
}


def volume_error(volume: Any) -> str | None:
    if not isinstance(volume, dict):
        return "Only one of them should be set: 'host_path', 'image' and 'source'"
    if sum(1 for key in ("host_path", "image", "source") if volume.get(key) is not None) != 1:
        return "Only one of them should be set: 'host_path', 'image' and 'source'"
    source = volume.get("source")
    if source is None:
        return None
    if not isinstance(source, dict) or source.get("type") not in _SOURCE_FIELDS:
        return "'source.type' is unknown"
    field, message = _SOURCE_FIELDS[str(source["type"])]
    if not isinstance(source.get(field), dict):
        return message
    if field == "csi_volume" and not isinstance(source[field].get("static_provisioning"), dict):
        return "'source.csi_volume.static_provisioning' is not set for CSI volume"
    return None


def container_info_error(container: dict[str, Any]) -> str | None:
    """None, or why the ContainerInfo is invalid (without the caller's prefix)."""
    for volume in container.get("volumes") or []:
        error = volume_error(volume)
        if error is not None:
            return f"Invalid volume: {error}"
    if container.get("type") == "DOCKER":
        docker = container.get("docker")
        if not isinstance(docker, dict):
            return "DockerInfo 'docker' is not set for DOCKER typed ContainerInfo"
        for parameter in docker.get("parameters") or []:
            if isinstance(parameter, dict) and parameter.get("key") == "name":
                return "Parameter in DockerInfo must not be 'name'"
    return None
