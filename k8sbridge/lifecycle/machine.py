"""``apply(record, event, now) -> (record, intents)``: the one place a pod's life is decided.

Why a pure function: restarts, init-container retries, sidecars and what a kubelet shows were
decided in two places (the offer loop and the status writer), each with its own tables and
its own idea of an attempt. Here a pod is one ``PodRecord`` and every input is an ``Event``;
the answer is the next record and the ``Intent``s the status writer and the offer loop
execute. Tests feed events and read intents (``tests/lifecycle/``), as Nomad tests its
reconciler.

The rules (the kubelet's, Kubernetes ≥ 1.29):

* Attempts. The app containers run as one Mesos task group; an attempt is one such group, and
  an update of an older attempt changes nothing. Init containers run one at a time, each in a
  task of its own; each is tracked by its own task, so an init container's task never starts
  (or restarts) the app containers, and ``restartCount`` counts real restarts only.
* Restarts (``lifecycle/restarts.py``): when every app container has terminated, restartPolicy
  decides, with the crash back-off; a failed init container is retried with the same back-off
  unless the policy is Never (then the pod fails); a sidecar (an init container with
  ``restartPolicy: Always``) is restarted whenever it exits, until the app containers are done.
* Sidecars are stopped after the app containers, in reverse order, once those are done for
  good (no restart follows). A pod being deleted restarts nothing.
* ``activeDeadlineSeconds``: the machine asks to be woken at the deadline (``WakeAt``, answered
  with a ``Tick``); a pod still active then fails with ``DeadlineExceeded`` and its running
  containers are killed.
* Readiness probe thresholds (``lifecycle/readiness.py``): a check result that would change
  ``ready`` takes effect after the threshold's window; the machine asks to be woken then.
* A group whose network could not be set up (``lifecycle/sandbox.py``) waits in
  ContainerCreating with the CNI message and is launched again with back-off; not a restart.
* Termination messages (``lifecycle/termination.py``): a container that ended asks for its
  message to be read (``ReadTerminationMessage``), which comes back as a
  ``TerminationMessage`` for the task it ended in (``state`` or ``lastState``).
"""

from __future__ import annotations

import dataclasses

from k8sbridge.lifecycle import (
    away,
    containers,
    events,
    intents,
    readiness,
    restarts,
    sandbox,
    termination,
)
from k8sbridge.lifecycle.record import PodRecord, facts_of, fresh_runtime
from k8sbridge.model import ids

__all__ = ["DEADLINE_MESSAGE", "apply", "attempt_of"]

DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"

Answer = tuple[PodRecord, tuple[intents.Intent, ...]]

_NEVER_LAUNCHED = frozenset({"TASK_DROPPED", "TASK_LOST", "TASK_ERROR"})  # with INVALID_OFFERS


def attempt_of(task_id: str | None) -> int:
    """The attempt in one of our task ids (``lifecycle.taskids``); -1 otherwise."""
    parsed = away.parse_task_id(task_id) if task_id else None
    return parsed[1] if parsed is not None else -1


def apply(record: PodRecord, event: events.Event, now: float) -> Answer:
    """The next record and what must be done, for one event at ``now`` (epoch seconds)."""
    record, first = _deadline(record, now)  # past the deadline, nothing restarts
    before = record
    record, out = _dispatch(record, event, now)
    record, more = _deadline(record, now)  # the event may have started the clock or moved it
    record, ready = _readiness(before, record, now)
    return record, first + out + more + ready


def _dispatch(record: PodRecord, event: events.Event, now: float) -> Answer:
    if isinstance(event, events.PodChanged):
        return dataclasses.replace(record, facts=facts_of(event.pod)), ()
    if isinstance(event, events.TaskUpdated):
        return _task_updated(record, event, now)
    if isinstance(event, events.Scheduled):
        f = record.facts
        return dataclasses.replace(record, unschedulable=None, node_name=event.node_name), (
            intents.RecordEvent(
                "Normal", "Scheduled",
                f"Successfully assigned {f.namespace}/{f.name} to {event.node_name}",
            ),
        )
    if isinstance(event, events.Unschedulable):
        return dataclasses.replace(record, unschedulable=event.message), (
            intents.RecordEvent("Warning", "FailedScheduling", event.message),
            intents.WriteStatus(),
        )
    if isinstance(event, events.Tick):
        return record, ()  # what falls due is checked after every event (``_deadline``)
    if isinstance(event, events.TerminationMessage):
        return _termination_message(record, event)
    return _launch_refused(record, event, now)


def _readiness(before: PodRecord, record: PodRecord, now: float) -> Answer:
    """Readiness results whose window has passed take effect (and the status is written);
    a window that opened asks to be woken when it closes."""
    if all(rt.check_due is None for rt in record.runtimes.values()):
        return record, ()  # nothing pending (almost every pod, almost always)
    runtimes = dict(record.runtimes)
    wakes: list[intents.Intent] = []
    for name, rt in record.runtimes.items():
        r = readiness.settle(effective=rt.check_passed, due=rt.check_due,
                             result=rt.check_result, now=now)
        if (r.passed, r.due) != (rt.check_passed, rt.check_due):
            runtimes[name] = dataclasses.replace(rt, check_passed=r.passed, check_due=r.due)
            continue
        old = before.runtimes.get(name)
        if rt.check_due is not None and (old is None or old.check_due != rt.check_due):
            wakes.append(intents.WakeAt(rt.check_due))
    if runtimes == record.runtimes:
        return record, tuple(wakes)
    record = dataclasses.replace(record, runtimes=runtimes)
    return record, (*wakes, intents.WriteStatus())


def _follow_check(
    before: containers.ContainerRuntime, after: containers.ContainerRuntime,
    thresholds: readiness.Thresholds | None, now: float,
) -> containers.ContainerRuntime:
    """A readiness result that changed opens its threshold's window (or shows at once);
    ``apply_status`` showed it at once, this decides from what showed ``before``."""
    r = readiness.follow(
        effective=before.check_passed, due=before.check_due, result=after.check_result,
        changed=after.check_result != before.check_result, now=now, thresholds=thresholds,
    )
    if (r.passed, r.due) == (after.check_passed, after.check_due):
        return after
    return dataclasses.replace(after, check_passed=r.passed, check_due=r.due)


_READ_REASONS = frozenset({"Completed", "Error", "OOMKilled"})  # the container really ran


def _message(
    record: PodRecord, before: containers.ContainerRuntime,
    after: containers.ContainerRuntime, event: events.TaskUpdated,
) -> tuple[containers.ContainerRuntime, tuple[intents.Intent, ...]]:
    """A container that has just ended: the message its pod's status already shows for that
    task (written before a bridge restart), else ask for it to be read (once per task)."""
    t = after.terminated
    source = record.facts.message_source(after.name)
    if (t is None or after.task_id is None
            or (before.terminated is not None and before.task_id == after.task_id)):
        return after, ()
    carried = record.facts.carried_message(t.container_id)
    if carried is not None:
        return dataclasses.replace(after, terminated=dataclasses.replace(t, message=carried)), ()
    if source is None or record.facts.deleting or t.reason not in _READ_REASONS:
        return after, ()
    logs = source.fallback_to_logs and t.exit_code != 0
    if source.file is None and not logs:
        return after, ()
    status = event.status
    executor = status.executor_id or termination.executor_of(
        str(after.task_id), init=after.init, container=after.name)
    if not status.agent_id or not executor:
        return after, ()
    return after, (intents.ReadTerminationMessage(
        container=after.name, task_id=after.task_id, agent_id=str(status.agent_id),
        executor_id=str(executor), file=source.file, logs=logs,
    ),)


def _termination_message(record: PodRecord, event: events.TerminationMessage) -> Answer:
    """The message read for a task: it replaces the Mesos text of that termination (in
    ``state`` or, after a restart, ``lastState``), as the kubelet's does the runtime's."""
    rt = record.runtimes.get(event.container)
    if rt is None or not event.message:
        return record, ()
    wanted = containers.container_id(event.task_id)
    changed = rt
    if rt.terminated is not None and rt.terminated.container_id == wanted:
        changed = dataclasses.replace(
            rt, terminated=dataclasses.replace(rt.terminated, message=event.message))
    elif rt.last_terminated is not None and rt.last_terminated.container_id == wanted:
        changed = dataclasses.replace(
            rt, last_terminated=dataclasses.replace(rt.last_terminated, message=event.message))
    if changed is rt:
        return record, ()
    runtimes = {**record.runtimes, event.container: changed}
    return dataclasses.replace(record, runtimes=runtimes), (intents.WriteStatus(),)


def _deadline(record: PodRecord, now: float) -> Answer:
    """``activeDeadlineSeconds``: once the pod has been active that long (from its startTime)
    it fails with ``DeadlineExceeded`` and every running container is killed; until then the
    machine asks to be woken at the deadline (again whenever the deadline moves)."""
    facts = record.facts
    start = facts.start_time if facts.start_time is not None else record.started
    if facts.active_deadline is None or start is None or record.deadline_exceeded:
        return record, ()
    if _apps_done(record):
        return record, ()  # completed: no deadline applies any more
    due = start + facts.active_deadline
    if now < due:
        if record.wake_at == due:
            return record, ()
        return dataclasses.replace(record, wake_at=due), (intents.WakeAt(due),)
    kills = tuple(
        intents.Kill(rt.task_id)
        for rt in record.runtimes.values()
        if rt.task_id is not None and rt.terminated is None
        and rt.task_id not in record.sidecars_stopping
    )
    return dataclasses.replace(record, deadline_exceeded=True, wake_at=None), (
        intents.RecordEvent("Warning", "DeadlineExceeded", DEADLINE_MESSAGE),
        *kills,
        intents.WriteStatus(),
    )


def _launch_refused(record: PodRecord, event: events.LaunchRefused, now: float) -> Answer:
    runtimes = dict(record.runtimes)
    for name in record.facts.apps:
        current = runtimes.get(name) or fresh_runtime(record.facts, name)
        runtimes[name] = dataclasses.replace(
            containers.config_error(current, message=event.message),
            waiting_reason=event.reason,
        )
    record = dataclasses.replace(
        record, runtimes=runtimes, failure=(event.reason, event.message),
        started=record.started if record.started is not None else now,
    )
    return record, (
        intents.RecordEvent("Warning", "Failed", f"Error: {event.message}"),
        intents.WriteStatus(),
    )


def _task_updated(record: PodRecord, event: events.TaskUpdated, now: float) -> Answer:
    facts = record.facts
    name = event.container
    status = event.status
    ack: tuple[intents.Intent, ...] = (intents.Acknowledge(),) if event.needs_ack else ()
    if status.state in _NEVER_LAUNCHED and status.reason == "REASON_INVALID_OFFERS":
        # The launch never happened (its offer was rescinded or had gone): nothing ran, so
        # nothing is shown and nothing counts as a restart; the same group goes again now.
        group = (name,) if name in facts.inits else facts.apps
        relaunch = () if facts.deleting else (intents.Relaunch(at=now, containers=group),)
        return record, (*relaunch, intents.WriteStatus(), *ack)
    runtimes = dict(record.runtimes)
    app_attempt = record.app_attempt
    failure = record.failure
    out: list[intents.Intent] = []
    current = True  # the update is about the task the container runs now
    if name in facts.inits:
        before = runtimes.get(name) or fresh_runtime(facts, name)
        if before.task_id != status.task_id:
            if attempt_of(before.task_id) > event.attempt:
                current = False  # a late update of an earlier run of this init container
            else:
                before = containers.start_attempt(before, task_id=str(status.task_id))
    else:
        if event.attempt > app_attempt:
            # a new attempt of the app group: every app container runs a new task
            prefix = status.task_id[: -len(name)] if status.task_id.endswith(name) else ""
            for app in facts.apps:
                rt = runtimes.get(app) or fresh_runtime(facts, app)
                runtimes[app] = containers.start_attempt(rt, task_id=prefix + app)
            app_attempt = event.attempt
            failure = None
        current = event.attempt == app_attempt
        before = runtimes.get(name) or fresh_runtime(facts, name)
        if current and before.task_id != status.task_id:
            before = containers.start_attempt(before, task_id=str(status.task_id))
    record = dataclasses.replace(
        record,
        app_attempt=app_attempt,
        failure=failure,
        host_ip=event.host_ip or record.host_ip,
        node_name=event.node_name or record.node_name,
        started=record.started if record.started is not None else now,
    )
    if current and sandbox.failed(status):
        runtimes[name] = before
        record = dataclasses.replace(record, runtimes=runtimes)
        return _sandbox_failed(record, event, now, ack)
    if current:
        after = containers.apply_status(before, status)
        after = _follow_check(before, after, facts.thresholds(name), now)
        after, read = _message(record, before, after, event)
        out.extend(read)
        for ev in containers.container_events(
            before, after, pod_name=facts.name, namespace=facts.namespace, uid=facts.uid
        ):
            out.append(intents.RecordEvent(ev.type, ev.reason, ev.message))
        runtimes[name] = after
        record = dataclasses.replace(
            record, runtimes=runtimes, pod_ips=status.ip_addresses or record.pod_ips
        )
        if not facts.deleting and not record.deadline_exceeded:
            record = _decide(record, name, now, out)
    out.append(intents.WriteStatus())
    out.extend(ack)
    return record, tuple(out)


def _sandbox_failed(record: PodRecord, event: events.TaskUpdated, now: float,
                    ack: tuple[intents.Intent, ...]) -> Answer:
    """The group's network could not be set up (``lifecycle.sandbox``): its containers wait
    in ContainerCreating with the message, and the group is launched again after the back-off
    (once per failed launch, whatever the restart policy; not when the pod is going)."""
    facts = record.facts
    status = event.status
    init = event.container in facts.inits
    group = (event.container,) if init else facts.apps
    runtimes = dict(record.runtimes)
    delay, following = sandbox.next_back_off(
        max((runtimes[n].back_off for n in group if n in runtimes), default=0.0))
    first = (status.task_id not in record.init_restarts_requested if init
             else record.app_restart_requested < record.app_attempt)
    for n in group:
        rt = sandbox.waiting(runtimes.get(n) or fresh_runtime(facts, n), status)
        runtimes[n] = dataclasses.replace(rt, back_off=following) if first else rt
    record = dataclasses.replace(record, runtimes=runtimes)
    out: list[intents.Intent] = []
    if first:
        out.append(intents.RecordEvent("Warning", sandbox.EVENT_REASON,
                                       sandbox.event_message(status)))
        if init:
            record = dataclasses.replace(record, init_restarts_requested=(
                record.init_restarts_requested | {status.task_id}))
        else:
            record = dataclasses.replace(record, app_restart_requested=record.app_attempt)
        if not facts.deleting and not record.deadline_exceeded:
            out.append(intents.Relaunch(at=now + delay, containers=group))
    return record, (*out, intents.WriteStatus(), *ack)


def _decide(record: PodRecord, name: str, now: float, out: list[intents.Intent]) -> PodRecord:
    """What follows the update of ``name``: restarts, and stopping the sidecars."""
    facts = record.facts
    if name in facts.inits:
        record = _restart_init(record, name, now, out)
    else:
        record = _restart_apps(record, now, out)
    if _apps_done(record):
        stopping = set(record.sidecars_stopping)
        for sidecar in reversed(facts.inits):
            rt = record.runtimes.get(sidecar)
            if sidecar not in facts.sidecars or rt is None or rt.task_id is None:
                continue
            if rt.terminated is None and rt.task_id not in stopping:
                stopping.add(rt.task_id)
                out.append(intents.Kill(rt.task_id))
        record = dataclasses.replace(record, sidecars_stopping=frozenset(stopping))
    return record


def _apps_done(record: PodRecord) -> bool:
    """Every app container ran and terminated, and no restart of them follows."""
    apps = [record.runtimes.get(n) for n in record.facts.apps]
    return (
        bool(apps)
        and all(rt is not None and rt.terminated is not None for rt in apps)
        and record.app_restart_requested < record.app_attempt
    )


def _back_off(
    record: PodRecord, name: str, decision: restarts.RestartDecision,
    out: list[intents.Intent],
) -> PodRecord:
    """``name`` restarts after ``decision.delay``: CrashLoopBackOff (and its event) till then."""
    facts = record.facts
    runtimes = dict(record.runtimes)
    runtimes[name] = restarts.enter_back_off(
        runtimes[name], decision=decision, pod_name=facts.name, namespace=facts.namespace,
        uid=facts.uid,
    )
    if decision.delay > 0:
        out.append(intents.RecordEvent(
            "Warning", "BackOff",
            f"Back-off restarting failed container {name} in pod {facts.name}",
        ))
    return dataclasses.replace(record, runtimes=runtimes)


def _restart_apps(record: PodRecord, now: float, out: list[intents.Intent]) -> PodRecord:
    facts = record.facts
    apps = [record.runtimes.get(n) for n in facts.apps]
    if not apps or any(rt is None or rt.terminated is None for rt in apps):
        return record
    if record.app_restart_requested >= record.app_attempt:
        return record
    delay = -1.0
    for name in facts.apps:
        decision = restarts.decide_restart(record.runtimes[name], policy=facts.restart_policy)
        if decision.restart:
            record = _back_off(record, name, decision, out)
            delay = max(delay, decision.delay)
    if delay < 0:
        return record
    out.append(intents.Relaunch(at=now + delay, containers=facts.apps))
    return dataclasses.replace(record, app_restart_requested=record.app_attempt)


def _restart_init(
    record: PodRecord, name: str, now: float, out: list[intents.Intent]
) -> PodRecord:
    rt = record.runtimes[name]
    if rt.terminated is None or rt.task_id is None or rt.task_id in record.init_restarts_requested:
        return record
    sidecar = name in record.facts.sidecars
    if sidecar and _apps_done(record):
        return record  # stopped after the app containers: it stays stopped
    decision = restarts.decide_restart(rt, policy=record.facts.restart_policy)
    if not decision.restart:
        return record
    record = _back_off(record, name, decision, out)
    out.append(intents.Relaunch(at=now + decision.delay, containers=(name,)))
    live: frozenset[ids.TaskId] = frozenset(
        r.task_id for r in record.runtimes.values() if r.task_id is not None
    )
    return dataclasses.replace(
        record, init_restarts_requested=(record.init_restarts_requested & live) | {rt.task_id}
    )
