"""The allocator's public values (grants, role summaries, errors) and quantity arithmetic.

Why apart from ``allocator``: these are plain values and pure helpers (scalar quantities of a
resource bag, decline-filter timeouts, min_allocatable checks, chopping an offer to a quota
headroom) shared by the bookkeeping (``allocator_books``) and the allocation pass
(``allocator``); neither policy nor state lives here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from k8sbridge.kernel.protocol import AgentId, FrameworkId
from k8sbridge.kernel.resources import Resource, Resources

DEFAULT_REFUSE_SECONDS = 5.0  # Filters.refuse_seconds' proto default
MAX_REFUSE_SECONDS = 365 * 24 * 3600.0  # Mesos caps filters at 365 days
DEFAULT_MIN_ALLOCATABLE: tuple[Mapping[str, float], ...] = ({"cpus": 0.01}, {"mem": 32.0})

GPU_RESOURCES = "GPU_RESOURCES"
REVOCABLE_RESOURCES = "REVOCABLE_RESOURCES"
SHARED_RESOURCES = "SHARED_RESOURCES"
RESERVATION_REFINEMENT = "RESERVATION_REFINEMENT"


class AllocatorError(ValueError):
    """An allocator call named something unknown or carried invalid input."""


# --------------------------------------------------------------------------------------------
# Values handed out


@dataclasses.dataclass(frozen=True, slots=True)
class OfferGrant:
    """Resources of one agent granted to one framework for one role (one future offer)."""

    framework_id: FrameworkId
    agent_id: AgentId
    role: str
    resources: Resources  # allocation_role already set to ``role``


@dataclasses.dataclass(frozen=True, slots=True)
class RoleSummary:
    """A role as the operator API shows it (GET_ROLES, ``/roles``)."""

    weight: float
    allocated: Resources
    frameworks: tuple[FrameworkId, ...]



# --------------------------------------------------------------------------------------------
# Filters


def refuse_timeout(refuse_seconds: float, *, allocation_interval: float) -> float:
    """How long a decline/accept filter lasts (0 = no filter), following ``recoverResources``.

    Negative or invalid values fall back to the 5 s default, values over 365 days are capped,
    and a non-zero filter lasts at least one allocation interval (MESOS-4302).
    """
    seconds = float(refuse_seconds)
    if math.isnan(seconds):
        seconds = DEFAULT_REFUSE_SECONDS
    elif seconds > MAX_REFUSE_SECONDS:
        seconds = MAX_REFUSE_SECONDS
    elif seconds < 0:
        seconds = DEFAULT_REFUSE_SECONDS
    if seconds == 0:
        return 0.0
    return max(allocation_interval, seconds)


@dataclasses.dataclass(frozen=True, slots=True)
class _OfferFilter:
    resources: Resources  # unallocated form
    expires_at: float


# --------------------------------------------------------------------------------------------
# Internal state


def _quantities(resources: Resources) -> dict[str, float]:
    """Name -> amount: scalar sums, number of ports in ranges, number of set items."""
    out: dict[str, float] = {}
    for res in resources.items:
        if res.type == "SCALAR":
            amount = res.scalar
        elif res.type == "RANGES":
            amount = float(sum(end - begin + 1 for begin, end in res.ranges))
        else:
            amount = float(len(res.items))
        out[res.name] = out.get(res.name, 0.0) + amount
    return out


def _scalars(resources: Resources) -> dict[str, float]:
    out: dict[str, float] = {}
    for res in resources.items:
        if res.type == "SCALAR":
            out[res.name] = out.get(res.name, 0.0) + res.scalar
    return out


def _add_q(target: dict[str, float], quantities: Mapping[str, float], sign: float = 1.0) -> None:
    for name, value in quantities.items():
        new = round((target.get(name, 0.0) + sign * value) * 1000) / 1000
        if new > 0:
            target[name] = new
        else:
            target.pop(name, None)


def _is_revocable(res: Resource) -> bool:
    return res.revocable


def _is_shared(res: Resource) -> bool:
    return res.shared


def _is_ancestor_or_self(ancestor: str, role: str) -> bool:
    return role == ancestor or role.startswith(ancestor + "/")


def _ancestors(role: str) -> list[str]:
    parts = role.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def _allocated_to(resources: Resources, role: str) -> Resources:
    """``Resources.allocated_to`` for unallocated input, without re-merging (hot path)."""
    return Resources(
        tuple(
            r.reallocated(role)
            for r in resources.items
        )
    )


def _by_allocation_role(resources: Resources) -> dict[str, Resources]:
    groups: dict[str, list[Resource]] = {}
    for res in resources.items:
        groups.setdefault(res.allocation_role or "*", []).append(res)
    return {role: Resources(tuple(items)) for role, items in groups.items()}


def _validate_requirements(
    raw: Sequence[Mapping[str, float]], *, what: str
) -> tuple[dict[str, float], ...]:
    out: list[dict[str, float]] = []
    for requirement in raw:
        if not isinstance(requirement, Mapping):
            raise AllocatorError(f"{what}: each requirement must map names to quantities")
        parsed: dict[str, float] = {}
        for name, value in requirement.items():
            try:
                amount = float(value)
            except (TypeError, ValueError) as e:
                raise AllocatorError(f"{what}: {name} has a non-numeric quantity") from e
            if math.isnan(amount) or amount < 0:
                raise AllocatorError(f"{what}: {name} must be a non-negative quantity")
            parsed[str(name)] = amount
        out.append(parsed)
    return tuple(out)


def _meets(quantities: Mapping[str, float], requirements: Sequence[Mapping[str, float]]) -> bool:
    if not requirements:
        return True
    for requirement in requirements:
        for name, value in requirement.items():
            if quantities.get(name, 0.0) < value:
                break
        else:
            return True
    return False


def _same(left: Resources, right: Resources) -> bool:
    return left.contains(right) and right.contains(left)


def _shrink(resources: Resources, limits: Mapping[str, float]) -> Resources:
    """Chop unreserved, non-revocable scalars down to ``limits`` (Mesos' ``shrinkResources``)."""
    left = dict(limits)
    kept: list[Resource] = []
    changed = False
    for res in resources.items:
        if (
            res.type != "SCALAR"
            or res.reservations
            or _is_revocable(res)
            or res.name not in left
        ):
            kept.append(res)
            continue
        allowed = left[res.name]
        if allowed <= 0:
            changed = True
            continue
        if res.scalar <= allowed:
            left[res.name] = allowed - res.scalar
            kept.append(res)
            continue
        changed = True
        kept.append(dataclasses.replace(res, scalar=math.floor(allowed * 1000) / 1000))
        left[res.name] = 0.0
    if not changed:
        return resources
    return Resources.of(kept)
