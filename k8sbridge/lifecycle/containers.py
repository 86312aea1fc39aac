"""One container's life as the kubelet knows it: a fold of Mesos task updates.

Why here, in the lifecycle, and pure: Mesos delivers updates at least once and not always in
order (retries, reconciliation), and what a container *is* (waiting, running, terminated, how
often restarted) must not depend on that. ``ContainerRuntime`` is immutable; updates are folded
in with ``apply_status``:

* ``start_attempt`` records the Mesos task that runs the container now (a restart launches a
  new task; the previous task's termination becomes ``last_terminated``, ``restart_count`` + 1
  — only a real restart counts);
* ``apply_status`` folds one ``TaskStatusView`` in. Updates of another task (an older attempt)
  are ignored; within a task an update never moves the container backwards (STAGING < STARTING
  < RUNNING < KILLING < terminal; same-rank updates only when not older), so duplicates are
  no-ops and a late RUNNING after FAILED changes nothing;
* ``container_events`` names the kubelet events one transition deserves (Created,
  Started, Killing, BackOff, Unhealthy, Failed).

Rendering (``kubelet/statusmap.py``) and restart policy (``lifecycle/restarts.py``) read these
records; neither changes them.
"""

from __future__ import annotations

import dataclasses
import re
import signal
from typing import Any, Literal

from k8sbridge.lifecycle import readiness
from k8sbridge.model import ids, tasks

__all__ = [
    "ContainerRuntime",
    "PodEvent",
    "Terminated",
    "apply_status",
    "config_error",
    "container_events",
    "container_id",
    "start_attempt",
]

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


def container_id(task_id: str) -> str:
    return f"mesos://{task_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class Terminated:
    exit_code: int
    reason: str  # Completed | Error | OOMKilled | StartError | ContainerStatusUnknown
    finished_at: float
    started_at: float | None = None
    message: str = ""
    signal: int | None = None
    container_id: str = ""


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
    check_passed: bool | None = None  # readiness as shown (thresholds applied: readiness.py)
    check_result: bool | None = None  # the latest Mesos check result (a failure, a pass)
    check_due: float | None = None  # when check_result takes effect (readiness thresholds)
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
        check_result=None,
        check_due=None,
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
    result = readiness.result_of(st.check.passed, st.reason) if st.check is not None else None
    if result is not None:
        # shown at once here; the machine holds it back for the probe's thresholds
        # (``machine._follow_check``, ``lifecycle.readiness``)
        changes["check_result"] = changes["check_passed"] = result
        changes["check_due"] = None
        if result:
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
        # No "Pulled": Mesos reports no image pull (nor digest), and an event for a pull
        # nobody saw would be invented.
        out += [
            PodEvent("Created", f"Created container: {after.name}", "Normal", path),
            PodEvent("Started", f"Started container {after.name}", "Normal", path),
        ]
    if after.task_state == "TASK_KILLING" and before.task_state != "TASK_KILLING":
        out.append(PodEvent("Killing", f"Stopping container {after.name}", "Normal", path))
    if after.healthy is False and before.healthy is not False:
        out.append(PodEvent("Unhealthy", "Liveness probe failed", "Warning", path))
    if after.check_result is False and before.check_result is not False:
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
