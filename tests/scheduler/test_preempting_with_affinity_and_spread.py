"""Preemption asks the filters that count pods again with the victims gone, as kube-scheduler's
``SelectVictimsOnNode`` does: required pod anti-affinity (both directions), required pod
affinity and DoNotSchedule topology spread, with every pod of lower priority removed first and
then reprieved one by one, the most important first. Tables of kube-scheduler's documented
behaviour ("Pod Priority and Preemption": inter-pod affinity on lower-priority pods)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from k8sbridge.model import cluster, ids, pods, preemption
from k8sbridge.scheduler import feasible
from tests.scheduler.test_placing_pods import agent
from tests.scheduler.test_preempting_lower_priority_pods import place

HOSTNAME = cluster.LABEL_HOSTNAME
ZONE = cluster.LABEL_ZONE


def _term(app: str, key: str) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}


def pod(name: str, cpu: str = "1", *, priority: int = 0, app: str = "", anti: str = "",
        affinity: str = "", key: str = HOSTNAME, spread: int = 0) -> pods.PodRequest:
    """``anti`` / ``affinity``: the app its required term selects (on ``key``); ``spread``: a
    DoNotSchedule zone constraint of that maxSkew over pods of its own app."""
    spec: dict[str, Any] = {"priority": priority, "containers": [
        {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}}}]}
    terms: dict[str, Any] = {}
    if anti:
        terms["podAntiAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": [_term(anti, key)]}
    if affinity:
        terms["podAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": [_term(affinity, key)]}
    if terms:
        spec["affinity"] = terms
    if spread:
        spec["topologySpreadConstraints"] = [{
            "maxSkew": spread, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": app or name}}}]
    return pods.parse_pod({
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                     "labels": {"app": app or name}},
        "spec": spec})


def running(name: str, cpu: str = "1", *, started: float = 0.0, **kw: Any) -> cluster.PlacedPod:
    return cluster.PlacedPod.of(pod(name, cpu, **kw), started=started)


def node(n: int, *placed: cluster.PlacedPod, free: str = "",
         zone: str | None = None) -> cluster.AgentView:
    """An agent running ``placed``, offering ``free`` (nothing: it is full)."""
    return agent(n, free, placed=placed, zone=zone)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    preemptor: pods.PodRequest
    agents: tuple[cluster.AgentView, ...]
    node: str | None  # the nominated node (None: no preemption)
    victims: tuple[str, ...] = ()
    why: str = ""  # the explanation's preemption part when there is none


OFFER = "cpus:2;mem:4096"
NO_PREEMPTION = "preemption: 0/{n} nodes are available: {shown}."

CASES = [
    Case("required anti-affinity to a lower-priority pod: that pod goes, no other",
         pod("high", priority=10, anti="web"),
         (node(1, running("web"), running("batch"), free=OFFER),
          node(2, running("db", priority=100))),
         node="h1", victims=("default/web",)),
    Case("an existing lower-priority pod's anti-affinity to the preemptor: it goes",
         pod("high", priority=10, app="api"),
         (node(1, running("guard", anti="api"), running("batch"), free=OFFER),),
         node="h1", victims=("default/guard",)),
    Case("anti-affinity to a higher-priority pod: removing the others does not help",
         pod("high", priority=10, anti="web"),
         (node(1, running("web", priority=100), running("batch"), free=OFFER),),
         node=None, why=NO_PREEMPTION.format(
             n=1, shown=f"1 {feasible.REASON_ANTI_AFFINITY}")),
    Case("zone anti-affinity: a higher-priority match elsewhere in the zone stays",
         pod("high", priority=10, anti="web", key=ZONE),
         (node(1, running("web-low", app="web"), free=OFFER, zone="a"),
          node(2, running("web-high", app="web", priority=100), zone="a"),
          node(3, running("web-b", app="web"), running("batch-b"), free=OFFER, zone="b")),
         node="h3", victims=("default/web-b",)),
    Case("required affinity to the pod that would be a victim: the node is no candidate",
         pod("high", priority=10, affinity="db"),
         (node(1, running("db"), running("filler")),),
         node=None, why=NO_PREEMPTION.format(n=1, shown=f"1 {feasible.REASON_POD_AFFINITY}")),
    Case("required affinity to a higher-priority pod: only the other pod goes",
         pod("high", priority=10, affinity="db"),
         (node(1, running("db", priority=20), running("filler")),),
         node="h1", victims=("default/filler",)),
    Case("spread counts the victims as removed: the matching pod goes",
         pod("web", priority=10, spread=1),
         (node(1, running("web-a1", app="web", started=1.0),
               running("web-a2", app="web", started=2.0), free="cpus:1;mem:4096", zone="a"),
          node(2, running("web-b1", "2", app="web", priority=100), zone="b")),
         node="h1", victims=("default/web-a2",)),
    Case("spread a victim set cannot repair: no preemption",
         pod("web", priority=10, spread=1),
         (node(1, running("web-a1", app="web", priority=100),
               running("web-a2", app="web", priority=100), running("batch"), zone="a"),
          node(2, running("batch-b", "2", priority=100), zone="b")),
         node=None, why=NO_PREEMPTION.format(
             n=2, shown=f"1 No preemption victims found for incoming pod, "
                        f"1 {feasible.REASON_SPREAD}")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_preemption_runs_the_counting_filters_with_victims_gone(case: Case) -> None:
    result = place(case.preemptor, agents=case.agents)
    if case.node is None:
        assert not result.preemptions
        if case.why:
            assert result.unplaced[0].explanation.preemption == case.why
        return
    assert len(result.preemptions) == 1, result
    chosen = result.preemptions[0]
    assert chosen.node_name == case.node
    assert tuple(sorted(str(k) for k, _ in chosen.victims)) == case.victims


def test_required_affinity_met_nowhere_says_preemption_is_not_helpful() -> None:
    agents = (node(1, running("filler")), node(2, running("other")))
    result = place(pod("high", priority=10, affinity="db"), agents=agents)
    assert not result.preemptions
    assert result.unplaced[0].explanation.preemption == NO_PREEMPTION.format(
        n=2, shown="2 Preemption is not helpful for scheduling")


class _NeedsP0Gone:
    """Refuses while p0 stays; concerns p0 and p1 only."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def concerns(self, victim: preemption.Victim) -> bool:
        return victim.name in ("p0", "p1")

    def __call__(self, removed: Sequence[preemption.Victim]) -> str | None:
        names = sorted(v.name for v in removed)
        self.asked.append(names)
        return None if "p0" in names else feasible.REASON_ANTI_AFFINITY


def test_the_refusal_is_asked_with_all_lower_pods_gone_then_per_reprieve() -> None:
    low = [preemption.Victim(key=ids.PodKey(f"default/p{i}"), uid=ids.PodUid(f"u{i}"),
                             namespace="default", name=f"p{i}", labels=(), priority=i,
                             started=0.0, held=(("cpus", 1000),)) for i in range(3)]
    refusal = _NeedsP0Gone()
    state = preemption.NodeState(index=0, free={"cpus": 1000}, pods=low)
    found = preemption.select_victims(priority=5, need={"cpus": 1000}, node=state,
                                      refusal=refusal)
    assert found is not None and [v.name for v in found.victims] == ["p0"]
    # all three gone first; then p2 (not concerned: not asked) and p1 are reprieved, the most
    # important first; p0 is not
    assert refusal.asked == [["p0", "p1", "p2"], ["p0"], []]
