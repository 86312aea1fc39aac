"""The offer loop's reconciliation: learn every task the master knows before launching.

Why a module: after a (re)subscription nothing may launch until ``GET_TASKS`` says what
exists (deterministic task ids make a second launch of an attempt detectable); a failure is
retried with back-off while offers are declined, never held; pods whose attempt ended while
the bridge was away get their final statuses so restartPolicy decides what follows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from k8sbridge.lifecycle import away, taskids
from k8sbridge.mesos import errors as mesos_errors
from k8sbridge.mesos import types as mesos_types
from k8sbridge.model import ids
from k8sbridge.model import tasks as model_tasks
from k8sbridge.scheduler import launch, limits, loop_pods, podsandbox
from k8sbridge.scheduler.loop_state import (
    RECONCILE_RETRY_FIRST,
    RECONCILE_RETRY_MAX,
    RECONCILE_TIMEOUT_SECONDS,
    UNLISTED_ASK_FIRST,
    UNRECONCILED_REFUSE_SECONDS,
    RawPod,
)
from k8sbridge.scheduler.ports import PodLaunch, TaskRecord

__all__ = ["Reconciling"]

log = logging.getLogger(__name__)


def _last_status(raw_task: Mapping[str, Any]) -> mesos_types.TaskStatus | None:
    statuses = raw_task.get("statuses") or []
    if not statuses:
        return None
    try:
        return mesos_types.TaskStatus.parse(statuses[-1])
    except mesos_errors.MesosError as e:
        log.warning("ignoring a malformed status of task %s: %s",
                    (raw_task.get("task_id") or {}).get("value"), e)
        return None


class Reconciling(loop_pods.PodEvents):
    """Reconciliation with the master, retried until it succeeds."""

    async def _on_subscribed(self) -> None:
        self._subscribed = True
        self._book.clear()  # offers from an earlier subscription are void
        self._suppressed = False
        self._reconciled = False
        self._reconcile_failures = 0
        self._reconcile_error = ""
        self.master_version = None  # a new master may run another version: read it again
        fid = self._driver.framework_id
        if self._framework_seen is not None and fid != self._framework_seen:
            self._forget_framework(self._framework_seen)
        self._framework_seen = fid
        await self._reconcile()

    def _forget_framework(self, old: str) -> None:
        """The master removed framework ``old`` (an operator TEARDOWN, an expired failover
        timeout) and we subscribed anew: its tasks were killed with it. Forget them, so that
        reconciliation finds each bound pod without a live task and its attempt ends as any
        attempt that ended while we were away (restartPolicy decides)."""
        log.warning("framework %s was removed by the master: forgetting its %d tasks; bound "
                    "pods are reconciled against framework %s", old, len(self._tasks),
                    self._driver.framework_id)
        self._tasks.clear()
        self._final_status.clear()
        self._kills.clear()  # (they died with their framework)
        for uid, _ in list(self._lives.launches()):
            self._lives.launch_ended(uid)
        # their executors went too: no launch may join one (its ExecutorInfo names the old
        # framework), the next launch of each pod starts a sandbox of its own
        self._lives.forget_sandboxes()

    async def _reconcile(self) -> None:
        """Reconcile, then act on what was learned; a failure (an error or a GET_TASKS that
        does not answer in time) is retried with back-off, and meanwhile offers are declined
        (see ``_on_mesos``), never held."""
        self._reconcile_due = None
        try:
            async with asyncio.timeout(RECONCILE_TIMEOUT_SECONDS):
                await self._reconcile_tasks()
        except Exception as e:  # any failure of the master or the transport: retry later
            self._reconcile_failures += 1
            delay = min(RECONCILE_RETRY_MAX,
                        RECONCILE_RETRY_FIRST * 2 ** (self._reconcile_failures - 1))
            self._reconcile_due = self._clock() + delay
            cause = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            log_at = logging.WARNING if cause != self._reconcile_error else logging.DEBUG
            log.log(log_at, "reconciliation failed (%d time(s)); retrying in %.1f s, "
                    "declining offers meanwhile: %s", self._reconcile_failures, delay, cause)
            self._reconcile_error = cause
            held = self._book.take_all()
            if held:
                await self._driver.decline([o.offer_id for o in held],
                                           refuse_seconds=UNRECONCILED_REFUSE_SECONDS)
            return
        if self._reconcile_failures:
            log.info("reconciliation succeeded after %d failure(s)", self._reconcile_failures)
        self._reconciled = True
        # Pods bound to our nodes without a task become pending now, unless their status
        # shows that a task of theirs ran: that attempt ended while we were away (see
        # ``_end_attempt_ended_while_away``) and restartPolicy decides what follows.
        for uid, pod in list(self._pods.items()):
            self._end_attempt_ended_while_away(uid, pod)
            self._observe_pod(None, pod)
            if self._lives.deleting(uid):
                await self._progress_deletion(uid)
        await self._kill_unowned()
        await self._driver.reconcile({})  # implicit: fresh statuses for every task we have
        if self._unconfirmed:  # explicit: the launches the master did not list
            await self._driver.reconcile({t: a for t, (a, _, _) in self._unconfirmed.items()})
        self._want_pass(immediate=True)

    async def _kill_unowned(self) -> None:
        """After reconciliation, before anything launches: kill every live task of ours that
        no pod owns (its pod was deleted while the bridge was away, or it was launched by a
        run that crashed before the bind was seen), and every live older incarnation of a
        container that runs a later one (exactly one live incarnation per pod container).
        The kills are repeated until Mesos reports the tasks terminal (``kills``)."""
        for rec in list(self._tasks.values()):
            if rec.terminal or rec.task_id in self._kills:
                continue
            if rec.pod_uid not in self._uids_seen:
                await self._kill(rec, grace=0.0, why=f"no pod with uid {rec.pod_uid} exists")
            elif self._superseded(rec):
                await self._kill(rec, grace=0.0,
                                 why="a later incarnation of its container runs")

    async def _reconcile_tasks(self) -> None:
        """Learn the master's version (whether it takes task limits) and every task it knows
        for us before launching anything."""
        if self._read_master_version is not None:
            text = await self._read_master_version()
            version = self.master_version = limits.parse_version(text)
            log.info("master version %s: pods' limits %s", text or "unknown",
                     "are sent" if version is not None and version >= limits.LIMITS_SINCE
                     else "are not sent (the master would not enforce them)")
        fid = self._driver.framework_id
        tasks = await self._list_tasks()
        listed: set[ids.TaskId] = set()
        for raw in tasks:
            if fid and (raw.get("framework_id") or {}).get("value") != fid:
                continue
            tid = ids.TaskId(str((raw.get("task_id") or {}).get("value", "")))
            listed.add(tid)
            parsed = launch.parse_task_id(tid)
            if parsed is None:
                continue
            uid, attempt, container = parsed
            agent = (raw.get("agent_id") or {}).get("value")
            rec = TaskRecord(
                task_id=tid, pod_uid=uid, attempt=attempt, container=container,
                agent_id=ids.AgentId(agent) if agent else None,
                state=str(raw.get("state") or "TASK_STAGING"),
                executor_id=str((raw.get("executor_id") or {}).get("value") or ""),
            )
            known = self._tasks.get(tid)
            if known is None or not known.terminal:
                self._tasks[tid] = rec
            if rec.terminal:
                last = _last_status(raw)
                if last is not None:
                    self._final_status[tid] = last
            current = self._lives.launch(uid)
            if (not rec.terminal and (current is None or current.attempt <= attempt) and agent
                    and not taskids.is_sandbox(container)):  # (a sandbox runs no container)
                node = self._agents.node_for_agent(ids.AgentId(agent)) or ""
                task_ids = tuple(t for t, r in self._tasks.items()
                                 if r.pod_uid == uid and r.attempt == attempt)
                self._lives.launched(PodLaunch(
                    uid=uid, attempt=attempt, agent_id=ids.AgentId(agent), node_name=node,
                    task_ids=task_ids,
                ))
                self._pending.pop(uid, None)
        self._note_unlisted(listed)
        await self._adopt_sandboxes(fid or "")
        log.info("reconciled: %d tasks known, %d pods launched, %d launches not listed by the "
                 "master", len(self._tasks), sum(1 for _ in self._lives.launches()),
                 len(self._unconfirmed))

    async def _adopt_sandboxes(self, framework_id: str) -> None:
        """The pods' running sandboxes, for their next launches to join (``podsandbox``);
        without the master's ExecutorInfo a pod's next launch makes a new one."""
        live = [podsandbox.LiveTask(
            uid=r.pod_uid, task_id=r.task_id, container=r.container,
            agent_id=str(r.agent_id or ""), executor_id=r.executor_id,
            incarnation=(_generation(r.task_id), r.attempt))
            for r in self._tasks.values()
            if not r.terminal and taskids.is_sandbox(r.container)]
        if not live or self._list_executors is None:
            return
        try:
            executors = await self._list_executors()
        except mesos_errors.MesosError as e:
            log.warning("cannot read the master's executors (%s): pods' next launches make "
                        "new sandboxes", e)
            return
        for uid, found in podsandbox.adopt(live, executors, framework_id=framework_id).items():
            if self._lives.sandbox(uid) is None:
                self._lives.set_sandbox(uid, found)

    def _note_unlisted(self, listed: set[ids.TaskId]) -> None:
        """Our live tasks that ``GET_TASKS`` did not list: launches the master never took
        (an ACCEPT in flight when it died) or forgot. Implicit reconciliation says nothing
        about them, so they are asked about explicitly (``Passes._ask_about_unlisted``) until
        the master answers — TASK_GONE / TASK_UNKNOWN for a task nobody has (the pod's
        lifecycle then relaunches it), the task's state if its agent re-registers with it.
        Without this the pod waits for its task forever."""
        now = self._clock()
        self._unconfirmed = {
            rec.task_id: (rec.agent_id, now + UNLISTED_ASK_FIRST, UNLISTED_ASK_FIRST * 2)
            for rec in self._tasks.values()
            if not rec.terminal and rec.task_id not in listed
        }

    def _end_attempt_ended_while_away(self, uid: str, pod: RawPod) -> None:
        """A pod bound to our node whose app containers ran (its status says so) but which
        has no live task after reconciliation: its attempt ended while the bridge was away.

        Launching it again unconditionally would run a ``restartPolicy: Never`` pod twice.
        Instead each app container of that attempt gets its final status — the one the
        master still keeps for a completed task, else the terminated state already written,
        else ``TASK_GONE`` (the task vanished: the master no longer knows it) — folded in by
        the status writer like any update, so restartPolicy decides: Never → the pod fails
        (``ContainerStatusUnknown``, exit 137, with a Failed event), OnFailure/Always → the
        writer asks for a relaunch, and restartCount/lastState carry over.

        A pod whose app containers never started (a crash between bind and ACCEPT, or bound
        by another scheduler, or still in its init phase) is not touched: it is launched.
        Nor is a pod whose Node's agent is not registered and active at the master.
        """
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        node = spec.get("nodeName")
        if (
            not node or self._lives.launch(uid) is not None or self._lives.deleting(uid)
            or meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed")
            or not self._is_our_node(str(node))
        ):
            return
        # Only an agent the master reports registered and active answers for its tasks: after
        # a master failover an agent may not have re-registered yet, and its tasks are then
        # absent from GET_TASKS without having vanished (they are left alone until it is back).
        node_agent = self._agent_of_node(str(node))
        info = self._agents.agents.get(node_agent) if node_agent is not None else None
        if info is None or not getattr(info, "active", True):
            return
        found = away.previous_attempt(uid, pod)
        if found is None:
            return
        attempt, written = found
        if any(r.pod_uid == uid and r.attempt >= attempt and not r.terminal
               for r in self._tasks.values()):
            return  # a live task of it exists after all
        names = [str(c.get("name")) for c in spec.get("containers") or []]
        launched_ids = away.attempt_task_ids(written, names)  # as that launch named them
        agent_id: ids.AgentId | None = None
        for tid in launched_ids.values():
            rec = self._tasks.get(tid)
            if rec is not None and rec.agent_id:
                agent_id = rec.agent_id
        agent_id = agent_id or self._agent_of_node(str(node))
        task_ids: list[ids.TaskId] = []
        now = time.time()
        for name, tid in launched_ids.items():
            task_ids.append(tid)
            final: mesos_types.TaskStatus | model_tasks.TaskStatusView | None = (
                self._final_status.get(tid)
            )
            if final is None:
                final = away.final_from_written(tid, written.get(name), agent_id=agent_id,
                                                now=now)
            else:
                final = dataclasses.replace(final, uuid=None)  # nothing to acknowledge
            log.info("pod %s/%s: task %s ended while the bridge was away (%s)",
                     meta.get("namespace"), meta.get("name"), tid, final.state)
            rec = self._tasks.get(tid)
            if rec is None:
                rec = self._tasks[tid] = TaskRecord(
                    task_id=tid, pod_uid=uid, attempt=attempt, container=name,
                    agent_id=agent_id,
                )
            rec.state = final.state
            self._sink.task_status(
                pod=pod, status=final, container=name, attempt=attempt,
                agent=self._agent_ref(agent_id) if agent_id else None, ack=None,
            )
        self._pending.pop(uid, None)
        self._lives.launched(PodLaunch(
            uid=uid, attempt=attempt, agent_id=agent_id or ids.AgentId(""),
            node_name=str(node), task_ids=tuple(task_ids),
        ))


def _generation(task_id: str) -> int:
    name = taskids.parse(task_id)
    return name.generation or 0 if name is not None else 0
