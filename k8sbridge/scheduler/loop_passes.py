"""The offer loop's passes: pending pods + held offers → pure placement → commit.

Why a module: a pass builds the ``ClusterView`` from held offers and launched pods, runs the
pure ``stack.place``, commits per agent (``loop.Scheduler._commit_agent``), declines what is
unused and writes explanations for what did not fit; timers (relaunches, expiring offers,
reconciliation retries) are driven from ``_tick``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from k8sbridge.kube import errors as kube_errors
from k8sbridge.lifecycle import launches, taskids
from k8sbridge.mesos import errors as mesos_errors
from k8sbridge.model import cluster, ids
from k8sbridge.model import pods as model_pods
from k8sbridge.scheduler import (
    feasible,
    kills,
    launch,
    loop_preempt,
    offers,
    plan,
    stack,
)
from k8sbridge.scheduler.loop_state import (
    EXPLAIN_GRACE,
    EXPLAIN_MIN_INTERVAL,
    GATHER_SECONDS,
    UNLISTED_ASK_MAX,
    _is_sidecar,
    _node_name,
    _taints,
)
from k8sbridge.scheduler.ports import TaskRecord

__all__ = ["Passes"]


def _wants_namespaces(
    pending: list[model_pods.PodRequest], view: cluster.ClusterView
) -> bool:
    """Does any term of a pending or placed pod select namespaces by their labels?"""
    def terms(pod: model_pods.PodRequest | cluster.PlacedPod) -> bool:
        if isinstance(pod, cluster.PlacedPod):
            all_terms = (*pod.anti_affinity, *pod.pod_affinity, *pod.preferred_affinity,
                         *pod.preferred_anti_affinity)
        else:
            all_terms = (*pod.anti_affinity, *pod.pod_affinity, *pod.preferred_pod_affinity,
                         *pod.preferred_anti_affinity)
        return any(t.namespace_selector is not None for t in all_terms)

    return any(terms(p) for p in pending) or any(
        terms(p) for a in view.agents for p in a.pods)

log = logging.getLogger(__name__)


NAMESPACES_TTL = 10.0  # seconds namespace labels (for namespaceSelectors) are reused


class Passes(loop_preempt.Preempting):
    """Placement passes and the loop's timers."""

    def on_node_event(self, etype: str | None, raw: dict[str, Any]) -> None:
        """The Node watch (labels, taints, cordons users set): enqueue only."""
        self._inbox.put_nowait(("node", (etype, raw)))

    async def _on_node(self, etype: str | None, raw: dict[str, Any]) -> None:
        if not self._nodes.observe(etype, raw) or not self._pending:
            return
        # a label added, a taint or a cordon lifted: pending pods may fit now (and offers
        # declined for them are filtered: REVIVE)
        self._revive_wanted = True
        self._want_pass(immediate=True)
        await self._maybe_revive()

    async def _tick(self) -> None:
        now = self._clock()
        try:
            if self._reconcile_due is not None and now >= self._reconcile_due:
                await self._reconcile()
            await self._agents_back(now)
            await self._ask_about_unlisted(now)
            await self._repeat_kills(now)
            await self._due_relaunches(now)
            expired = self._book.expired(now=now)
            if expired and self._subscribed:
                self._book.take(expired)
                await self._driver.decline(expired, refuse_seconds=1.0)
            if self._pass_due is not None and now >= self._pass_due:
                self._pass_due = None
                await self._pass()
        except (kube_errors.KubeError, mesos_errors.MesosError) as e:
            log.warning("placement pass failed (will retry): %s", e)
            self._want_pass()
        except Exception:  # a bug in one pass: log it loudly, retry later, keep serving
            log.exception("placement pass failed (bug); retrying in a second")
            self._want_pass(delay=1.0)

    async def _agents_back(self, now: float) -> None:
        """An agent became active again (it re-registered after a partition, or a master
        failover): Mesos re-adds its tasks without telling the framework, so the kills of
        tasks there are repeated now, and the tasks we last saw unreachable there are
        reconciled (their pods become Ready again)."""
        active = {a for a, info in self._agents.agents.items() if getattr(info, "active", True)}
        back = active - self._active_agents
        self._active_agents = active
        if not back or not self._subscribed:
            return
        for agent_id in sorted(back):
            self._kills.agent_back(agent_id, now=now)
            away = {
                r.task_id: agent_id for r in self._tasks.values()
                if r.agent_id == agent_id and r.state in kills.UNREACHABLE_STATES
                and r.task_id not in self._kills
            }
            if away:
                log.info("agent %s is active again: reconciling its %d task(s) last seen "
                         "unreachable", agent_id, len(away))
                await self._driver.reconcile(away)

    async def _ask_about_unlisted(self, now: float) -> None:
        """Explicit reconciliation of the launches the master did not list (see
        ``Reconciling._note_unlisted``), again with back-off until a status arrives."""
        if not self._subscribed or not self._reconciled:
            return
        due = {tid: entry for tid, entry in self._unconfirmed.items() if entry[1] <= now}
        if not due:
            return
        for tid, (agent, _, wait) in due.items():
            self._unconfirmed[tid] = (agent, now + wait, min(UNLISTED_ASK_MAX, wait * 2))
        await self._driver.reconcile({tid: agent for tid, (agent, _, _) in due.items()})

    async def _repeat_kills(self, now: float) -> None:
        """Kill again, on the back-off's timer, every task not terminal yet (``kills``)."""
        if not self._subscribed:
            return
        for task_id, entry in list(self._kills.due(now)):
            rec = self._tasks.get(task_id)
            if rec is None:  # (its pod was forgotten; the task was not seen ending)
                parsed = launch.parse_task_id(task_id)
                rec = TaskRecord(task_id=task_id, pod_uid=parsed[0] if parsed else "",
                                 attempt=parsed[1] if parsed else -1,
                                 container=parsed[2] if parsed else "",
                                 agent_id=entry.agent_id)
            await self._kill(rec, grace=entry.grace, why=entry.why)

    async def _due_relaunches(self, now: float) -> None:
        for uid, sidecar_only in self._lives.take_due_relaunches(now):
            pod = self._pods.get(uid)
            if pod is None or self._lives.deleting(uid):
                continue
            step = launches.relaunch_step(sidecars_only=sidecar_only, others_live=any(
                t.pod_uid == uid and not t.terminal and not _is_sidecar(pod, t.container)
                and not taskids.is_sandbox(t.container) for t in self._tasks.values()
            ))
            if step == "stale":
                continue  # the attempt is still running
            if step == "anew":
                self._lives.launch_ended(uid)
            self._pending[uid] = None
            self._revive_wanted = True
            self._want_pass(immediate=True)
            await self._maybe_revive()

    async def _pass(self) -> None:
        if not self._subscribed or not self._reconciled:
            return
        for uid in self._lives.being_deleted():
            await self._progress_deletion(uid)
        pending = self._pending_requests()
        if not pending:
            if self.on_pass is not None:
                self.on_pass(None, 0, None)
            held = self._book.take_all()
            if held:
                await self._driver.decline(
                    [o.offer_id for o in held], refuse_seconds=self._settings.mesos.refuse_seconds
                )
            self._revive_wanted = False
            if not self._suppressed:
                await self._driver.suppress(list(self._settings.mesos.roles))
                self._suppressed = True
            return
        await self._shape_offers(pending)
        await self._maybe_revive()
        if not len(self._book):
            if self.on_pass is not None:
                self.on_pass(None, len(pending), None)
            return
        view = self._view()
        if _wants_namespaces(pending, view):
            view = dataclasses.replace(view, namespace_labels=await self._namespace_labels())
        # Some pods may not fit, but not every known agent has an offer in the book yet (the
        # allocator may still be sending them): launch what fits, keep the other offers for a
        # short, bounded gathering window, then explain with every agent's offer in view (and
        # only then preempt: the offers still coming may hold the room).
        offered_agents = {o.agent_id for o in self._book}
        missing = [a for a, info in self._agents.agents.items()
                   if a not in offered_agents and getattr(info, "active", True)]
        oldest = min((o.received for o in self._book), default=self._clock())
        window = min(GATHER_SECONDS, self._settings.mesos.offer_hold_seconds)
        early = bool(missing) and self._clock() - oldest < window
        preempt = not early and loop_preempt.may_preempt(pending, view)
        if preempt:
            view = dataclasses.replace(view, budgets=await self._budgets(),
                                       settling=self._settling())
        started = time.perf_counter()
        result = stack.place(pending=pending, view=view, settings=self._stack_settings,
                             preempt=preempt)
        placing = time.perf_counter() - started
        result = await self._hold_gangs(pending, view, result)  # PodGroups: all or nothing
        if self.on_pass is not None:
            self.on_pass(placing, len(pending), result)
        gathering = bool(result.unplaced) and early
        await self._commit(result, final=not gathering)
        if gathering:
            self._want_pass(delay=max(0.05, oldest + window - self._clock()))

    def _pending_requests(self) -> list[model_pods.PodRequest]:
        self._forget_preemptions()
        out = []
        for uid in list(self._pending):
            pod = self._pods.get(uid)
            if pod is None:
                self._pending.pop(uid, None)
                continue
            try:
                out.append(self._with_nomination(uid, self._request(uid, pod)))
            except model_pods.PodSpecError as e:
                self._pending.pop(uid, None)
                self._sink.launch_failed(pod=pod, reason="InvalidPodSpec", message=str(e))
        return out

    def _view(self) -> cluster.ClusterView:
        by_agent: dict[ids.AgentId, list[offers.HeldOffer]] = {}
        for offer in self._book:
            by_agent.setdefault(offer.agent_id, []).append(offer)
        own_taints = _taints(self._settings.kubelet.node_taint)
        placed = self._placed_pods()
        agents: list[cluster.AgentView] = []
        known = dict(self._agents.agents)
        for agent_id in set(known) | set(by_agent):
            held = by_agent.get(agent_id, [])
            info = known.get(agent_id)
            first = held[0] if held else None
            hostname = str(getattr(info, "hostname", "") or (first.hostname if first else ""))
            node_name = self._agents.node_for_agent(agent_id) or _node_name(hostname)
            node = self._nodes.get(node_name)  # the Node as users left it, once seen
            agents.append(
                cluster.AgentView.build(
                    agent_id=agent_id,
                    hostname=hostname,
                    node_name=node_name,
                    labels=node.labels if node is not None else None,
                    unschedulable=node.unschedulable if node is not None else False,
                    attributes=(first.attributes if first else getattr(info, "attributes", ())),
                    region=first.region if first else getattr(info, "region", None),
                    zone=first.zone if first else getattr(info, "zone", None),
                    taints=node.taints if node is not None else own_taints,
                    offers=[
                        cluster.OfferView(
                            id=o.offer_id, agent_id=o.agent_id, resources=o.resources,
                            allocation_role=o.role,
                        )
                        for o in held
                    ],
                    pods=placed.get(agent_id, ()),
                    total=getattr(info, "total", None),
                    max_pods=self._settings.kubelet.max_pods,
                )
            )
        agents.sort(key=lambda a: a.agent_id)
        return cluster.ClusterView(agents=tuple(agents))

    async def _namespace_labels(self) -> dict[str, dict[str, str]] | None:
        """Namespace name → labels, read at most every ``NAMESPACES_TTL`` seconds (only
        when a pod's affinity term has a namespaceSelector)."""
        now = self._clock()
        if self._namespaces is not None and now - self._namespaces[0] < NAMESPACES_TTL:
            return self._namespaces[1]
        try:
            listing = await self._kube.get("/api/v1/namespaces")
        except kube_errors.KubeError as e:
            log.warning("reading namespaces for namespaceSelectors failed: %s", e)
            return self._namespaces[1] if self._namespaces is not None else None
        found: dict[str, dict[str, str]] = {}
        for item in listing.get("items") or []:
            meta = item.get("metadata") or {}
            found[str(meta.get("name"))] = {str(k): str(v)
                                            for k, v in (meta.get("labels") or {}).items()}
        self._namespaces = (now, found)
        return found

    def _placed_pods(self) -> dict[ids.AgentId, list[cluster.PlacedPod]]:
        out: dict[ids.AgentId, list[cluster.PlacedPod]] = {}
        for order, (uid, launched) in enumerate(list(self._lives.launches())):
            pod = self._pods.get(uid)
            if pod is None or uid in self._pending:
                continue  # (pending while launched: a sidecar restarts; it is placed anew)
            try:
                req = self._request(uid, pod)
            except model_pods.PodSpecError:
                continue
            going = (uid in self._preempted or self._lives.deleting(uid)
                     or bool((pod.get("metadata") or {}).get("deletionTimestamp")))
            out.setdefault(launched.agent_id, []).append(
                cluster.PlacedPod.of(req, started=float(order), terminating=going))
        return out

    async def _commit(self, result: plan.Plan, *, final: bool = True) -> None:
        used: set[ids.OfferId] = set()
        for agent_id, offer_ids, assignments in result.by_agent():
            await self._commit_agent(agent_id, offer_ids, assignments)
            used.update(offer_ids)
        for chosen in result.preemptions:
            await self._preempt(chosen)
        for pod_key, pod_uid in result.cleared:
            await self._clear_nomination(str(pod_key), str(pod_uid))
        if not final:
            return
        unused = [o.offer_id for o in self._book.take_all() if o.offer_id not in used]
        if unused:
            await self._driver.decline(unused, refuse_seconds=self._settings.mesos.refuse_seconds)
        # Explanations for what did not fit (only when they say something new). An agent that
        # "had no offer" may simply be filtered or busy: REVIVE (rate-limited) to see every
        # agent, and hold such a partial explanation back for EXPLAIN_GRACE seconds.
        now = self._clock()
        want_revive = False
        for unplaced in result.unplaced:
            uid = str(unplaced.pod_uid)
            pod = self._pods.get(uid)
            message = unplaced.explanation.message
            if pod is None or self._unschedulable.get(uid) == message:
                continue
            partial = any(
                r.reason == feasible.REASON_NO_OFFER for r in unplaced.explanation.reasons
            )
            first = self._pending_since.setdefault(uid, now)
            if partial and (uid in self._unschedulable or now - first < EXPLAIN_GRACE):
                want_revive = True
                continue
            if now - self._explained_at.get(uid, -1e9) < EXPLAIN_MIN_INTERVAL:
                continue  # a changed number in the message is not worth a write per pass
            self._explained_at[uid] = now
            self._unschedulable[uid] = message
            self._sink.unschedulable(pod=pod, message=message)
        if want_revive and now - self._last_revive >= EXPLAIN_GRACE / 2:
            self._last_revive = now
            self._revive_wanted = False
            await self._driver.revive(list(self._settings.mesos.roles))
            self._suppressed = False
            self._want_pass(delay=EXPLAIN_GRACE / 2)
