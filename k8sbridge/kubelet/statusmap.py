"""Task statuses → the PodStatus a kubelet would write, plus the kubelet's restart decisions.

Why pure: what ``kubectl get/describe`` shows is how users judge a kubelet, and controllers
(ReplicaSet, Job, endpoints) act on phase, conditions and ``ready``. Keeping the mapping a pure
fold lets it be tested table-driven from TaskStatus sequences, including the duplicate and
out-of-order deliveries Mesos guarantees to produce (at-least-once, retried, reconciliation).

The model, one ``ContainerRuntime`` per container of a pod:

* ``start_attempt`` records the Mesos task that runs the container now (a restart launches a
  new task; the previous attempt's termination becomes ``lastState``, ``restartCount`` + 1);
* ``apply_status`` folds one ``TaskStatusView`` in. Updates of another task (an older attempt)
  are ignored; within a task an update never moves the container backwards (STAGING < STARTING
  < RUNNING < KILLING < terminal; same-rank updates only when not older), so duplicates are
  no-ops and a late RUNNING after FAILED changes nothing;
* ``decide_restart`` applies restartPolicy with the kubelet's crash back-off: the first restart
  is immediate, then 10 s doubling to 5 min, reset once a container ran for 10 min;
  ``enter_back_off`` shows ``CrashLoopBackOff`` until the restart;
* ``pod_status`` renders ``status`` (phase, conditions, container statuses, IPs, startTime,
  qosClass), keeping a condition's ``lastTransitionTime`` while its status is unchanged;
* ``container_events`` names the kubelet events one transition deserves (Pulled, Created,
  Started, Killing, BackOff, Unhealthy, Failed).

Probe mapping (the launcher's side of the contract): a readinessProbe becomes a Mesos *check*
(``check_status`` results drive ``ready``); livenessProbe becomes a Mesos *health check* (the
executor kills the task after consecutive failures, which then restarts per restartPolicy); a
startupProbe is the health check's grace period: ``started`` turns true with the first healthy
result or passing check. Without probes a running container is started and ready.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import signal
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

from k8sbridge.model import ids, pods, tasks

__all__ = [
    "BACKOFF_RESET_AFTER",
    "INITIAL_BACKOFF",
    "MAX_BACKOFF",
    "ContainerRuntime",
    "PodEvent",
    "RestartDecision",
    "Terminated",
    "apply_status",
    "config_error",
    "container_events",
    "container_id",
    "decide_restart",
    "display_status",
    "enter_back_off",
    "normalize_image",
    "pod_status",
    "rfc3339",
    "start_attempt",
]

RawPod: TypeAlias = Mapping[str, Any]
RawPodStatus: TypeAlias = dict[str, Any]
Phase: TypeAlias = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]

INITIAL_BACKOFF = 10.0
MAX_BACKOFF = 300.0
BACKOFF_RESET_AFTER = 600.0

REASON_MEMORY = "REASON_CONTAINER_LIMITATION_MEMORY"
_START_FAILURES = frozenset(
    {"REASON_CONTAINER_LAUNCH_FAILED", "REASON_TASK_INVALID", "REASON_TASK_GROUP_INVALID"}
)
_VANISHED = frozenset({"TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"})
_EXITED = re.compile(r"exited with status (\d+)")
_SIGNALED = re.compile(r"terminated with signal ([A-Za-z][A-Za-z ]*[a-z])")
_SIGNALS: dict[str, int] = {}
for _sig in signal.Signals:
    _text = signal.strsignal(_sig)
    if _text:
        _SIGNALS.setdefault(_text.lower(), int(_sig))
    _SIGNALS.setdefault(_sig.name.lower(), int(_sig))
    _SIGNALS.setdefault(_sig.name.lower().removeprefix("sig"), int(_sig))


def rfc3339(timestamp: float) -> str:
    """Kubernetes' time format, whole seconds in UTC: ``2026-11-25T23:04:05Z``."""
    moment = datetime.datetime.fromtimestamp(int(timestamp), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def container_id(task_id: str) -> str:
    return f"mesos://{task_id}"


def normalize_image(image: str) -> str:
    """Docker's reference normalisation: ``nginx`` → ``docker.io/library/nginx:latest``."""
    if not image:
        return ""
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        ref = image
    elif sep:
        ref = f"docker.io/{image}"
    else:
        ref = f"docker.io/library/{image}"
    last = ref.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        ref += ":latest"
    return ref


# --------------------------------------------------------------------------------------------
# Per-container state


@dataclasses.dataclass(frozen=True, slots=True)
class Terminated:
    exit_code: int
    reason: str  # Completed | Error | OOMKilled | StartError | ContainerStatusUnknown
    finished_at: float
    started_at: float | None = None
    message: str = ""
    signal: int | None = None
    container_id: str = ""

    def to_raw(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"exitCode": self.exit_code, "reason": self.reason}
        if self.signal is not None:
            raw["signal"] = self.signal
        if self.message:
            raw["message"] = self.message
        raw["startedAt"] = rfc3339(self.started_at) if self.started_at is not None else None
        raw["finishedAt"] = rfc3339(self.finished_at)
        if self.container_id:
            raw["containerID"] = self.container_id
        return raw


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerRuntime:
    """What the kubelet knows about one container of a pod (immutable; fold updates in)."""

    name: str
    image: str = ""
    init: bool = False
    sidecar: bool = False  # an init container with restartPolicy Always
    task_id: ids.TaskId | None = None  # the attempt running now (None before the first)
    restart_count: int = 0
    task_state: str | None = None  # the last Mesos state applied for task_id
    timestamp: float = 0.0  # of the last applied update
    started_at: float | None = None
    terminated: Terminated | None = None
    last_terminated: Terminated | None = None
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    check_passed: bool | None = None  # readiness: the latest Mesos check result
    healthy: bool | None = None  # liveness: the latest Mesos health check result
    ever_passed: bool = False  # a healthy result or passing check was seen (startup)
    unreachable: bool = False
    back_off: float = 0.0  # the wait before the next crash restart (0: immediate)
    restart_at: float | None = None  # in CrashLoopBackOff until then
    ip_addresses: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        return self.terminated is None and self.started_at is not None

    @property
    def sandbox_ready(self) -> bool:
        return self.started_at is not None or self.task_state in (
            "TASK_STARTING",
            "TASK_RUNNING",
            "TASK_KILLING",
        )


def start_attempt(c: ContainerRuntime, *, task_id: str) -> ContainerRuntime:
    """A task was launched for the container: a first start or a restart."""
    if c.task_id == task_id:
        return c
    restarted = c.task_id is not None
    return dataclasses.replace(
        c,
        task_id=ids.TaskId(task_id),
        restart_count=c.restart_count + (1 if restarted else 0),
        task_state=None,
        timestamp=0.0,
        started_at=None,
        terminated=None,
        last_terminated=c.terminated if c.terminated is not None else c.last_terminated,
        waiting_reason="ContainerCreating",
        waiting_message="",
        check_passed=None,
        healthy=None,
        ever_passed=False,
        unreachable=False,
        restart_at=None,
    )


def config_error(c: ContainerRuntime, *, message: str) -> ContainerRuntime:
    """The container cannot be created as specified (e.g. a missing configMap key)."""
    return dataclasses.replace(
        c, waiting_reason="CreateContainerConfigError", waiting_message=message
    )


def _exit(st: tasks.TaskStatusView) -> tuple[int, int | None]:
    m = _EXITED.search(st.message)
    if m:
        return int(m.group(1)), None
    m = _SIGNALED.search(st.message)
    if m:
        signum = _SIGNALS.get(m.group(1).strip().lower())
        if signum is not None:
            return 128 + signum, signum
    if st.state == "TASK_KILLED":
        return 128 + signal.SIGKILL, int(signal.SIGKILL)
    return 1, None


def _terminated(c: ContainerRuntime, st: tasks.TaskStatusView) -> Terminated:
    def make(code: int, reason: str, *, message: str = "", signum: int | None = None) -> Terminated:
        return Terminated(
            exit_code=code,
            reason=reason,
            finished_at=st.timestamp,
            started_at=c.started_at,
            message=message,
            signal=signum,
            container_id=container_id(c.task_id) if c.task_id else "",
        )

    if st.state == "TASK_FINISHED":
        return make(0, "Completed")
    if st.reason == REASON_MEMORY:
        return make(137, "OOMKilled", message=st.message, signum=int(signal.SIGKILL))
    if st.state == "TASK_ERROR" or st.reason in _START_FAILURES:
        return make(128, "StartError", message=st.message)
    if st.state in _VANISHED:
        return make(
            137,
            "ContainerStatusUnknown",
            message=st.message
            or "The container could not be located when the pod was terminated",
        )
    code, signum = _exit(st)
    return make(code, "Completed" if code == 0 else "Error", message=st.message, signum=signum)


def _late_running(c: ContainerRuntime, st: tasks.TaskStatusView) -> ContainerRuntime:
    """A stale update changes nothing, except that a late RUNNING may tell when the container
    really started (the earliest RUNNING of the task), e.g. after KILLING, a terminal state or a
    later check update overtook it."""
    if st.state != "TASK_RUNNING" or (c.started_at is not None and c.started_at <= st.timestamp):
        return c
    terminated = c.terminated
    if terminated is not None and (
        terminated.started_at is None or terminated.started_at > st.timestamp
    ):
        terminated = dataclasses.replace(terminated, started_at=st.timestamp)
    return dataclasses.replace(c, started_at=st.timestamp, terminated=terminated)


def apply_status(c: ContainerRuntime, st: tasks.TaskStatusView) -> ContainerRuntime:
    """Fold one task status in; stale, duplicate and foreign updates leave ``c`` unchanged."""
    if c.task_id is None or st.task_id != c.task_id:
        return c
    old = c.task_state
    if old in tasks.TERMINAL_STATES:
        # terminal is final, except that a partition-era LOST may heal back to RUNNING
        if not (old == "TASK_LOST" and st.state == "TASK_RUNNING" and st.timestamp > c.timestamp):
            return _late_running(c, st)
        c = dataclasses.replace(c, terminated=None)
    else:
        new_rank = tasks.state_rank(st.state)
        old_rank = tasks.state_rank(old) if old is not None else -1
        if new_rank < old_rank or (new_rank == old_rank and st.timestamp < c.timestamp):
            return _late_running(c, st)
    changes: dict[str, Any] = {"task_state": st.state, "timestamp": max(st.timestamp, c.timestamp)}
    if st.ip_addresses:
        changes["ip_addresses"] = st.ip_addresses
    if st.healthy is not None:
        changes["healthy"] = st.healthy
        if st.healthy:
            changes["ever_passed"] = True
    if st.check is not None and st.check.passed is not None:
        changes["check_passed"] = st.check.passed
        if st.check.passed:
            changes["ever_passed"] = True
    state = st.state
    if state in ("TASK_STAGING", "TASK_STARTING"):
        changes["waiting_reason"] = "ContainerCreating"
    elif state == "TASK_RUNNING":
        changes["unreachable"] = False
        if c.started_at is None or st.timestamp < c.started_at:
            changes["started_at"] = st.timestamp
    elif state in ("TASK_UNREACHABLE", "TASK_UNKNOWN"):
        changes["unreachable"] = True
    elif state == "TASK_KILLING":
        pass
    else:  # terminal
        changes["unreachable"] = False
        changes["restart_at"] = None
        changes["terminated"] = _terminated(c, st)
    return dataclasses.replace(c, **changes)


# --------------------------------------------------------------------------------------------
# Restart policy


@dataclasses.dataclass(frozen=True, slots=True)
class RestartDecision:
    restart: bool
    delay: float = 0.0  # seconds from the termination to the restart
    next_back_off: float = 0.0  # remember as ContainerRuntime.back_off

    @property
    def at_once(self) -> bool:
        return self.restart and self.delay == 0


def decide_restart(
    c: ContainerRuntime, *, policy: pods.RestartPolicy
) -> RestartDecision:
    """Whether and when a terminated container starts again (the kubelet's rules).

    Init containers restart only on failure (unless the pod's policy is Never); sidecars
    always restart, whatever the pod's policy; app containers per restartPolicy. The crash
    back-off starts at 0 (the first restart is immediate), then 10 s, doubling to 5 min; it
    resets when the container had run for 10 min.
    """
    t = c.terminated
    if t is None:
        return RestartDecision(restart=False, next_back_off=c.back_off)
    succeeded = t.exit_code == 0
    done = policy == "Never" or (succeeded and (policy == "OnFailure" or c.init))
    if done and not c.sidecar:
        return RestartDecision(restart=False, next_back_off=c.back_off)
    back_off = c.back_off
    if t.started_at is not None and t.finished_at - t.started_at >= BACKOFF_RESET_AFTER:
        back_off = 0.0
    next_back_off = INITIAL_BACKOFF if back_off == 0 else min(back_off * 2, MAX_BACKOFF)
    return RestartDecision(restart=True, delay=back_off, next_back_off=next_back_off)


def enter_back_off(
    c: ContainerRuntime, *, decision: RestartDecision, pod_name: str, namespace: str, uid: str
) -> ContainerRuntime:
    """Record a restart decision; with a delay the container shows CrashLoopBackOff."""
    if not decision.restart or c.terminated is None:
        return c
    if decision.delay <= 0:
        return dataclasses.replace(c, back_off=decision.next_back_off)
    return dataclasses.replace(
        c,
        back_off=decision.next_back_off,
        restart_at=c.terminated.finished_at + decision.delay,
        waiting_reason="CrashLoopBackOff",
        waiting_message=(
            f"back-off {_duration(decision.delay)} restarting failed container={c.name} "
            f"pod={pod_name}_{namespace}({uid})"
        ),
    )


def _duration(seconds: float) -> str:
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


# --------------------------------------------------------------------------------------------
# Rendering


def _has_probe(raw_container: Mapping[str, Any], probe: str) -> bool:
    return isinstance(raw_container.get(probe), Mapping)


def _started(c: ContainerRuntime, raw: Mapping[str, Any]) -> bool:
    if not c.running:
        return False
    return not _has_probe(raw, "startupProbe") or c.ever_passed


def _ready(c: ContainerRuntime, raw: Mapping[str, Any]) -> bool:
    if not _started(c, raw) or c.unreachable or c.task_state == "TASK_KILLING":
        return False
    if _has_probe(raw, "readinessProbe"):
        return c.check_passed is True
    return True


def _container_status(
    c: ContainerRuntime, raw: Mapping[str, Any], *, initializing: bool
) -> dict[str, Any]:
    state: dict[str, Any]
    last: dict[str, Any] = {}
    if c.restart_at is not None and c.terminated is not None:
        state = {"waiting": {"reason": c.waiting_reason, "message": c.waiting_message}}
        last = {"terminated": c.terminated.to_raw()}
    elif c.terminated is not None:
        state = {"terminated": c.terminated.to_raw()}
        if c.last_terminated is not None:
            last = {"terminated": c.last_terminated.to_raw()}
    elif c.started_at is not None:
        state = {"running": {"startedAt": rfc3339(c.started_at)}}
        if c.last_terminated is not None:
            last = {"terminated": c.last_terminated.to_raw()}
    else:
        reason = c.waiting_reason
        if initializing and reason == "ContainerCreating":
            reason = "PodInitializing"
        waiting: dict[str, Any] = {"reason": reason}
        if c.waiting_message:
            waiting["message"] = c.waiting_message
        state = {"waiting": waiting}
        if c.last_terminated is not None:
            last = {"terminated": c.last_terminated.to_raw()}
    image = normalize_image(str(raw.get("image") or c.image))
    launched = c.started_at is not None or c.terminated is not None
    out: dict[str, Any] = {
        "name": c.name,
        "state": state,
        "lastState": last,
        "ready": _ready(c, raw),
        "restartCount": c.restart_count,
        "image": image,
        "imageID": image if launched else "",
        "started": _started(c, raw),
    }
    if launched and c.task_id:
        out["containerID"] = container_id(c.task_id)
    return out


def _init_done(c: ContainerRuntime | None, raw: Mapping[str, Any]) -> bool:
    if c is None:
        return False
    if raw.get("restartPolicy") == "Always":  # a sidecar: initialized once started
        return _started(c, raw)
    return c.terminated is not None and c.terminated.exit_code == 0 and c.restart_at is None


def _phase(
    spec: Mapping[str, Any],
    app: Sequence[tuple[Mapping[str, Any], ContainerRuntime | None]],
    init_pending: bool,
    init_failed: bool,
    deleting: bool,
) -> Phase:
    policy = spec.get("restartPolicy") or "Always"
    if init_failed:
        return "Failed"
    if init_pending:
        return "Pending"
    running = waiting = stopped = succeeded = unknown = 0
    for _, c in app:
        if c is None:
            unknown += 1
        elif c.restart_at is not None:
            stopped += 1
            if c.terminated is not None and c.terminated.exit_code == 0:
                succeeded += 1
        elif c.terminated is not None:
            stopped += 1
            if c.terminated.exit_code == 0:
                succeeded += 1
        elif c.started_at is not None:
            running += 1
        elif c.last_terminated is not None:
            stopped += 1
        else:
            waiting += 1
    if waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if deleting:  # stopped for good: the kubelet reports a terminal phase
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(
    ctype: str,
    ok: bool,
    *,
    now: float,
    previous: Mapping[str, Mapping[str, Any]],
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = previous.get(ctype)
    since = (
        prev.get("lastTransitionTime")
        if prev is not None and prev.get("status") == status and prev.get("lastTransitionTime")
        else rfc3339(now)
    )
    cond: dict[str, Any] = {
        "type": ctype,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": since,
    }
    if not ok and reason:
        cond["reason"] = reason
    if not ok and message:
        cond["message"] = message
    return cond


def _qos(spec: Mapping[str, Any], previous: Mapping[str, Any]) -> str:
    try:
        return pods.qos_class(
            [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]
        )
    except (pods.PodSpecError, AttributeError, TypeError):
        return str(previous.get("qosClass") or "BestEffort")


def pod_status(
    *,
    pod: RawPod,
    containers: Mapping[str, ContainerRuntime],
    now: float,
    host_ip: str | None = None,
    start_time: float | None = None,
    pod_ips: Sequence[str] = (),
) -> RawPodStatus:
    """The full ``status`` for ``pod`` (raw JSON, as the API returns it) from its containers.

    ``containers`` maps container names (app and init) to their runtime; a container missing
    from it has not been considered by the kubelet yet. ``pod["status"]`` is the previous
    status: conditions keep their ``lastTransitionTime`` while unchanged, startTime is kept.
    """
    spec: Mapping[str, Any] = pod.get("spec") or {}
    previous: Mapping[str, Any] = pod.get("status") or {}
    prev_conditions = {
        str(c.get("type")): c for c in previous.get("conditions") or () if isinstance(c, Mapping)
    }
    raw_inits = [c for c in spec.get("initContainers") or () if isinstance(c, Mapping)]
    raw_apps = [c for c in spec.get("containers") or () if isinstance(c, Mapping)]
    inits = [(raw, containers.get(str(raw.get("name")))) for raw in raw_inits]
    apps = [(raw, containers.get(str(raw.get("name")))) for raw in raw_apps]
    policy = spec.get("restartPolicy") or "Always"

    incomplete = [str(raw.get("name")) for raw, c in inits if not _init_done(c, raw)]
    init_failed = policy == "Never" and any(
        c is not None
        and c.terminated is not None
        and c.terminated.exit_code != 0
        and raw.get("restartPolicy") != "Always"
        for raw, c in inits
    )
    initializing = bool(incomplete)
    deleting = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    phase = _phase(spec, apps, initializing, init_failed, deleting)
    if previous.get("phase") in ("Succeeded", "Failed"):
        phase = previous["phase"]  # terminal phases are final (the API server enforces it)
    terminal = phase in ("Succeeded", "Failed")

    unready = [str(raw.get("name")) for raw, c in apps if c is None or not _ready(c, raw)]
    all_ready = not unready and not terminal
    gates = [
        str(g.get("conditionType"))
        for g in spec.get("readinessGates") or ()
        if isinstance(g, Mapping) and g.get("conditionType")
    ]
    gates_open = all(
        (prev_conditions.get(g) or {}).get("status") == "True" for g in gates
    )
    sandbox = any(c is not None and c.sandbox_ready for _, c in (*inits, *apps))
    not_ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
    not_ready_message = "" if terminal else f"containers with unready status: [{' '.join(unready)}]"
    ready_reason = not_ready_reason
    ready_message = not_ready_message
    if all_ready and not gates_open:
        gate = next(g for g in gates if (prev_conditions.get(g) or {}).get("status") != "True")
        ready_reason = "ReadinessGatesNotReady"
        if gate in prev_conditions:
            found = prev_conditions[gate].get("status")
            ready_message = f'the status of pod readiness gate "{gate}" is not "True", but {found}'
        else:
            ready_message = (
                f'corresponding condition of pod readiness gate "{gate}" does not exist.'
            )

    conditions = [
        _condition(
            "PodReadyToStartContainers", sandbox, now=now, previous=prev_conditions
        ),
        _condition(
            "Initialized",
            not incomplete,
            now=now,
            previous=prev_conditions,
            reason="ContainersNotInitialized",
            message=f"containers with incomplete status: [{' '.join(incomplete)}]",
        ),
        _condition(
            "Ready",
            all_ready and gates_open,
            now=now,
            previous=prev_conditions,
            reason=ready_reason,
            message=ready_message,
        ),
        _condition(
            "ContainersReady",
            all_ready,
            now=now,
            previous=prev_conditions,
            reason=not_ready_reason,
            message=not_ready_message,
        ),
        _condition(
            "PodScheduled",
            bool(spec.get("nodeName")),
            now=now,
            previous=prev_conditions,
            reason="Unschedulable",
        ),
    ]
    # conditions someone else owns (readiness gates, DisruptionTarget) are kept as they are
    ours = {c["type"] for c in conditions}
    conditions += [dict(c) for t, c in prev_conditions.items() if t not in ours]

    status: RawPodStatus = {"phase": phase, "conditions": conditions}
    if spec.get("nodeName") and host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    ips = list(pod_ips) or [
        ip for _, c in (*apps, *inits) if c is not None for ip in c.ip_addresses
    ][:1] or ([host_ip] if host_ip and sandbox else [])
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in dict.fromkeys(ips)]
    if previous.get("startTime"):
        status["startTime"] = previous["startTime"]
    elif start_time is not None:
        status["startTime"] = rfc3339(start_time)
    if raw_inits:
        status["initContainerStatuses"] = [
            _container_status(c or _placeholder(raw, init=True), raw, initializing=initializing)
            for raw, c in inits
        ]
    status["containerStatuses"] = [
        _container_status(c or _placeholder(raw, init=False), raw, initializing=initializing)
        for raw, c in apps
    ]
    status["qosClass"] = _qos(spec, previous)
    return status


def _placeholder(raw: Mapping[str, Any], *, init: bool) -> ContainerRuntime:
    return ContainerRuntime(name=str(raw.get("name")), image=str(raw.get("image") or ""),
                            init=init)


# --------------------------------------------------------------------------------------------
# Events


@dataclasses.dataclass(frozen=True, slots=True)
class PodEvent:
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"
    field_path: str = ""  # involvedObject.fieldPath, e.g. spec.containers{app}


def container_events(
    before: ContainerRuntime, after: ContainerRuntime, *, pod_name: str, namespace: str, uid: str
) -> list[PodEvent]:
    """The events a kubelet records for the change ``before`` → ``after`` of one container
    (the same change twice gives nothing the second time: compare, then emit)."""
    path = f"spec.{'initContainers' if after.init else 'containers'}{{{after.name}}}"
    out: list[PodEvent] = []
    if after.waiting_reason == "CreateContainerConfigError" and (
        before.waiting_reason,
        before.waiting_message,
    ) != (after.waiting_reason, after.waiting_message):
        out.append(PodEvent("Failed", f"Error: {after.waiting_message}", "Warning", path))
    if after.started_at is not None and before.started_at is None:
        image = after.image or "image"
        out += [
            PodEvent("Pulled", f'Container image "{image}" already present on machine',
                     "Normal", path),
            PodEvent("Created", f"Created container: {after.name}", "Normal", path),
            PodEvent("Started", f"Started container {after.name}", "Normal", path),
        ]
    if after.task_state == "TASK_KILLING" and before.task_state != "TASK_KILLING":
        out.append(PodEvent("Killing", f"Stopping container {after.name}", "Normal", path))
    if after.healthy is False and before.healthy is not False:
        out.append(PodEvent("Unhealthy", "Liveness probe failed", "Warning", path))
    if after.check_passed is False and before.check_passed is not False:
        out.append(PodEvent("Unhealthy", "Readiness probe failed", "Warning", path))
    t = after.terminated
    fresh = before.terminated is None or before.task_id != after.task_id
    if t is not None and fresh and t.reason == "StartError":
        out.append(PodEvent("Failed", f"Error: {t.message or 'the container could not start'}",
                            "Warning", path))
    if t is not None and fresh and t.reason == "ContainerStatusUnknown":
        out.append(PodEvent("Failed", f"Error: {t.message or 'the container was lost'}",
                            "Warning", path))
    if after.restart_at is not None and after.restart_at != before.restart_at:
        out.append(PodEvent(
            "BackOff",
            f"Back-off restarting failed container {after.name} in pod "
            f"{pod_name}_{namespace}({uid})",
            "Warning",
            path,
        ))
    return out


# --------------------------------------------------------------------------------------------
# What kubectl shows


def display_status(pod: RawPod) -> str:
    """The STATUS column of ``kubectl get pods`` (kubectl's printPod, the common cases)."""
    meta: Mapping[str, Any] = pod.get("metadata") or {}
    spec: Mapping[str, Any] = pod.get("spec") or {}
    status: Mapping[str, Any] = pod.get("status") or {}
    reason = str(status.get("reason") or status.get("phase") or "")
    inits = list(status.get("initContainerStatuses") or ())
    total_inits = len(spec.get("initContainers") or ())
    initializing = False
    sidecars = {
        str(c.get("name")) for c in spec.get("initContainers") or ()
        if c.get("restartPolicy") == "Always"
    }
    for i, c in enumerate(inits):
        state = c.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if c.get("name") in sidecars and c.get("started"):
            continue
        if term:
            if term.get("reason"):
                reason = "Init:" + str(term["reason"])
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode')}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + str(waiting["reason"])
        else:
            reason = f"Init:{i}/{total_inits}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for c in reversed(list(status.get("containerStatuses") or ())):
            state = c.get("state") or {}
            waiting = state.get("waiting")
            term = state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif term and term.get("reason"):
                reason = str(term["reason"])
            elif term:
                reason = (
                    f"Signal:{term['signal']}" if term.get("signal")
                    else f"ExitCode:{term.get('exitCode')}"
                )
            elif state.get("running") and c.get("ready"):
                has_running = True
        if reason == "Completed" and has_running:
            ready = any(
                cond.get("type") == "Ready" and cond.get("status") == "True"
                for cond in status.get("conditions") or ()
            )
            reason = "Running" if ready else "NotReady"
    if meta.get("deletionTimestamp"):
        reason = "Terminating"
    return reason
