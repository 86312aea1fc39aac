"""The offer loop's side of preemption: the budgets it reads, the calls a ``plan.Preemption``
becomes, and what it remembers until the API shows them.

Why a module: placement decides preemptions purely (``preempting``, ``model.preemption``);
carrying one out is kube-scheduler's ``prepareCandidate`` against the API: each victim gets
the ``DisruptionTarget`` condition (reason ``PreemptionByScheduler``) and a ``Preempted``
event, then a plain graceful DELETE, so its tasks are killed by the bridge's usual deletion
path with the pod's own grace period; then the preemptor's ``status.nominatedNodeName``.
Until the watch brings those changes back, the loop remembers them itself (victims count as
terminating, the preemptor as nominated), so the next pass neither preempts twice nor gives
the freed room away. PodDisruptionBudgets are read only when a pending pod could preempt.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors
from k8sbridge.model import cluster, preemption
from k8sbridge.model import pods as model_pods
from k8sbridge.scheduler import loop_gangs, plan

__all__ = ["Preempting"]

log = logging.getLogger(__name__)

BUDGETS_TTL = 5.0  # seconds PodDisruptionBudgets read for preemption are reused
BUDGETS_PATH = "/apis/policy/v1/poddisruptionbudgets"
SETTLE_SECONDS = 5.0  # after the victims' grace: Mesos offers their resources again by then


def may_preempt(pending: list[model_pods.PodRequest], view: cluster.ClusterView) -> bool:
    """Could any pending pod preempt a running one (a lower priority runs somewhere)?"""
    running = [p.priority for a in view.agents for p in a.pods if not p.terminating]
    if not running:
        return False
    lowest = min(running)
    return any(p.priority > lowest and not p.preempt_never for p in pending)


class Preempting(loop_gangs.Gangs):
    """Budgets for the pass, and the preemptions of a plan carried out."""

    def _with_nomination(self, uid: str, req: model_pods.PodRequest) -> model_pods.PodRequest:
        node = self._nominated.get(uid, ("", 0.0, ""))[0]
        if node and req.nominated_node != node:
            return dataclasses.replace(req, nominated_node=node)
        return req

    def _settling(self) -> frozenset[str]:
        """Preemptors whose victims may have ended so recently that their resources are
        not offered yet (``SETTLE_SECONDS`` past the victims' longest grace period)."""
        now = self._clock()
        return frozenset(key for _, until, key in self._nominated.values() if now < until)

    def _forget_preemptions(self) -> None:
        """Drop what the API shows by now (victims gone, preemptors placed or gone)."""
        for uid in [u for u in self._preempted if u not in self._pods]:
            self._preempted.discard(uid)
        for uid in [u for u in self._nominated if u not in self._pending]:
            del self._nominated[uid]

    async def _budgets(self) -> tuple[preemption.DisruptionBudget, ...]:
        now = self._clock()
        if self._budget_cache is not None and now - self._budget_cache[0] < BUDGETS_TTL:
            return self._budget_cache[1]
        try:
            listing = await self._kube.get(BUDGETS_PATH)
        except kube_errors.KubeError as e:
            log.warning("reading PodDisruptionBudgets for preemption failed: %s", e)
            return self._budget_cache[1] if self._budget_cache is not None else ()
        found = tuple(b for b in (preemption.parse_budget(item)
                                  for item in listing.get("items") or []) if b is not None)
        self._budget_cache = (now, found)
        return found

    async def _preempt(self, chosen: plan.Preemption) -> None:
        preemptor = self._pods.get(str(chosen.pod_uid))
        if preemptor is None:
            return
        scheduler = str((preemptor.get("spec") or {}).get("schedulerName") or "default-scheduler")
        condition = {
            "type": preemption.DISRUPTION_TARGET, "status": "True",
            "reason": preemption.PREEMPTION_REASON,
            "message": scheduler + preemption.CONDITION_MESSAGE,
            "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        message = preemption.event_message(preemptor_uid=str(chosen.pod_uid),
                                           node_name=chosen.node_name)
        grace = 0
        for key, uid in chosen.victims:
            victim = self._pods.get(str(uid))
            if victim is None:
                continue
            own = (victim.get("spec") or {}).get("terminationGracePeriodSeconds")
            grace = max(grace, own if isinstance(own, int) else 30)
            namespace, _, name = str(key).partition("/")
            path = kube_client.pod_path(namespace, name)
            self._preempted.add(str(uid))
            log.info("preempting pod %s on %s for %s", key, chosen.node_name, chosen.pod_key)
            try:
                await self._kube.patch(path + "/status", {
                    "metadata": {"uid": str(uid)}, "status": {"conditions": [condition]}},
                    content_type=kube_client.STRATEGIC_PATCH)
                await self._kube.post_event(involved=victim, reason=preemption.EVENT_REASON,
                                            message=message, component=scheduler,
                                            action="Preempting")  # kube-scheduler's action
                await self._kube.delete(path, uid=str(uid))
            except (kube_errors.NotFound, kube_errors.Conflict):
                continue  # gone already (or another pod of that name)
        self._nominated[str(chosen.pod_uid)] = (
            chosen.node_name, self._clock() + grace + SETTLE_SECONDS, str(chosen.pod_key))
        namespace, _, name = str(chosen.pod_key).partition("/")
        try:
            await self._kube.patch_pod_status(
                namespace=namespace, name=name, uid=str(chosen.pod_uid),
                status={"nominatedNodeName": chosen.node_name})
        except (kube_errors.NotFound, kube_errors.Conflict):
            self._nominated.pop(str(chosen.pod_uid), None)
        # the victims' resources come back in later offers: see every agent again
        self._revive_wanted = True

    async def _clear_nomination(self, key: str, uid: str) -> None:
        """Preemption found no room for a nominated pod any more: clear its
        ``nominatedNodeName``, as kube-scheduler does."""
        self._nominated.pop(uid, None)
        namespace, _, name = key.partition("/")
        try:
            await self._kube.patch_pod_status(namespace=namespace, name=name, uid=uid,
                                              status={"nominatedNodeName": None})
        except (kube_errors.NotFound, kube_errors.Conflict):
            return
