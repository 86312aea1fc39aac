"""Pod and container fields beyond volumes: refused before launch, or mapped onto the user and
the capabilities of the Mesos task (pure).

Why: a container that asked for ``runAsUser: 1000`` and runs as the agent's user (root on the
embedded kernel) is the silent failure a kubelet never allows. The refusals come from the
table (``podspec_table``: every row with ``accepts``), so the reasons users see and
docs/pod-spec.md are one text. Users and capabilities are mapped as Mesos can express them:

* ``runAsUser`` → ``CommandInfo.user``, a user *name* on the agent (Mesos looks the name up
  with getpwnam; a numeric string would be looked up as a name), taken from the setting
  ``scheduler.run_as_users`` (uid → name); 0 or absent sends no user (the framework's); an
  unmapped uid is refused. ``runAsNonRoot`` is checked as the kubelet does.
* ``capabilities`` → ``LinuxInfo.effective_capabilities`` and ``bounding_capabilities``:
  Docker's default set, less ``drop`` (``ALL``: everything), plus ``add``; only with
  ``scheduler.agent_capabilities`` (the agents run ``linux/capabilities``: without it Mesos
  ignores the field silently), else refused.

Probes are checked against what ``launch`` sends (Mesos ``CheckInfo`` / ``HealthCheck``): a
probe's own ``terminationGracePeriodSeconds`` must be the pod's (the executor kills a task that
fails its health check with the task's ``kill_policy``, which is the pod's), and a
``startupProbe`` becomes the liveness health check's grace period, so it needs a
``livenessProbe`` with the same handler and timeout (Mesos runs one health check per task).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from k8sbridge.lifecycle import termination
from k8sbridge.scheduler import podenv, podspec_table

__all__ = ["DOCKER_DEFAULT_CAPABILITIES", "MESOS_CAPABILITIES", "STDIN_WITHOUT_TTY", "check_pod",
           "container_security", "parse_run_as_users"]

Json = dict[str, Any]

# Docker's (and containerd's) default capability set, as Mesos names them (no CAP_ prefix).
DOCKER_DEFAULT_CAPABILITIES = (
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
)
# Mesos' CapabilityInfo.Capability (mesos.proto), all but UNKNOWN.
MESOS_CAPABILITIES = frozenset({
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE",
})
RUN_AS_USERS = "scheduler.run_as_users"
# Mesos starts a task's I/O switchboard (its only way to a task's stdin) only for a TTY
STDIN_WITHOUT_TTY = ("without tty is not supported: Mesos gives a task a stdin only through "
                     "its I/O switchboard, which it starts for a task only with a TTY "
                     "(set tty: true)")
AGENT_CAPABILITIES = "scheduler.agent_capabilities"


def parse_run_as_users(items: Sequence[str]) -> dict[int, str]:
    """``("1000=alice", "65534=nobody")`` → ``{1000: "alice", 65534: "nobody"}``;
    ``ValueError`` naming the bad item."""
    out: dict[int, str] = {}
    for item in items:
        uid, sep, name = item.partition("=")
        if not sep or not uid.strip().isdigit() or not name.strip():
            raise ValueError(f"{item!r} is not uid=name")
        out[int(uid)] = name.strip()
    return out


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            yield f"spec.{field}{{{container.get('name')}}}", container


def _values(value: Any, parts: Sequence[str]) -> Iterator[Any]:
    """The values at ``parts`` under ``value``, through lists (absent: None)."""
    if isinstance(value, list):
        for item in value:
            yield from _values(item, parts)
        return
    if not parts:
        yield value
        return
    if isinstance(value, Mapping):
        yield from _values(value.get(parts[0]), parts[1:])
    elif value is None:
        yield None


# the table's refusing rows as (section, path under it, its parts, accepted values, text),
# split once instead of per pod and row
_CHECKS = tuple(
    (section, rest, tuple(rest.split(".")), row.accepts, row.text)
    for row in podspec_table.ROWS if row.accepts is not None
    for section, _, rest in [row.path.partition(".")]
    if section in ("spec", "container", "volume")
)


def _check_table(pod: Mapping[str, Any]) -> None:
    spec = pod.get("spec") or {}
    containers = list(_containers(spec))
    volumes = [(f'spec.volumes "{v.get("name")}"', v) for v in spec.get("volumes") or []]
    for section, rest, parts, accepts, text in _CHECKS:
        targets = ([("spec", spec)] if section == "spec"
                   else containers if section == "container" else volumes)
        for where, obj in targets:
            for value in _values(obj, parts):
                if value not in accepts:
                    raise podenv.LaunchError(f"{where}.{rest} {text}")


def _capabilities(security: Mapping[str, Any], where: str,
                  agent_capabilities: bool) -> Json:
    caps = security.get("capabilities") or {}
    add = [str(c).upper().removeprefix("CAP_") for c in caps.get("add") or []]
    drop = [str(c).upper().removeprefix("CAP_") for c in caps.get("drop") or []]
    if not add and not drop:
        return {}
    if not agent_capabilities:
        raise podenv.LaunchError(
            f"{where}.capabilities is not supported: the agents are not known to run Mesos' "
            f"linux/capabilities isolator (setting {AGENT_CAPABILITIES}), and Mesos ignores "
            "capabilities without it")
    for name in add + drop:
        if name != "ALL" and name not in MESOS_CAPABILITIES:
            raise podenv.LaunchError(f"{where}.capabilities: {name!r} is not a capability "
                                     "Mesos knows")
    if "ALL" in add:
        raise podenv.LaunchError(f"{where}.capabilities.add ALL is not supported: it asks for "
                                 "a privileged container")
    chosen = set() if "ALL" in drop else set(DOCKER_DEFAULT_CAPABILITIES) - set(drop)
    chosen |= set(add)
    listed = {"capabilities": sorted(chosen)}
    return {"effective_capabilities": listed, "bounding_capabilities": dict(listed)}


def container_security(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    where: str = "",
    run_as_users: Mapping[int, str],
    agent_capabilities: bool,
) -> tuple[str | None, Json]:
    """The container's ``CommandInfo.user`` (None: the framework's) and ``LinuxInfo`` fields
    (capabilities); ``LaunchError`` naming the field when they cannot be given."""
    where = where or f"spec.containers{{{container.get('name')}}}"
    pod_security = (pod.get("spec") or {}).get("securityContext") or {}
    security = container.get("securityContext") or {}
    if security.get("runAsUser") is not None:
        uid, uid_at = security.get("runAsUser"), f"{where}.securityContext.runAsUser"
    else:
        uid, uid_at = pod_security.get("runAsUser"), "spec.securityContext.runAsUser"
    non_root = security.get("runAsNonRoot")
    if non_root is None:
        non_root = pod_security.get("runAsNonRoot")
    user: str | None = None
    if uid is not None and uid != 0:
        if isinstance(uid, bool) or not isinstance(uid, int) or uid < 0:
            raise podenv.LaunchError(f"{uid_at} {uid!r} is not a user id")
        user = run_as_users.get(uid)
        if user is None:
            raise podenv.LaunchError(
                f"{uid_at} {uid} has no user on the agents: Mesos runs tasks as a user name; "
                f"map the uid to one in the setting {RUN_AS_USERS} (uid=name)")
    if non_root:
        if uid == 0:
            raise podenv.LaunchError(f"{where}: container's runAsUser breaks non-root policy "
                                     "(runAsNonRoot with runAsUser 0)")
        if uid is None:
            raise podenv.LaunchError(
                f"{where}: runAsNonRoot needs a runAsUser: without one the container runs as "
                "the framework's user, which k8sbridge cannot check")
    linux = _capabilities(security, f"{where}.securityContext", agent_capabilities)
    return user, linux


_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
DEFAULT_GRACE_SECONDS = 30
STARTUP_ALONE = ("is not supported without a livenessProbe: k8sbridge gives a startupProbe as "
                 "the liveness health check's grace period (Mesos has no startup check)")
STARTUP_HANDLER = ("must use the livenessProbe's handler and timeoutSeconds: Mesos runs one "
                   "health check per task, and the startupProbe is its grace period")
PROBE_GRACE = ("cannot be honoured: it differs from the pod's terminationGracePeriodSeconds, "
               "and Mesos kills a task that fails its health check with the task's "
               "kill_policy, which is the pod's")
READINESS_GRACE = "must not be set for readiness probes (a failed readiness check kills nothing)"


def _check_probes(spec: Mapping[str, Any], where: str, container: Mapping[str, Any]) -> None:
    grace = spec.get("terminationGracePeriodSeconds")
    grace = DEFAULT_GRACE_SECONDS if grace is None else grace
    for name in ("livenessProbe", "startupProbe", "readinessProbe"):
        probe = container.get(name) or {}
        own = probe.get("terminationGracePeriodSeconds")
        if own is None:
            continue
        if name == "readinessProbe":
            raise podenv.LaunchError(f"{where}.{name}.terminationGracePeriodSeconds "
                                     f"{READINESS_GRACE}")
        if own != grace:
            raise podenv.LaunchError(f"{where}.{name}.terminationGracePeriodSeconds {own} "
                                     f"{PROBE_GRACE} ({grace})")
    startup = container.get("startupProbe")
    if not startup:
        return
    liveness = container.get("livenessProbe")
    if not liveness:
        raise podenv.LaunchError(f"{where}.startupProbe {STARTUP_ALONE}")
    same = all(startup.get(k) == liveness.get(k) for k in _HANDLERS) and (
        startup.get("timeoutSeconds", 1) == liveness.get("timeoutSeconds", 1))
    if not same:
        raise podenv.LaunchError(f"{where}.startupProbe {STARTUP_HANDLER}")


def _check_termination_path(spec: Mapping[str, Any]) -> None:
    """A terminationMessagePath the bridge cannot read (not the default, not under an
    emptyDir the container mounts: ``lifecycle.termination``) would be silently unread."""
    for where, container in _containers(spec):
        why = termination.refusal(container, spec.get("volumes") or [])
        if why is not None:
            path = container.get("terminationMessagePath")
            raise podenv.LaunchError(f"{where}.terminationMessagePath {path!r} {why}")


def check_pod(pod: Mapping[str, Any], *, run_as_users: Mapping[int, str] | None = None,
              agent_capabilities: bool = False) -> None:
    """Refuse (``LaunchError``) a pod with a field the table refuses, a probe Mesos cannot
    run as written, or a user or capability its containers cannot be given."""
    _check_table(pod)
    spec = pod.get("spec") or {}
    _check_termination_path(spec)
    for where, container in _containers(spec):
        _check_probes(spec, where, container)
        if container.get("stdin") and not container.get("tty"):
            raise podenv.LaunchError(f"{where}.stdin {STDIN_WITHOUT_TTY}")
        container_security(pod, container, where=where, run_as_users=run_as_users or {},
                           agent_capabilities=agent_capabilities)
