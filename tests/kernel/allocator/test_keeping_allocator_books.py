"""Random operation sequences never leave the allocator's incremental bookkeeping inconsistent.

Every method updates several structures at once (per-agent available and held resources,
sorter allocations, quota consumption). Hypothesis drives random sequences of the calls the
master makes and the allocator recomputes everything from scratch after each step.
"""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from k8sbridge.kernel import allocator as alloc
from k8sbridge.kernel.protocol import AgentId, FrameworkId
from k8sbridge.kernel.resources import Reservation, Resources, parse_resources_flag

AGENTS = [AgentId(f"a{i}") for i in range(4)]
FRAMEWORKS = [FrameworkId(f"f{i}") for i in range(4)]
ROLES = ["web", "eng/x", "eng/y", "db"]
SPECS = [
    "cpus:4;mem:1024;ports:[31000-31010]",
    "cpus(db):2;mem(db):512;cpus:2;mem:512",
    "cpus(eng):3;mem:2048;gpus:1",
]

operation = st.one_of(
    st.tuples(st.just("allocate"), st.integers(0, 3)),
    st.tuples(st.just("decline"), st.integers(0, 50), st.sampled_from([None, 0.0, 2.0, -1.0])),
    st.tuples(st.just("keep_half"), st.integers(0, 50)),
    st.tuples(st.just("reserve"), st.integers(0, 50)),
    st.tuples(st.just("remove_framework"), st.integers(0, 3)),
    st.tuples(st.just("add_framework"), st.integers(0, 3)),
    st.tuples(st.just("remove_agent"), st.integers(0, 3)),
    st.tuples(st.just("add_agent"), st.integers(0, 3)),
    st.tuples(st.just("quota"), st.sampled_from(["eng", "web", "db"]), st.integers(0, 6)),
    st.tuples(st.just("suppress"), st.integers(0, 3)),
    st.tuples(st.just("revive"), st.integers(0, 3)),
    st.tuples(st.just("deactivate"), st.integers(0, 3)),
    st.tuples(st.just("update_total"), st.integers(0, 3), st.integers(0, 2)),
    st.tuples(st.just("operator_reserve"), st.integers(0, 3), st.sampled_from(ROLES)),
    st.tuples(st.just("operator_unreserve"), st.integers(0, 3)),
    st.tuples(st.just("update_framework"), st.integers(0, 3), st.sampled_from(ROLES)),
    st.tuples(st.just("weight"), st.sampled_from(["eng", "web", "eng/y"]), st.integers(1, 4)),
)


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(operation, min_size=1, max_size=40), seed=st.integers(0, 1000))
def test_books_stay_consistent(ops: list[tuple[object, ...]], seed: int) -> None:
    a = alloc.Allocator(seed=seed, min_allocatable=[{"cpus": 0.01}, {"mem": 32.0}])
    for i, agent_id in enumerate(AGENTS):
        a.add_agent(agent_id, total=parse_resources_flag(SPECS[i % len(SPECS)]))
    frameworks: set[FrameworkId] = set()
    for i, fid in enumerate(FRAMEWORKS):
        a.add_framework(fid, roles=[ROLES[i], ROLES[(i + 1) % 4]], capabilities=["GPU_RESOURCES"])
        frameworks.add(fid)
    grants: list[alloc.OfferGrant] = []
    now = 0.0
    for op in ops:
        now += 1.0
        kind = op[0]
        if kind == "allocate":
            headroom = {
                role: limits["cpus"] - a.consumed_quota(role).get("cpus", 0.0)
                for role, limits in a.quotas().items()
            }
            made = a.allocate(now=now)
            for role, left in headroom.items():
                # a hard cap: unreserved grants to the role's subtree fit in its headroom
                granted = sum(
                    g.resources.unreserved().scalar("cpus")
                    for g in made
                    if g.role == role or g.role.startswith(role + "/")
                )
                assert granted <= max(0.0, left) + 1e-9
            grants.extend(made)
            event(f"grants in a pass: {min(len(made), 3)}+")
        elif kind in ("decline", "keep_half", "reserve") and grants:
            grant = grants.pop(int(op[1]) % len(grants))  # type: ignore[call-overload]
            event(f"returned: {kind}")
            if kind == "decline":
                a.recover(
                    agent_id=grant.agent_id,
                    framework_id=grant.framework_id,
                    resources=grant.resources,
                    now=now,
                    refuse_seconds=op[2],  # type: ignore[arg-type]
                )
            elif kind == "keep_half":
                half = Resources.from_scalars(
                    {n: v / 2 for n, v in grant.resources.unreserved().scalars().items()}
                ).allocated_to(grant.role)
                a.recover(
                    agent_id=grant.agent_id,
                    framework_id=grant.framework_id,
                    resources=half,
                    now=now,
                    refuse_seconds=1.0,
                )
            else:
                cpus = grant.resources.unreserved().filter(lambda r: r.name == "cpus")
                held = a.allocation(grant.agent_id).get(grant.framework_id, Resources())
                if cpus and held.contains(cpus) and "/" not in grant.role:
                    reservation = Reservation(type="DYNAMIC", role=grant.role, principal="p")
                    try:
                        a.convert(
                            agent_id=grant.agent_id,
                            framework_id=grant.framework_id,
                            consumed=cpus,
                            converted=cpus.unallocated().reserve(reservation).allocated_to(
                                grant.role
                            ),
                        )
                    except alloc.AllocatorError as e:
                        # the agent's total shrank below what was granted: refused, unchanged
                        assert "does not have" in str(e)
                        event("convert refused")
        elif kind == "remove_framework":
            fid = FRAMEWORKS[int(op[1])]  # type: ignore[call-overload]
            a.remove_framework(fid)
            frameworks.discard(fid)
            grants = [g for g in grants if g.framework_id != fid]
        elif kind == "add_framework":
            fid = FRAMEWORKS[int(op[1])]  # type: ignore[call-overload]
            if fid not in frameworks:
                a.add_framework(fid, roles=["web", "eng/x"])
                frameworks.add(fid)
        elif kind == "remove_agent":
            agent_id = AGENTS[int(op[1])]  # type: ignore[call-overload]
            a.remove_agent(agent_id)
            grants = [g for g in grants if g.agent_id != agent_id]
        elif kind == "add_agent":
            agent_id = AGENTS[int(op[1])]  # type: ignore[call-overload]
            try:
                a.available(agent_id)
            except alloc.AllocatorError:
                used = {FrameworkId("f0"): parse_resources_flag("cpus:1;mem:64")}
                a.add_agent(agent_id, total=parse_resources_flag(SPECS[0]), used=used)
        elif kind == "quota":
            limit = int(op[2])  # type: ignore[call-overload]
            a.update_quota(str(op[1]), {"cpus": float(limit)} if limit else None)
        elif kind == "update_total":
            agent_id = AGENTS[int(op[1])]  # type: ignore[call-overload]
            if _known(a, agent_id):
                a.update_agent_total(agent_id, parse_resources_flag(SPECS[int(op[2])]))  # type: ignore[call-overload]
        elif kind == "operator_reserve":
            agent_id = AGENTS[int(op[1])]  # type: ignore[call-overload]
            if _known(a, agent_id):
                one = a.available(agent_id).unreserved().filter(lambda r: r.name == "cpus")
                if one:
                    reservation = Reservation(type="DYNAMIC", role=str(op[2]), principal="op")
                    a.convert(
                        agent_id=agent_id,
                        framework_id=None,
                        consumed=one,
                        converted=one.reserve(reservation),
                    )
        elif kind == "operator_unreserve":
            agent_id = AGENTS[int(op[1])]  # type: ignore[call-overload]
            if _known(a, agent_id):
                dynamic = a.available(agent_id).filter(
                    lambda r: bool(r.reservations) and r.reservations[-1].type == "DYNAMIC"
                )
                if dynamic:
                    a.convert(
                        agent_id=agent_id,
                        framework_id=None,
                        consumed=dynamic,
                        converted=dynamic.pop_reservation(),
                    )
        elif kind == "update_framework":
            fid = FRAMEWORKS[int(op[1])]  # type: ignore[call-overload]
            if fid in frameworks:
                a.update_framework(fid, roles=[str(op[2])])
        elif kind == "weight":
            a.update_weights({str(op[1]): float(op[2])})  # type: ignore[arg-type]
        elif kind in ("suppress", "revive", "deactivate"):
            fid = FRAMEWORKS[int(op[1])]  # type: ignore[call-overload]
            if fid in frameworks:
                if kind == "suppress":
                    a.suppress(fid)
                elif kind == "revive":
                    a.revive(fid)
                    a.activate_framework(fid)
                else:
                    a.deactivate_framework(fid)
        a._check_invariants()


def _known(a: alloc.Allocator, agent_id: AgentId) -> bool:
    try:
        a.available(agent_id)
    except alloc.AllocatorError:
        return False
    return True
