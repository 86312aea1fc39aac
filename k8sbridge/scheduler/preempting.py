"""Preemption inside a placement pass: who may preempt, where, and what stays reserved.

Why in the pass (and not after it): a preemption frees resources on one agent for one pod, and
Mesos gives them back only in a later offer. Until then nothing else may take that room, in
this pass (a lower-priority pod placed after the preemptor would take the offered part) or in
the next ones. So, as kube-scheduler adds nominated pods to their node for every pod of lower
or equal priority, an agent nominated for a pending pod is closed to the pods of lower or
equal priority placed after it (a constant reason in their explanation), until the nominated
pod is placed or gone. A nominated pod whose lower-priority pods there are still terminating
waits for them instead of preempting again (``PodEligibleToPreemptOthers``).

Candidates are the agents that pass the pod's static checks except "has an offer" (a full
agent sends none, and is exactly where preemption helps); the victims and the choice of agent
are ``model.preemption``'s. The filters that count pods are placement's own, asked with the
victims gone, as kube-scheduler runs its filters again in ``SelectVictimsOnNode``:
``topology.ScannedGroup.refusal`` (DoNotSchedule spread, required pod affinity) on counts
lowered by the victims, and ``feasible.check_anti_affinity`` (required anti-affinity, both
ways) for each pod of the agent's domains, refusing while one that refuses on its own is left.
An agent where required pod affinity fails before any pod is removed, or that lacks a
constraint's topology key, is one where preemption is not helpful (kube-scheduler's
UnschedulableAndUnresolvable). Pure: the loop turns ``plan.Preemption`` into API calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from k8sbridge.model import cluster, ids, pods, preemption
from k8sbridge.scheduler import feasible, plan, topology

__all__ = ["NEVER", "NO_VICTIMS", "NOT_HELPFUL", "REASON_NOMINATED", "TERMINATING",
           "Preemptions"]

REASON_NOMINATED = "node(s) were nominated for a pending pod of higher priority"
#: Preemption searches per pass (the other pods preempt in later passes: each search reads
#: every agent's pods), and candidates enough to stop looking (kube-scheduler's
#: minCandidateNodesPercentage and minCandidateNodesAbsolute defaults)
MAX_ATTEMPTS = 16
CANDIDATES_PERCENT = 10
MIN_CANDIDATES = 100
# kube-scheduler's PostFilter words, appended to the explanation of a pod preemption was
# tried for and could not help
NEVER = "preemption: not eligible due to preemptionPolicy=Never."
TERMINATING = "preemption: not eligible due to a terminating pod on the nominated node."
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"


class Preemptions:
    """One pass's preemption state (``enabled`` False: only reservations are kept)."""

    __slots__ = ("enabled", "reserved", "found", "_agents", "_lowest", "_overhead",
                 "_implicit", "_budgets", "_by_node", "_failed", "_settling",
                 "cleared", "_victims", "_attempts", "_counting", "_placed")

    def __init__(
        self,
        *,
        agents: list[feasible.AgentState],
        pending: Sequence[pods.PodRequest],
        view: cluster.ClusterView,
        overhead: Sequence[tuple[str, float]],
        implicit: Sequence[pods.Toleration],
        enabled: bool,
    ) -> None:
        self.enabled = enabled
        self._agents = agents
        self._overhead = [(n, feasible.to_milli(v)) for n, v in overhead]
        self._implicit = implicit
        self._budgets = view.budgets
        self._settling = view.settling
        #: nominated pods preemption found no room for: their nomination is cleared
        self.cleared: list[tuple[ids.PodKey, ids.PodUid]] = []
        self._by_node = {a.view.node_name: a.index for a in agents}
        #: agent index -> (priority, key) of the pending pods nominated there
        self.reserved: dict[int, list[tuple[int, str]]] = {}
        for pod in pending:
            index = self._by_node.get(pod.nominated_node) if pod.nominated_node else None
            if index is not None:
                self.reserved.setdefault(index, []).append((pod.priority, pod.key))
        running = [p.priority for a in agents for p in a.view.pods if not p.terminating]
        self._lowest = min(running) if running else None
        self.found: list[plan.Preemption] = []
        # pods like these found no victims in this pass (later ones find fewer still)
        self._failed: dict[tuple[object, ...], str] = {}
        self._victims: dict[int, list[preemption.Victim]] = {}
        self._attempts = 0
        # the filters that count pods, per group of pods that preempt (``_Counting``), and
        # the running pods by key (built for the first of them)
        self._counting: dict[tuple[object, ...], _Counting] = {}
        self._placed: dict[ids.PodKey, cluster.PlacedPod] | None = None

    def blocks(self, index: int, pod: pods.PodRequest) -> bool:
        """Is agent ``index`` kept for another pending pod of higher or equal priority?"""
        return any(priority >= pod.priority and key != pod.key
                   for priority, key in self.reserved.get(index, ()))

    def placed(self, pod: pods.PodRequest) -> None:
        """The pod was placed: its nomination (if any) holds nothing any more."""
        for index, entries in self.reserved.items():
            self.reserved[index] = [e for e in entries if e[1] != pod.key]

    def _waiting(self, pod: pods.PodRequest) -> bool:
        """Nominated, and its victims there are still terminating (or gone so recently that
        Mesos may not have offered their resources yet: ``ClusterView.settling``)."""
        index = self._by_node.get(pod.nominated_node) if pod.nominated_node else None
        return index is not None and (pod.key in self._settling or any(
            p.terminating and p.priority < pod.priority
            for p in self._agents[index].view.pods))

    def _clear(self, pod: pods.PodRequest) -> None:
        """Preemption found no room for a nominated pod: its nomination goes (kube-scheduler
        clears ``nominatedNodeName`` then), and so does the agent kept for it."""
        if pod.nominated_node:
            self.placed(pod)
            self.cleared.append((pod.key, pod.uid))

    def _victim(self, p: cluster.PlacedPod) -> preemption.Victim:
        held = {n: feasible.to_milli(v) for n, v in p.scalars}
        for name, milli in self._overhead:
            held[name] = held.get(name, 0) + milli
        namespace, _, name = str(p.key).partition("/")
        return preemption.Victim(
            key=p.key, uid=p.uid, namespace=p.namespace, name=name or namespace,
            labels=p.labels, priority=p.priority, started=p.started,
            held=tuple(sorted(held.items())), host_ports=p.host_ports)

    def _victims_on(self, agent: feasible.AgentState) -> list[preemption.Victim]:
        """The pods of an agent that could be victims (built once per pass: an agent whose
        pods are taken is kept for its preemptor, no other pod looks at it again)."""
        found = self._victims.get(agent.index)
        if found is None:
            found = self._victims[agent.index] = [
                self._victim(p) for p in agent.view.pods if not p.terminating]
        return found

    def _static_ok(self, pod: pods.PodRequest, agent: feasible.AgentState) -> bool:
        implicit = self._implicit
        return not (feasible.check_node_name(pod, agent)
                    or feasible.check_unschedulable(pod, agent, implicit=implicit)
                    or feasible.check_taints(pod, agent, implicit=implicit)
                    or feasible.check_node_affinity(pod, agent))

    def _counting_for(self, pod: pods.PodRequest, scan: topology.ScannedGroup | None,
                      domains: feasible.Domains | None) -> _Counting:
        if self._placed is None:
            self._placed = {p.key: p for a in self._agents for p in a.view.pods}
        counting = self._counting.get(pod.counted_signature)
        if counting is None:
            counting = self._counting[pod.counted_signature] = _Counting(
                pod, scan, domains, self._placed)
        counting.begin()
        return counting

    def attempt(
        self, pod: pods.PodRequest, need: Sequence[tuple[str, int]],
        ports: Sequence[tuple[int, str]], *,
        scan: topology.ScannedGroup | None = None, domains: feasible.Domains | None = None,
    ) -> str:
        """Preempt for ``pod`` (which fits nowhere) if kube-scheduler would, and reserve the
        chosen agent for it. Returns why not in kube-scheduler's words ("" when it did, or
        when no pod of lower priority runs anywhere: then preemption is not tried).
        ``scan``: the pod's group when it counts pods per domain; ``domains``: the pass's
        anti-affinity index when some required anti-affinity concerns the pod."""
        if not self.enabled or pod.node_name:
            return ""
        tried = self._lowest is not None and pod.priority > self._lowest
        if pod.preempt_never:
            return NEVER if tried else ""
        if self._waiting(pod):
            return TERMINATING
        if not tried:
            self._clear(pod)
            return ""
        if scan is not None and not (scan.hard or scan.affinity):
            scan = None  # only scores: nothing to ask with victims gone
        counted = scan is not None or domains is not None
        failure = (pod.counted_signature if counted else pod.placement_signature, pod.priority)
        if failure in self._failed:
            self._clear(pod)
            return self._failed[failure]
        if self._attempts >= MAX_ATTEMPTS:
            return ""  # tried in a later pass
        self._attempts += 1
        wanted = dict(need)
        candidates: list[preemption.Candidate] = []
        unhelpful = clean = 0
        refused: dict[str, int] = {}
        enough = max(MIN_CANDIDATES, len(self._agents) * CANDIDATES_PERCENT // 100)
        counting = self._counting_for(pod, scan, domains) if counted else None
        for agent in self._agents:
            if not self._static_ok(pod, agent) or counting is not None and counting.hopeless(
                    agent):
                unhelpful += 1
                continue
            if self.blocks(agent.index, pod) or clean and len(candidates) >= enough:
                continue  # (kube-scheduler too stops looking once it has enough)
            check = _Refusal(counting, agent) if counting is not None else None
            node = preemption.NodeState(
                index=agent.index, free={n: agent.free(n) for n in wanted},
                pods=self._victims_on(agent),
                max_pods=agent.view.max_pods, pod_count=len(agent.view.pods) + agent.placed,
                offered_ports=frozenset(port for port, _ in ports
                                        if any(pool.has_port(port) for pool in agent.pools)))
            found = preemption.select_victims(priority=pod.priority, need=wanted, ports=ports,
                                              node=node, budgets=self._budgets, refusal=check)
            if found is not None:
                candidates.append(found)
                clean += not found.violations
            elif check is not None and check.first:
                refused[check.first] = refused.get(check.first, 0) + 1
        chosen = preemption.pick(candidates)
        if chosen is None:
            others = len(self._agents) - unhelpful - sum(refused.values())
            counts = [(others, NO_VICTIMS), (unhelpful, NOT_HELPFUL),
                      *((n, why) for why, n in refused.items())]
            shown = ", ".join(sorted(f"{n} {why}" for n, why in counts if n))
            message = self._failed[failure] = (
                f"preemption: 0/{len(self._agents)} nodes are available: {shown}.")
            self._clear(pod)
            return message
        agent = self._agents[chosen.index]
        self.reserved.setdefault(agent.index, []).append((pod.priority, pod.key))
        self.found.append(plan.Preemption(
            pod_key=pod.key, pod_uid=pod.uid, agent_id=agent.view.agent_id,
            node_name=agent.view.node_name,
            victims=tuple((v.key, v.uid) for v in chosen.victims)))
        return ""


class _Counting:
    """The filters that count pods, for the preemption attempts of one group of pods (equal
    ``counted_signature``) in a pass: the group's spread and pod affinity
    (``ScannedGroup.refusal``) and required anti-affinity both ways
    (``feasible.check_anti_affinity``). What a running pod changes for them (the counts it is
    in, whether it refuses the pod on its own: the check is an "any" over pods, failing while
    one of those is left) is found once per pass; the spread minimums once per attempt. A
    node with some of its pods gone then costs only what those pods change."""

    __slots__ = ("pod", "scan", "minimum", "domains", "_placed", "_refusing", "counters",
                 "entries", "known")

    def __init__(self, pod: pods.PodRequest, scan: topology.ScannedGroup | None,
                 domains: feasible.Domains | None,
                 placed: dict[ids.PodKey, cluster.PlacedPod]) -> None:
        self.pod = pod
        self.scan = scan
        self.minimum: list[int] = []
        self.domains = domains
        self._placed = placed
        # per domain: how many of its pods were judged, and those refusing (with why)
        self._refusing: dict[tuple[str, str], tuple[int, list[tuple[feasible.PodEntry, str]]]] = {}
        # per running pod (when first asked): the trackers counting it, its anti-affinity
        # entry, whether either concerns the pod
        self.counters: dict[ids.PodKey, list[topology.Tracker]] = {}
        self.entries: dict[ids.PodKey, feasible.PodEntry] = {}
        self.known: dict[ids.PodKey, bool] = {}

    def begin(self) -> None:
        """A new attempt: pods were placed since the last one."""
        self.minimum = self.scan.minimum() if self.scan is not None else []

    def hopeless(self, agent: feasible.AgentState) -> bool:
        """Does the agent lack a topology key, or fail required pod affinity before any pod
        is removed (kube-scheduler's UnschedulableAndUnresolvable: not helpful)?"""
        scan = self.scan
        if scan is None:
            return False
        if scan.missing(agent) is not None:
            return True
        return bool(scan.affinity) and scan.refusal(
            agent, (), self.minimum) == feasible.REASON_POD_AFFINITY

    def refusing(self, agent: feasible.AgentState) -> list[list[tuple[feasible.PodEntry, str]]]:
        """Per domain of ``agent``, the pods there that refuse the pod on their own, each
        with ``check_anti_affinity``'s reason (a domain's pods only grow during a pass)."""
        domains = self.domains
        if domains is None:
            return []
        out = []
        for key in domains.keys:
            value = agent.view.labels.get(key)
            if value is None:
                continue
            entries = domains.pods.get((key, value), [])
            judged, found = self._refusing.get((key, value), (0, []))
            for entry in entries[judged:]:
                alone = feasible.Domains(keys={key}, namespace_labels=domains.namespace_labels)
                alone.pods[(key, value)] = [entry]
                rejection = feasible.check_anti_affinity(self.pod, agent, alone)
                if rejection is not None:
                    found.append((entry, rejection.reason))
            self._refusing[(key, value)] = (len(entries), found)
            if found:
                out.append(found)
        return out

    def concerns(self, agent: feasible.AgentState, key: ids.PodKey,
                 refusing: list[list[tuple[feasible.PodEntry, str]]]) -> bool:
        """Could removing the running pod ``key`` (of ``agent``) change the answer?"""
        found = self.known.get(key)
        if found is None:
            p = self._placed[key]
            scan = self.scan
            counters = self.counters[key] = [] if scan is None else scan.counters(
                agent, (p.namespace, p.labels, p.owner_uid))
            entry = self.entries[key] = (p.namespace, dict(p.labels), p.anti_affinity)
            found = self.known[key] = bool(counters) or any(
                entry == other for domain in refusing for other, _ in domain)
        return found


class _Refusal:
    """The filters that count pods, for one agent with some of its pods gone
    (``preemption.Refusal``): only the removed pods some count or refusing pod is about
    change the answer. ``first`` keeps why the pod did not fit with every pod of lower
    priority gone (the agent's reason in the explanation)."""

    __slots__ = ("_counting", "_agent", "_refusing", "first")

    def __init__(self, counting: _Counting, agent: feasible.AgentState) -> None:
        self._counting = counting
        self._agent = agent
        self._refusing: list[list[tuple[feasible.PodEntry, str]]] | None = None  # (when asked)
        self.first: str | None = None

    def _refusing_pods(self) -> list[list[tuple[feasible.PodEntry, str]]]:
        if self._refusing is None:
            self._refusing = self._counting.refusing(self._agent)
        return self._refusing

    def concerns(self, v: preemption.Victim) -> bool:
        return self._counting.concerns(self._agent, v.key, self._refusing_pods())

    def _anti(self, removed: Sequence[ids.PodKey]) -> str | None:
        """A refusing pod left in one of the agent's domains (equal pods are interchangeable:
        each removed pod takes one equal entry away)."""
        entries = self._counting.entries
        for refusing in self._refusing_pods():
            left = [entry for entry, _ in refusing]
            for key in removed:
                entry = entries[key]
                if entry in left:
                    left.remove(entry)
            if left:
                return next(why for entry, why in refusing if entry in left)
        return None

    def __call__(self, removed: Sequence[preemption.Victim]) -> str | None:
        counting = self._counting
        known = counting.known  # (asked first with every pod of lower priority gone)
        relevant = [v.key for v in removed
                    if (known[v.key] if v.key in known else self.concerns(v))]
        scan = counting.scan
        why = None if scan is None else scan.refusal(
            self._agent, [counting.counters[key] for key in relevant], counting.minimum)
        if why is None and self._refusing_pods():
            why = self._anti(relevant)
        if self.first is None:
            self.first = why or ""
        return why
