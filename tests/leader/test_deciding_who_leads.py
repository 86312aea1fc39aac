"""The election's rules from static inputs (client-go's tryAcquireOrRenew), no I/O."""

from __future__ import annotations

import pytest

from k8sbridge.leader import election
from k8sbridge.leader.election import Action, LeaseRecord, Observation

ME = "bridge-a_1"
OTHER = "bridge-b_2"
WALL = "2026-12-07T10:00:00.000000Z"


def held(holder: str, *, duration: int | None = 15, transitions: int = 3) -> LeaseRecord:
    return LeaseRecord(holder=holder, duration_seconds=duration,
                       acquire_time="2026-12-07T09:00:00.000000Z",
                       renew_time="2026-12-07T09:59:59.000000Z", transitions=transitions)


def decide(record: LeaseRecord | None, *, seen_at: float = 100.0, now: float = 101.0
           ) -> election.Decision:
    return election.decide(Observation(record=record, changed_at=seen_at), identity=ME,
                           now=now, wall=WALL, lease_seconds=15)


def test_no_lease_is_created_holding_it() -> None:
    d = decide(None)
    assert d.action is Action.CREATE and d.acquiring
    assert d.record == LeaseRecord(holder=ME, duration_seconds=15, acquire_time=WALL,
                                   renew_time=WALL, transitions=0)


def test_our_lease_is_renewed_keeping_acquire_time_and_transitions() -> None:
    d = decide(held(ME))
    assert d.action is Action.UPDATE and not d.acquiring
    assert d.record is not None
    assert d.record.acquire_time == "2026-12-07T09:00:00.000000Z"
    assert d.record.renew_time == WALL and d.record.transitions == 3


@pytest.mark.parametrize("now", [100.0, 110.0, 114.99])
def test_a_lease_another_holds_is_left_alone_for_its_duration(now: float) -> None:
    assert decide(held(OTHER), now=now).action is Action.WAIT


def test_a_lease_not_renewed_for_its_duration_is_taken_counting_a_transition() -> None:
    d = decide(held(OTHER), now=115.0)
    assert d.action is Action.UPDATE and d.acquiring and d.reason == election.REASON_EXPIRED
    assert d.record is not None
    assert (d.record.holder, d.record.transitions, d.record.acquire_time) == (ME, 4, WALL)


def test_expiry_counts_the_holders_duration_not_ours() -> None:
    assert decide(held(OTHER, duration=60), now=150.0).action is Action.WAIT
    assert decide(held(OTHER, duration=5), now=105.0).action is Action.UPDATE


def test_a_released_lease_is_taken_at_once() -> None:
    released = election.released(held(OTHER), wall=WALL)
    assert released.holder == "" and released.transitions == 3
    d = decide(released, seen_at=100.0, now=100.0)
    assert d.action is Action.UPDATE and d.reason == election.REASON_FREE


def test_a_lease_without_a_valid_duration_waits_our_own_duration() -> None:
    assert decide(held(OTHER, duration=None), now=114.0).reason == election.REASON_UNREADABLE
    assert decide(held(OTHER, duration=None), now=115.0).action is Action.UPDATE


def test_expiry_runs_from_when_we_saw_the_record_change_not_its_renew_time() -> None:
    first = election.observe(None, held(OTHER), now=100.0)
    same = election.observe(first, held(OTHER), now=112.0)
    assert same.changed_at == 100.0  # unchanged: the clock keeps running
    renewed = dataclass_replace_renew(held(OTHER))
    moved = election.observe(same, renewed, now=113.0)
    assert moved.changed_at == 113.0  # renewed: a new lease duration from now
    assert election.decide(moved, identity=ME, now=120.0, wall=WALL,
                           lease_seconds=15).action is Action.WAIT


def dataclass_replace_renew(record: LeaseRecord) -> LeaseRecord:
    return LeaseRecord(holder=record.holder, duration_seconds=record.duration_seconds,
                       acquire_time=record.acquire_time, renew_time=WALL,
                       transitions=record.transitions)


def test_the_leader_fences_itself_at_the_renew_deadline() -> None:
    assert not election.must_stop(last_renewed=100.0, now=109.9, renew_deadline=10.0)
    assert election.must_stop(last_renewed=100.0, now=110.0, renew_deadline=10.0)


def test_a_lease_held_for_another_framework_is_refused() -> None:
    theirs = LeaseRecord(holder=OTHER, duration_seconds=15, acquire_time=None, renew_time=None,
                         transitions=0, framework="marathon-k8s")
    d = election.decide(Observation(record=theirs, changed_at=0.0), identity=ME, now=1000.0,
                        wall=WALL, lease_seconds=15, framework="k8sbridge")
    assert d.action is Action.REFUSE
    assert "'marathon-k8s'" in d.reason and "'k8sbridge'" in d.reason
    unrecorded = LeaseRecord(holder=OTHER, duration_seconds=15, acquire_time=None,
                             renew_time=None, transitions=0)
    assert election.decide(Observation(record=unrecorded, changed_at=0.0), identity=ME,
                           now=1000.0, wall=WALL, lease_seconds=15,
                           framework="k8sbridge").action is Action.UPDATE


def test_a_standby_tries_again_at_the_expiry_when_that_comes_first() -> None:
    seen = Observation(record=held(OTHER), changed_at=100.0)
    assert election.next_try(seen, now=101.0, lease_seconds=15, jittered=3.0) == 3.0
    at_expiry = election.next_try(seen, now=113.5, lease_seconds=15, jittered=3.0)
    assert at_expiry == pytest.approx(1.5 + election.EXPIRY_SLACK)
    assert election.next_try(seen, now=120.0, lease_seconds=15, jittered=3.0) == 0.0
    free = Observation(record=election.released(held(OTHER), wall=WALL), changed_at=100.0)
    assert election.next_try(free, now=100.0, lease_seconds=15, jittered=3.0) == 3.0
    assert election.next_try(None, now=100.0, lease_seconds=15, jittered=3.0) == 3.0
