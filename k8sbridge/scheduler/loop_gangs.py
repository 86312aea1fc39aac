"""The loop's side of gangs: each PodGroup's ``minMember`` and running members, for ``gangs.hold``.

Why read on demand rather than watch: PodGroups are a CRD (scheduler-plugins'
``scheduling.x-k8s.io/v1alpha1``) that many clusters do not have; a watch of a resource the
server does not serve fails for ever, while a GET of the groups pending pods name (cached for
``POD_GROUP_TTL`` seconds) costs nothing when no pod names one, and a missing CRD or PodGroup
is simply "not found" (the pods wait with that reason). The held pods stay pending; the held
group's offers are declined as usual or kept for the loop's bounded gathering window (see
``loop_passes``), so a group gathers offers from several agents without holding them hostage.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from urllib.parse import quote

from k8sbridge.kube import errors as kube_errors
from k8sbridge.model import cluster
from k8sbridge.model import pods as model_pods
from k8sbridge.scheduler import gangs, loop_shaping, plan, stack

__all__ = ["POD_GROUP_TTL", "Gangs", "pod_group_path"]

log = logging.getLogger(__name__)

POD_GROUP_TTL = 5.0  # seconds a PodGroup read (or its absence) is reused


def pod_group_path(group: gangs.GroupKey) -> str:
    namespace, name = (quote(part, safe="") for part in group)
    return f"/apis/scheduling.x-k8s.io/v1alpha1/namespaces/{namespace}/podgroups/{name}"


class Gangs(loop_shaping.Shaping):
    #: group -> (when read, minMember or None, why it could not be read)
    _pod_groups: dict[gangs.GroupKey, tuple[float, int | None, str]] | None = None

    async def _hold_gangs(
        self, pending: Sequence[model_pods.PodRequest], view: cluster.ClusterView,
        result: plan.Plan,
    ) -> plan.Plan:
        """``result`` with every PodGroup that cannot reach its ``minMember`` held back (and
        the other pods placed again without them when some did not fit: ``gangs.settle``)."""
        wanted = {g for g in map(gangs.group_of, pending) if g is not None}
        if not wanted:
            return result
        running = self._running_members()
        known = {}
        for group in sorted(wanted):
            min_member, error = await self._min_member(group)
            known[group] = gangs.Gang(min_member=min_member, running=running[group],
                                      error=error)
            if min_member is None:
                # its pods wait; nothing else tells the loop when the PodGroup appears, and
                # the offers declined meanwhile are filtered: look again (with a REVIVE) soon
                self._revive_wanted = True
                self._want_pass(delay=POD_GROUP_TTL)
        return gangs.settle(result, pending=pending, gangs=known, place=lambda rest: stack.place(
            pending=rest, view=view, settings=self._stack_settings))

    def _running_members(self) -> collections.Counter[gangs.GroupKey]:
        counts: collections.Counter[gangs.GroupKey] = collections.Counter()
        for uid, _ in self._lives.launches():
            raw = self._pods.get(uid)
            if raw is None or uid in self._pending:
                continue
            meta = raw.get("metadata") or {}
            name = (meta.get("labels") or {}).get(gangs.POD_GROUP_LABEL)
            if name:
                counts[(str(meta.get("namespace") or "default"), str(name))] += 1
        return counts

    async def _min_member(self, group: gangs.GroupKey) -> tuple[int | None, str]:
        if self._pod_groups is None:
            self._pod_groups = {}
        now = self._clock()
        cached = self._pod_groups.get(group)
        if cached is not None and now - cached[0] < POD_GROUP_TTL:
            return cached[1], cached[2]
        try:
            raw = await self._kube.get(pod_group_path(group))
        except kube_errors.NotFound:
            found: tuple[int | None, str] = (None, "")
        except kube_errors.KubeError as e:
            log.warning("reading PodGroup %s/%s failed: %s", *group, e)
            found = (None, str(e))
        else:
            spec = raw.get("spec") or {}
            value = spec.get("minMember") if isinstance(spec, dict) else None
            # the CRD's minimum is 1 (an omitted minMember reads as 0 there: any count fits)
            found = (value if isinstance(value, int) and not isinstance(value, bool) else 0, "")
        self._pod_groups[group] = (now, *found)
        return found
