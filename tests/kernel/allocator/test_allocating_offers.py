"""Allocator scenarios from static inputs: who is offered what, in which order, and when not."""

from __future__ import annotations

from collections import Counter

import pytest

from k8sbridge.kernel import allocator as alloc
from k8sbridge.kernel.protocol import AgentId, FrameworkId
from k8sbridge.kernel.resources import (
    Reservation,
    Resource,
    Resources,
    parse_attributes_flag,
    parse_resources_flag,
)

A1, A2, A3 = AgentId("a1"), AgentId("a2"), AgentId("a3")
F1, F2, F3 = FrameworkId("f1"), FrameworkId("f2"), FrameworkId("f3")


def res(spec: str) -> Resources:
    return parse_resources_flag(spec)


def new(**kwargs: object) -> alloc.Allocator:
    return alloc.Allocator(seed=1, **kwargs)  # type: ignore[arg-type]


def add_agents(a: alloc.Allocator, n: int, spec: str = "cpus:4;mem:1024") -> list[AgentId]:
    ids = [AgentId(f"agent-{i}") for i in range(n)]
    for i in ids:
        a.add_agent(i, total=res(spec), hostname=str(i))
    return ids


def by_framework(grants: list[alloc.OfferGrant]) -> Counter[str]:
    return Counter(g.framework_id for g in grants)


def by_role(grants: list[alloc.OfferGrant]) -> Counter[str]:
    return Counter(g.role for g in grants)


# -- the basic flow -------------------------------------------------------------------------


def test_an_agent_goes_in_full_to_one_framework_with_allocation_role_set() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024;ports:[31000-31009]"))
    a.add_framework(F1, roles=["web"])
    [grant] = a.allocate(now=0.0)
    assert (grant.framework_id, grant.agent_id, grant.role) == (F1, A1, "web")
    assert grant.resources == res("cpus:4;mem:1024;ports:[31000-31009]").allocated_to("web")
    assert all(r.allocation_role == "web" for r in grant.resources)
    assert a.available(A1).is_empty()
    assert a.allocation(A1) == {F1: grant.resources}


def test_granted_resources_stay_allocated_until_recovered() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["web"])
    [grant] = a.allocate(now=0.0)
    assert a.allocate(now=1.0) == []
    # the framework launches a 1-cpu task and gives the rest back (no filter)
    a.recover(
        agent_id=A1, framework_id=F1, resources=res("cpus:3;mem:768").allocated_to("web"), now=1.0
    )
    assert a.available(A1) == res("cpus:3;mem:768")
    [again] = a.allocate(now=2.0)
    assert again.resources == res("cpus:3;mem:768").allocated_to("web")
    # resources without allocation_info are matched to the framework's only role
    a.recover(agent_id=A1, framework_id=F1, resources=res("cpus:4;mem:1024"), now=3.0)
    assert a.available(A1) == res("cpus:4;mem:1024")
    assert a.allocation(A1) == {}


def test_recovering_more_than_held_gives_back_only_what_was_held() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["web"])
    a.allocate(now=0.0)
    a.recover(
        agent_id=A1, framework_id=F1, resources=res("cpus:40;mem:9999").allocated_to("web"), now=0
    )
    assert a.available(A1) == res("cpus:4;mem:1024")
    # unknown agent or framework: a no-op, as when Mesos races with a removal
    a.recover(agent_id=A2, framework_id=F1, resources=res("cpus:1"), now=0)
    a.recover(agent_id=A1, framework_id=F3, resources=res("cpus:1"), now=0)


def test_frameworks_in_one_role_take_turns_by_dominant_share() -> None:
    a = new()
    add_agents(a, 4)
    a.add_framework(F1, roles=["r"])
    a.add_framework(F2, roles=["r"])
    assert by_framework(a.allocate(now=0.0)) == {F1: 2, F2: 2}


def test_weighted_roles_get_proportional_shares() -> None:
    a = new()
    add_agents(a, 6)
    a.add_framework(F1, roles=["a"])
    a.add_framework(F2, roles=["b"])
    a.update_weights({"a": 2.0})
    assert by_role(a.allocate(now=0.0)) == {"a": 4, "b": 2}
    assert a.weights() == {"a": 2.0}


def test_subroles_share_their_parent_against_other_roles() -> None:
    a = new()
    add_agents(a, 4)
    a.add_framework(F1, roles=["eng/x"])
    a.add_framework(F2, roles=["eng/y"])
    a.add_framework(F3, roles=["ops"])
    assert by_role(a.allocate(now=0.0)) == {"ops": 2, "eng/x": 1, "eng/y": 1}


def test_existing_allocations_count_towards_the_share() -> None:
    a = new()
    a.add_framework(F2, roles=["r"])
    # f1 is not known yet, but the agent reports its running task (master failover)
    a.add_agent(A1, total=res("cpus:8;mem:2048"), used={F1: res("cpus:4;mem:1024")})
    assert a.available(A1) == res("cpus:4;mem:1024")
    a.add_framework(F1, roles=["r"])  # adopts its allocation on a1
    assert a.framework_share(F1, "r") == pytest.approx(0.5)
    # f1 would win the tie on its name if its running task were not counted
    [grant] = a.allocate(now=0.0)
    assert grant.framework_id == F2
    a.remove_framework(F1)
    assert a.available(A1) == res("cpus:4;mem:1024")


def test_allocations_of_frameworks_never_added_are_freed_by_remove() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:8;mem:2048"), used={F3: res("cpus:4;mem:1024")})
    a.remove_framework(F3)  # failover timeout expired without a re-subscription
    assert a.available(A1) == res("cpus:8;mem:2048")


def test_shuffle_is_seeded() -> None:
    def run(seed: int) -> list[tuple[str, str]]:
        a = alloc.Allocator(seed=seed)
        add_agents(a, 20)
        a.add_framework(F1, roles=["r"])
        a.add_framework(F2, roles=["r"])
        return [(g.agent_id, g.framework_id) for g in a.allocate(now=0.0)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_allocate_on_named_agents_only() -> None:
    a = new()
    ids = add_agents(a, 3)
    a.add_framework(F1, roles=["r"])
    grants = a.allocate(now=0.0, agent_ids=[ids[1], AgentId("unknown")])
    assert [g.agent_id for g in grants] == [ids[1]]


# -- reservations ---------------------------------------------------------------------------


def test_static_reservations_go_only_to_their_role() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus(marathon):4;mem(marathon):1024;cpus:2;mem:512"))
    a.add_framework(F1, roles=["aaa"])  # sorts first on ties
    a.add_framework(F2, roles=["marathon"])
    grants = {g.framework_id: g for g in a.allocate(now=0.0)}
    assert grants[F1].resources == res("cpus:2;mem:512").allocated_to("aaa")
    assert grants[F2].resources == res("cpus(marathon):4;mem(marathon):1024").allocated_to(
        "marathon"
    )


def test_reservations_are_offered_to_subroles_but_not_to_others() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus(eng):4;mem(eng):1024"))
    a.add_framework(F1, roles=["ops"])
    assert a.allocate(now=0.0) == []
    a.add_framework(F2, roles=["eng/batch"])
    [grant] = a.allocate(now=0.0)
    assert grant.framework_id == F2 and grant.role == "eng/batch"
    assert grant.resources.reserved("eng").scalar("cpus") == 4


def test_dynamic_reservation_of_available_resources() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    reservation = Reservation(type="DYNAMIC", role="db", principal="ops")
    a.convert(
        agent_id=A1,
        framework_id=None,
        consumed=res("cpus:2;mem:512"),
        converted=res("cpus:2;mem:512").reserve(reservation),
    )
    assert a.available(A1) == res("cpus:2;mem:512") + res("cpus:2;mem:512").reserve(reservation)
    a.add_framework(F1, roles=["web"])
    [grant] = a.allocate(now=0.0)
    assert grant.resources == res("cpus:2;mem:512").allocated_to("web")
    a.add_framework(F2, roles=["db"])
    [grant] = a.allocate(now=0.0)
    assert grant.resources == res("cpus:2;mem:512").reserve(reservation).allocated_to("db")
    # and back (UNRESERVE by the operator of what is available again)
    a.recover(agent_id=A1, framework_id=F2, resources=grant.resources, now=0.0)
    a.convert(
        agent_id=A1,
        framework_id=None,
        consumed=res("cpus:2;mem:512").reserve(reservation),
        converted=res("cpus:2;mem:512"),
    )
    assert a.available(A1) == res("cpus:2;mem:512")


def test_reserve_inside_an_offer_converts_the_framework_allocation() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["db"])
    [grant] = a.allocate(now=0.0)
    reservation = Reservation(type="DYNAMIC", role="db", principal="p")
    reserved = res("cpus:1;mem:256").reserve(reservation)
    a.convert(
        agent_id=A1,
        framework_id=F1,
        consumed=res("cpus:1;mem:256").allocated_to("db"),
        converted=reserved.allocated_to("db"),
    )
    held = a.allocation(A1)[F1]
    assert held == res("cpus:3;mem:768").allocated_to("db") + reserved.allocated_to("db")
    a.recover(agent_id=A1, framework_id=F1, resources=held, now=0.0)
    a.add_framework(F2, roles=["web"])
    a.suppress(F1)
    [grant] = a.allocate(now=1.0)
    assert grant.framework_id == F2 and grant.resources == res("cpus:3;mem:768").allocated_to(
        "web"
    )
    with pytest.raises(alloc.AllocatorError):
        a.convert(agent_id=A1, framework_id=None, consumed=res("cpus:99"), converted=res(""))


# -- filters --------------------------------------------------------------------------------


def decline(a: alloc.Allocator, g: alloc.OfferGrant, *, now: float, refuse: float | None) -> None:
    a.recover(
        agent_id=g.agent_id,
        framework_id=g.framework_id,
        resources=g.resources,
        now=now,
        refuse_seconds=refuse,
    )


def test_a_decline_filter_holds_until_it_expires() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["r"])
    [g] = a.allocate(now=0.0)
    decline(a, g, now=0.0, refuse=10.0)
    assert a.allocate(now=5.0) == []
    assert a.allocate(now=9.9) == []
    assert len(a.allocate(now=10.0)) == 1


def test_a_filtered_framework_lets_the_next_one_have_the_agent() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["r"])
    a.add_framework(F2, roles=["r"])
    [g] = a.allocate(now=0.0)
    decline(a, g, now=0.0, refuse=60.0)
    [g2] = a.allocate(now=1.0)
    assert g2.framework_id != g.framework_id


@pytest.mark.parametrize(
    ("refuse", "interval", "expected"),
    [
        pytest.param(0.0, 1.0, 0.0, id="zero-no-filter"),
        pytest.param(-1.0, 1.0, 5.0, id="negative-default"),
        pytest.param(float("nan"), 1.0, 5.0, id="nan-default"),
        pytest.param(0.2, 1.0, 1.0, id="at-least-interval"),
        pytest.param(3.0, 1.0, 3.0, id="plain"),
        pytest.param(1e12, 1.0, 365 * 86400.0, id="capped"),
        pytest.param(float("inf"), 1.0, 365 * 86400.0, id="inf-capped"),
    ],
)
def test_refuse_seconds_semantics(refuse: float, interval: float, expected: float) -> None:
    assert alloc.refuse_timeout(refuse, allocation_interval=interval) == expected


def test_zero_refuse_seconds_installs_no_filter_and_short_ones_last_an_interval() -> None:
    a = new(allocation_interval=3.0)
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["r"])
    [g] = a.allocate(now=0.0)
    decline(a, g, now=0.0, refuse=0.0)
    [g] = a.allocate(now=0.0)
    decline(a, g, now=0.0, refuse=0.5)
    assert a.allocate(now=2.9) == []
    assert len(a.allocate(now=3.0)) == 1


def test_a_filter_stops_holding_when_more_resources_become_available() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["r"])
    a.allocate(now=0.0)
    # keeps 2 cpus for a task, declines the rest for 100 s
    a.recover(
        agent_id=A1,
        framework_id=F1,
        resources=res("cpus:2;mem:512").allocated_to("r"),
        now=0.0,
        refuse_seconds=100.0,
    )
    assert a.allocate(now=1.0) == []
    # the task ends: now more is available than was refused, so the filter no longer applies
    a.recover(
        agent_id=A1, framework_id=F1, resources=res("cpus:2;mem:512").allocated_to("r"), now=2
    )
    [g] = a.allocate(now=2.0)
    assert g.resources == res("cpus:4;mem:1024").allocated_to("r")


def test_revive_clears_filters_and_unsuppresses() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["r"])
    [g] = a.allocate(now=0.0)
    decline(a, g, now=0.0, refuse=3600.0)
    a.suppress(F1)
    assert a.allocate(now=1.0) == []
    a.revive(F1)
    assert len(a.allocate(now=1.0)) == 1


def test_filters_are_per_role() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["a", "b"])
    [g] = a.allocate(now=0.0)
    decline(a, g, now=0.0, refuse=3600.0)
    [g2] = a.allocate(now=1.0)
    assert g2.role != g.role
    decline(a, g2, now=1.0, refuse=3600.0)
    assert a.allocate(now=2.0) == []
    a.revive(F1, roles=[g.role])
    [g3] = a.allocate(now=3.0)
    assert g3.role == g.role


# -- suppression and activity ---------------------------------------------------------------


def test_suppressed_roles_get_no_offers() -> None:
    a = new()
    add_agents(a, 4)
    a.add_framework(F1, roles=["a", "b"], suppressed_roles=["a"])
    assert by_role(a.allocate(now=0.0)) == {"b": 4}


def test_suppress_and_revive_single_roles() -> None:
    a = new()
    ids = add_agents(a, 2)
    a.add_framework(F1, roles=["a", "b"])
    a.suppress(F1, roles=["b", "not-mine"])
    assert by_role(a.allocate(now=0.0, agent_ids=[ids[0]])) == {"a": 1}
    a.suppress(F1, roles=["a"])
    assert a.allocate(now=0.0) == []
    a.revive(F1, roles=["b"])
    assert by_role(a.allocate(now=0.0)) == {"b": 1}


def test_inactive_frameworks_and_agents_are_skipped() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["r"], active=False)
    assert a.allocate(now=0.0) == []
    a.activate_framework(F1)
    a.deactivate_agent(A1)
    assert a.allocate(now=0.0) == []
    a.activate_agent(A1)
    assert len(a.allocate(now=0.0)) == 1
    a.recover(agent_id=A1, framework_id=F1, resources=a.allocation(A1)[F1], now=0.0)
    a.deactivate_framework(F1)
    assert a.allocate(now=0.0) == []


def test_removing_a_framework_frees_everything_it_held() -> None:
    a = new()
    add_agents(a, 2)
    a.add_framework(F1, roles=["r"])
    assert len(a.allocate(now=0.0)) == 2
    a.remove_framework(F1)
    a.remove_framework(F1)  # idempotent
    assert all(a.available(i) == res("cpus:4;mem:1024") for i in (AgentId("agent-0"),))
    assert "r" not in a.role_summary()
    a.add_framework(F2, roles=["r"])
    assert len(a.allocate(now=0.0)) == 2


def test_removing_an_agent_forgets_its_allocation() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_agent(A2, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["r"])
    a.add_framework(F2, roles=["r"])
    a.allocate(now=0.0, agent_ids=[A1])
    holder = next(iter(a.allocation(A1)))
    a.remove_agent(A1)
    assert a.framework_share(holder, "r") == 0.0
    with pytest.raises(alloc.AllocatorError):
        a.available(A1)


def test_update_agent_total() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["r"])
    a.allocate(now=0.0)
    a.update_agent_total(A1, res("cpus:6;mem:2048"))
    assert a.available(A1) == res("cpus:2;mem:1024")


def test_update_framework_changes_roles() -> None:
    a = new()
    add_agents(a, 2)
    a.add_framework(F1, roles=["a"])
    a.allocate(now=0.0, agent_ids=[AgentId("agent-0")])
    a.update_framework(F1, roles=["b"])
    # still holds role a's resources, so the role stays known; new offers go to b
    assert by_role(a.allocate(now=0.0)) == {"b": 1}
    assert a.role_summary()["a"].allocated.scalar("cpus") == 4
    assert a.role_summary()["a"].frameworks == ()
    assert a.role_summary()["b"].frameworks == (F1,)


# -- quota ----------------------------------------------------------------------------------


def test_quota_limit_caps_a_role() -> None:
    a = new(min_allocatable=[{"cpus": 0.01}])
    add_agents(a, 3, "cpus:2;mem:1024")
    a.add_framework(F1, roles=["q"])
    a.update_quota("q", {"cpus": 3.0})
    grants = a.allocate(now=0.0)
    assert sum(g.resources.scalar("cpus") for g in grants) == 3.0
    assert a.consumed_quota("q") == {"cpus": 3.0, "mem": 2048.0}
    assert a.quotas() == {"q": {"cpus": 3.0}}
    a.update_quota("q", None)  # the chopped-off cpus are offered once the limit is gone
    assert sum(g.resources.scalar("cpus") for g in a.allocate(now=0.0)) == 3.0


def test_quota_counts_reservations_and_lets_others_have_the_rest() -> None:
    a = new(min_allocatable=[{"cpus": 0.01}])
    a.add_agent(A1, total=res("cpus(q):2;cpus:4;mem:1024"))
    a.add_framework(F1, roles=["q"])
    a.update_quota("q", {"cpus": 3.0})
    [g] = a.allocate(now=0.0)
    assert g.resources.scalar("cpus") == 3.0  # 2 reserved + 1 unreserved
    assert g.resources.reserved("q").scalar("cpus") == 2.0
    a.add_framework(F2, roles=["other"])
    [g2] = a.allocate(now=0.0)
    assert g2.framework_id == F2 and g2.resources.scalar("cpus") == 3.0


def test_quota_of_a_parent_caps_its_subroles() -> None:
    a = new(min_allocatable=[{"cpus": 0.01}])
    add_agents(a, 4, "cpus:2;mem:1024")
    a.add_framework(F1, roles=["eng/x"])
    a.add_framework(F2, roles=["eng/y"])
    a.update_quota("eng", {"cpus": 5.0})
    grants = a.allocate(now=0.0)
    assert sum(g.resources.scalar("cpus") for g in grants) == 5.0


def test_bad_quota_and_weights_are_rejected() -> None:
    a = new()
    with pytest.raises(alloc.AllocatorError):
        a.update_quota("q", {"ports": 10})
    with pytest.raises(alloc.AllocatorError):
        a.update_quota("q", {"cpus": -1})
    with pytest.raises(alloc.AllocatorError):
        a.update_quota("*", {"cpus": 1})
    with pytest.raises(alloc.AllocatorError):
        a.update_weights({"r": 0})
    with pytest.raises(alloc.AllocatorError):
        a.update_weights({"r": "heavy"})  # type: ignore[dict-item]
    a.update_quota("q", {"cpus": float("inf")})  # "Infinity" = no limit
    assert a.quotas() == {}


# -- min_allocatable, GPUs, capabilities ----------------------------------------------------


def test_min_allocatable_defaults_to_cpus_or_mem() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:0.005;mem:16;disk:100"))
    a.add_agent(A2, total=res("cpus:0;mem:64"))
    a.add_framework(F1, roles=["r"])
    assert [g.agent_id for g in a.allocate(now=0.0)] == [A2]


def test_min_allocatable_global_and_per_framework_role() -> None:
    a = new(min_allocatable=[{"cpus": 1.0, "mem": 100.0}])
    a.add_agent(A1, total=res("cpus:0.5;mem:4096"))
    a.add_framework(F1, roles=["r", "s"], min_allocatable={"s": [{"mem": 8.0}]})
    [g] = a.allocate(now=0.0)
    assert g.role == "s"
    a2 = new(min_allocatable=[])
    a2.add_agent(A1, total=res("disk:10"))
    a2.add_framework(F1, roles=["r"])
    assert len(a2.allocate(now=0.0)) == 1


def test_gpu_agents_only_go_to_gpu_capable_frameworks() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024;gpus:1"))
    a.add_framework(F1, roles=["r"])
    assert a.allocate(now=0.0) == []
    a.add_framework(F2, roles=["r"], capabilities=["GPU_RESOURCES"])
    [g] = a.allocate(now=0.0)
    assert g.framework_id == F2 and g.resources.scalar("gpus") == 1
    b = new(filter_gpu_resources=False)
    b.add_agent(A1, total=res("cpus:4;mem:1024;gpus:1"))
    b.add_framework(F1, roles=["r"])
    assert len(b.allocate(now=0.0)) == 1


def test_revocable_resources_only_to_capable_frameworks() -> None:
    revocable = Resource.parse(
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}, "revocable": {}}
    )
    total = res("cpus:4;mem:1024") + Resources.of([revocable])
    a = new()
    a.add_agent(A1, total=total)
    a.add_framework(F1, roles=["r"])
    [g] = a.allocate(now=0.0)
    assert g.resources == res("cpus:4;mem:1024").allocated_to("r")
    a.add_framework(F2, roles=["r"], capabilities=["REVOCABLE_RESOURCES"])
    [g2] = a.allocate(now=0.0)
    assert g2.framework_id == F2 and g2.resources == Resources.of([revocable]).allocated_to("r")


# -- offer constraints ----------------------------------------------------------------------


def constraint(selector: dict[str, str], predicate: dict[str, object]) -> dict[str, object]:
    return {"selector": selector, "predicate": predicate}


def only(role: str, *groups: list[dict[str, object]]) -> dict[str, object]:
    return {
        "role_constraints": {
            role: {"groups": [{"attribute_constraints": group} for group in groups]}
        }
    }


def constrained_cluster() -> alloc.Allocator:
    a = new()
    a.add_agent(
        A1,
        total=res("cpus:4;mem:1024"),
        attributes=parse_attributes_flag("rack:r1;level:3"),
        hostname="h1",
        region="eu",
        zone="eu-1",
    )
    a.add_agent(
        A2, total=res("cpus:4;mem:1024"), attributes=parse_attributes_flag("rack:r2"), hostname="h2"
    )
    a.add_agent(A3, total=res("cpus:4;mem:1024"), hostname="h3")
    return a


def test_offer_constraints_restrict_agents() -> None:
    a = constrained_cluster()
    rack_r1 = constraint({"attribute_name": "rack"}, {"text_equals": {"value": "r1"}})
    a.add_framework(F1, roles=["r"], offer_constraints=only("r", [rack_r1]))
    assert [g.agent_id for g in a.allocate(now=0.0)] == [A1]


def test_constraint_groups_are_ored_and_constraints_anded() -> None:
    a = constrained_cluster()
    groups = only(
        "r",
        [constraint({"pseudoattribute_type": "HOSTNAME"}, {"text_matches": {"regex": "h[23]"}}),
         constraint({"attribute_name": "rack"}, {"exists": {}})],
        [constraint({"pseudoattribute_type": "ZONE"}, {"text_equals": {"value": "eu-1"}})],
    )
    a.add_framework(F1, roles=["r"], offer_constraints=groups)
    assert sorted(g.agent_id for g in a.allocate(now=0.0)) == [A1, A2]


def test_constraints_apply_only_to_their_role() -> None:
    a = constrained_cluster()
    none_match = constraint({"attribute_name": "rack"}, {"text_equals": {"value": "nowhere"}})
    a.add_framework(F1, roles=["r", "s"], offer_constraints=only("r", [none_match]))
    assert by_role(a.allocate(now=0.0)) == {"s": 3}


@pytest.mark.parametrize(
    ("selector", "predicate", "expected"),
    [
        pytest.param({"attribute_name": "rack"}, {"exists": {}}, True, id="exists"),
        pytest.param({"attribute_name": "gpu"}, {"exists": {}}, False, id="exists-absent"),
        pytest.param({"attribute_name": "gpu"}, {"not_exists": {}}, True, id="not-exists"),
        pytest.param({"attribute_name": "rack"}, {"text_not_equals": {"value": "r2"}}, True,
                     id="not-equals"),
        pytest.param({"attribute_name": "gpu"}, {"text_not_equals": {"value": "x"}}, True,
                     id="not-equals-absent"),
        pytest.param({"attribute_name": "gpu"}, {"text_equals": {"value": "x"}}, False,
                     id="equals-absent"),
        pytest.param({"attribute_name": "level"}, {"text_equals": {"value": "9"}}, True,
                     id="non-text-attribute-passes"),
        pytest.param({"attribute_name": "rack"}, {"text_matches": {"regex": "r"}}, False,
                     id="matches-is-full-match"),
        pytest.param({"attribute_name": "rack"}, {"text_not_matches": {"regex": "r[0-9]"}}, False,
                     id="not-matches"),
        pytest.param({"pseudoattribute_type": "REGION"}, {"text_equals": {"value": "eu"}}, True,
                     id="region"),
        pytest.param({"pseudoattribute_type": "HOSTNAME"}, {"text_equals": {"value": "h1"}}, True,
                     id="hostname"),
    ],
)
def test_predicates_follow_mesos(
    selector: dict[str, str], predicate: dict[str, object], expected: bool
) -> None:
    groups = alloc.parse_offer_constraints(only("r", [constraint(selector, predicate)]))["r"]
    assert (
        alloc.agent_matches(
            groups,
            attributes=parse_attributes_flag("rack:r1;level:3"),
            hostname="h1",
            region="eu",
            zone="eu-1",
        )
        is expected
    )


def test_region_of_an_agent_without_fault_domain_does_not_exist() -> None:
    groups = alloc.parse_offer_constraints(
        only("r", [constraint({"pseudoattribute_type": "REGION"}, {"not_exists": {}})])
    )["r"]
    assert alloc.agent_matches(groups, attributes=(), hostname="h")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"role_constraints": {"r": {"groups": []}}}, id="no-groups"),
        pytest.param({"role_constraints": {"r": {"groups": [{"attribute_constraints": []}]}}},
                     id="empty-group"),
        pytest.param(only("r", [constraint({}, {"exists": {}})]), id="no-selector"),
        pytest.param(only("r", [constraint({"pseudoattribute_type": "RACK"}, {"exists": {}})]),
                     id="bad-pseudo"),
        pytest.param(only("r", [constraint({"attribute_name": "a"}, {})]), id="no-predicate"),
        pytest.param(only("r", [constraint({"attribute_name": "a"},
                                           {"text_matches": {"regex": "("}})]), id="bad-regex"),
    ],
)
def test_invalid_constraints_are_rejected_with_a_reason(raw: dict[str, object]) -> None:
    with pytest.raises(alloc.AllocatorError, match=r"\S"):
        alloc.parse_offer_constraints(raw)
    a = new()
    with pytest.raises(alloc.AllocatorError):
        a.add_framework(F1, roles=["r"], offer_constraints=raw)
    assert a.role_summary() == {}


# -- views and errors -----------------------------------------------------------------------


def test_role_summary() -> None:
    a = new()
    add_agents(a, 2)
    a.add_framework(F1, roles=["r"])
    a.add_framework(F2, roles=["r", "s"])
    a.update_weights({"w": 2.5})
    a.allocate(now=0.0)
    summary = a.role_summary()
    assert set(summary) == {"r", "s", "w"}
    assert summary["r"].frameworks == (F1, F2)
    assert summary["w"].weight == 2.5
    assert sum(s.allocated.scalar("cpus") for s in summary.values()) == 8.0


def test_unknown_ids_raise_allocator_errors() -> None:
    a = new()
    with pytest.raises(alloc.AllocatorError):
        a.suppress(F1)
    with pytest.raises(alloc.AllocatorError):
        a.deactivate_agent(A1)
    a.add_framework(F1, roles=["r"])
    with pytest.raises(alloc.AllocatorError):
        a.add_framework(F1, roles=["r"])
    with pytest.raises(alloc.AllocatorError):
        a.add_framework(F2, roles=["bad//role"])
    with pytest.raises(alloc.AllocatorError):
        alloc.Allocator(role_sorter="fifo")


# -- more edges -----------------------------------------------------------------------------


def test_recover_without_allocation_info_uses_the_role_held_on_the_agent() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["a", "b"])
    [g] = a.allocate(now=0.0)
    a.recover(agent_id=A1, framework_id=F1, resources=res("cpus:4;mem:1024"), now=0.0)
    assert a.available(A1) == res("cpus:4;mem:1024")
    assert a.role_summary()[g.role].allocated.is_empty()


def test_random_sorters_spread_offers_over_frameworks() -> None:
    a = alloc.Allocator(seed=3, role_sorter="random", framework_sorter="random")
    add_agents(a, 40)
    a.add_framework(F1, roles=["a"])
    a.add_framework(F2, roles=["b"])
    counts = by_framework(a.allocate(now=0.0))
    assert sum(counts.values()) == 40
    assert counts[F1] > 5 and counts[F2] > 5


def test_deactivating_a_framework_clears_its_filters() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["r"])
    [g] = a.allocate(now=0.0)
    decline(a, g, now=0.0, refuse=3600.0)
    a.deactivate_framework(F1)
    a.activate_framework(F1)  # failed over: starts without filters, as in Mesos
    assert len(a.allocate(now=1.0)) == 1


def test_update_framework_replaces_suppression_and_constraints() -> None:
    a = constrained_cluster()
    a.add_framework(F1, roles=["r"], suppressed_roles=["r"])
    assert a.allocate(now=0.0) == []
    rack_r2 = constraint({"attribute_name": "rack"}, {"text_equals": {"value": "r2"}})
    a.update_framework(F1, roles=["r"], offer_constraints=only("r", [rack_r2]))
    assert [g.agent_id for g in a.allocate(now=0.0)] == [A2]
    bad = only("r", [constraint({"attribute_name": "rack"}, {"text_matches": {"regex": "["}})])
    with pytest.raises(alloc.AllocatorError):
        a.update_framework(F1, roles=["x"], offer_constraints=bad)
    assert a.role_summary()["r"].frameworks == (F1,)  # all-or-nothing: nothing changed


def test_reservations_of_subroles_count_towards_the_parent_quota() -> None:
    a = new(min_allocatable=[{"cpus": 0.01}])
    a.add_agent(A1, total=res("cpus(eng/db):2;cpus:8;mem:1024"))
    a.add_framework(F1, roles=["eng/web"])
    a.update_quota("eng", {"cpus": 5.0})
    [g] = a.allocate(now=0.0)
    assert g.resources.scalar("cpus") == 3.0  # 5 - the 2 reserved for eng/db
    assert a.consumed_quota("eng")["cpus"] == 5.0


def test_an_agent_without_offerable_resources_for_any_role_is_skipped() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus(db):4;mem(db):1024"))
    a.add_agent(A2, total=res("cpus:1;mem:128"))
    a.add_framework(F1, roles=["web"])
    a.add_framework(F2, roles=["web"])
    grants = a.allocate(now=0.0)
    assert [g.agent_id for g in grants] == [A2]
    assert a.available(A1) == res("cpus(db):4;mem(db):1024")


def test_a_shrunk_total_is_never_over_offered() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["r"])
    [g] = a.allocate(now=0.0)
    a.update_agent_total(A1, res("cpus:2;mem:512"))  # re-registered smaller
    assert a.available(A1).is_empty()
    decline(a, g, now=0.0, refuse=None)
    assert a.available(A1) == res("cpus:2;mem:512")
    a._check_invariants()


def test_cleared_filters_do_not_pile_up_in_the_expiry_heap() -> None:
    a = new()
    a.add_agent(A1, total=res("cpus:4;mem:1024"))
    a.add_framework(F1, roles=["r"])
    for i in range(10_000):  # decline with a long filter, then revive: a REVIVE-happy framework
        [g] = a.allocate(now=float(i))
        decline(a, g, now=float(i), refuse=3600.0)
        a.revive(F1)
    assert len(a._filter_expiry) < 4096 * 2
    [g] = a.allocate(now=10_000.0)
    decline(a, g, now=10_000.0, refuse=10.0)
    assert a.allocate(now=10_005.0) == []
    assert len(a.allocate(now=10_010.0)) == 1
