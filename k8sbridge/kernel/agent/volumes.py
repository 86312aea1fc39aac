"""A task's ``ContainerInfo.volumes`` as Mesos' ``volume/sandbox_path``, ``volume/secret`` and
``volume/host_path`` isolators read them, into the mounts and secret files of its view
(``rootfs``). Pure: the paths it returns are made by the caller.

Why the words of Mesos' isolators: a framework written against Apache Mesos sees the same
failure for the same volume. Where Mesos' isolators would silently skip a volume (a type whose
isolator is not enabled, a volume type this agent has no isolator for) this agent fails the
launch with a reason instead.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

__all__ = ["Mounts", "VolumeError", "plan"]


class VolumeError(Exception):
    """A volume cannot be provided (the message goes into TASK_FAILED)."""


@dataclasses.dataclass(slots=True)
class Mounts:
    binds: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # source/target/ro
    secrets: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # data/target/ro
    # Host dirs to create: [path, base] (a new one takes ``base``'s owner, as Mesos).
    make_dirs: list[list[str]] = dataclasses.field(default_factory=list)


def validate_volume(volume: Any) -> str | None:
    """``common::validation::validateVolume``: None, or the error (without its prefix)."""
    if not isinstance(volume, dict):
        return "Only one of them should be set: 'host_path', 'image' and 'source'"
    count = sum(1 for key in ("host_path", "image", "source") if volume.get(key) is not None)
    if count != 1:
        return "Only one of them should be set: 'host_path', 'image' and 'source'"
    source = volume.get("source")
    if isinstance(source, dict):
        kind = source.get("type")
        needs = {"DOCKER_VOLUME": ("docker_volume", "'source.docker_volume' is not set for "
                                   "DOCKER_VOLUME volume"),
                 "HOST_PATH": ("host_path", "'source.host_path' is not set for HOST_PATH volume"),
                 "SANDBOX_PATH": ("sandbox_path", "'source.sandbox_path' is not set for "
                                  "SANDBOX_PATH volume"),
                 "SECRET": ("secret", "'source.secret' is not set for SECRET volume"),
                 "CSI_VOLUME": ("csi_volume", "'source.csi_volume' is not set for CSI volume")}
        if kind not in needs:
            return "'source.type' is unknown"
        field, message = needs[str(kind)]
        if not isinstance(source.get(field), dict):
            return message
        if kind == "CSI_VOLUME" and not isinstance(
                source["csi_volume"].get("static_provisioning"), dict):
            return "'source.csi_volume.static_provisioning' is not set for CSI volume"
    elif source is not None:
        return "'source.type' is unknown"
    return None


def _target(container_path: str, *, sandbox_at: str) -> str:
    if ".." in container_path.split("/"):
        raise VolumeError(f"The container path '{container_path}' of a volume contains '..'")
    if os.path.isabs(container_path):
        return os.path.normpath(container_path)
    return os.path.normpath(os.path.join(sandbox_at, container_path))


def plan(volumes: list[Any], *, isolation: frozenset[str], sandbox: str, sandbox_at: str,
         parent_sandbox: str | None) -> Mounts:
    """The mounts for ``volumes``. ``sandbox`` is the task's sandbox on the host, mounted at
    ``sandbox_at`` in its view; ``parent_sandbox`` the executor's for a task of a group (None
    for a command task, which Mesos runs as a top-level container)."""
    out = Mounts()
    for volume in volumes:
        error = validate_volume(volume)
        if error is not None:
            raise VolumeError(f"Invalid volume: {error}")
        container_path = volume.get("container_path")
        if not isinstance(container_path, str) or not container_path:
            raise VolumeError("Invalid volume: 'container_path' is not set")
        readonly = volume.get("mode", "RW") == "RO"
        target = _target(container_path, sandbox_at=sandbox_at)
        source = volume.get("source") or {}
        kind = source.get("type")
        host_path = volume.get("host_path")
        if isinstance(host_path, str) and not os.path.isabs(host_path):
            kind, source = "SANDBOX_PATH", {"sandbox_path": {"type": "SELF", "path": host_path}}
        elif isinstance(host_path, str):
            kind, source = "HOST_PATH", {"host_path": {"path": host_path}}
        if kind == "SANDBOX_PATH":
            _need(isolation, "volume/sandbox_path", "SANDBOX_PATH")
            sandbox_path = source["sandbox_path"]
            path = str(sandbox_path.get("path", ""))
            if os.path.isabs(path):
                raise VolumeError(f"Path '{path}' in SANDBOX_PATH volume is absolute")
            if ".." in path.split("/"):
                raise VolumeError(f"Path '{path}' in SANDBOX_PATH volume leaves the sandbox")
            which = sandbox_path.get("type")
            if which == "SELF":
                if not os.path.isabs(container_path):
                    raise VolumeError("'container_path' is relative for SANDBOX_PATH volume "
                                      "SELF type")
                base = sandbox
            elif which == "PARENT":
                if parent_sandbox is None:
                    raise VolumeError("SANDBOX_PATH volume PARENT type only works for nested "
                                      "container")
                base = parent_sandbox
            else:
                raise VolumeError("Unknown SANDBOX_PATH volume type")
            host = os.path.normpath(os.path.join(base, path))
            out.make_dirs.append([host, base])
            out.binds.append({"source": host, "target": target, "readonly": readonly})
        elif kind == "HOST_PATH":
            _need(isolation, "volume/host_path", "HOST_PATH")
            path = str(source["host_path"].get("path", ""))
            if not os.path.isabs(path):
                raise VolumeError(f"Path '{path}' in HOST_PATH volume is not absolute")
            if (source["host_path"].get("mount_propagation") or {}).get("mode") == \
                    "BIDIRECTIONAL":
                raise VolumeError("HOST_PATH volume with BIDIRECTIONAL mount propagation is "
                                  "not supported by this agent")
            if not os.path.exists(path):
                raise VolumeError(f"Path '{path}' in HOST_PATH volume does not exist")
            out.binds.append({"source": path, "target": target, "readonly": readonly})
        elif kind == "SECRET":
            _need(isolation, "volume/secret", "SECRET")
            secret = source["secret"]
            if secret.get("type") == "REFERENCE" or "reference" in secret:
                raise VolumeError("Default secret resolver cannot resolve references")
            value = secret.get("value")
            if not isinstance(value, dict):
                raise VolumeError("Invalid secret specified in volume: Secret of type VALUE "
                                  "must have the 'value' field set")
            out.secrets.append({"data": str(value.get("data", "")), "target": target,
                                "readonly": readonly})
        else:
            what = kind or ("image" if volume.get("image") is not None else "unknown")
            raise VolumeError(f"{what} volumes are not supported by this agent (volume at "
                              f"'{container_path}')")
    return out


def _need(isolation: frozenset[str], isolator: str, kind: str) -> None:
    if isolator not in isolation:
        raise VolumeError(f"{kind} volumes need the '{isolator}' isolator, which this agent "
                          "was not started with (--isolation)")
