"""Turn one placed pod into one Mesos LAUNCH_GROUP operation (DEFAULT executor, one task each).

Why a separate module: the mapping from a Kubernetes container to a Mesos TaskInfo is where
predecessors silently lost behaviour (string-built shells, dropped env sources, no kill policy).
Keeping it pure (raw pod + placement's assignment in, wire JSON out) makes each rule testable alone.

Rules:

* task ids are derived from the pod uid, the attempt and the bridge's generation
  (``<uid>.<attempt>.<generation>.<container>``, ``lifecycle.taskids``), so a bridge that
  crashes between ACCEPT and the next status update finds its own tasks again by id, a
  retried launch of the same attempt can never create a second copy next to the first, and
  no launch ever reuses the id of an earlier incarnation;
* ``command`` + ``args`` become an argv (``shell: false``); a ``workingDir`` is entered by a
  constant ``/bin/sh`` script that receives the directory and the argv as positional
  parameters: user strings are never spliced into a shell line; on a CNI network the pod's
  IP exists only once the executor runs: env entries of ``status.podIP``, later env values
  and ``command``/``args`` with a ``$(VAR)`` of them hold ``podnet.ip_marker`` until another
  constant script replaces it with ``MESOS_CONTAINER_IP`` (``POD_IP_SCRIPT``);
* env values are resolved before launch (``resolve_env``: ``value``, ``configMapKeyRef``,
  ``secretKeyRef``, ``fieldRef``, ``resourceFieldRef``); a missing required key is a
  ``LaunchError`` with reason ``CreateContainerConfigError`` (the pod shows it, nothing runs);
* the image becomes ``container.mesos.image`` (docker, the name as written) when
  ``image_mode`` is ``"mesos"``, or ``"local"`` and the local registry directory holds its
  archive (else none is sent and the pod gets a ``ImageNotInLocalRegistry`` warning); with
  ``"none"`` no image is sent; ``imagePullPolicy`` and ``imagePullSecrets`` become the
  image's ``cached`` and ``docker.config`` (``imagepull``); volumes (``volumes``), the pod's
  ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname`` (``podfiles``) and
  ``shareProcessNamespace`` (``linux_info.share_pid_namespace``) go in the same
  ``ContainerInfo``;
* resources are rendered from placement's ``plan.Assignment`` as it carved them (executor
  share, each container's scalars and host ports, reservations and allocation info kept):
  the plan is the commit, nothing is carved twice; the loop checks at commit that the offers
  it still holds contain what is rendered (else the pod stays pending with ``COMMIT_*``);
* ``cpus``/``mem`` limits go to ``TaskInfo.limits`` as the connected master accepts them
  (``limits``: Mesos >= 1.10, ``share_cgroups: false`` on every task of the group; older
  masters get none and the pod a ``limits.Notice``);
* labels carry the pod's namespace, name and uid; the kill policy's grace period is the pod's
  ``terminationGracePeriodSeconds``;
* the executor's ``ContainerInfo`` names the pod's CNI network (``podnet``), so the group
  gets an IP of its own.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from k8sbridge import grpc_probe
from k8sbridge.lifecycle import taskids
from k8sbridge.lifecycle.launches import PodSandbox
from k8sbridge.model import pods as model_pods
from k8sbridge.model.resources import Resources
from k8sbridge.scheduler import (
    imagepull,
    limits,
    plan,
    podenv,
    podfields,
    podfiles,
    podnet,
    podsandbox,
    volumes,
)

__all__ = [
    "COMMIT_OFFER_GONE",
    "COMMIT_OFFER_SHORT",
    "COMMIT_STALE",
    "LABEL_NAME",
    "LABEL_NAMESPACE",
    "LABEL_UID",
    "REASON_STALE",
    "LaunchError",
    "LaunchGroup",
    "executor_id_for",
    "parse_task_id",
    "probes",
    "render_launch_group",
    "resolve_env",
    "task_id_for",
]

LABEL_NAMESPACE = "k8sbridge.io/namespace"
LABEL_NAME = "k8sbridge.io/name"
LABEL_UID = "k8sbridge.io/uid"
LABEL_CONTAINER = "k8sbridge.io/container"

# A pod placed in a pass whose launch cannot be sent stays pending; these constant messages
# reach ``kubectl describe`` (PodScheduled=False and a FailedScheduling event).
COMMIT_OFFER_GONE = (
    "the offer it was placed on was rescinded before launch; waiting for the next offers"
)
COMMIT_OFFER_SHORT = (
    "the offers it was placed on no longer hold its resources at launch; waiting for the next "
    "offers"
)
COMMIT_STALE = "the pod changed between placement and launch; placing it again"
REASON_STALE = "StalePlacement"
REASON_IMAGE_NOT_LOCAL = "ImageNotInLocalRegistry"
# The pod IP on a CNI network is set at start by a /bin/sh script; what it cannot do is
# refused (CreateContainerConfigError), never left holding another address.
POD_IP_NOT_A_SHELL_NAME = (
    "container {container}: env {name} holds the pod IP, which on the pod network is known "
    "only when the container starts and is set by /bin/sh, which cannot set a variable named "
    "{name!r}: use a name of letters, digits and '_'"
)
POD_IP_NO_COMMAND = (
    "container {container}: its env holds the pod IP, which on the pod network is known only "
    "when the container starts and is set by a /bin/sh wrapper around the command: give the "
    "container a command (an image's entrypoint cannot be wrapped)"
)

WORKDIR_SCRIPT = 'cd "$1" || exit 126; shift; exec "$@"'
# On a CNI network the pod's IP is known only once its executor runs, which gives every task
# MESOS_CONTAINER_IP (Mesos' default executor). Until then it is ``podnet.ip_marker``: in
# the env entries named in K8SBRIDGE_POD_IP_ENV (status.podIP and values with a $(VAR) of
# it) and in the argv; this constant script replaces the marker by the IP, then execs the
# argv (user strings are its positional parameters and variables, never its text; the names
# are checked to be shell names, the only thing it evaluates).
POD_IP_VARS = "K8SBRIDGE_POD_IP_ENV"
POD_IP_MARK = "K8SBRIDGE_POD_IP_MARK"
POD_IP_SCRIPT = (
    'ip=$MESOS_CONTAINER_IP; m=$K8SBRIDGE_POD_IP_MARK; if [ -z "$ip" ]; then '
    'echo "k8sbridge: MESOS_CONTAINER_IP is not set: the pod IP is unknown" >&2; exit 127; '
    'fi; sub() { r=; s=$1; while :; do case $s in *"$m"*) r=$r${s%%"$m"*}$ip; '
    's=${s#*"$m"};; *) break;; esac; done; r=$r$s; }; for n in $K8SBRIDGE_POD_IP_ENV; do '
    'eval "sub \\"\\$$n\\""; export "$n=$r"; done; '
    'unset K8SBRIDGE_POD_IP_ENV K8SBRIDGE_POD_IP_MARK; i=$#; while [ "$i" -gt 0 ]; do '
    'sub "$1"; shift; set -- "$@" "$r"; i=$((i-1)); done; exec "$@"')
_SHELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# A grpc probe runs this program (this interpreter, the module's file; -P: no import path).
# It must exist at the same path where the check runs: true on the embedded kernel (commands run
# on the host); with container images on Apache Mesos it must be present in the image.
GRPC_PROBE_ARGV: tuple[str, ...] = (sys.executable, "-P", str(grpc_probe.__file__))
# The Mesos check's timeout adds this to the probe's timeoutSeconds: the program first has to
# start an interpreter and import grpcio (the RPC itself is bounded by timeoutSeconds).
GRPC_PROBE_STARTUP_SECONDS = 5.0

RawPod = Mapping[str, Any]
Json = dict[str, Any]


LaunchError = podenv.LaunchError
resolve_env = podenv.resolve_env


def task_id_for(*, uid: str, attempt: int, generation: int, container: str) -> str:
    return taskids.task_id(uid=uid, attempt=attempt, generation=generation, container=container)


def executor_id_for(
    *, uid: str, attempt: int, generation: int, init: str | None = None
) -> str:
    """One executor per attempt; init containers run first, each in its own executor."""
    return taskids.executor_id(uid=uid, attempt=attempt, generation=generation, init=init)


def parse_task_id(task_id: str) -> tuple[str, int, str] | None:
    """``(uid, attempt, container)`` of one of our task ids (either form), else None."""
    name = taskids.parse(task_id)
    return None if name is None else (name.uid, name.attempt, name.container)


@dataclasses.dataclass(frozen=True, slots=True)
class LaunchGroup:
    executor_id: str
    task_ids: tuple[str, ...]  # in container order
    operation: Json  # Offer.Operation {"type": "LAUNCH_GROUP", "launch_group": {...}}
    used: Resources  # everything the operation consumes (executor + tasks)
    notices: tuple[limits.Notice, ...] = ()  # for the pod's events (limits not enforced)
    sandbox: PodSandbox | None = None  # the pod's sandbox this launch makes (``podsandbox``)
    sandbox_operation: Json | None = None  # its LAUNCH_GROUP, to go before ``operation``


# --------------------------------------------------------------------------------------------
# Probes → Mesos checks and health checks
#
# readinessProbe → ``TaskInfo.check`` (its results arrive as ``check_status`` and drive the
# container's ``ready``); livenessProbe → ``TaskInfo.health_check`` (the executor kills the task
# after ``failureThreshold`` consecutive failures, then restartPolicy applies); a startupProbe
# becomes the health check's grace period (failures during ``failureThreshold × periodSeconds``
# do not count). A grpc probe (Mesos has no gRPC check) becomes a COMMAND running
# ``grpc_probe.py --address 127.0.0.1:<port> --service <service> --timeout <timeoutSeconds>``
# (argv, no shell), which calls grpc.health.v1.Health/Check and exits 0 only on SERVING.


def _probe_port(value: Any, container: Mapping[str, Any]) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    for port in container.get("ports") or []:
        if port.get("name") == value:
            return int(port.get("hostPort") or port.get("containerPort"))
    raise LaunchError(f"probe port {value!r} names no container port")


def _probe_action(probe: Mapping[str, Any], container: Mapping[str, Any]) -> Json | None:
    if "exec" in probe:
        argv = [str(a) for a in (probe["exec"] or {}).get("command") or []]
        if not argv:
            raise LaunchError("exec probe without a command")
        return {"type": "COMMAND", "command": {"shell": False, "value": argv[0],
                                               "arguments": argv}}
    if "httpGet" in probe:
        get = probe["httpGet"] or {}
        return {"type": "HTTP", "http": {"port": _probe_port(get.get("port"), container),
                                         "path": str(get.get("path") or "/"),
                                         "scheme": str(get.get("scheme") or "HTTP").lower()}}
    if "tcpSocket" in probe:
        return {"type": "TCP",
                "tcp": {"port": _probe_port((probe["tcpSocket"] or {}).get("port"), container)}}
    if "grpc" in probe:
        grpc = probe["grpc"] or {}
        port = grpc.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise LaunchError(f"grpc probe port must be a number in 1..65535, not {port!r}")
        service = grpc.get("service") or ""
        if not isinstance(service, str):
            raise LaunchError(f"grpc probe service must be a string, not {service!r}")
        timeout = _probe_seconds(probe, "timeoutSeconds", 1)
        argv = [*GRPC_PROBE_ARGV, "--address", f"127.0.0.1:{port}", "--service", service,
                "--timeout", f"{max(timeout, 1.0):g}"]
        return {"type": "COMMAND", "command": {"shell": False, "value": argv[0],
                                               "arguments": argv}}
    return None  # no handler: nothing to check (the API server rejects such probes)


def _probe_seconds(probe: Mapping[str, Any], name: str, default: float) -> float:
    value = probe.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise LaunchError(f"probe {name} must be a non-negative number, not {value!r}")
    return float(value)


def _probe_timeout(probe: Mapping[str, Any]) -> float:
    timeout = _probe_seconds(probe, "timeoutSeconds", 1)
    if "grpc" in probe and not any(k in probe for k in ("exec", "httpGet", "tcpSocket")):
        timeout = max(timeout, 1.0) + GRPC_PROBE_STARTUP_SECONDS
    return timeout


def probes(container: Mapping[str, Any]) -> Json:
    """``check`` / ``health_check`` TaskInfo fields for the container's probes."""
    out: Json = {}
    readiness = container.get("readinessProbe")
    if readiness:
        action = _probe_action(readiness, container)
        if action is not None:
            check: Json = {
                "type": action["type"],
                "delay_seconds": float(readiness.get("initialDelaySeconds", 0)),
                "interval_seconds": float(readiness.get("periodSeconds", 10)),
                "timeout_seconds": _probe_timeout(readiness),
            }
            if action["type"] == "COMMAND":
                check["command"] = {"command": action["command"]}
            elif action["type"] == "HTTP":
                check["http"] = {"port": action["http"]["port"], "path": action["http"]["path"]}
            else:
                check["tcp"] = action["tcp"]
            out["check"] = check
    liveness = container.get("livenessProbe")
    if liveness:
        action = _probe_action(liveness, container)
        if action is not None:
            startup = container.get("startupProbe") or {}
            grace = float(liveness.get("initialDelaySeconds", 0))
            if startup:
                grace += float(startup.get("initialDelaySeconds", 0)) + float(
                    startup.get("failureThreshold", 3)) * float(startup.get("periodSeconds", 10))
            health: Json = {
                **action,
                "delay_seconds": float(liveness.get("initialDelaySeconds", 0)),
                "interval_seconds": float(liveness.get("periodSeconds", 10)),
                "timeout_seconds": _probe_timeout(liveness),
                "consecutive_failures": int(liveness.get("failureThreshold", 3)),
                "grace_period_seconds": grace,
            }
            out["health_check"] = health
    return out


# --------------------------------------------------------------------------------------------
# The operation


def _labels(pairs: Mapping[str, str]) -> Json:
    return {"labels": [{"key": k, "value": v} for k, v in pairs.items()]}


def _argv(container: Mapping[str, Any], env: Sequence[tuple[str, str]]) -> list[str]:
    env_map = dict(env)
    command = [podenv.expand(str(a), env_map) for a in container.get("command") or []]
    args = [podenv.expand(str(a), env_map) for a in container.get("args") or []]
    return command + args


def _command_info(
    container: Mapping[str, Any], env: Sequence[tuple[str, str]], *, image_mode: str,
    ip_marker: str = "",
) -> Json:
    """The task's ``CommandInfo``; ``ip_marker`` (on a CNI network, ``podnet.ip_marker``)
    stands for the pod IP in ``env`` and the argv, replaced at start (``POD_IP_SCRIPT``)."""
    argv = _argv(container, env)
    name = str(container.get("name", ""))
    if not argv and image_mode != "mesos":
        raise LaunchError(
            f"container {name!r} has no command: image entrypoints need an image-capable "
            "agent (scheduler.image_mode=mesos)",
            reason="CreateContainerError",
        )
    working_dir = container.get("workingDir")
    if working_dir and argv:
        argv = ["/bin/sh", "-c", WORKDIR_SCRIPT, "sh", str(working_dir), *argv]
    variables = [{"name": k, "value": v, "type": "VALUE"} for k, v in env]
    ip_vars = [k for k, v in env if ip_marker and ip_marker in v]
    if ip_vars or (ip_marker and any(ip_marker in a for a in argv)):
        for var in ip_vars:
            if not _SHELL_NAME.match(var):
                raise LaunchError(POD_IP_NOT_A_SHELL_NAME.format(container=name, name=var))
        if not argv:
            raise LaunchError(POD_IP_NO_COMMAND.format(container=name))
        argv = ["/bin/sh", "-c", POD_IP_SCRIPT, "sh", *argv]
        variables += [{"name": POD_IP_VARS, "value": " ".join(ip_vars), "type": "VALUE"},
                      {"name": POD_IP_MARK, "value": ip_marker, "type": "VALUE"}]
    info: Json = {"shell": False, "environment": {"variables": variables}}
    if argv:
        info["value"] = argv[0]
        info["arguments"] = argv
    return info


def local_image_name(image: str) -> str | None:
    """The archive name (without ``.tar``) a local docker registry keeps ``image`` under
    (Mesos' local puller: ``repository:tag``, ``latest`` when no tag); None for a digest."""
    if "@" in image or not image:
        return None
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last else f"{image}:latest"


def _image_for(image: str, *, image_mode: str, local_images: frozenset[str],
               container: str) -> tuple[str, limits.Notice | None]:
    """The image to send (``""``: none) and what the pod is told when it is not sent."""
    if image_mode == "mesos" or not image:
        return image, None
    if image_mode == "local":
        if local_image_name(image) in local_images:
            return image, None
        return "", limits.Notice(
            reason=REASON_IMAGE_NOT_LOCAL,
            message=f'container {container}: image "{image}" is not in the local image '
                    "directory: it runs without it, on a copy-on-write view of the agent's "
                    "root file system",
        )
    return "", None


def _container_info(
    *,
    pod: RawPod,
    container: Mapping[str, Any],
    image: str,
    pull_config: Json | None,
    sources: volumes.Sources,
    files: podfiles.PodFiles,
    node_name: str,
    host_ip: str,
    share_cgroups_false: bool,
    linux: Json,
) -> Json | None:
    """The task's ``ContainerInfo`` (MESOS): its image, its volumes and pod files, its Linux
    options; None when it needs none (a plain command on the agent)."""
    info: Json = {"type": "MESOS"}
    if image:
        docker: Json = {"name": image}
        if pull_config is not None:
            docker["config"] = pull_config
        info["mesos"] = {"image": {"type": "DOCKER", "docker": docker,
                                   "cached": imagepull.cached(container)}}
    mounts = volumes.container_volumes(pod=pod, container=container, sources=sources,
                                       node_name=node_name, host_ip=host_ip)
    mounts += podfiles.container_volumes(files, container)
    if mounts:
        info["volumes"] = mounts
    linux = dict(linux)
    if share_cgroups_false:  # every task of the group, or Mesos refuses it
        linux["share_cgroups"] = False
    if (pod.get("spec") or {}).get("shareProcessNamespace"):
        linux["share_pid_namespace"] = True
    if linux:
        info["linux_info"] = linux
    if container.get("tty"):  # a terminal: Mesos starts the container's I/O switchboard
        info["tty_info"] = {}
    return info if len(info) > 1 else None


def _allocated(resources: Resources, role: str | None) -> Resources:
    """The resources with the offer's allocation info (Mesos wants it on every operation of a
    MULTI_ROLE framework; the carve keeps what the offer carried, this fills it if absent)."""
    if role is None or all(r.allocation_role == role for r in resources.items):
        return resources
    return resources.allocated_to(role)


def render_launch_group(
    *,
    pod: RawPod,
    request: model_pods.PodRequest,
    assignment: plan.Assignment,
    framework_id: str,
    env: Mapping[str, Sequence[tuple[str, str]]],
    image_mode: str = "mesos",
    generation: int,
    attempt: int = 0,
    init_phase: int | None = None,
    master_version: tuple[int, int] | None = None,
    agent_version: tuple[int, int] | None = None,
    sources: volumes.Sources | None = None,
    local_images: frozenset[str] = frozenset(),
    allow_host_path: bool = False,
    run_as_users: Mapping[int, str] | None = None,
    agent_capabilities: bool = False,
    node_name: str = "",
    host_ip: str = "",
    network: podfiles.Network | None = None,
    pod_network: str = "",
    sandbox: PodSandbox | None = None,
    make_sandbox: bool = True,
) -> LaunchGroup:
    """Render the LAUNCH_GROUP of one ``assignment``: its executor share, each container's
    resources and host ports exactly as placement carved them (nothing is carved here).

    With ``init_phase`` = k the group runs only the pod's k-th init container (init
    containers run one at a time, each to completion, before the app containers' group).
    ``master_version`` / ``agent_version`` decide whether limits are sent (``limits``);
    ``generation`` is the bridge's persisted start counter (``lifecycle.taskids``).
    Raises ``LaunchError`` with reason ``REASON_STALE`` when the assignment is not one of
    this pod's (its containers differ): the pod is placed again. ``sources`` are the objects
    the pod's volumes read (``volume_sources.fetch``); a volume or field that cannot be
    honoured is a ``LaunchError`` (``volumes``, ``podfields``). ``network`` makes the pod's
    ``/etc`` files (``podfiles``; None: none are rendered, for tests of other rules).
    ``pod_network`` is the CNI network pods join (``podnet``: not hostNetwork pods nor pods
    with a hostPort; ``""``: none does). On the pod network the group joins ``sandbox``,
    the pod's live sandbox, when it is on the assignment's agent; else it makes one
    (``podsandbox``: one more task, returned as ``LaunchGroup.sandbox``).
    """
    uid = str(request.uid)
    spec = pod.get("spec") or {}
    volumes.check_pod(pod, allow_host_path=allow_host_path)
    podfields.check_pod(pod, run_as_users=run_as_users, agent_capabilities=agent_capabilities)
    sources = sources or volumes.Sources()
    for field in ("initContainers", "containers"):
        for raw in spec.get(field) or []:
            imagepull.check_policy(raw, image_mode=image_mode,
                                   where=f"spec.{field}{{{raw.get('name')}}}")
    joined = podnet.network_for(pod, request, setting=pod_network)
    files = podfiles.PodFiles()
    if network is not None:
        if joined is not None:  # its IP is the network's: the isolator writes the hosts file
            network = dataclasses.replace(network, own_network=True, pod_ips=())
        files = podfiles.render(pod, network=network)
    # read once, and only when an image is sent (its pull secrets matter then)
    pull: tuple[Json | None, tuple[limits.Notice, ...]] | None = None
    raw_containers = {
        str(c.get("name")): c
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    }
    init_name: str | None = None
    if init_phase is not None:
        init = request.init_containers[init_phase]
        init_name = init.name
        pairs = [(init, assignment.init_containers[init_phase])]
    else:
        pairs = list(zip(request.containers, assignment.containers, strict=False))
        if len(assignment.containers) != len(request.containers):
            pairs = []
    if not pairs or any(c.name != a.name for c, a in pairs):
        raise LaunchError(COMMIT_STALE, reason=REASON_STALE)
    role = assignment.allocation_role
    grace = request.termination_grace_period_seconds
    pod_labels = {
        LABEL_NAMESPACE: request.namespace,
        LABEL_NAME: request.name,
        LABEL_UID: uid,
    }
    exec_res = _allocated(assignment.executor, role)
    exec_id = executor_id_for(uid=uid, attempt=attempt, generation=generation, init=init_name)
    executor: Json = {
        "type": "DEFAULT",
        "executor_id": {"value": exec_id},
        "framework_id": {"value": framework_id},
        "name": f"pod {request.namespace}/{request.name}",
        "resources": exec_res.to_raw(),
        "labels": _labels(pod_labels),
        "shutdown_grace_period": {"nanoseconds": int((grace + 5) * 1e9)},
    }
    if joined is not None:
        executor["container"] = podnet.executor_container(
            network=joined, labels=pod_labels, hostname=files.hostname)
    task_res = [_allocated(a.resources, role) for _, a in pairs]
    group_limits = limits.render(
        tasks=[a for _, a in pairs],
        master_version=master_version,
        agent_version=agent_version,
    )
    used = exec_res
    image_notices: list[limits.Notice] = []
    tasks: list[Json] = []
    made, sandbox_operation = None, None  # a new sandbox, and its LAUNCH_GROUP
    agent = str(assignment.agent_id)
    if joined is not None and make_sandbox and podsandbox.joinable(sandbox, agent) is not None:
        assert sandbox is not None
        executor, exec_id, used = dict(sandbox.executor), sandbox.executor_id, Resources()
    elif joined is not None and make_sandbox:  # its sandbox task: a group of its own, first
        exec_id = executor_id_for(uid=uid, attempt=attempt, generation=generation)
        made, sandbox_operation = podsandbox.start(
            executor={**executor, "executor_id": {"value": exec_id}}, share=exec_res,
            uid=uid, attempt=attempt, generation=generation, init_phase=init_phase,
            agent_id=agent,
            labels=_labels({**pod_labels, LABEL_CONTAINER: taskids.SANDBOX})["labels"],
            share_cgroups_false=group_limits.share_cgroups_false)
        executor = made.executor
    task_ids: list[str] = []
    for (creq, _), res, task_limits in zip(pairs, task_res, group_limits.limits, strict=True):
        container = raw_containers.get(creq.name, {"name": creq.name})
        used = used + res
        tid = task_id_for(uid=uid, attempt=attempt, generation=generation,
                          container=creq.name)
        task_ids.append(tid)
        task: Json = {
            "name": f"{request.namespace}/{request.name}/{creq.name}",
            "task_id": {"value": tid},
            "agent_id": {"value": str(assignment.agent_id)},
            "resources": res.to_raw(),
            "command": _command_info(
                container, env.get(creq.name, ()), image_mode=image_mode,
                ip_marker=podnet.ip_marker(uid) if joined is not None else ""),
            "labels": _labels({**pod_labels, LABEL_CONTAINER: creq.name}),
            "kill_policy": {"grace_period": {"nanoseconds": int(grace * 1e9)}},
        }
        user, security_linux = podfields.container_security(
            pod, container, run_as_users=run_as_users or {},
            agent_capabilities=agent_capabilities)
        if user is not None:
            task["command"]["user"] = user
        task.update(probes(container))
        if task_limits:
            task["limits"] = task_limits
        image, notice = _image_for(creq.image, image_mode=image_mode,
                                   local_images=local_images, container=creq.name)
        if notice is not None:
            image_notices.append(notice)
        if image and pull is None:
            pull = imagepull.docker_config(pod, sources.secrets)
        info = _container_info(
            pod=pod, container=container, image=image,
            pull_config=pull[0] if pull is not None else None,
            sources=sources, files=files, node_name=node_name, host_ip=host_ip,
            share_cgroups_false=group_limits.share_cgroups_false, linux=security_linux,
        )
        if info is not None:
            task["container"] = info
        if creq.host_ports:
            task["discovery"] = {
                "visibility": "FRAMEWORK",
                "name": f"{request.namespace}.{request.name}",
                "ports": {
                    "ports": [
                        {
                            "number": p.host_port,
                            "name": p.name or f"port{p.container_port}",
                            "protocol": p.protocol.lower(),
                        }
                        for p in creq.host_ports
                    ]
                },
            }
        tasks.append(task)
    operation: Json = {
        "type": "LAUNCH_GROUP",
        "launch_group": {"executor": executor, "task_group": {"tasks": tasks}},
    }
    return LaunchGroup(
        executor_id=exec_id,
        task_ids=tuple(task_ids),
        operation=operation,
        used=used,
        # said once, not per restart
        notices=(*group_limits.notices, *image_notices, *files.notices,
                 *(pull[1] if pull is not None else ())) if attempt == 0 else (),
        sandbox=made,
        sandbox_operation=sandbox_operation,
    )
