"""The loop's side of offer shaping: the shape of the pending pods (``shaping``), sent to the
master with UPDATE_FRAMEWORK when it changes, at most every ``SHAPE_SECONDS``.

Only pods a pass has already explained count: until then the offers are not shaped, so
every new pod gets a pass with offers in view and its reason in ``describe``.

Why apart from the passes: the shape is a side channel to the master with its own pacing and
failure handling (a master older than 1.11 has no such fields: nothing is sent; a failed call
is retried by a later pass), and the passes only hand it the pending pods.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from k8sbridge.mesos import calls as mesos_calls
from k8sbridge.mesos import errors as mesos_errors
from k8sbridge.mesos import raw as mesos_wire
from k8sbridge.model import cluster
from k8sbridge.model import pods as model_pods
from k8sbridge.scheduler import loop_updates, shaping

log = logging.getLogger(__name__)

SHAPE_SECONDS = 2.0  # at most one UPDATE_FRAMEWORK for the shape this often
MIN_MASTER = (1, 11)  # offer_constraints and offer_filters.min_allocatable_resources


class Shaping(loop_updates.TaskUpdates):
    _shape: shaping.Shape = shaping.NO_SHAPE
    _shaped_at: float = -1e9
    shape_updates: int = 0  # UPDATE_FRAMEWORK calls sent for the shape (tests, benchmarks)

    async def _shape_offers(self, pending: Sequence[model_pods.PodRequest]) -> None:
        if not self._settings.scheduler.shape_offers or self.master_version is None \
                or self.master_version < MIN_MASTER:
            return
        # Only pods a pass has explained shape the offers: a new pod that no agent can take
        # would otherwise stop the offers before any pass could say why it waits (a pass
        # needs offers), and a placeable one is placed by the next pass anyway.
        explained = all(str(pod.uid) in self._explained_at for pod in pending)
        wanted = shaping.shape(pending, agents=self._agent_labels(),
                               overhead=dict(self._stack_settings.executor_overhead)
                               ) if explained else shaping.NO_SHAPE
        if wanted == self._shape:
            return
        now = self._clock()
        if now - self._shaped_at < SHAPE_SECONDS:
            self._want_pass(delay=self._shaped_at + SHAPE_SECONDS - now)
            return
        roles = self._settings.mesos.roles
        constraints: mesos_wire.RawOfferConstraints = mesos_calls.offer_constraints({
            role: [[mesos_calls.attribute_constraint(
                predicate="text_equals", value=value,
                **({"attribute": name} if kind == "attribute" else {"pseudo": name}))
                for kind, name, value in group] for group in wanted.groups]
            for role in roles}) if wanted.groups else {}
        minimums = {role: [dict(alt) for alt in wanted.minimums]
                    for role in roles} if wanted.minimums else None
        self._shaped_at = now
        try:
            await self._driver.shape_offers(offer_constraints=constraints,
                                            min_allocatable=minimums)
        except mesos_errors.MesosError as e:
            log.warning("shaping offers failed (a later pass retries): %s", e)
            return
        self._shape = wanted
        self.shape_updates += 1
        log.info("offers shaped: %d constraint group(s), %d minimum(s)", len(wanted.groups),
                 len(wanted.minimums))

    def _agent_labels(self) -> list[shaping.AgentLabels]:
        out = []
        for agent_id, info in self._agents.agents.items():
            own = cluster.node_labels(
                hostname=str(getattr(info, "hostname", "")),
                attributes=getattr(info, "attributes", ()),
                region=getattr(info, "region", None), zone=getattr(info, "zone", None))
            name = self._agents.node_for_agent(agent_id)
            node = self._nodes.get(name) if name else None
            out.append(shaping.AgentLabels(
                node_labels=node.labels if node is not None else own, own_labels=own))
        return out
