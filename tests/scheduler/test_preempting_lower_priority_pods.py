"""Priority and preemption from static inputs, as kube-scheduler's PrioritySort and
DefaultPreemption decide: the order pods are taken in, which pods are evicted where (fewest,
lowest priority, PodDisruptionBudgets respected where possible), ``preemptionPolicy: Never``,
and the nominated agent kept for its pod until the freed room is offered again."""

from __future__ import annotations

from typing import Any

from k8sbridge.model import cluster, ids, pods, preemption
from k8sbridge.model.podspec import LabelSelector
from k8sbridge.scheduler import preempting, stack
from tests.scheduler.test_placing_pods import agent

NO_OVERHEAD = stack.StackSettings(executor_overhead=())


def pod(name: str, cpu: str = "1", *, priority: int = 0, never: bool = False,
        nominated: str = "", app: str = "") -> pods.PodRequest:
    spec: dict[str, Any] = {"priority": priority, "containers": [
        {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}}}]}
    if never:
        spec["preemptionPolicy"] = "Never"
    raw: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                     "labels": {"app": app or name}},
        "spec": spec}
    if nominated:
        raw["status"] = {"nominatedNodeName": nominated}
    return pods.parse_pod(raw)


def running(name: str, cpu: str = "1", *, priority: int = 0, started: float = 0.0,
            app: str = "", terminating: bool = False) -> cluster.PlacedPod:
    return cluster.PlacedPod.of(pod(name, cpu, priority=priority, app=app), started=started,
                                terminating=terminating)


def full(n: int, *placed: cluster.PlacedPod, free: str = "",
         taints: tuple[cluster.Taint, ...] = ()) -> cluster.AgentView:
    """An agent whose pods hold everything (no offer) unless ``free`` is offered."""
    return agent(n, free, placed=placed, taints=(cluster.PROVIDER_TAINT, *taints))


def place(*pending: pods.PodRequest, agents: tuple[cluster.AgentView, ...],
          budgets: tuple[preemption.DisruptionBudget, ...] = (),
          settling: frozenset[str] = frozenset()) -> Any:
    view = cluster.ClusterView(agents=agents, budgets=budgets, settling=settling)
    return stack.place(pending=list(pending), view=view, settings=NO_OVERHEAD)


def victims(result: Any) -> list[str]:
    assert len(result.preemptions) == 1, result.preemptions
    return sorted(str(k) for k, _ in result.preemptions[0].victims)


def test_pods_are_taken_by_priority_then_in_queue_order() -> None:
    queue = [pod("a", "2"), pod("b", "2", priority=5), pod("c", "2"), pod("d", "2", priority=5)]
    result = place(*queue, agents=(agent(1, "cpus:4;mem:4096"),))
    assert [str(a.pod_key) for a in result.assignments] == ["default/b", "default/d"]
    assert not result.preemptions  # nothing runs yet: nobody to preempt


def test_the_fewest_lowest_priority_pods_are_evicted() -> None:
    agents = (full(1, running("p0", priority=0), running("p1", priority=1),
                   running("p2", priority=2), running("p3", priority=3)),)
    result = place(pod("big", "2", priority=10), agents=agents)
    assert not result.assignments
    assert victims(result) == ["default/p0", "default/p1"]
    chosen = result.preemptions[0]
    assert (chosen.pod_key, chosen.node_name) == ("default/big", "h1")
    assert dict(chosen.victims)[ids.PodKey("default/p0")] == "uid-p0"


def test_offered_room_counts_so_fewer_pods_go() -> None:
    agents = (full(1, running("p0"), running("p1"), free="cpus:1;mem:4096"),)
    result = place(pod("big", "2", priority=10), agents=agents)
    assert len(victims(result)) == 1


def test_equal_or_higher_priority_pods_are_never_victims() -> None:
    agents = (full(1, running("same", priority=10), running("higher", priority=20)),
              full(2, running("low"), taints=(cluster.Taint(key="gpu"),)))
    result = place(pod("big", "1", priority=10), agents=agents)
    assert not result.preemptions
    assert result.unplaced[0].explanation.message == (
        "0/2 nodes are available: 1 node(s) had no offer from the Mesos master, 1 node(s) had "
        "untolerated taint {gpu: }. preemption: 0/2 nodes are available: 1 No preemption "
        "victims found for incoming pod, 1 Preemption is not helpful for scheduling.")
    # with no pod of lower priority anywhere preemption is not tried (nothing is added)
    result = place(pod("big", "1", priority=5), agents=agents[:1])
    assert result.unplaced[0].explanation.preemption == ""


def test_the_agent_whose_victims_matter_least_is_chosen() -> None:
    agents: tuple[cluster.AgentView, ...] = (
        full(1, running("a-low", "2", priority=1)),
        full(2, running("b-lowest", "2", priority=0)),
        full(3, running("c1", priority=0), running("c2", priority=0)),
    )
    result = place(pod("big", "2", priority=10), agents=agents)
    assert result.preemptions[0].node_name == "h2"  # lowest highest-priority victim, fewest
    # among equals, the agent whose most important victim started latest
    agents = (full(1, running("old", "2", started=1.0)), full(2, running("new", "2", started=9.0)))
    assert place(pod("big", "2", priority=10), agents=agents).preemptions[0].node_name == "h2"


def test_budgets_are_respected_where_another_choice_exists() -> None:
    guarded = preemption.DisruptionBudget(
        namespace="default", selector=LabelSelector(match_labels=(("app", "db"),)), allowed=0)
    agents: tuple[cluster.AgentView, ...] = (
        full(1, running("db-1", "2", app="db")), full(2, running("web-1", "2", priority=5)))
    result = place(pod("big", "2", priority=10), agents=agents, budgets=(guarded,))
    assert result.preemptions[0].node_name == "h2"  # a higher victim, but no violation
    # on one agent, the pods a budget protects are reprieved first
    agents = (full(1, running("db-1", app="db"), running("web-1"), running("web-2")),)
    result = place(pod("big", "2", priority=10), agents=agents, budgets=(guarded,))
    assert victims(result) == ["default/web-1", "default/web-2"]
    # and when only a violation makes room, it is made (kube-scheduler does too)
    agents = (full(1, running("db-1", "2", app="db")),)
    assert victims(place(pod("big", "2", priority=10), agents=agents,
                         budgets=(guarded,))) == ["default/db-1"]


def test_a_budget_with_disruptions_left_is_not_violated() -> None:
    budget = preemption.parse_budget({
        "metadata": {"namespace": "default", "name": "db"},
        "spec": {"selector": {"matchLabels": {"app": "db"}}},
        "status": {"disruptionsAllowed": 1, "disruptedPods": {"db-0": "2026-01-01T00:00:00Z"}}})
    assert budget is not None and budget.allowed == 1 and budget.disrupted == {"db-0"}
    node = preemption.NodeState(index=0, free={"cpus": 0}, pods=[
        preemption.Victim(key=ids.PodKey(f"default/db-{i}"), uid=ids.PodUid(f"u{i}"),
                          namespace="default", name=f"db-{i}", labels=(("app", "db"),),
                          priority=0, started=float(i), held=(("cpus", 1000),))
        for i in range(3)])
    found = preemption.select_victims(priority=1, need={"cpus": 3000}, node=node,
                                      budgets=[budget])
    # db-0 is already disrupted, db-1 uses the one disruption allowed, db-2 violates
    assert found is not None and found.violations == 1
    assert preemption.parse_budget({"spec": {}}) is None  # no selector: covers nothing


def test_never_policy_pods_wait_instead() -> None:
    agents = (full(1, running("low")),)
    result = place(pod("polite", priority=10, never=True), agents=agents)
    assert not result.preemptions and result.unplaced
    assert result.unplaced[0].explanation.message.endswith(
        ". preemption: not eligible due to preemptionPolicy=Never.")


def test_agents_the_pod_may_not_use_are_no_candidates() -> None:
    tainted = full(1, running("low"), taints=(cluster.Taint(key="gpu", value="yes"),))
    result = place(pod("big", priority=10), agents=(tainted,))
    assert not result.preemptions
    assert result.unplaced[0].explanation.preemption == (
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")


def test_the_nominated_agent_is_kept_for_its_pod_in_the_same_pass() -> None:
    agents = (full(1, running("low", "2"), free="cpus:1;mem:4096"),)
    result = place(pod("big", "3", priority=10), pod("small", "1", priority=5), agents=agents)
    assert victims(result) == ["default/low"]
    assert not result.assignments  # "small" would have taken the offered core
    assert preempting.REASON_NOMINATED in result.unplaced[-1].explanation.message


def test_a_nominated_pod_waits_for_its_victims_then_takes_the_room() -> None:
    going = full(1, running("low", "2", terminating=True))
    result = place(pod("big", "2", priority=10, nominated="h1"), agents=(
        going, full(2, running("other", "2"))))
    assert not result.preemptions  # no second preemption while the first one's pods go
    assert result.unplaced[0].explanation.preemption == preempting.TERMINATING
    # the room comes back in an offer: the preemptor takes it, not a pod queued before it
    back = agent(1, "cpus:2;mem:4096")
    result = place(pod("first", "2", priority=10), pod("big", "2", priority=10, nominated="h1"),
                   agents=(back,))
    assert [str(a.pod_key) for a in result.assignments] == ["default/big"]
    # while its victims' resources may still be on their way back (settling), a
    # lower-priority pod does not get the agent, and no other pods are preempted
    big = pod("big", "4", priority=10, nominated="h1")
    result = place(pod("small", "1"), big, agents=(back, full(2, running("other", "2"))),
                   settling=frozenset({"default/big"}))
    assert not result.assignments and not result.preemptions and not result.cleared
    assert result.unplaced[0].explanation.preemption == preempting.TERMINATING


def test_a_nomination_preemption_cannot_serve_any_more_is_cleared() -> None:
    back = agent(1, "cpus:2;mem:4096")
    big = pod("big", "4", priority=10, nominated="h1")
    result = place(pod("small", "1"), big, agents=(back,))
    # nothing of lower priority runs anywhere: kube-scheduler clears nominatedNodeName
    assert result.cleared == (("default/big", "uid-big"),)
    assert [str(a.pod_key) for a in result.assignments] == ["default/small"]
    result = place(big, agents=(back, full(2, running("same", priority=10))))
    assert result.cleared == (("default/big", "uid-big"),) and not result.preemptions


def test_a_pass_preempts_for_a_bounded_number_of_pods() -> None:
    agents = tuple(full(n, running(f"low-{n}", "2")) for n in range(1, 21))
    result = place(*(pod(f"big-{n}", "2", priority=10) for n in range(20)), agents=agents)
    assert len(result.preemptions) == preempting.MAX_ATTEMPTS  # the others in later passes
    assert len({p.node_name for p in result.preemptions}) == preempting.MAX_ATTEMPTS
    # (neither those that preempted nor those not tried yet say anything of preemption)
    assert not any(u.explanation.preemption for u in result.unplaced)
