"""Gangs: a PodGroup's pods are placed all together or held back, with the offers accounted."""

from __future__ import annotations

from k8sbridge.model import pods
from k8sbridge.scheduler import gangs, plan, stack
from tests.scheduler.test_placing_pods import NO_OVERHEAD, agent, pod, view


def member(name: str, group: str = "gang", cpu: str = "2", node: str = "") -> pods.PodRequest:
    labels = {"app": group, gangs.POD_GROUP_LABEL: group}
    if node:
        return pod(name, cpu, labels=labels, nodeName=node)
    return pod(name, cpu, labels=labels)


def place(pending: list[pods.PodRequest], agents: int, cpus: int = 2,
          groups: dict[gangs.GroupKey, gangs.Gang] | None = None) -> plan.Plan:
    cluster_view = view(*(agent(i, f"cpus:{cpus};mem:4096") for i in range(agents)))
    result = stack.place(pending=pending, view=cluster_view, settings=NO_OVERHEAD)
    return gangs.hold(result, pending=pending,
                      gangs=groups or {("default", "gang"): gangs.Gang(min_member=4)})


def test_a_gang_that_fits_is_placed_whole() -> None:
    result = place([member(f"g{i}") for i in range(4)], agents=4)
    assert sorted(a.pod_key for a in result.assignments) == [f"default/g{i}" for i in range(4)]
    assert not result.unplaced and not result.unused_offer_ids


def test_a_gang_larger_than_the_cluster_launches_nothing_and_says_why() -> None:
    result = place([member(f"g{i}") for i in range(4)], agents=3)
    assert not result.assignments
    assert sorted(result.unused_offer_ids) == ["o0", "o1", "o2"]
    messages = {str(u.pod_key): u.explanation.message for u in result.unplaced}
    assert len(messages) == 4
    held = ("PodGroup default/gang gets rejected due to Pod g3 is unschedulable even after "
            "PostFilter (3/4 members fit, minMember 4)")
    assert [messages[f"default/g{i}"] for i in range(3)] == [held] * 3
    assert messages["default/g3"].startswith("0/3 nodes are available: 3 Insufficient cpu")


def test_running_members_count_towards_min_member() -> None:
    groups = {("default", "gang"): gangs.Gang(min_member=4, running=1)}
    result = place([member(f"g{i}") for i in range(3)], agents=3, groups=groups)
    assert len(result.assignments) == 3 and not result.unplaced


def test_members_bound_already_are_never_held_and_count_as_running() -> None:
    pending = [member("g0", node="h0"), member("g1"), member("g2")]
    groups = {("default", "gang"): gangs.Gang(min_member=4, running=1)}
    result = place(pending, agents=3, groups=groups)
    assert len(result.assignments) == 3
    # without the running one the group is one short: only the bound member goes on
    result = place(pending, agents=3, groups={("default", "gang"): gangs.Gang(min_member=4)})
    assert [a.pod_key for a in result.assignments] == ["default/g0"]
    assert {u.explanation.message for u in result.unplaced} == {
        gangs.too_few(pending[1], current=3, min_member=4),
        gangs.too_few(pending[2], current=3, min_member=4)}


def test_fewer_members_than_min_member_wait_in_coschedulings_words() -> None:
    pending = [member(f"g{i}") for i in range(3)]
    result = place(pending, agents=4)
    assert not result.assignments and len(result.unused_offer_ids) == 4
    assert [u.explanation.message for u in result.unplaced] == [
        f"pre-filter pod g{i} cannot find enough sibling pods, current pods number: 3, "
        "minMember of group: 4" for i in range(3)]


def test_a_pod_naming_a_missing_pod_group_waits() -> None:
    result = place([member("g0", group="nope")], agents=1)
    assert not result.assignments
    assert [u.explanation.message for u in result.unplaced] == ["PodGroup default/nope not found"]


def test_an_offer_shared_with_a_kept_pod_stays_used() -> None:
    pending = [member("g0", cpu="1"), pod("solo", "1")]
    result = place(pending, agents=1)  # one 2-cpu offer holds both
    assert [a.pod_key for a in result.assignments] == ["default/solo"]
    assert result.unused_offer_ids == ()
    assert [u.pod_key for u in result.unplaced] == ["default/g0"]


def test_two_gangs_competing_the_first_whole_the_second_held() -> None:
    first = [member(f"a{i}", group="a") for i in range(3)]
    second = [member(f"b{i}", group="b") for i in range(3)]
    groups = {("default", "a"): gangs.Gang(min_member=3),
              ("default", "b"): gangs.Gang(min_member=3)}
    result = place([*first, *second], agents=4, groups=groups)
    assert sorted(a.pod_key for a in result.assignments) == ["default/a0", "default/a1",
                                                             "default/a2"]
    assert sorted(u.pod_key for u in result.unplaced) == [f"default/b{i}" for i in range(3)]
    assert len(result.unused_offer_ids) == 1


def test_pods_of_no_group_pass_through_untouched() -> None:
    pending = [pod("x", "1"), pod("y", "1")]
    cluster_view = view(agent(0, "cpus:1;mem:4096"))
    result = stack.place(pending=pending, view=cluster_view, settings=NO_OVERHEAD)
    assert gangs.hold(result, pending=pending, gangs={}) is result


def test_a_gang_that_cannot_run_leaves_its_room_to_the_pods_behind_it() -> None:
    pending = [*(member(f"g{i}") for i in range(4)), pod("solo", "2"), pod("late", "2")]
    cluster_view = view(*(agent(i, "cpus:2;mem:4096") for i in range(3)))
    groups = {("default", "gang"): gangs.Gang(min_member=4)}
    calls: list[list[str]] = []

    def again(rest: list[pods.PodRequest]) -> plan.Plan:
        calls.append([p.name for p in rest])
        return stack.place(pending=rest, view=cluster_view, settings=NO_OVERHEAD)

    first = stack.place(pending=pending, view=cluster_view, settings=NO_OVERHEAD)
    assert len(first.assignments) == 3  # the gang took every offer
    result = gangs.settle(first, pending=pending, gangs=groups, place=again)
    assert calls == [["solo", "late"]]
    assert sorted(a.pod_key for a in result.assignments) == ["default/late", "default/solo"]
    assert len(result.unused_offer_ids) == 1
    assert sorted(u.pod_key for u in result.unplaced) == [f"default/g{i}" for i in range(4)]
    # a group held when nothing else waits costs no second placement
    alone = stack.place(pending=pending[:4], view=cluster_view, settings=NO_OVERHEAD)
    result = gangs.settle(alone, pending=pending[:4], gangs=groups, place=again)
    assert len(calls) == 1 and not result.assignments


def test_a_second_group_held_after_placing_again_is_taken_back_too() -> None:
    big = [member(f"g{i}") for i in range(4)]
    pair = [member(f"p{i}", group="pair") for i in range(3)]
    pending = [*big, *pair, pod("solo", "2")]
    groups = {("default", "gang"): gangs.Gang(min_member=4),
              ("default", "pair"): gangs.Gang(min_member=3)}
    cluster_view = view(*(agent(i, "cpus:2;mem:4096") for i in range(3)))
    first = stack.place(pending=pending, view=cluster_view, settings=NO_OVERHEAD)
    result = gangs.settle(first, pending=pending, gangs=groups, place=lambda rest: stack.place(
        pending=rest, view=cluster_view, settings=NO_OVERHEAD))
    # without the big gang, the pair of 3 fits whole: the pair runs, solo waits
    assert sorted(a.pod_key for a in result.assignments) == [f"default/p{i}" for i in range(3)]
    waiting = {str(u.pod_key) for u in result.unplaced}
    assert waiting == {*(f"default/g{i}" for i in range(4)), "default/solo"}
