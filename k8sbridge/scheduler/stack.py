"""The placement stack: pending pods × cluster view → ``Plan``, pure and deterministic.

Why this order (Nomad's feasible → rank → select, composed in one place):

1. pods are taken by priority, then in the order given (the queue's FIFO order; kube-scheduler's
   PrioritySort), a pod nominated by an earlier preemption first among equals;
2. pods with equal ``placement_signature`` form a group; *static* checks run once per agent
   and ``static_signature`` (so also once for many groups), in kube-scheduler's plugin order:
   ``spec.nodeName`` → the cordon → taints → nodeSelector and node affinity → has an offer;
3. the agents that pass become the group's ``select.CandidateQueue``, read in the order of
   one ``select.Ranking`` of all agents by ``rank`` score (plus the group's static
   NodeAffinity/TaintToleration scores, ``scores``), updated after each placement; a group
   with pod affinity or topology spread (its own, or the cluster's defaults) is placed by
   ``topology.ScannedGroup``, which counts pods per domain;
4. for each pod the best candidate gets the *dynamic* checks: the Node's pod count, resources
   (the question users ask most), host ports already taken, then pod anti-affinity (any
   topologyKey: hostname, zone, ...); an agent failing one is dropped for the group, the next
   candidate is tried;
5. a placement carves the pod's resources out of the agent's pool (``carve``; executor
   overhead once per pod), so many pods share an offer and later pods see what is left; the
   ``plan.Assignment`` keeps the pieces (executor share, each container's scalars and host
   ports, the offers they come from) and the commit renders the launch from them: nothing
   is carved twice;
6. when a group has no candidate left, its pods are unplaced with one ``Explanation``, and a
   pod that may preempt looks for victims (``preempting``); an agent nominated for a pending
   pod is closed to the pods of lower or equal priority after it.

Ties are broken by a permutation of the agents drawn from ``StackSettings.seed``: the same
inputs and seed always give the same plan.
"""

from __future__ import annotations

import collections
import dataclasses
import operator
import random
from collections.abc import Sequence

from k8sbridge.model import cluster, pods
from k8sbridge.scheduler import (
    carve,
    explain,
    feasible,
    plan,
    preempting,
    rank,
    scores,
    select,
    topology,
    topology_rules,
)

__all__ = ["DEFAULT_SETTINGS", "StackSettings", "place"]

_PROVIDER_TOLERATION = pods.Toleration(
    key=cluster.PROVIDER_TAINT.key,
    operator="Equal",
    value=cluster.PROVIDER_TAINT.value,
    effect=cluster.PROVIDER_TAINT.effect,
)


@dataclasses.dataclass(frozen=True, slots=True)
class StackSettings:
    strategy: rank.Strategy = "spread"
    #: the DEFAULT executor's own resources, accounted once per pod (Marathon's pod executor
    #: uses the same; Mesos refuses an executor without disk)
    executor_overhead: tuple[tuple[str, float], ...] = (
        ("cpus", 0.1),
        ("mem", 32.0),
        ("disk", 10.0),
    )
    #: tolerations every pod the bridge places gets for free: the bridge's own Node taint
    implicit_tolerations: tuple[pods.Toleration, ...] = (_PROVIDER_TOLERATION,)
    seed: int = 0
    #: kube-scheduler's system default spread constraints, for pods of a controller that
    #: state none (``()`` turns them off)
    default_spread: tuple[pods.SpreadConstraint, ...] = topology_rules.DEFAULT_CONSTRAINTS


DEFAULT_SETTINGS = StackSettings()

_SIGNATURE = operator.attrgetter("placement_signature")
_COUNTED = operator.attrgetter("counted_signature")
_NOMINATED = operator.attrgetter("nominated_node")
_PRIORITY = operator.attrgetter("priority")
_KEY = operator.attrgetter("key")



def _explain(
    group: carve.Group, agents: list[feasible.AgentState], refused: dict[int, str] | None = None
) -> plan.Explanation:
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    rejected: dict[str, list[int]] = {}  # reason -> agents rejected for it
    for rej in group.static:
        counts[(rej.reason, rej.detail)] += 1
    dropped = list(group.queue.rejections) if group.queue is not None else []
    if group.scan is not None:
        dropped += group.scan.rejections()
        for rej in group.scan.static:
            counts[(rej.reason, rej.detail)] += 1
    for index, rej in dropped:
        counts[(rej.reason, rej.detail)] += 1
        rejected.setdefault(rej.reason, []).append(index)
    for reason in (refused or {}).values():
        counts[(reason, "")] += 1
    return explain.explanation(counts=counts, rejected=rejected, need=dict(group.need),
                               overhead=dict(group.overhead), agents=agents)


def _static_rejection(
    pod: pods.PodRequest,
    agent: feasible.AgentState,
    settings: StackSettings,
    taints: dict[tuple[int, ...], feasible.Rejection | None],
) -> feasible.Rejection | None:
    """``taints``: the taint check's verdicts for this pod by the ids of an agent's taints
    (it reads nothing else of the agent; most agents carry just the provider's taint, one
    object: one check for all of them)."""
    implicit = settings.implicit_tolerations
    rejection = (feasible.check_node_name(pod, agent)
                 or feasible.check_unschedulable(pod, agent, implicit=implicit))
    if rejection is None:
        key = tuple(map(id, agent.view.taints))
        if key in taints:
            rejection = taints[key]
        else:
            rejection = taints[key] = feasible.check_taints(pod, agent, implicit=implicit)
    return (
        rejection
        or feasible.check_node_affinity(pod, agent)
        or feasible.check_has_offer(pod, agent)
    )


# the candidates, the rejections and the candidates' static scores (``scores``): they depend
# on the static signature alone, so groups that share it share them
_StaticResult = tuple[list[feasible.AgentState], list[feasible.Rejection], list[float] | None]


def _static(
    pod: pods.PodRequest, agents: list[feasible.AgentState], settings: StackSettings
) -> _StaticResult:
    candidates: list[feasible.AgentState] = []
    rejections: list[feasible.Rejection] = []
    taints: dict[tuple[int, ...], feasible.Rejection | None] = {}
    for agent in agents:
        rejection = _static_rejection(pod, agent, settings, taints)
        if rejection is None:
            candidates.append(agent)
        else:
            rejections.append(rejection)
    bonus = scores.static_bonus(pod, candidates, size=len(agents),
                                implicit=settings.implicit_tolerations)
    return candidates, rejections, bonus


class _Pass:
    """What every group of one pass shares."""

    def __init__(
        self,
        *,
        agents: list[feasible.AgentState],
        rankings: select.Rankings,
        settings: StackSettings,
        view: cluster.ClusterView,
        pending: Sequence[pods.PodRequest],
    ) -> None:
        self.agents = agents
        self.rankings = rankings
        self.settings = settings
        self.namespace_labels = view.namespace_labels
        self.trackers = topology.Trackers(agents=agents)
        self.terms = topology_rules.scoring_terms(agents, pending)
        self.anti_terms = [t for a in agents for p in a.view.pods for t in p.anti_affinity]
        self.anti_terms += list(dict.fromkeys(t for p in pending for t in p.anti_affinity))

    def anti(self, pod: pods.PodRequest) -> bool:
        """Could required pod anti-affinity (the pod's or another's) refuse this pod?"""
        labels = pod.labels_dict
        return bool(pod.anti_affinity) or any(
            t.selects(namespace=pod.namespace, labels=labels,
                      namespace_labels=self.namespace_labels) for t in self.anti_terms)

    def scanned(self, pod: pods.PodRequest) -> bool:
        """Does the pod need counts per topology domain (``topology``)?"""
        if pod.node_name:
            return False  # bound: it goes to its node whatever the counts
        if (pod.pod_affinity or pod.preferred_pod_affinity or pod.preferred_anti_affinity
                or topology_rules.constraints_of(pod, defaults=self.settings.default_spread)[0]):
            return True
        labels = pod.labels_dict
        return any(t.selects(namespace=pod.namespace, labels=labels,
                             namespace_labels=self.namespace_labels) for _, t, _ in self.terms)


def _new_group(
    pod: pods.PodRequest,
    static: _StaticResult,
    shared: _Pass,
) -> carve.Group:
    settings = shared.settings
    group = carve.Group()
    need = {n: feasible.to_milli(v) for n, v in pod.scalars}
    for name, value in settings.executor_overhead:
        need[name] = need.get(name, 0) + feasible.to_milli(value)
    group.need = [(n, need[n]) for n in feasible.SCALAR_ORDER if need.get(n)]
    group.need += sorted((n, v) for n, v in need.items() if n not in feasible.SCALAR_ORDER and v)
    group.ports = [(p.host_port, p.protocol) for p in pod.host_ports]
    group.overhead = [
        (n, feasible.to_milli(v)) for n, v in settings.executor_overhead if feasible.to_milli(v)
    ]
    left = dict(group.need)
    for name, milli in group.overhead:
        left[name] -= milli
    for container in carve.steady(pod):
        container_need = carve.container_need(container)
        group.steady.append(container_need)
        for name, milli in container_need:
            left[name] -= milli
    group.reserve = [(n, v) for n, v in left.items() if v > 0]
    group.inits = [carve.container_need(c) for c in pod.init_containers if not c.sidecar]
    candidates, group.static, bonus = static
    group.anti = shared.anti(pod)
    group.terms = bool(pod.pod_affinity or pod.preferred_pod_affinity
                       or pod.preferred_anti_affinity)
    if shared.scanned(pod):
        group.scan = topology.ScannedGroup(
            pod=pod, candidates=candidates, agents=shared.agents,
            rankings=shared.rankings, bonus=bonus, trackers=shared.trackers,
            defaults=settings.default_spread,
            implicit=settings.implicit_tolerations, namespace_labels=shared.namespace_labels,
            existing_terms=shared.terms,
        )
    else:
        group.queue = select.CandidateQueue(
            agents=candidates, ranking=shared.rankings.for_group(candidates, bonus, heap=True))
    return group



def _next_agent(
    group: carve.Group, agents: list[feasible.AgentState]
) -> tuple[select.CandidateQueue, feasible.AgentState] | dict[int, str]:
    """The queue and agent to try next, or (none left) the agents refused per class."""
    if group.scan is None:
        queue = group.queue
        assert queue is not None
        agent = queue.best(agents)
        return {} if agent is None else (queue, agent)
    return group.scan.choose()


def place(
    *,
    pending: Sequence[pods.PodRequest],
    view: cluster.ClusterView,
    settings: StackSettings = DEFAULT_SETTINGS,
    preempt: bool = True,
) -> plan.Plan:
    """Place as many ``pending`` pods as the view's offers allow; explain the others, and
    preempt for them where kube-scheduler would (``preempt``; ``preempting``)."""
    scorer = rank.STRATEGIES[settings.strategy]
    shared_pools = feasible.Shared()  # pieces and signatures, shared by every pool
    agents = [feasible.AgentState(view=a, index=i, shared=shared_pools)
              for i, a in enumerate(view.agents)]
    for state in agents:
        state.score = scorer(state)
    tiebreak = list(range(len(agents)))
    random.Random(settings.seed).shuffle(tiebreak)
    rankings = select.Rankings(agents=agents, tiebreak=tiebreak)
    # one pod per placement signature, the first, in the queue's order: what the set-up
    # needs from every pod's terms and constraints (a signature holds them all), read
    # without a loop over 10,000 pods
    firsts = dict(zip(map(id, map(_SIGNATURE, reversed(pending))),
                      range(len(pending) - 1, -1, -1), strict=True))
    distinct = [pending[i] for i in sorted(firsts.values())]
    shared = _Pass(agents=agents, rankings=rankings, settings=settings, view=view,
                   pending=distinct)
    topology_keys = {t.topology_key for p in distinct for t in p.anti_affinity} | {
        t.topology_key for a in view.agents for pod in a.pods for t in pod.anti_affinity
    }
    any_anti = bool(topology_keys)
    domains = feasible.Domains(keys=topology_keys, namespace_labels=view.namespace_labels)
    if any_anti:
        for state in agents:
            for placed_pod in state.view.pods:
                entry = (placed_pod.namespace, dict(placed_pod.labels), placed_pod.anti_affinity)
                domains.add(state, entry)
    nominated = [p for p in pending if p.nominated_node] if any(
        map(_NOMINATED, pending)) else []
    priorities = set(map(_PRIORITY, pending))
    if len(priorities) > 1 or nominated:
        ranks = [(-p.priority, not p.nominated_node) for p in pending]
        order: Sequence[int] = sorted(range(len(pending)), key=ranks.__getitem__)
    else:  # (what the sort would give: it is stable)
        order = range(len(pending))
    # (of the pending pods, only the nominated ones keep agents for themselves)
    pre = preempting.Preemptions(agents=agents, pending=nominated, view=view,
                                 overhead=settings.executor_overhead,
                                 implicit=settings.implicit_tolerations, enabled=preempt)
    reserved = pre.reserved
    groups: dict[int, carve.Group] = {}
    statics: dict[tuple[object, ...], _StaticResult] = {}
    assignments: list[plan.Assignment] = []
    unplaced: list[plan.Unplaced] = []
    seen: set[str] = set()
    trackers = shared.trackers
    placed_pods = trackers.placed_pods
    counted = any_anti or bool(shared.terms) or any(
        p.spread or (p.owner_uid and settings.default_spread) for p in distinct)
    # the pods placed are kept (``Trackers.placed_pods``) for the groups still to come, whose
    # trackers count them too; once every group exists, nothing reads them
    coming = len(set(map(id, map(_COUNTED, pending)))) if counted else len(firsts)
    # the hot loop's names, as locals (one lookup each instead of two per pod)
    rejection_type = feasible.Rejection
    fit_pool = feasible.fit_pool
    assign = carve.assign
    replay = carve.replay
    take = carve.take
    give = carve.give
    # (a queue that holds a pod twice places it once; a set of 10,000 keys tells whether
    # this one does, without a look-up per pod)
    twice = len(set(map(_KEY, pending))) != len(pending)
    recording = True
    for i in order:
        pod = pending[i]
        if twice:
            if pod.key in seen:
                continue
            seen.add(pod.key)
        # counts per topology domain tell pods apart by who they are; signatures are
        # interned, so equal ones are (nearly always) one object: look groups up by identity
        sig = id(pod.counted_signature if counted else pod.placement_signature)
        group = groups.get(sig)
        if group is None:
            static = statics.get(pod.static_signature)
            if static is None:
                static = statics[pod.static_signature] = _static(pod, agents, settings)
            count = trackers.count
            group = groups[sig] = _new_group(pod, static, shared)
            recording = trackers.recording = len(groups) < coming
            if trackers.count != count:  # new trackers: which count a group's pods is asked anew
                for other in groups.values():
                    other.matching = None
        placed = False
        plain = group.queue
        need = group.need
        ports = group.ports
        fast = group.fast
        while group.explanation is None:
            if plain is not None:  # the common case, without a call
                queue, agent = plain, plain.best(agents)
                if agent is None:
                    group.explanation = _explain(group, agents, {})
                    break
            else:
                found = _next_agent(group, agents)
                if isinstance(found, dict):
                    group.explanation = _explain(group, agents, found)
                    break
                queue, agent = found
            if reserved and pre.blocks(agent.index, pod):
                queue.drop(agent, feasible.Rejection(preempting.REASON_NOMINATED))
                continue
            room = agent.room
            if room is not None and agent.placed >= room:
                queue.drop(agent, feasible.Rejection(feasible.REASON_TOO_MANY_PODS))
                continue
            # the fit and the carve in one step when the group carved a pool of this one's
            # signature before (a simple pool, no host ports): take the scalars if they are
            # free and replay that carve, without ``fit_pool`` and ``assign`` (most
            # placements; what a later check refuses is given back)
            template = None
            if not ports and (signature := agent.replayable) is not None:
                template = fast.get(signature)
            if template is not None:
                pool = agent.pools[0]
                short = take(pool, need)
                if short is not None:
                    queue.drop(agent, rejection_type(
                        feasible.REASON_INSUFFICIENT.get(short) or f"Insufficient {short}"))
                    continue
                if group.anti and (
                        refused := feasible.check_anti_affinity(pod, agent, domains)):
                    give(pool, need)
                    queue.drop(agent, refused)
                    continue
                assignments.append(replay(pod, agent, pool, group, template))
            else:
                fit = fit_pool(need, ports, agent)
                if isinstance(fit, rejection_type):
                    queue.drop(agent, fit)
                    continue
                rejection = (ports and feasible.check_ports_taken(ports, agent)) or (
                    group.anti and feasible.check_anti_affinity(pod, agent, domains)
                )
                if rejection:
                    queue.drop(agent, rejection)
                    continue
                assignments.append(assign(pod, agent, fit, group))
            agent.placed += 1
            agent.score = scorer(agent)
            rankings.update(agent)
            if ports:
                agent.taken_ports.update(ports)
            if group.anti:  # only pods some anti-affinity term is about are indexed
                domains.add(agent, (pod.namespace, pod.labels_dict, pod.anti_affinity))
            if trackers.groups:
                matching = group.matching
                if matching is None:
                    matching = group.matching = trackers.matching(
                        (pod.namespace, pod.labels, pod.owner_uid))
                if matching or group.terms:
                    trackers.placed(agent, pod, matching)
                elif recording:  # counted by no tracker: remembered for later ones
                    placed_pods.append((agent, pod))
            elif recording:
                placed_pods.append((agent, pod))
            if reserved and pod.nominated_node:
                pre.placed(pod)
            placed = True
            break
        if not placed:
            explanation = group.explanation
            assert explanation is not None
            why = pre.attempt(pod, group.need, group.ports, scan=group.scan,
                              domains=domains if group.anti else None)
            if why:
                explanation = dataclasses.replace(explanation, preemption=why)
            unplaced.append(
                plan.Unplaced(pod_key=pod.key, pod_uid=pod.uid, explanation=explanation))
    unused = tuple(
        offer_id for a in agents for pool in a.pools if not pool.used for offer_id in pool.offer_ids
    )
    return plan.Plan(assignments=tuple(assignments), unplaced=tuple(unplaced),
                     unused_offer_ids=unused, preemptions=tuple(pre.found),
                     cleared=tuple(pre.cleared))
