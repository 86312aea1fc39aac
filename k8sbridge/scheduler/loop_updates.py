"""The offer loop's Mesos side: offers in, task updates to the status writer.

Why a module: task updates are the busiest input; launched tasks' STARTING/RUNNING go to the
writer at once (``_forward_progress``), everything else through the inbox in order, and the
loop reacts only where placement is concerned (init phases, invalid offers, deletion).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from k8sbridge.lifecycle import phases, taskids
from k8sbridge.mesos import events as mesos_events
from k8sbridge.mesos import types as mesos_types
from k8sbridge.scheduler import launch, loop_reconcile, offers
from k8sbridge.scheduler.loop_state import (
    UNRECONCILED_REFUSE_SECONDS,
    RawPod,
    _is_sidecar,
)
from k8sbridge.scheduler.ports import TaskRecord

__all__ = ["TaskUpdates", "orders_updates"]

log = logging.getLogger(__name__)


def orders_updates(event: Any) -> bool:
    """Whether a queued Mesos ``event`` must be handled before a later task update is folded.

    Offers and rescinds do not: they touch only the offer book, never a task's record, and
    in a burst an offer is nearly always queued behind a pass (before this, 280–1,300
    STARTING/RUNNING updates per 1,000-pod burst waited in the inbox for the running pass's
    bindings and ACCEPTs, paid twice per pod since Mesos sends RUNNING only after STARTING
    is acknowledged). Updates, failures (an agent or executor lost), errors and subscriptions
    do.
    """
    return not isinstance(event, (mesos_events.Offers, mesos_events.Rescind))


def _held(offer: mesos_types.Offer, *, now: float) -> offers.HeldOffer:
    return offers.HeldOffer(
        offer_id=offer.id,
        agent_id=offer.agent_id,
        hostname=offer.hostname,
        role=offer.allocation_role or "*",
        resources=offer.resources,
        attributes=offer.attributes,
        region=offer.region,
        zone=offer.zone,
        received=now,
    )


class TaskUpdates(loop_reconcile.Reconciling):
    """Mesos events: offers into the book, task updates onwards."""

    async def on_mesos_event(self, event: Any) -> None:
        if isinstance(event, mesos_events.Update) and self._forward_progress(event.status):
            return
        if orders_updates(event):
            self._mesos_queued += 1
        self._inbox.put_nowait(("mesos", event))

    def _forward_progress(self, status: mesos_types.TaskStatus) -> bool:
        """Hand a launched task's STARTING/RUNNING update to the status writer at once.

        Why not through the inbox: the loop awaits bindings and ACCEPTs (a burst binds
        hundreds of pods per pass), and Mesos sends a task's next update only once this one
        is written and acknowledged, so every wait here is paid twice per pod in status
        propagation. Such an update changes nothing the loop decides on (the task stays live,
        its pod's launch stays current), so it is folded here, synchronously (no await, so
        nothing interleaves), exactly as ``_on_update`` would. Anything else — and any update
        while a Mesos event that ``orders_updates`` is still queued, which keeps each task's
        order — goes through the inbox.
        """
        if status.state not in ("TASK_STARTING", "TASK_RUNNING") or self._mesos_queued:
            return False
        rec = self._tasks.get(status.task_id)
        if rec is None or rec.terminal or rec.killing:
            return False
        uid = rec.pod_uid
        pod = self._pods.get(uid)
        current = self._lives.launch(uid)
        if pod is None or self._lives.deleting(uid) or current is None or (
            current.attempt != rec.attempt
        ) or _is_sidecar(pod, rec.container) or taskids.is_sandbox(rec.container):
            return False  # (a sidecar's start advances the init phases: through the inbox)
        if status.state == "TASK_RUNNING" and status.timestamp:
            self._running_delays.append(time.time() - status.timestamp)
        self._note_status(rec, status)
        self._sink.task_status(
            pod=pod, status=status, container=rec.container, attempt=rec.attempt,
            agent=self._agent_ref(rec.agent_id) if rec.agent_id else None,
            ack=self._ack_for(status),
        )
        return True

    async def _on_mesos(self, event: Any) -> None:
        if isinstance(event, mesos_events.Subscribed):
            await self._on_subscribed()
        elif isinstance(event, mesos_events.Offers):
            if not self._reconciled:
                # Nothing may launch before reconciliation (a task may exist already), and
                # holding offers starves the other frameworks: decline them at once with a
                # short filter (they come back when reconciliation has succeeded).
                await self._driver.decline(
                    [o.id for o in event.offers], refuse_seconds=UNRECONCILED_REFUSE_SECONDS
                )
                return
            now = self._clock()
            for offer in event.offers:
                self._book.add(_held(offer, now=now))
            self._want_pass(immediate=not self._pending)
        elif isinstance(event, mesos_events.Rescind):
            self._book.rescind(event.offer_id)
        elif isinstance(event, mesos_events.Update):
            await self._on_update(event.status)
        elif isinstance(event, mesos_events.Failure):
            log.info("Mesos failure event: agent %s executor %s status %s",
                     event.agent_id, event.executor_id, event.status)
        elif isinstance(event, mesos_events.Error):
            log.error("Mesos error event: %s", event.message)

    async def _killing_update(self, rec: TaskRecord, status: mesos_types.TaskStatus) -> bool:
        """Fold ``status`` into ``rec``, executing what it means for the tasks being killed
        (``kills``); True when the update goes no further (acknowledge it only).

        * A task being killed: only a terminal state ends the kills, and one seen reachable
          again after it was unreachable (its agent is back) is killed at once; an answer to
          a kill never triggers the next kill by itself (that was the kill loop).
        * A task that ended in our books (TASK_GONE, TASK_LOST ...) reported live again: an
          earlier incarnation is back (its agent re-registered) while its pod may already run
          a later one. It is killed; its updates do not reach the pod.
        * A live task whose container runs a later incarnation: the older one is killed.
        """
        being_killed = status.task_id in self._kills
        if being_killed and self._kills.observe(status.task_id, state=status.state) == "kill":
            if rec.terminal:  # (an ended incarnation that is back: it stays ended to us)
                rec.agent_id = status.agent_id or rec.agent_id
            else:
                self._note_status(rec, status)
            entry = self._kills.get(status.task_id)
            await self._kill(rec, grace=entry.grace if entry else None,
                             why=entry.why if entry else "its agent is back")
            return rec.terminal or rec.pod_uid not in self._pods
        if rec.terminal and status.state not in mesos_types.TERMINAL_STATES:
            if status.agent_id:
                rec.agent_id = status.agent_id
            if not being_killed and self._reconciled:
                await self._kill(rec, grace=0.0, why=f"an incarnation that had ended "
                                 f"({rec.state}) is back as {status.state}")
            return True
        self._note_status(rec, status)
        if (not rec.terminal and not being_killed and self._reconciled
                and rec.pod_uid in self._pods and self._superseded(rec)):
            await self._kill(rec, grace=0.0, why="a later incarnation of its container runs")
            return True
        return False

    async def _sandbox_update(self, uid: str, rec: TaskRecord, pod: RawPod) -> None:
        """An update of the pod's sandbox task (``podsandbox``): ended, the pod's next launch
        makes a new sandbox; live while the pod has ended, it is killed."""
        known = self._lives.sandbox(uid)
        if rec.terminal and known is not None and known.task_id == rec.task_id:
            self._lives.set_sandbox(uid, None)
        if self._lives.deleting(uid):  # it is killed with the pod's tasks, then the pod goes
            await self._progress_deletion(uid)
            return
        phase = (pod.get("status") or {}).get("phase")
        if not rec.terminal and phase in ("Succeeded", "Failed"):
            await self._end_sandboxes(uid, why=f"its pod is {phase}")

    async def _on_update(self, status: mesos_types.TaskStatus) -> None:
        self._unconfirmed.pop(status.task_id, None)  # the master answered for it
        parsed = launch.parse_task_id(status.task_id)
        ack = self._ack_for(status)
        if parsed is None:
            log.warning("update for a task that is not ours: %s", status.task_id)
            if ack is not None:
                await ack()
            return
        uid, attempt, container = parsed
        if status.state == "TASK_RUNNING" and status.timestamp:
            self._running_delays.append(time.time() - status.timestamp)
        rec = self._tasks.get(status.task_id)
        if rec is None:
            rec = TaskRecord(task_id=status.task_id, pod_uid=uid, attempt=attempt,
                             container=container, agent_id=status.agent_id)
            self._tasks[status.task_id] = rec
        if await self._killing_update(rec, status):
            if ack is not None:
                await ack()
            return
        pod = self._pods.get(uid)
        if pod is None:
            if (self._pods_synced and self._reconciled and not rec.terminal
                    and uid not in self._uids_seen and rec.task_id not in self._kills):
                await self._kill(rec, grace=0.0, why=f"no pod with uid {uid} exists")
            if ack is not None:
                await ack()
            return
        if taskids.is_sandbox(container):  # the pod's sandbox: no container of the pod
            await self._sandbox_update(uid, rec, pod)
            if ack is not None:
                await ack()
            return
        agent_ref = self._agent_ref(rec.agent_id) if rec.agent_id else None
        current = self._lives.launch(uid)
        # (an older attempt's late update goes on too: the lifecycle knows it is stale, and a
        # sidecar restarted beside running app containers makes attempts overlap; a launch
        # refused for invalid offers is relaunched on the lifecycle's word)
        self._sink.task_status(
            pod=pod, status=status, container=container, attempt=attempt, agent=agent_ref,
            ack=ack,
        )
        if rec.terminal and self._pending:
            # Its resources go back to the agent, whose offers our earlier declines filter:
            # a pod that did not fit may fit now.
            self._revive_wanted = True
            self._want_pass()
        raw_inits = (pod.get("spec") or {}).get("initContainers") or []
        inits = [str(c.get("name")) for c in raw_inits]
        step = phases.after_update(
            container=container, inits=inits,
            sidecars={str(c.get("name")) for c in raw_inits if c.get("restartPolicy") == "Always"},
            in_phase=current is not None and status.task_id in current.task_ids,
            state=status.state, terminal=rec.terminal, deleting=self._lives.deleting(uid),
            apps_live=lambda: any(
                t.pod_uid == uid and not t.terminal and t.container not in inits
                and not taskids.is_sandbox(t.container) for t in self._tasks.values()
            ),
        )
        if step == "stay":
            return
        if step in ("next", "failed"):
            # init containers run one at a time (``lifecycle.phases``)
            self._lives.launch_ended(uid)
            if step == "next":
                self._pending[uid] = None
                self._revive_wanted = True
                self._want_pass()
                await self._maybe_revive()
            else:
                self._lives.set_phase_attempt(uid, None)
            return
        if self._lives.deleting(uid):
            await self._progress_deletion(uid)
