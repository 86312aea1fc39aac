"""Placement that counts pods per topology domain: PodTopologySpread and InterPodAffinity.

Why a module of its own: these are the constraints whose verdict for an agent changes during
the pass in both directions (a pod placed in zone A makes zone A worse for spreading and
better for affinity), so the monotone "drop an agent once it fails" of ``select`` does not
hold for them. The semantics are kube-scheduler's:

* PodTopologySpread: for each constraint, the matching pods (its labelSelector, with
  matchLabelKeys merged in, in the pod's namespace) are counted per domain of its
  topologyKey over the eligible nodes (nodeAffinityPolicy Honor: those matching the pod's
  nodeSelector/required node affinity; nodeTaintsPolicy Honor: those whose taints it
  tolerates). DoNotSchedule filters: count + (1 if the pod matches itself) − the smallest
  count ≤ maxSkew (the smallest is 0 while fewer domains than minDomains exist); a node
  without the key is refused "(missing required label)". ScheduleAnyway scores:
  Σ count × log(domains + 2) + (maxSkew − 1), fewer is better, normalised as
  ``100 × (max + min − s) / max``. Pods without constraints get the cluster's default ones
  (zone maxSkew 5, hostname maxSkew 3, ScheduleAnyway) counting the pods of the same
  controller, as kube-scheduler's default selector does for ReplicaSets and StatefulSets.
* InterPodAffinity: a required affinity term needs a pod matching all the pod's required
  terms in the node's domain (or none anywhere and the pod matches its own terms: the first
  replica of a self-affine group); preferred terms add (affinity) or subtract (anti-affinity)
  their weight per matching pod in the domain, existing pods' preferred terms and required
  affinity terms (weight 1) that match the pod count too; normalised as
  ``100 × (s − min) / (max − min)``. Required anti-affinity is monotone and stays in
  ``feasible``.

How it stays cheap: every count is a ``Tracker`` fed by each placement of the pass. A group
with such constraints (``ScannedGroup``) splits its candidates into classes that share every
count (same domain for each non-hostname key, same count on the agent for hostname keys);
per pod it evaluates each class once and takes the best agent of the best class, in the
order ``select`` keeps. Scores are normalised over the classes that pass the filters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from k8sbridge.model import pods
from k8sbridge.scheduler import feasible, rank, select
from k8sbridge.scheduler.topology_rules import (
    HOSTNAME,
    Matcher,
    constraints_of,
    eligible,
    normalise_inter,
    normalise_spread,
    selects,
    term_matcher,
)

__all__ = ["PodFacts", "ScannedGroup", "Tracker", "Trackers"]

PodFacts = tuple[str, tuple[tuple[str, str], ...], str]  # (namespace, labels, owner uid)


class Tracker:
    """Pods a predicate selects, counted per domain of ``key`` over ``eligible`` agents."""

    __slots__ = ("key", "matches", "eligible", "counts", "total", "_memo", "group")

    def __init__(self, *, key: str, matches: Matcher, eligible: set[int] | None) -> None:
        self.key = key
        self.group: ScannedGroup | None = None  # the group whose classes it splits
        self.matches = matches
        self.eligible = eligible  # None: every agent
        self.counts: dict[str, int] = {}
        self.total = 0
        self._memo: dict[tuple[str, tuple[tuple[str, str], ...], str], bool] = {}

    def selects(self, facts: PodFacts) -> bool:
        matched = self._memo.get(facts)
        if matched is None:
            matched = self._memo[facts] = self.matches(facts[0], dict(facts[1]), facts[2])
        return matched

    def add(self, agent: feasible.AgentState, facts: PodFacts) -> bool:
        """Count the pod (namespace, labels, owner) if it matches; True when counted."""
        if self.eligible is not None and agent.index not in self.eligible:
            return False
        value = agent.view.labels.get(self.key)
        if value is None or not self.selects(facts):
            return False
        self.counts[value] = self.counts.get(value, 0) + 1
        self.total += 1
        return True

    def counts_pod(self, agent: feasible.AgentState, facts: PodFacts) -> bool:
        """Would ``add`` count such a pod on ``agent`` (preemption's dry run)?"""
        if self.eligible is not None and agent.index not in self.eligible:
            return False
        return self.key in agent.view.labels and self.selects(facts)

    def count(self, agent: feasible.AgentState) -> bool:
        """``add`` for a pod it is known to select (``Trackers.matching``)."""
        if self.eligible is not None and agent.index not in self.eligible:
            return False
        value = agent.view.labels.get(self.key)
        if value is None:
            return False
        self.counts[value] = self.counts.get(value, 0) + 1
        self.total += 1
        return True


class Trackers:
    """Every tracker and scanned group of one pass; each placement feeds them all."""

    __slots__ = ("agents", "_trackers", "groups", "placed_pods", "_matching", "count",
                 "recording")

    def __init__(self, *, agents: list[feasible.AgentState]) -> None:
        self.agents = agents
        self._trackers: list[Tracker] = []
        #: how many trackers there are (``matching`` answers stay valid while it holds)
        self.count = 0
        self.groups: list[ScannedGroup] = []
        # pod facts → the trackers that select such pods (pods of a group share their facts)
        self._matching: dict[PodFacts, tuple[int, list[Tracker]]] = {}
        #: the pods placed during this pass, where, while ``recording`` (groups created
        #: later replay them: ``register``, ``ScannedGroup``)
        self.placed_pods: list[tuple[feasible.AgentState, pods.PodRequest]] = []
        self.recording = True

    def register(self, tracker: Tracker) -> Tracker:
        for agent in self.agents:
            for placed in agent.view.pods:
                tracker.add(agent, (placed.namespace, placed.labels, placed.owner_uid))
        for agent, pod in self.placed_pods:
            tracker.add(agent, (pod.namespace, pod.labels, pod.owner_uid))
        self._trackers.append(tracker)
        self.count = len(self._trackers)
        return tracker

    def matching(self, facts: PodFacts) -> list[Tracker]:
        """The trackers that count pods of these facts (cached; valid while ``count``)."""
        cached = self._matching.get(facts)
        if cached is None or cached[0] != len(self._trackers):
            cached = self._matching[facts] = (
                len(self._trackers), [t for t in self._trackers if t.selects(facts)])
        return cached[1]

    def placed(
        self,
        agent: feasible.AgentState,
        pod: pods.PodRequest,
        matching: list[Tracker] | None = None,
    ) -> None:
        """``pod`` landed on ``agent``; ``matching``: ``self.matching`` of its facts, when
        the caller keeps it per group of identical pods."""
        if self.recording:
            self.placed_pods.append((agent, pod))
        if not self.groups:
            return
        facts: PodFacts = (pod.namespace, pod.labels, pod.owner_uid)
        if matching is None:
            matching = self.matching(facts)
        moved: list[ScannedGroup] = []
        for tracker in matching:  # each selects the pod
            if tracker.count(agent) and tracker.key == HOSTNAME \
                    and tracker.group is not None and tracker.group not in moved:
                moved.append(tracker.group)
        if pod.pod_affinity or pod.preferred_pod_affinity or pod.preferred_anti_affinity:
            for group in self.groups:
                group.note_terms(agent, pod)
                if group.hostname_keys and group not in moved:
                    moved.append(group)
        for group in moved:
            group.reclass(agent)


class _Spread:
    __slots__ = ("constraint", "tracker", "domains", "self_match", "weight")

    def __init__(self, constraint: pods.SpreadConstraint, tracker: Tracker,
                 domains: set[str], self_match: int) -> None:
        self.constraint = constraint
        self.tracker = tracker
        self.domains = domains
        self.self_match = self_match
        self.weight = 0.0


class ScannedGroup:
    """The candidates of one pod group with topology constraints, in classes (see above)."""

    __slots__ = ("pod", "hard", "soft", "affinity", "preferred", "symmetric", "ignored",
                 "self_affine", "classes", "agent_class", "hostname_keys", "static",
                 "_ranking", "_agents", "_namespace_labels", "placed_any", "_selected", "_noted",
                 "_all", "_hard_rows", "_soft_rows", "_pref_rows", "_key_rows")

    def __init__(
        self,
        *,
        pod: pods.PodRequest,
        candidates: list[feasible.AgentState],
        agents: list[feasible.AgentState],
        rankings: select.Rankings,
        bonus: list[float] | None,
        trackers: Trackers,
        defaults: Sequence[pods.SpreadConstraint],
        implicit: Sequence[pods.Toleration],
        namespace_labels: Mapping[str, Mapping[str, str]] | None,
        existing_terms: Sequence[tuple[feasible.AgentState | None, pods.PodAffinityTerm, int]],
    ) -> None:
        self.pod = pod
        self._agents = agents
        self._namespace_labels = namespace_labels
        self.static: list[feasible.Rejection] = []
        self.placed_any = False
        # id of a term (of a pod of the pass or the view: alive while it runs) → selects it
        self._selected: dict[int, bool] = {}
        # id of a placement signature (of a pod of the pass) → its terms that select it
        self._noted: dict[int, list[tuple[str, int]]] = {}
        self._all: list[Tracker] | None = None
        constraints, own = constraints_of(pod, defaults=defaults)
        hard_keys = [c.topology_key for c in constraints if c.hard]
        soft_keys = [c.topology_key for c in constraints if not c.hard]
        self.hard: list[_Spread] = []
        self.soft: list[_Spread] = []
        labels = pod.labels_dict
        for c in constraints:
            keys = hard_keys if c.hard else (soft_keys if own else [c.topology_key])
            members = {a.index for a in agents if eligible(a, pod, c, keys, implicit)}
            tracker = trackers.register(Tracker(
                key=c.topology_key, eligible=members,
                matches=selects(c.selector, pod.namespace,
                                same_owner=pod.owner_uid if c.same_owner else None),
            ))
            domains = {agents[i].view.labels[c.topology_key] for i in members}
            self_match = 1 if c.same_owner or c.selector.matches(labels) else 0
            entry = _Spread(c, tracker, domains, self_match)
            (self.hard if c.hard else self.soft).append(entry)
        # agents missing a soft key are not scored when the constraints are the pod's own
        self.ignored = {a.index for a in candidates if own and any(
            k not in a.view.labels for k in soft_keys)}
        match_all = term_matcher(pod.pod_affinity, namespace_labels)
        self.affinity = [
            (t, trackers.register(Tracker(key=t.topology_key, eligible=None, matches=match_all)))
            for t in pod.pod_affinity
        ]
        self.self_affine = match_all(pod.namespace, labels, pod.owner_uid)
        self.preferred = [
            (t, trackers.register(Tracker(key=t.topology_key, eligible=None,
                                          matches=term_matcher((t,), namespace_labels))),
             sign * t.weight)
            for terms, sign in ((pod.preferred_pod_affinity, 1),
                                (pod.preferred_anti_affinity, -1))
            for t in terms
        ]
        self.symmetric: dict[tuple[str, str], int] = {}
        for where, term, weight in existing_terms:
            if where is not None:
                self._add_symmetric(where, term, weight)
        for agent, placed in trackers.placed_pods:
            self.note_terms(agent, placed)
        # static refusals: a hard constraint's key or a required affinity term's key missing
        kept: list[feasible.AgentState] = []
        for agent in candidates:
            node_labels = agent.view.labels
            if any(k not in node_labels for k in hard_keys):
                self.static.append(feasible.Rejection(feasible.REASON_SPREAD_LABEL))
            elif any(t.topology_key not in node_labels for t in pod.pod_affinity):
                self.static.append(feasible.Rejection(feasible.REASON_POD_AFFINITY))
            else:
                kept.append(agent)
        for spread in self.soft:
            c = spread.constraint
            size = (len(kept) - len(self.ignored) if c.topology_key == HOSTNAME
                    else len({a.view.labels[c.topology_key] for a in kept
                              if c.topology_key in a.view.labels}))
            spread.weight = math.log(size + 2)
        for tracker in self._trackers():
            tracker.group = self
        # pending pods' terms on hostname may score this group once placed
        self.hostname_keys = any(t.key == HOSTNAME for t in self._trackers()) or any(
            t.topology_key == HOSTNAME for _, t, _ in existing_terms)
        # what ``_filter``, ``_raw`` and ``_class_key`` read per class and pod, flat (the
        # trackers' count dicts are theirs for the pass)
        self._hard_rows = [(s.constraint.topology_key, s.tracker.counts, s.self_match,
                            s.constraint.max_skew) for s in self.hard]
        self._soft_rows = [(s.constraint.topology_key, s.tracker.counts, s.weight,
                            s.constraint.max_skew - 1) for s in self.soft]
        self._pref_rows = [(term.topology_key, tracker.counts, weight)
                           for term, tracker, weight in self.preferred]
        self._key_rows = [(t.key, t.counts if t.key == HOSTNAME else None, t.eligible)
                          for t in self._trackers()]
        self.classes: dict[tuple[object, ...], select.CandidateQueue] = {}
        self.agent_class: dict[int, tuple[object, ...]] = {}
        self._ranking = rankings.for_group(kept, bonus)  # its keys hold the bonus
        for agent in kept:
            self._join(agent.index)
        trackers.groups.append(self)

    def _trackers(self) -> list[Tracker]:
        if self._all is None:  # fixed once the constructor registered them
            self._all = ([s.tracker for s in (*self.hard, *self.soft)]
                         + [t for _, t in self.affinity] + [t for _, t, _ in self.preferred])
        return self._all

    def _add_symmetric(
        self, agent: feasible.AgentState, term: pods.PodAffinityTerm, weight: int
    ) -> None:
        if self._selects_pod(term):
            self._add_weight(agent, term.topology_key, weight)

    def _selects_pod(self, term: pods.PodAffinityTerm) -> bool:
        selected = self._selected.get(id(term))
        if selected is None:
            pod = self.pod
            selected = self._selected[id(term)] = term.selects(
                namespace=pod.namespace, labels=pod.labels_dict,
                namespace_labels=self._namespace_labels)
        return selected

    def _add_weight(self, agent: feasible.AgentState, topology_key: str, weight: int) -> None:
        value = agent.view.labels.get(topology_key)
        if value is not None:
            key = (topology_key, value)
            self.symmetric[key] = self.symmetric.get(key, 0) + weight

    def note_terms(self, agent: feasible.AgentState, pod: pods.PodRequest) -> None:
        """A pod of the pass landed on ``agent``: its own terms may score this group. (Which
        of them select this group's pods is worked out once per placement signature: pods
        of one signature have equal terms, and each its own term objects.)"""
        weights = self._noted.get(id(pod.placement_signature))
        if weights is None:
            weights = self._noted[id(pod.placement_signature)] = [
                (term.topology_key, sign * (term.weight or 1))
                for terms, sign in ((pod.pod_affinity, 1), (pod.preferred_pod_affinity, 1),
                                    (pod.preferred_anti_affinity, -1))
                for term in terms if self._selects_pod(term)]
        for topology_key, weight in weights:
            self._add_weight(agent, topology_key, weight)

    def _class_key(self, index: int) -> tuple[object, ...]:
        labels = self._agents[index].view.labels
        key: list[object] = []
        for name, hostname_counts, counted in self._key_rows:
            value = labels.get(name)
            if hostname_counts is not None:  # the count on this very agent
                key.append(None if value is None else hostname_counts.get(value, 0))
            else:
                key.append(value)
            if counted is not None:  # the tracker's eligible agents
                key.append(index in counted)
        if self.hostname_keys:
            key.append(self.symmetric.get((HOSTNAME, labels.get(HOSTNAME, "")), 0))
        key.append(index in self.ignored)
        return tuple(key)

    def _join(self, index: int, key: tuple[object, ...] | None = None) -> None:
        """``index`` joins the class of ``key`` (its ``_class_key``, worked out if not given)."""
        if key is None:
            key = self._class_key(index)
        self.agent_class[index] = key
        queue = self.classes.get(key)
        if queue is None:
            queue = self.classes[key] = select.CandidateQueue(agents=[], ranking=self._ranking)
        queue.add(index)

    def reclass(self, agent: feasible.AgentState) -> None:
        """A count on ``agent``'s hostname changed: it may belong to another class now."""
        old = self.agent_class.get(agent.index)
        if old is None:
            return
        queue = self.classes[old]
        if agent.index not in queue.members:
            return  # dropped for good (resources, ports ...)
        key = self._class_key(agent.index)
        if key != old:
            queue.remove(agent.index)
            self._join(agent.index, key)

    # -- one pod ----------------------------------------------------------------------------

    def _filter(self, labels: Mapping[str, str], minimum: list[int]) -> str | None:
        for (name, counts, self_match, max_skew), low in zip(self._hard_rows, minimum,
                                                               strict=True):
            if counts.get(labels[name], 0) + self_match - low > max_skew:
                return feasible.REASON_SPREAD
        if self.affinity:
            exist = all(t.counts.get(labels[term.topology_key], 0) > 0
                        for term, t in self.affinity)
            if not exist and not (
                self.self_affine and all(t.total == 0 for _, t in self.affinity)
            ):
                return feasible.REASON_POD_AFFINITY
        return None

    def _raw(self, labels: Mapping[str, str], ignored: bool) -> tuple[int, int]:
        spread = 0.0
        if not ignored:
            for name, counts, log_weight, extra in self._soft_rows:
                value = labels.get(name)
                if value is not None:
                    spread += counts.get(value, 0) * log_weight + extra
        inter = 0
        for name, counts, weight in self._pref_rows:
            value = labels.get(name)
            if value is not None:
                inter += weight * counts.get(value, 0)
        for (key, value), weight in self.symmetric.items():
            if labels.get(key) == value:
                inter += weight
        return round(spread), inter

    def minimum(self) -> list[int]:
        """Per DoNotSchedule constraint, the smallest count of its domains (0 while fewer
        domains than minDomains exist)."""
        minimum = []
        for hard in self.hard:
            counts = hard.tracker.counts
            low = min((counts.get(d, 0) for d in hard.domains), default=0)
            minimum.append(low if len(hard.domains) >= hard.constraint.min_domains else 0)
        return minimum

    def counters(self, agent: feasible.AgentState, facts: PodFacts) -> list[Tracker]:
        """The trackers of this group's filters that count a pod of ``facts`` running on
        ``agent`` (what its removal lowers, for ``refusal``)."""
        found = [s.tracker for s in self.hard if s.tracker.counts_pod(agent, facts)]
        return found + [t for _, t in self.affinity if t.counts_pod(agent, facts)]

    def missing(self, agent: feasible.AgentState) -> str | None:
        """Why ``agent`` is no candidate whatever runs there: a DoNotSchedule constraint's or
        a required affinity term's topology key is not among its labels."""
        labels = agent.view.labels
        if any(s.constraint.topology_key not in labels for s in self.hard):
            return feasible.REASON_SPREAD_LABEL
        if any(term.topology_key not in labels for term, _ in self.affinity):
            return feasible.REASON_POD_AFFINITY
        return None

    def refusal(self, agent: feasible.AgentState, removed: Sequence[Sequence[Tracker]],
                minimum: Sequence[int]) -> str | None:
        """``choose``'s filters for ``agent`` with some pods running there gone (each given
        by its ``counters``), as kube-scheduler's preemption asks them (the RemovePod
        extensions): the counts are lowered for the question and restored after it.
        ``minimum``: ``self.minimum()`` with every pod there (removing pods of one agent
        lowers only its own domain's counts). The agent has every key (``missing``)."""
        labels = agent.view.labels
        for trackers in removed:
            for t in trackers:
                t.counts[labels[t.key]] -= 1
                t.total -= 1
        try:
            low = list(minimum)
            for i, hard in enumerate(self.hard):
                value = labels[hard.constraint.topology_key]
                if value in hard.domains and len(hard.domains) >= hard.constraint.min_domains:
                    low[i] = min(low[i], hard.tracker.counts.get(value, 0))
            return self._filter(labels, low)
        finally:
            for trackers in removed:
                for t in trackers:
                    t.counts[labels[t.key]] += 1
                    t.total += 1

    def choose(self) -> tuple[select.CandidateQueue, feasible.AgentState] | dict[int, str]:
        """The class and agent for the next pod (the best score plus weighted spread and
        affinity scores), or when no class passes the filters, the reason per agent.

        Each class is judged by any of its members (they share every count); normalising
        needs every class's raw scores, but only the classes that may still win are read
        through their queues (a class's best is at most the ranking's best)."""
        minimum = self.minimum()
        filters = bool(self.hard or self.affinity)
        agents = self._agents
        refused: list[tuple[select.CandidateQueue, str]] = []
        queues: list[select.CandidateQueue] = []  # the classes that pass, their raw scores:
        spreads: list[tuple[int, bool]] = []
        inters: list[int] = []
        for key, queue in self.classes.items():
            members = queue.members
            if not members:
                continue
            labels = agents[next(iter(members))].view.labels
            reason = self._filter(labels, minimum) if filters else None
            if reason is not None:
                refused.append((queue, reason))
                continue
            ignored = bool(key[-1])
            spread, inter = self._raw(labels, ignored)
            queues.append(queue)
            spreads.append((spread, ignored))
            inters.append(inter)
        if not queues:
            return {i: reason for queue, reason in refused for i in queue.members}
        scores = [0.0] * len(queues)
        if self.soft:
            scores = [total + rank.WEIGHT_SPREAD * score
                      for total, score in zip(scores, normalise_spread(spreads), strict=True)]
        if self.preferred or self.symmetric:
            scores = [total + rank.WEIGHT_INTER_POD_AFFINITY * score
                      for total, score in zip(scores, normalise_inter(inters), strict=True)]
        totals = sorted(zip(scores, range(len(queues)), strict=True), reverse=True)
        top = -self._ranking.first_value() if self._ranking.order else 0.0
        found: tuple[select.CandidateQueue, feasible.AgentState] | None = None
        found_key: tuple[float, int, int] | None = None
        for total, n in totals:
            if found_key is not None and top + total < -found_key[0]:
                break  # no agent of this class (or of the next) can beat it
            queue = queues[n]
            best = queue.best(agents)
            if best is None:
                continue
            order = self._ranking.key_of(best.index)  # (every class reads the group's)
            key = (order[0] - total, order[1], order[2])
            if found_key is None or key < found_key:
                found, found_key = (queue, best), key
        if found is None:
            return {i: reason for queue, reason in refused for i in queue.members}
        return found

    def rejections(self) -> list[tuple[int, feasible.Rejection]]:
        return [r for queue in self.classes.values() for r in queue.rejections]

