"""What a task's container view is, decided by the agent from its ``--isolation`` and the
task's ``ContainerInfo``: the plan its namespace holder makes (``holders``, ``rootfs``), the
paths and environment the task sees, and its command under Mesos' ``docker/runtime`` rules.

Why pure (all I/O is the caller's): the rules are Mesos' (``filesystem/linux``,
``namespaces/pid``, ``docker/runtime``, the ``volume/*`` isolators), and a plan is plain JSON
the agent sends to the container daemon with the rest of the task's spec.

A task with an image (``container.mesos.image``, type DOCKER) runs in that image's root file
system, its sandbox mounted at ``/mnt/mesos/sandbox`` (Mesos' ``--sandbox_directory``). A task
without one runs on a copy-on-write view of the agent's root file system (the host's ``/`` as
the overlay's only lower layer), its sandbox at the same path as on the host: what it writes
outside its sandbox and volumes stays in its private upper layer and goes with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from k8sbridge.kernel.agent import images, volumes

__all__ = ["FULL_ISOLATION", "HOST_VIEW_MESSAGE", "SANDBOX_DIRECTORY", "image_cached", "image_name",
           "parse_isolation", "plan_task"]

SANDBOX_DIRECTORY = "/mnt/mesos/sandbox"  # Mesos' --sandbox_directory default
# Every isolator of this agent that changes what a container sees (the lead wires these on).
FULL_ISOLATION = ("cgroups/cpu,cgroups/mem,filesystem/linux,volume/sandbox_path,volume/secret,"
                  "volume/host_path,docker/runtime,namespaces/pid,linux/capabilities,network/cni")
HOST_VIEW_MESSAGE = ("Running on a copy-on-write view of the agent's root file system (no "
                     "image): what it writes outside its sandbox and volumes stays in the "
                     "container and is discarded when it ends")
_KNOWN = frozenset({"cgroups/cpu", "cgroups/mem", "posix/cpu", "posix/mem", "filesystem/posix",
                    "filesystem/linux", "volume/sandbox_path", "volume/secret",
                    "volume/host_path", "docker/runtime", "namespaces/pid",
                    "linux/capabilities", "network/cni"})
_ETC_FILES = ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname")


class IsolationError(ValueError):
    """A bad ``--isolation`` (the agent does not start, as Mesos)."""


def parse_isolation(flag: str) -> frozenset[str]:
    """The isolators of ``--isolation`` (comma-separated), checked as Mesos checks them."""
    names = frozenset(n.strip() for n in flag.split(",") if n.strip())
    unknown = sorted(names - _KNOWN)
    if unknown:
        raise IsolationError(f"Unknown or unsupported isolator '{unknown[0]}'")
    needs_linux = names & {"volume/secret", "namespaces/pid", "docker/runtime", "network/cni"}
    if needs_linux and "filesystem/linux" not in names:
        first = sorted(needs_linux)[0]
        raise IsolationError(f"The '{first}' isolator requires the 'filesystem/linux' "
                             "isolator")
    return names


def image_name(container: Any) -> str | None:
    """The docker image of a MESOS container (``container.mesos.image``), if any."""
    if not isinstance(container, dict) or container.get("type", "MESOS") != "MESOS":
        return None
    image = (container.get("mesos") or {}).get("image")
    if not isinstance(image, dict):
        return None
    if image.get("type") != "DOCKER":
        raise volumes.VolumeError(f"Unsupported container image type: {image.get('type')}")
    name = (image.get("docker") or {}).get("name")
    return str(name) if name else None


def image_cached(container: Any) -> bool:
    """``container.mesos.image.cached`` (Mesos' default: true): false makes the provisioner
    pull the image again even if its store has it."""
    image = ((container or {}).get("mesos") or {}).get("image") \
        if isinstance(container, dict) else None
    return not (isinstance(image, dict) and image.get("cached") is False)


def docker_command(command: dict[str, Any], config: dict[str, Any]
                   ) -> tuple[list[str], str | None]:
    """``(argv, executable)`` of a command in a docker image, as ``docker/runtime``: a shell
    command or a given value run as asked; otherwise the image's Entrypoint (then Cmd, unless
    arguments are given) or Cmd."""
    if command.get("shell", True):
        if not command.get("value"):
            raise volumes.VolumeError("Shell specified but no command value provided")
        return ["/bin/sh", "-c", str(command["value"])], None
    args = [str(a) for a in command.get("arguments") or []]
    if command.get("value"):
        return args or [str(command["value"])], str(command["value"])
    entrypoint = [str(a) for a in config.get("Entrypoint") or []]
    cmd = [str(a) for a in config.get("Cmd") or []]
    if entrypoint:
        argv = entrypoint + args if args else entrypoint + cmd
    elif cmd:
        argv = [cmd[0], *args] if args else cmd
    else:
        raise volumes.VolumeError("Failed to determine the launch command: No executable is "
                                  "found")
    return argv, argv[0]


def image_env(config: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in config.get("Env") or []:
        name, sep, value = str(item).partition("=")
        if sep:
            out[name] = value
    return out


def pid_mode(isolation: frozenset[str], container: Any) -> str:
    """``new`` (a pid namespace of its own), ``group`` (the task group's) or ``host``."""
    if "namespaces/pid" not in isolation:
        return "host"
    linux = container.get("linux_info") if isinstance(container, dict) else None
    shares = isinstance(linux, dict) and linux.get("share_pid_namespace") is True
    return "group" if shares else "new"


def plan_task(*, isolation: frozenset[str], info: dict[str, Any], group: bool,
              sandbox: Path, executor_dir: Path, provisioner: Path,
              image: images.Image | None, secret_dir: str) -> dict[str, Any]:
    """The ``fs`` entry of a task's spec (the holder's plan plus ``pid`` and ``inner``: the
    sandbox, working directory and output files as the task sees them). Raises
    ``volumes.VolumeError`` for a volume Mesos would refuse."""
    container = info.get("container") or {}
    sandbox_at = SANDBOX_DIRECTORY if image is not None else str(sandbox)
    mounts = volumes.plan(list(container.get("volumes") or []), isolation=isolation,
                          sandbox=str(sandbox), sandbox_at=sandbox_at,
                          parent_sandbox=str(executor_dir) if group else None)
    workdir = sandbox_at
    if image is not None and isinstance(image.config.get("WorkingDir"), str) and \
            image.config["WorkingDir"]:
        workdir = str(image.config["WorkingDir"])
    mode = pid_mode(isolation, container)
    if mode == "group" and not group:
        mode = "host"  # a top-level container sharing the agent's pid namespace (Mesos)
    # The host's root gets its upper layer on a tmpfs that exists only in the holder's
    # namespace, mounted on a directory every such view shares (``rootfs``): nothing of it
    # is on disk, so nothing per container is made there (``provisioner`` is
    # WORK_DIR/provisioner/containers/<container>/<task>).
    scratch = provisioner / "scratch" if image is not None else \
        provisioner.parents[2] / "host-view"
    return {
        "root": str(provisioner / "rootfs"),
        "scratch": str(scratch),
        "layers": list(image.layers) if image is not None else [],
        "sandbox": str(sandbox),
        "sandbox_at": sandbox_at,
        "workdir": workdir,
        "mounts": mounts.binds,
        "secrets": mounts.secrets,
        "secret_dir": secret_dir,
        "make_dirs": mounts.make_dirs,
        "etc": list(_ETC_FILES) if image is not None else [],
        "pid": mode,
        "provisioner": str(provisioner),
        "inner": {"cwd": workdir, "stdout": os.path.join(sandbox_at, "stdout"),
                  "stderr": os.path.join(sandbox_at, "stderr")},
    }
