"""The ClusterRole aggregation controller: an aggregated role holds the rules of those it selects.

As kube-controller-manager's (pkg/controller/clusterroleaggregation): a ClusterRole with an
``aggregationRule`` gets, as its ``rules``, the rules of every other ClusterRole matched by one
of its ``clusterRoleSelectors`` — selectors in order, the matched roles by name, each rule once.
Any ClusterRole change re-queues every aggregated role (a label added to a role puts its rules
into ``view``; a rule removed from it leaves ``view``). This is how ``admin``, ``edit`` and
``view`` get their rules, and how a custom role labelled
``rbac.authorization.k8s.io/aggregate-to-view: "true"`` extends them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from k8sbridge.devkube.controllers import base, errors, selectors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject, key_of
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)

CLUSTERROLES = api.Resource(group_version="rbac.authorization.k8s.io/v1", plural="clusterroles",
                            kind="ClusterRole", namespaced=False)


def _selectors(role: RawObject) -> list[Any]:
    rule = role.get("aggregationRule")
    found = rule.get("clusterRoleSelectors") if isinstance(rule, dict) else None
    return found if isinstance(found, list) else []


def aggregated_rules(role: RawObject, roles: list[RawObject]) -> list[Any]:
    """The rules ``role`` should hold: those of the roles its selectors match (pure)."""
    name = (role.get("metadata") or {}).get("name")
    rules: list[Any] = []
    ordered = sorted(roles, key=lambda r: str((r.get("metadata") or {}).get("name")))
    for raw in _selectors(role):
        try:
            selector = selectors.parse_selector(raw)
        except selectors.SelectorError:
            continue
        for other in ordered:
            meta = other.get("metadata") or {}
            if meta.get("name") == name or not selector.matches(meta.get("labels")):
                continue
            for rule in other.get("rules") or []:
                if rule not in rules:
                    rules.append(rule)
    return rules


class ClusterRoleAggregationController:
    def __init__(self, *, client: api.ApiClient, cluster_roles: Informer) -> None:
        self.client = client
        self.cluster_roles = cluster_roles
        self.queue = WorkQueue(name="clusterrole-aggregation")
        cluster_roles.add_handler(self._on_change)

    def _on_change(self, old: RawObject | None, new: RawObject | None) -> None:
        for role in self.cluster_roles.items():
            if _selectors(role):
                self.queue.add(key_of(role))

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop,
                            informers=[self.cluster_roles])
        finally:
            self.queue.close()

    async def sync(self, key: ObjectKey) -> float | None:
        role = self.cluster_roles.get(key)
        if role is None or not _selectors(role):
            return None
        wanted = aggregated_rules(role, self.cluster_roles.items())
        if wanted == (role.get("rules") or []):
            return None
        meta = role.get("metadata") or {}
        body = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "rules": wanted}
        try:
            updated = await self.client.patch(CLUSTERROLES, namespace=None,
                                              name=str(meta.get("name")), body=body)
        except errors.NotFound:
            return None
        self.cluster_roles.upsert(updated)
        log.info("clusterrole %s now aggregates %d rules", meta.get("name"), len(wanted))
        return None
