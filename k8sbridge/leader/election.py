"""The leader election's decisions, pure: given the Lease as observed and the time, what to do.

Why pure: the rules are client-go's ``tools/leaderelection`` (``tryAcquireOrRenew``) and each
of them prevents a split brain or a stall, so they are tested from static inputs, apart from
the I/O that reads and writes the Lease (``lease``) and the loop that paces it (``elector``):

* a Lease held by another replica is taken only when it has not changed for its whole
  ``leaseDurationSeconds``, measured on *our* clock from the moment *we* saw it change
  (``Observation.changed_at``), never from the ``renewTime`` written by another host's clock;
* an empty ``holderIdentity`` (a released Lease) is free at once;
* acquiring counts a transition (``leaseTransitions`` + 1) and sets ``acquireTime``; renewing
  keeps both and moves ``renewTime``;
* the leader stops acting when it has not renewed for ``renew_deadline`` seconds (before anyone
  may take the Lease, ``lease_duration`` after its last renewal);
* a Lease edited by hand so that it cannot be read (no or a bad ``leaseDurationSeconds``) is
  treated as held for our own lease duration: waiting longer is safe, guessing shorter is not;
* a Lease held for another Mesos framework name (``framework``, an annotation) is refused: two
  replicas configured differently would register two frameworks and orphan each other's tasks.

Every write carries the ``resourceVersion`` read (``lease``): of two replicas that decide to
acquire at once, the API server lets one win and answers the other 409 Conflict.
"""

from __future__ import annotations

import dataclasses
import enum

__all__ = [
    "Action",
    "Decision",
    "LeaseRecord",
    "Observation",
    "decide",
    "must_stop",
    "next_try",
    "observe",
    "released",
]

EXPIRY_SLACK = 0.05  # seconds after the expiry a standby tries (never before it)

REASON_CREATE = "no Lease yet: creating it"
REASON_RENEW = "renewing our Lease"
REASON_FREE = "the Lease is released (no holder): acquiring it"
REASON_EXPIRED = "the holder did not renew within its lease duration: acquiring it"
REASON_HELD = "held by another replica"
REASON_OTHER_FRAMEWORK = ("the leader Lease is held for Mesos framework {theirs!r} but this "
                          "replica is configured for {ours!r}: replicas of one bridge must "
                          "share mesos.framework_name (or use another leader.lease_name)")
REASON_UNREADABLE = ("the Lease has no valid leaseDurationSeconds (edited by hand?): "
                     "waiting our own lease duration before taking it")


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseRecord:
    """``spec`` of the Lease, as client-go's ``LeaderElectionRecord``."""

    holder: str  # "" when nobody holds it (released)
    duration_seconds: int | None  # None: missing or not a positive number
    acquire_time: str | None  # MicroTime strings, kept as written
    renew_time: str | None
    transitions: int
    framework: str = ""  # the holder's Mesos framework name ("": not recorded)


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    """The record last read and when (our monotonic clock) we first saw it as it is."""

    record: LeaseRecord | None  # None: the Lease does not exist
    changed_at: float


class Action(enum.Enum):
    CREATE = "create"  # no Lease: create it holding it
    UPDATE = "update"  # write ``record`` (acquire or renew) with the read resourceVersion
    WAIT = "wait"  # someone else leads: try again after the retry period
    REFUSE = "refuse"  # the Lease belongs to another framework: a configuration error


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    record: LeaseRecord | None = None  # what to write (CREATE/UPDATE)
    acquiring: bool = False  # the write makes us leader (not a renewal)


def observe(previous: Observation | None, record: LeaseRecord | None, *, now: float
            ) -> Observation:
    """The new observation: ``changed_at`` moves only when the record differs from before."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record=record, changed_at=now)


def decide(
    observation: Observation,
    *,
    identity: str,
    now: float,
    wall: str,
    lease_seconds: int,
    framework: str = "",
) -> Decision:
    """What to do with the Lease as observed at monotonic ``now`` (``wall``: the MicroTime to
    write). ``identity`` is this replica's holderIdentity, ``framework`` its Mesos framework
    name."""
    current = observation.record
    ours = LeaseRecord(holder=identity, duration_seconds=lease_seconds, acquire_time=wall,
                       renew_time=wall, transitions=0, framework=framework)
    if current is not None and current.framework and framework \
            and current.framework != framework:
        return Decision(action=Action.REFUSE, reason=REASON_OTHER_FRAMEWORK.format(
            theirs=current.framework, ours=framework))
    if current is None:
        return Decision(action=Action.CREATE, reason=REASON_CREATE, record=ours, acquiring=True)
    if current.holder == identity:
        renewed = dataclasses.replace(ours, acquire_time=current.acquire_time or wall,
                                      transitions=current.transitions)
        return Decision(action=Action.UPDATE, reason=REASON_RENEW, record=renewed)
    taken = dataclasses.replace(ours, transitions=current.transitions + 1)
    if not current.holder:
        return Decision(action=Action.UPDATE, reason=REASON_FREE, record=taken, acquiring=True)
    duration = current.duration_seconds
    if duration is None:
        if now < observation.changed_at + lease_seconds:
            return Decision(action=Action.WAIT, reason=REASON_UNREADABLE)
        return Decision(action=Action.UPDATE, reason=REASON_EXPIRED, record=taken,
                        acquiring=True)
    if now < observation.changed_at + duration:
        return Decision(action=Action.WAIT, reason=REASON_HELD)
    return Decision(action=Action.UPDATE, reason=REASON_EXPIRED, record=taken, acquiring=True)


def next_try(observation: Observation | None, *, now: float, lease_seconds: int,
             jittered: float) -> float:
    """Seconds until a standby's next try: the jittered retry period, or sooner when the
    observed holder's Lease expires before that (client-go waits the retry period only; aiming
    at the expiry saves up to a retry period, 2.4 s on average, of every takeover)."""
    record = observation.record if observation is not None else None
    if observation is None or record is None or not record.holder:
        return jittered
    expires = observation.changed_at + (record.duration_seconds or lease_seconds)
    return max(0.0, min(jittered, expires - now + EXPIRY_SLACK))


def must_stop(*, last_renewed: float, now: float, renew_deadline: float) -> bool:
    """The leader fences itself: no successful renewal for ``renew_deadline`` seconds (counted
    from when that renewal was *sent*, so it errs towards stopping early)."""
    return now >= last_renewed + renew_deadline


def released(current: LeaseRecord, *, wall: str) -> LeaseRecord:
    """What a leader writes when it steps down (client-go's ReleaseOnCancel): no holder, so
    a standby takes over at its next retry instead of after the lease duration."""
    return LeaseRecord(holder="", duration_seconds=1, acquire_time=wall, renew_time=wall,
                       transitions=current.transitions, framework=current.framework)
