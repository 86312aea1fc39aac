"""Gangs: the pods of one PodGroup are launched all together or not at all.

Why a pass over the plan rather than a plugin inside placement: all-or-nothing is a property
of a whole pass's result, not of one pod on one agent. ``stack.place`` places every pending
pod greedily across the offers of the cycle; ``hold`` then looks at each group (the
coscheduling plugin's ``scheduling.x-k8s.io/pod-group`` label and the namespace's
``scheduling.x-k8s.io/v1alpha1`` PodGroup with ``spec.minMember``) and, when the members that
could be placed plus those already running are fewer than ``minMember``, takes every
assignment of that group back: its pods stay pending with the reason, in the coscheduling
plugin's words, and the offers only they used become unused (declined, or held for the loop's
bounded gathering window). No partial group is ever launched.

The reasons, as the scheduler-plugins coscheduling plugin words them:

* fewer members exist than ``minMember``: ``pre-filter pod gang-0 cannot find enough sibling
  pods, current pods number: 3, minMember of group: 4``;
* enough members, but not all fit: the members that could be placed say ``PodGroup
  default/gang gets rejected due to Pod gang-3 is unschedulable even after PostFilter (3/4
  members fit, minMember 4)``; those that did not fit keep their own kube-scheduler
  explanation (``0/3 nodes are available: 3 Insufficient cpu ...``), which says why;
* the PodGroup does not exist: ``PodGroup default/gang not found``.

Members bound to a node already (a relaunch) are never held; they count as running.

Room a held group leaves is not lost for the pass: ``settle`` places the other pending pods
again without the held groups when some of them did not fit (a second placement, only then),
so a group that can never run does not starve the pods behind it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from k8sbridge.model import ids, pods
from k8sbridge.scheduler import plan

__all__ = [
    "POD_GROUP_LABEL",
    "Gang",
    "GangExplanation",
    "GroupKey",
    "group_of",
    "hold",
    "not_found",
    "rejected",
    "settle",
    "too_few",
    "unreadable",
]

#: the coscheduling plugin's label naming a pod's PodGroup (v1alpha1.PodGroupLabel)
POD_GROUP_LABEL = "scheduling.x-k8s.io/pod-group"

GroupKey = tuple[str, str]  # (namespace, PodGroup name)


@dataclasses.dataclass(frozen=True, slots=True)
class Gang:
    """What the loop knows of one PodGroup: ``min_member`` (None: no such PodGroup) and how
    many of its members already run (launched, not pending)."""

    min_member: int | None
    running: int = 0
    #: why the PodGroup could not be read (an error other than NotFound), "" when it was
    error: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class GangExplanation(plan.Explanation):
    """An explanation that is about the group, not about nodes: its text is the message."""

    text: str = ""

    @property
    def message(self) -> str:
        return self.text


def group_of(pod: pods.PodRequest) -> GroupKey | None:
    for key, value in pod.labels:
        if key == POD_GROUP_LABEL and value:
            return (pod.namespace, value)
    return None


def not_found(group: GroupKey) -> str:
    return f"PodGroup {group[0]}/{group[1]} not found"


def unreadable(group: GroupKey, error: str) -> str:
    return f"PodGroup {group[0]}/{group[1]} could not be read: {error}"


def too_few(pod: pods.PodRequest, *, current: int, min_member: int) -> str:
    return (f"pre-filter pod {pod.name} cannot find enough sibling pods, current pods number: "
            f"{current}, minMember of group: {min_member}")


def rejected(group: GroupKey, *, blocker: str, fit: int, min_member: int) -> str:
    return (f"PodGroup {group[0]}/{group[1]} gets rejected due to Pod {blocker} is "
            f"unschedulable even after PostFilter ({fit}/{min_member} members fit, minMember "
            f"{min_member})")


def _explanation(text: str) -> GangExplanation:
    return GangExplanation(agents=0, fit=0, reasons=(), text=text)


def hold(
    result: plan.Plan,
    *,
    pending: Sequence[pods.PodRequest],
    gangs: Mapping[GroupKey, Gang],
) -> plan.Plan:
    """``result`` without the assignments of every group that cannot reach ``minMember``."""
    return _hold(result, pending=pending, gangs=gangs)[0]


def settle(
    result: plan.Plan,
    *,
    pending: Sequence[pods.PodRequest],
    gangs: Mapping[GroupKey, Gang],
    place: Callable[[list[pods.PodRequest]], plan.Plan],
) -> plan.Plan:
    """``hold``, then (when other pods did not fit) ``place`` the pending pods again without
    the held groups, whose room is free now, until no further group is held: a group that can
    never run must not take every offer of every pass from the pods behind it."""
    current, held = _hold(result, pending=pending, gangs=gangs)
    if not held:
        return current
    group_by_key = {p.key: group_of(p) for p in pending}
    waiting = {u.pod_key: u for u in current.unplaced if group_by_key.get(u.pod_key) in held}
    while any(u.pod_key not in waiting for u in current.unplaced):
        rest = [p for p in pending if group_by_key.get(p.key) not in held]
        current, more = _hold(place(rest), pending=rest, gangs=gangs)
        waiting.update((u.pod_key, u) for u in current.unplaced
                       if group_by_key.get(u.pod_key) in more)
        held |= more
        if not more:
            break
    kept = tuple(u for u in current.unplaced if u.pod_key not in waiting)
    return dataclasses.replace(current, unplaced=(*kept, *waiting.values()))


def _hold(
    result: plan.Plan,
    *,
    pending: Sequence[pods.PodRequest],
    gangs: Mapping[GroupKey, Gang],
) -> tuple[plan.Plan, set[GroupKey]]:
    """``hold``'s plan, and the groups whose assignments it took back."""
    members: dict[GroupKey, list[pods.PodRequest]] = {}
    seen: set[str] = set()
    for pod in pending:
        group = group_of(pod)
        if group is None or pod.key in seen:
            continue
        seen.add(pod.key)
        members.setdefault(group, []).append(pod)
    if not members:
        return result, set()
    assigned = {a.pod_key for a in result.assignments}
    held: dict[ids.PodKey, str] = {}  # pod -> why it is held back
    for group, group_pods in members.items():
        gang = gangs.get(group, Gang(min_member=None))
        free = [p for p in group_pods if not p.node_name]  # bound members are not held
        if gang.min_member is None:
            for pod in free:
                held[pod.key] = unreadable(group, gang.error) if gang.error else not_found(group)
            continue
        bound = len(group_pods) - len(free)
        running = gang.running + bound
        current = running + len(free)
        if current < gang.min_member:
            for pod in free:
                held[pod.key] = too_few(pod, current=current, min_member=gang.min_member)
            continue
        fit = running + sum(p.key in assigned for p in free)
        if fit >= gang.min_member:
            continue
        blocker = next((p.name for p in free if p.key not in assigned), "")
        message = rejected(group, blocker=blocker, fit=fit, min_member=gang.min_member)
        for pod in free:
            if pod.key in assigned:
                held[pod.key] = message
    if not held:
        return result, set()
    kept = tuple(a for a in result.assignments if a.pod_key not in held)
    used = {o for a in kept for o in a.offer_ids}
    freed = [o for a in result.assignments if a.pod_key in held for o in a.offer_ids
             if o not in used]
    unused = tuple(dict.fromkeys((*result.unused_offer_ids, *freed)))
    unplaced = [
        plan.Unplaced(pod_key=u.pod_key, pod_uid=u.pod_uid,
                      explanation=_explanation(held[u.pod_key]))
        if u.pod_key in held and u.pod_key not in assigned else u
        for u in result.unplaced
    ]
    unplaced += [plan.Unplaced(pod_key=a.pod_key, pod_uid=a.pod_uid,
                               explanation=_explanation(held[a.pod_key]))
                 for a in result.assignments if a.pod_key in held]
    groups = {g for p in pending if p.key in held for g in [group_of(p)] if g is not None}
    return dataclasses.replace(result, assignments=kept, unplaced=tuple(unplaced),
                               unused_offer_ids=unused), groups
