"""The kernel's resource allocator: which framework is offered which agent's resources, and when.

Why its own pure module: this is the one part of the kernel whose decisions are subtle enough to
need exhaustive unit tests (fairness, filters, reservations, quota), and Mesos' behaviour here is
what frameworks tune themselves against. Keeping it synchronous and free of I/O and clocks (time
comes in as ``now``) lets the master own one instance inside its event loop and lets tests drive
it from static inputs.

It follows Mesos' ``HierarchicalDRFAllocator`` (``src/master/allocator/mesos/hierarchical.cpp``):

* one batch pass (``allocate``) walks the active agents in a seeded random order; for each agent
  it asks the role sorter for roles (weighted DRF, hierarchical roles aggregating into their
  parents), then each role's framework sorter for frameworks (DRF), and offers the agent's
  resources allocatable to that role *in full* to the first eligible framework;
* reserved resources go only to their role and its sub-roles; unreserved ones to any role;
* quota limits cap a role's consumption (its and its sub-roles' reservations plus unreserved
  allocations, scalars only, ports excluded), chopping offers down where needed;
* ``min_allocatable_resources`` (global, or per framework and role), GPU filtering, capability
  stripping (revocable/shared/refined reservations), offer constraints, suppression and
  decline/accept filters (``refuse_seconds``) decide eligibility;
* what is granted counts as allocated until ``recover`` gives it back.

The ordering policy lives in ``sorter.py``; this module owns the bookkeeping: per agent
``available = total - allocated``, changed only through the methods below.

Errors: ``AllocatorError`` (a ``ValueError``) for calls naming unknown frameworks or agents and
for invalid input (offer constraints, weights, quota, min_allocatable). Calls that race with a
removal in Mesos (``recover`` for a removed framework or agent, removing twice) are no-ops.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import random
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from k8sbridge.kernel import sorter as sorting
from k8sbridge.kernel.protocol import AgentId, FrameworkId
from k8sbridge.kernel.resources import Attribute, Resource, Resources

__all__ = [
    "DEFAULT_MIN_ALLOCATABLE",
    "DEFAULT_REFUSE_SECONDS",
    "MAX_REFUSE_SECONDS",
    "Allocator",
    "AllocatorError",
    "AttributeConstraint",
    "OfferConstraints",
    "OfferGrant",
    "RoleSummary",
    "agent_matches",
    "parse_offer_constraints",
    "refuse_timeout",
]

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
# Offer constraints (scheduler.proto ``OfferConstraints``)

PredicateKind = Literal[
    "exists", "not_exists", "text_equals", "text_not_equals", "text_matches", "text_not_matches"
]
SelectorKind = Literal["attribute", "HOSTNAME", "REGION", "ZONE"]
_PREDICATES: tuple[PredicateKind, ...] = (
    "exists",
    "not_exists",
    "text_equals",
    "text_not_equals",
    "text_matches",
    "text_not_matches",
)


@dataclasses.dataclass(frozen=True, slots=True)
class AttributeConstraint:
    """One ``AttributeConstraint``: a selector (attribute name or pseudo-attribute) + predicate."""

    selector: SelectorKind
    attribute_name: str
    predicate: PredicateKind
    value: str = ""  # text_equals / text_not_equals
    pattern: re.Pattern[str] | None = None  # text_matches / text_not_matches


# role -> groups (OR-ed) of constraints (AND-ed)
OfferConstraints = dict[str, tuple[tuple[AttributeConstraint, ...], ...]]


def _parse_constraint(raw: Any, *, role: str) -> AttributeConstraint:
    if not isinstance(raw, Mapping):
        raise AllocatorError(f"A role {role} has an invalid 'AttributeConstraint': not an object")
    selector_raw = raw.get("selector")
    if not isinstance(selector_raw, Mapping):
        selector_raw = {}
    selector: SelectorKind
    name = ""
    if "attribute_name" in selector_raw:
        selector = "attribute"
        name = str(selector_raw["attribute_name"])
    elif "pseudoattribute_type" in selector_raw:
        kind = selector_raw["pseudoattribute_type"]
        if kind not in ("HOSTNAME", "REGION", "ZONE"):
            raise AllocatorError(
                f"A role {role} has an invalid 'AttributeConstraint': "
                f"Unknown pseudoattribute type {kind!r}"
            )
        selector = kind
    else:
        raise AllocatorError(
            f"A role {role} has an invalid 'AttributeConstraint': Exactly one of "
            "'AttributeConstraint::Selector::name' or "
            "'AttributeConstraint::Selector::pseudoattribute_type' must be set"
        )
    predicate_raw = raw.get("predicate")
    if not isinstance(predicate_raw, Mapping):
        predicate_raw = {}
    kinds = [k for k in _PREDICATES if k in predicate_raw]
    if len(kinds) != 1:
        raise AllocatorError(
            f"A role {role} has an invalid 'AttributeConstraint': Unknown predicate type"
        )
    kind_ = kinds[0]
    body = predicate_raw[kind_]
    if not isinstance(body, Mapping):
        body = {}
    if kind_ in ("text_equals", "text_not_equals"):
        return AttributeConstraint(
            selector=selector,
            attribute_name=name,
            predicate=kind_,
            value=str(body.get("value", "")),
        )
    if kind_ in ("text_matches", "text_not_matches"):
        regex = str(body.get("regex", ""))
        try:
            pattern = re.compile(regex)
        except re.error as e:
            raise AllocatorError(
                f"A role {role} has an invalid 'AttributeConstraint': "
                f"Failed to construct regex from pattern '{regex}': {e}"
            ) from e
        return AttributeConstraint(
            selector=selector, attribute_name=name, predicate=kind_, pattern=pattern
        )
    return AttributeConstraint(selector=selector, attribute_name=name, predicate=kind_)


def parse_offer_constraints(raw: Mapping[str, Any] | None) -> OfferConstraints:
    """Parse ``{"role_constraints": {role: {"groups": [...]}}}`` as Mesos validates it."""
    if not raw:
        return {}
    if not isinstance(raw, Mapping):
        raise AllocatorError("'offer_constraints' must be an object")
    roles_raw = raw.get("role_constraints") or {}
    if not isinstance(roles_raw, Mapping):
        raise AllocatorError("'OfferConstraints::role_constraints' must be an object")
    out: OfferConstraints = {}
    for role, role_raw in roles_raw.items():
        groups_raw = role_raw.get("groups") if isinstance(role_raw, Mapping) else None
        if not groups_raw:
            raise AllocatorError(
                "'OfferConstraints::role_constraints' has an empty "
                f"'RoleConstraints::groups' for role {role}"
            )
        groups: list[tuple[AttributeConstraint, ...]] = []
        for group_raw in groups_raw:
            items = (
                group_raw.get("attribute_constraints") if isinstance(group_raw, Mapping) else None
            )
            if not items:
                raise AllocatorError(
                    f"'OfferConstraints::RoleConstraints::groups' for role {role} "
                    "contains an empty RoleConstraints::Group"
                )
            groups.append(tuple(_parse_constraint(item, role=str(role)) for item in items))
        out[str(role)] = tuple(groups)
    return out


def _apply_predicate(constraint: AttributeConstraint, value: str | Attribute | None) -> bool:
    """Mesos' predicate semantics: absent, a string (pseudo-attribute) or an attribute."""
    kind = constraint.predicate
    if kind == "exists":
        return value is not None
    if kind == "not_exists":
        return value is None
    if value is None:
        return kind in ("text_not_equals", "text_not_matches")
    if isinstance(value, Attribute):
        if value.type != "TEXT":
            return True  # text predicates hold for non-TEXT attributes, as in Mesos
        text = value.text
    else:
        text = value
    if kind == "text_equals":
        return text == constraint.value
    if kind == "text_not_equals":
        return text != constraint.value
    assert constraint.pattern is not None
    matched = constraint.pattern.fullmatch(text) is not None
    return matched if kind == "text_matches" else not matched


def _constraint_holds(
    constraint: AttributeConstraint,
    *,
    attributes: Mapping[str, Attribute],
    hostname: str,
    region: str | None,
    zone: str | None,
) -> bool:
    value: str | Attribute | None
    if constraint.selector == "attribute":
        value = attributes.get(constraint.attribute_name)
    elif constraint.selector == "HOSTNAME":
        value = hostname
    else:
        has_domain = region is not None or zone is not None
        if not has_domain:
            value = None
        elif constraint.selector == "REGION":
            value = region or ""
        else:
            value = zone or ""
    return _apply_predicate(constraint, value)


def agent_matches(
    groups: Sequence[Sequence[AttributeConstraint]],
    *,
    attributes: Sequence[Attribute],
    hostname: str = "",
    region: str | None = None,
    zone: str | None = None,
) -> bool:
    """True when some group has all its constraints satisfied by the agent."""
    by_name = {a.name: a for a in attributes}
    return any(
        all(
            _constraint_holds(c, attributes=by_name, hostname=hostname, region=region, zone=zone)
            for c in group
        )
        for group in groups
    )


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
            r.with_(allocation_role=role)
            for r in resources.items
        )
    )


def _by_allocation_role(resources: Resources) -> dict[str, Resources]:
    groups: dict[str, list[Resource]] = {}
    for res in resources.items:
        groups.setdefault(res.allocation_role or "*", []).append(res)
    return {role: Resources(tuple(items)) for role, items in groups.items()}


class _Agent:
    __slots__ = (
        "id",
        "total",
        "available",
        "available_q",
        "allocated",
        "attributes",
        "attr_by_name",
        "hostname",
        "region",
        "zone",
        "active",
        "has_gpu",
        "has_reserved",
        "has_special",
        "total_scalars",
        "reserved_q",
        "overcommitted",
    )

    def __init__(
        self,
        *,
        agent_id: AgentId,
        total: Resources,
        attributes: Sequence[Attribute],
        hostname: str,
        region: str | None,
        zone: str | None,
    ) -> None:
        self.id = agent_id
        self.attributes = tuple(attributes)
        self.attr_by_name = {a.name: a for a in attributes}
        self.hostname = hostname
        self.region = region
        self.zone = zone
        self.active = True
        self.allocated: dict[FrameworkId, Resources] = {}
        self.total = Resources()
        self.available = Resources()
        self.available_q: dict[str, float] = {}
        self.has_gpu = False
        self.has_reserved = False
        self.has_special = False
        self.total_scalars: dict[str, float] = {}
        self.reserved_q: dict[str, dict[str, float]] = {}
        self.overcommitted = False  # holds more than its total (the total shrank)
        self.set_total(total)

    def set_total(self, total: Resources) -> None:
        self.total = total.unallocated()
        self.has_gpu = total.scalar("gpus") > 0
        self.has_reserved = any(r.reservations for r in total.items)
        self.has_special = any(
            _is_revocable(r) or _is_shared(r) or len(r.reservations) > 1 for r in total.items
        )
        self.total_scalars = _scalars(self.total)
        reserved: dict[str, dict[str, float]] = {}
        for res in self.total.items:
            if res.reservations and res.type == "SCALAR":
                _add_q(reserved.setdefault(res.role, {}), {res.name: res.scalar})
        self.reserved_q = reserved

    def set_available(self, available: Resources) -> None:
        self.available = available
        self.available_q = _quantities(available)

    def used(self) -> Resources:
        used = Resources()
        for held in self.allocated.values():
            used = used + held.unallocated()
        return used

    def recompute_available(self) -> None:
        used = self.used()
        self.overcommitted = not self.total.contains(used)
        self.set_available(self.total - used)


class _RoleView(NamedTuple):
    available: Resources  # allocatable to the role
    available_q: dict[str, float]
    offer: Resources  # ... and within its quota headroom
    offer_q: dict[str, float]


class _Framework:
    __slots__ = (
        "id",
        "roles",
        "suppressed",
        "capabilities",
        "constraints",
        "min_allocatable",
        "active",
        "filters",
        "held_roles",
    )

    def __init__(self, framework_id: FrameworkId) -> None:
        self.id = framework_id
        self.roles: frozenset[str] = frozenset()
        self.suppressed: set[str] = set()
        self.capabilities: frozenset[str] = frozenset()
        self.constraints: OfferConstraints = {}
        self.min_allocatable: dict[str, tuple[dict[str, float], ...]] = {}
        self.active = True
        # (role, agent) -> filters installed by recover(refuse_seconds=...)
        self.filters: dict[tuple[str, AgentId], list[_OfferFilter]] = {}
        # role -> number of agents on which this framework holds resources for the role
        self.held_roles: dict[str, int] = {}


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


# --------------------------------------------------------------------------------------------
# The allocator


class Allocator:
    """Hierarchical weighted DRF allocator with Mesos' semantics (see the module docstring)."""

    def __init__(
        self,
        *,
        role_sorter: str = "drf",
        framework_sorter: str = "drf",
        min_allocatable: Sequence[Mapping[str, float]] = DEFAULT_MIN_ALLOCATABLE,
        filter_gpu_resources: bool = True,
        seed: int | None = None,
        allocation_interval: float = 1.0,
    ) -> None:
        self._rng = random.Random(seed)
        self._framework_sorter_kind = framework_sorter
        try:
            self._role_sorter = sorting.make_sorter(role_sorter, rng=self._rng)
            sorting.make_sorter(framework_sorter, rng=self._rng)  # validate the kind early
        except sorting.SorterError as e:
            raise AllocatorError(str(e)) from e
        self._min_allocatable = _validate_requirements(min_allocatable, what="min_allocatable")
        self._filter_gpu = filter_gpu_resources
        if not allocation_interval >= 0:
            raise AllocatorError("allocation_interval must be >= 0")
        self._allocation_interval = float(allocation_interval)
        self._agents: dict[AgentId, _Agent] = {}
        self._frameworks: dict[FrameworkId, _Framework] = {}
        self._framework_sorters: dict[str, sorting.DrfSorter | sorting.RandomSorter] = {}
        self._weights: dict[str, float] = {}
        self._quotas: dict[str, dict[str, float]] = {}
        self._total: dict[str, float] = {}
        # quota consumption parts, per exact role
        self._reserved: dict[str, dict[str, float]] = {}
        self._unreserved_allocated: dict[str, dict[str, float]] = {}
        # consumption of every role that has quota, kept up to date incrementally
        self._quota_consumed: dict[str, dict[str, float]] = {}
        self._chains: dict[str, tuple[str, ...]] = {}
        # (expires_at, tie-breaker, framework, (role, agent)) of every filter installed
        self._filter_expiry: list[tuple[float, int, FrameworkId, tuple[str, AgentId]]] = []
        self._filter_count = 0

    # ---------------------------------------------------------------------------------------
    # frameworks

    def _framework(self, framework_id: FrameworkId) -> _Framework:
        fw = self._frameworks.get(framework_id)
        if fw is None:
            raise AllocatorError(f"unknown framework {framework_id}")
        return fw

    def add_framework(
        self,
        framework_id: FrameworkId,
        *,
        roles: Collection[str],
        suppressed_roles: Collection[str] = (),
        capabilities: Collection[str] = (),
        offer_constraints: Mapping[str, Any] | None = None,
        min_allocatable: Mapping[str, Sequence[Mapping[str, float]]] | None = None,
        active: bool = True,
    ) -> None:
        if framework_id in self._frameworks:
            raise AllocatorError(f"framework {framework_id} already added")
        fw = _Framework(framework_id)
        self._configure(
            fw,
            roles=roles,
            suppressed_roles=suppressed_roles,
            capabilities=capabilities,
            offer_constraints=offer_constraints,
            min_allocatable=min_allocatable,
        )
        fw.active = active
        self._frameworks[framework_id] = fw
        # Adopt what agents already report for it (re-registered agents, master failover).
        for agent in self._agents.values():
            held = agent.allocated.pop(framework_id, None)
            if held:
                held = self._with_allocation_role(framework_id, held)
                self._set_held(agent, fw, held)
                self._track(agent, fw, held)
        for role in set(fw.roles) | set(fw.held_roles):
            self._sync_membership(fw, role)

    def _configure(
        self,
        fw: _Framework,
        *,
        roles: Collection[str],
        suppressed_roles: Collection[str],
        capabilities: Collection[str],
        offer_constraints: Mapping[str, Any] | None,
        min_allocatable: Mapping[str, Sequence[Mapping[str, float]]] | None,
    ) -> None:
        role_set = frozenset(roles)
        for role in role_set:
            if not role or role.startswith("/") or role.endswith("/") or "//" in role:
                raise AllocatorError(f"invalid role {role!r}")
        constraints = parse_offer_constraints(offer_constraints)
        mins: dict[str, tuple[dict[str, float], ...]] = {}
        for role, requirements in (min_allocatable or {}).items():
            mins[role] = _validate_requirements(
                requirements, what=f"min_allocatable_resources of role {role}"
            )
        fw.roles = role_set
        fw.suppressed = set(suppressed_roles) & role_set
        fw.capabilities = frozenset(capabilities)
        fw.constraints = constraints
        fw.min_allocatable = mins

    def update_framework(
        self,
        framework_id: FrameworkId,
        *,
        roles: Collection[str],
        suppressed_roles: Collection[str] = (),
        capabilities: Collection[str] = (),
        offer_constraints: Mapping[str, Any] | None = None,
        min_allocatable: Mapping[str, Sequence[Mapping[str, float]]] | None = None,
    ) -> None:
        fw = self._framework(framework_id)
        old_roles = fw.roles
        probe = _Framework(framework_id)  # validate everything before changing anything
        self._configure(
            probe,
            roles=roles,
            suppressed_roles=suppressed_roles,
            capabilities=capabilities,
            offer_constraints=offer_constraints,
            min_allocatable=min_allocatable,
        )
        fw.roles = probe.roles
        fw.suppressed = probe.suppressed
        fw.capabilities = probe.capabilities
        fw.constraints = probe.constraints
        fw.min_allocatable = probe.min_allocatable
        for role in old_roles - fw.roles:
            self._clear_filters(fw, role)
        for role in old_roles | fw.roles | set(fw.held_roles):
            self._sync_membership(fw, role)

    def remove_framework(self, framework_id: FrameworkId) -> None:
        fw = self._frameworks.get(framework_id)
        for agent in self._agents.values():
            held = agent.allocated.pop(framework_id, None)
            if held is None:
                continue
            if fw is not None:
                self._untrack(agent, fw, held)
            agent.recompute_available()
        if fw is None:
            return  # unknown, or only known from agents' reports (now forgotten too)
        fw.roles = frozenset()
        for role in list(self._framework_sorters):
            fsorter = self._framework_sorters[role]
            if fsorter.contains(framework_id):
                fsorter.remove(framework_id)
                self._drop_role_if_empty(role)
        del self._frameworks[framework_id]

    def activate_framework(self, framework_id: FrameworkId) -> None:
        fw = self._framework(framework_id)
        fw.active = True
        for role in fw.roles:
            self._sync_membership(fw, role)

    def deactivate_framework(self, framework_id: FrameworkId) -> None:
        fw = self._framework(framework_id)
        fw.active = False
        fw.filters.clear()  # as Mesos: a failed-over framework starts without filters
        for role in set(fw.roles) | set(fw.held_roles):
            self._sync_membership(fw, role)

    def suppress(self, framework_id: FrameworkId, roles: Collection[str] | None = None) -> None:
        """Stop offers for ``roles`` (default: all its roles); roles it lacks are ignored."""
        fw = self._framework(framework_id)
        targets = fw.roles if roles is None or not roles else set(roles) & fw.roles
        for role in targets:
            fw.suppressed.add(role)
            self._sync_membership(fw, role)

    def revive(self, framework_id: FrameworkId, roles: Collection[str] | None = None) -> None:
        """Unsuppress ``roles`` (default: all its roles) and clear their filters."""
        fw = self._framework(framework_id)
        targets = fw.roles if roles is None or not roles else set(roles) & fw.roles
        for role in targets:
            fw.suppressed.discard(role)
            self._clear_filters(fw, role)
            self._sync_membership(fw, role)

    def _clear_filters(self, fw: _Framework, role: str) -> None:
        for key in [k for k in fw.filters if k[0] == role]:
            del fw.filters[key]

    def _sync_membership(self, fw: _Framework, role: str) -> None:
        """Put ``fw`` in (or out of) ``role``'s framework sorter, active only when eligible."""
        wanted = role in fw.roles or fw.held_roles.get(role, 0) > 0
        fsorter = self._framework_sorters.get(role)
        if wanted:
            if fsorter is None:
                fsorter = sorting.make_sorter(self._framework_sorter_kind, rng=self._rng)
                fsorter.update_total(self._total)
                self._framework_sorters[role] = fsorter
                self._role_sorter.add(role)
                self._role_sorter.activate(role)
            if not fsorter.contains(fw.id):
                fsorter.add(fw.id)
            if fw.active and role in fw.roles and role not in fw.suppressed:
                fsorter.activate(fw.id)
            else:
                fsorter.deactivate(fw.id)
        elif fsorter is not None and fsorter.contains(fw.id):
            fsorter.remove(fw.id)
            self._drop_role_if_empty(role)

    def _drop_role_if_empty(self, role: str) -> None:
        fsorter = self._framework_sorters.get(role)
        if fsorter is not None and not fsorter.clients():
            del self._framework_sorters[role]
            self._role_sorter.remove(role)

    # ---------------------------------------------------------------------------------------
    # agents

    def _agent(self, agent_id: AgentId) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise AllocatorError(f"unknown agent {agent_id}")
        return agent

    def add_agent(
        self,
        agent_id: AgentId,
        *,
        total: Resources,
        attributes: Sequence[Attribute] = (),
        hostname: str = "",
        region: str | None = None,
        zone: str | None = None,
        used: Mapping[FrameworkId, Resources] | None = None,
    ) -> None:
        if agent_id in self._agents:
            raise AllocatorError(f"agent {agent_id} already added")
        agent = _Agent(
            agent_id=agent_id,
            total=total,
            attributes=attributes,
            hostname=hostname,
            region=region,
            zone=zone,
        )
        self._agents[agent_id] = agent
        self._account_total(agent, +1.0)
        for framework_id, resources in (used or {}).items():
            if not resources.items:
                continue
            fw = self._frameworks.get(framework_id)
            if fw is None:
                agent.allocated[framework_id] = resources  # adopted when the framework is added
            else:
                held = self._with_allocation_role(framework_id, resources)
                self._set_held(agent, fw, held)
                self._track(agent, fw, held)
        agent.recompute_available()

    def _with_allocation_role(
        self, framework_id: FrameworkId, resources: Resources, *, held: Resources | None = None
    ) -> Resources:
        """Give resources without ``allocation_info`` an allocation role: the only role the
        framework holds on the agent (``held``), else its only subscribed role, else their
        reservation role (``*`` when unreserved), as the master does for old agents."""
        if all(r.allocation_role is not None for r in resources.items):
            return resources
        held_roles = {r.allocation_role for r in held.items} if held is not None else set()
        only: str | None = None
        if len(held_roles) == 1:
            only = held_roles.pop()
        else:
            fw = self._frameworks.get(framework_id)
            if fw is not None and len(fw.roles) == 1:
                only = next(iter(fw.roles))
        return Resources.of(
            r
            if r.allocation_role is not None
            else dataclasses.replace(r, allocation_role=only or r.role)
            for r in resources.items
        )

    def _account_total(self, agent: _Agent, sign: float) -> None:
        _add_q(self._total, agent.total_scalars, sign)
        for role, quantities in agent.reserved_q.items():
            self._consume(role, quantities, sign)
            _add_q(self._reserved.setdefault(role, {}), quantities, sign)
            if not self._reserved[role]:
                del self._reserved[role]
        self._role_sorter.update_total(self._total)
        for fsorter in self._framework_sorters.values():
            fsorter.update_total(self._total)

    def remove_agent(self, agent_id: AgentId) -> None:
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        for framework_id, held in list(agent.allocated.items()):
            fw = self._frameworks.get(framework_id)
            if fw is not None:
                self._untrack(agent, fw, held)
                self._set_held(agent, fw, Resources())
        agent.allocated.clear()
        self._account_total(agent, -1.0)
        del self._agents[agent_id]
        for fw in self._frameworks.values():
            for key in [k for k in fw.filters if k[1] == agent_id]:
                del fw.filters[key]
            for role in list(fw.held_roles):
                self._sync_membership(fw, role)

    def activate_agent(self, agent_id: AgentId) -> None:
        self._agent(agent_id).active = True

    def deactivate_agent(self, agent_id: AgentId) -> None:
        self._agent(agent_id).active = False

    def update_agent_total(self, agent_id: AgentId, total: Resources) -> None:
        agent = self._agent(agent_id)
        self._account_total(agent, -1.0)
        agent.set_total(total)
        self._account_total(agent, +1.0)
        agent.recompute_available()

    # ---------------------------------------------------------------------------------------
    # bookkeeping of allocations

    def _track(self, agent: _Agent, fw: _Framework, resources: Resources) -> None:
        """Charge ``resources`` (with allocation roles) to ``fw`` in the sorters and quota."""
        for role, part in _by_allocation_role(resources).items():
            quantities = _scalars(part)
            reserved = any(r.reservations for r in part.items)
            unreserved = _scalars(part.unreserved()) if reserved else quantities
            self._charge(fw, role, quantities, unreserved)

    def _charge(
        self,
        fw: _Framework,
        role: str,
        quantities: dict[str, float],
        unreserved: dict[str, float],
    ) -> None:
        self._ensure_role_member(fw, role)
        self._role_sorter.allocated(role, quantities)
        self._framework_sorters[role].allocated(fw.id, quantities)
        if unreserved:
            self._consume(role, unreserved, +1.0)
            _add_q(self._unreserved_allocated.setdefault(role, {}), unreserved)

    def _untrack(self, agent: _Agent, fw: _Framework, resources: Resources) -> None:
        for role, part in _by_allocation_role(resources).items():
            fsorter = self._framework_sorters.get(role)
            if fsorter is None or not fsorter.contains(fw.id):
                continue
            quantities = _scalars(part)
            self._role_sorter.unallocated(role, quantities)
            fsorter.unallocated(fw.id, quantities)
            unreserved = _scalars(part.unreserved())
            if unreserved and role in self._unreserved_allocated:
                self._consume(role, unreserved, -1.0)
                _add_q(self._unreserved_allocated[role], unreserved, -1.0)
                if not self._unreserved_allocated[role]:
                    del self._unreserved_allocated[role]

    def _ensure_role_member(self, fw: _Framework, role: str) -> None:
        fsorter = self._framework_sorters.get(role)
        if fsorter is None or not fsorter.contains(fw.id):
            self._sync_membership(fw, role)

    def _set_held(self, agent: _Agent, fw: _Framework, held: Resources) -> None:
        """Replace ``fw``'s allocation on ``agent`` and keep ``held_roles`` counts right."""
        before = agent.allocated.get(fw.id)
        old_roles = {r.allocation_role or "*" for r in before.items} if before else set()
        new_roles = {r.allocation_role or "*" for r in held.items}
        if held:
            agent.allocated[fw.id] = held
        else:
            agent.allocated.pop(fw.id, None)
        for role in new_roles - old_roles:
            fw.held_roles[role] = fw.held_roles.get(role, 0) + 1
        dropped = old_roles - new_roles
        for role in dropped:
            count = fw.held_roles.get(role, 0) - 1
            if count > 0:
                fw.held_roles[role] = count
            else:
                fw.held_roles.pop(role, None)
        for role in dropped:
            if role not in fw.roles:
                self._sync_membership(fw, role)

    # ---------------------------------------------------------------------------------------
    # the allocation pass

    def allocate(
        self, *, now: float, agent_ids: Collection[AgentId] | None = None
    ) -> list[OfferGrant]:
        """One batch pass over the (given or all) active agents; returns the grants made."""
        if agent_ids is None:
            candidates = [a for a in self._agents.values() if a.active and a.available.items]
        else:
            candidates = [
                self._agents[i]
                for i in sorted(set(agent_ids))
                if i in self._agents and self._agents[i].active
            ]
            candidates = [a for a in candidates if a.available.items]
        self._expire_filters(now)
        self._rng.shuffle(candidates)
        grants: list[OfferGrant] = []
        has_quota = bool(self._quotas)
        role_sorter = self._role_sorter
        for agent in candidates:
            for role in role_sorter.iterate():
                if not agent.available.items:
                    break
                frameworks = self._framework_sorters[role].iterate()
                first = next(frameworks, None)
                if first is None:
                    continue  # every framework of the role is suppressed or inactive
                view = self._role_view(agent, role, has_quota)
                if view is None:
                    continue  # nothing this role may take from this agent
                for framework_id in itertools.chain((first,), frameworks):
                    fw = self._frameworks[FrameworkId(framework_id)]
                    grant = self._try_offer(agent, fw, role, view, now)
                    if grant is None:
                        continue
                    grants.append(grant)
                    view = self._role_view(agent, role, has_quota)
                    if view is None:
                        break
        return grants

    def _role_view(self, agent: _Agent, role: str, has_quota: bool) -> _RoleView | None:
        """What ``role`` could be offered on ``agent`` before framework-specific checks: the
        resources allocatable to it, and those chopped down to its quota headroom."""
        if agent.has_reserved:
            available = agent.available.allocatable_to(role)
            if not available.items:
                return None
            quantities = _quantities(available)
        else:
            available = agent.available
            if not available.items:
                return None
            quantities = agent.available_q
        offer, offer_q = available, quantities
        if has_quota:
            limits = self._quota_remaining(role)
            if limits is not None:
                offer = _shrink(available, limits)
                if not offer.items:
                    return None
                if offer is not available:
                    offer_q = _quantities(offer)
        return _RoleView(available, quantities, offer, offer_q)

    def _try_offer(
        self, agent: _Agent, fw: _Framework, role: str, view: _RoleView, now: float
    ) -> OfferGrant | None:
        if fw.constraints:
            groups = fw.constraints.get(role)
            if groups is not None and not _agent_satisfies(groups, agent):
                return None
        mins = fw.min_allocatable.get(role, self._min_allocatable)
        if not _meets(view.available_q, mins):
            return None  # Mesos' early check, on what is allocatable before quota
        if self._filter_gpu and agent.has_gpu and GPU_RESOURCES not in fw.capabilities:
            return None
        to_offer = view.offer
        if agent.has_special:
            to_offer = self._strip_incapable(to_offer, fw.capabilities)
            if not to_offer.items:
                return None
        quantities = view.offer_q if to_offer is view.offer else _quantities(to_offer)
        if to_offer is not view.available and not _meets(quantities, mins):
            return None
        if fw.filters and self._is_filtered(fw, role, agent.id, to_offer, now):
            return None
        # Grant.
        if to_offer is agent.available:
            agent.set_available(Resources())
        else:
            agent.set_available(agent.available - to_offer)
        granted = _allocated_to(to_offer, role)
        before = agent.allocated.get(fw.id)
        self._set_held(agent, fw, granted if before is None else before + granted)
        scalars = _scalars(to_offer)
        self._charge(
            fw,
            role,
            scalars,
            _scalars(to_offer.unreserved()) if agent.has_reserved else scalars,
        )
        return OfferGrant(framework_id=fw.id, agent_id=agent.id, role=role, resources=granted)

    def _strip_incapable(self, resources: Resources, capabilities: frozenset[str]) -> Resources:
        shared_ok = SHARED_RESOURCES in capabilities
        revocable_ok = REVOCABLE_RESOURCES in capabilities
        refined_ok = RESERVATION_REFINEMENT in capabilities
        kept = tuple(
            r
            for r in resources.items
            if (shared_ok or not _is_shared(r))
            and (revocable_ok or not _is_revocable(r))
            and (refined_ok or len(r.reservations) <= 1)
        )
        return resources if len(kept) == len(resources.items) else Resources(kept)

    def _is_filtered(
        self, fw: _Framework, role: str, agent_id: AgentId, resources: Resources, now: float
    ) -> bool:
        filters = fw.filters.get((role, agent_id))
        if not filters:
            return False
        return any(f.expires_at > now and f.resources.contains(resources) for f in filters)

    def _expire_filters(self, now: float) -> None:
        """Drop filters whose time is up (a heap of expiry times; entries whose filters were
        cleared meanwhile by revive/deactivate/removal are skipped)."""
        heap = self._filter_expiry
        while heap and heap[0][0] <= now:
            _, _, framework_id, key = heapq.heappop(heap)
            fw = self._frameworks.get(framework_id)
            if fw is None:
                continue
            filters = fw.filters.get(key)
            if not filters:
                continue
            alive = [f for f in filters if f.expires_at > now]
            if alive:
                fw.filters[key] = alive
            else:
                del fw.filters[key]

    # ---------------------------------------------------------------------------------------
    # quota

    def _consumed(self, role: str) -> dict[str, float]:
        """Reservations plus unreserved allocations of ``role`` and its sub-roles."""
        out: dict[str, float] = {}
        for source in (self._reserved, self._unreserved_allocated):
            for other, quantities in source.items():
                if _is_ancestor_or_self(role, other):
                    _add_q(out, quantities)
        return out

    def _chain(self, role: str) -> tuple[str, ...]:
        """``role`` and its ancestors, nearest first (``a/b/c``, ``a/b``, ``a``)."""
        chain = self._chains.get(role)
        if chain is None:
            chain = self._chains[role] = (role, *_ancestors(role))
        return chain

    def _consume(self, role: str, quantities: Mapping[str, float], sign: float) -> None:
        """Charge a change of ``role``'s consumption to every limited role above it."""
        if not self._quota_consumed:
            return
        for limited in self._chain(role):
            consumed = self._quota_consumed.get(limited)
            if consumed is not None:
                _add_q(consumed, quantities, sign)

    def _quota_remaining(self, role: str) -> dict[str, float] | None:
        """Name -> what ``role`` may still consume under its own and its ancestors' limits."""
        remaining: dict[str, float] | None = None
        for limited in self._chain(role):
            limits = self._quotas.get(limited)
            if not limits:
                continue
            consumed = self._quota_consumed[limited]
            if remaining is None:
                remaining = {}
            for name, limit in limits.items():
                left = limit - consumed.get(name, 0.0)
                remaining[name] = min(remaining.get(name, left), left)
        return remaining

    # ---------------------------------------------------------------------------------------
    # resource flow back

    def recover(
        self,
        *,
        agent_id: AgentId,
        framework_id: FrameworkId,
        resources: Resources,
        now: float,
        refuse_seconds: float | None = None,
    ) -> None:
        """Give back resources held by a framework on an agent; optionally install a filter."""
        agent = self._agents.get(agent_id)
        fw = self._frameworks.get(framework_id)
        if agent is None or fw is None:
            return  # raced with a removal: everything it held is already back
        held = agent.allocated.get(framework_id)
        if not held or not resources.items:
            return
        wanted = self._with_allocation_role(framework_id, resources, held=held)
        remaining = held - wanted
        returned = held - remaining
        if not returned.items:
            return
        self._untrack(agent, fw, returned)  # before _set_held may drop an unsubscribed role
        self._set_held(agent, fw, remaining)
        if agent.overcommitted:
            agent.recompute_available()  # never offer more than the (shrunk) total
        else:
            agent.set_available(agent.available + returned.unallocated())
        if refuse_seconds is None:
            return
        timeout = refuse_timeout(refuse_seconds, allocation_interval=self._allocation_interval)
        if timeout <= 0:
            return
        for role, part in _by_allocation_role(returned).items():
            expires_at = now + timeout
            fw.filters.setdefault((role, agent_id), []).append(
                _OfferFilter(resources=part.unallocated(), expires_at=expires_at)
            )
            self._filter_count += 1
            heapq.heappush(
                self._filter_expiry,
                (expires_at, self._filter_count, framework_id, (role, agent_id)),
            )
            if self._filter_count % 4096 == 0:
                self._compact_filter_expiry()

    def _compact_filter_expiry(self) -> None:
        """Rebuild the expiry heap from live filters when cleared ones dominate it."""
        live = [
            (f.expires_at, framework_id, key)
            for framework_id, fw in self._frameworks.items()
            for key, filters in fw.filters.items()
            for f in filters
        ]
        if len(self._filter_expiry) <= 2 * len(live):
            return
        heap = []
        for expires_at, framework_id, key in live:
            self._filter_count += 1
            heap.append((expires_at, self._filter_count, framework_id, key))
        heapq.heapify(heap)
        self._filter_expiry = heap

    def convert(
        self,
        *,
        agent_id: AgentId,
        framework_id: FrameworkId | None,
        consumed: Resources,
        converted: Resources,
    ) -> None:
        """Apply RESERVE/UNRESERVE: ``consumed`` becomes ``converted`` in the agent's total, and
        in the framework's allocation when ``framework_id`` is given (else in what's available).
        """
        agent = self._agent(agent_id)
        plain_consumed = consumed.unallocated()
        plain_converted = converted.unallocated()
        if not agent.total.contains(plain_consumed):
            raise AllocatorError(f"agent {agent_id} does not have {plain_consumed} to convert")
        if framework_id is None:
            if not agent.available.contains(plain_consumed):
                raise AllocatorError(
                    f"agent {agent_id} does not have {plain_consumed} available to convert"
                )
        else:
            fw = self._framework(framework_id)
            held = agent.allocated.get(framework_id) or Resources()
            role = self._conversion_role(held, consumed)
            held_consumed = plain_consumed.allocated_to(role)
            if not held.contains(held_consumed):
                raise AllocatorError(
                    f"framework {framework_id} does not hold {plain_consumed} on agent {agent_id}"
                )
            held_converted = plain_converted.allocated_to(role)
            self._untrack(agent, fw, held_consumed)
            self._set_held(agent, fw, held - held_consumed + held_converted)
            self._track(agent, fw, held_converted)
        self._account_total(agent, -1.0)
        agent.set_total(agent.total - plain_consumed + plain_converted)
        self._account_total(agent, +1.0)
        agent.recompute_available()

    @staticmethod
    def _conversion_role(held: Resources, consumed: Resources) -> str:
        roles = {r.allocation_role for r in consumed.items if r.allocation_role}
        if len(roles) == 1:
            return roles.pop()
        if roles:
            raise AllocatorError("resources to convert span several allocation roles")
        held_roles = {r.allocation_role or "*" for r in held.items}
        if len(held_roles) == 1:
            return held_roles.pop()
        raise AllocatorError("resources to convert carry no allocation role")

    # ---------------------------------------------------------------------------------------
    # weights and quota

    def update_weights(self, weights: Mapping[str, float]) -> None:
        """Set the weights of the given roles (others keep theirs); weights must be > 0."""
        parsed: dict[str, float] = {}
        for role, weight in weights.items():
            try:
                value = float(weight)
            except (TypeError, ValueError) as e:
                raise AllocatorError(f"weight of role {role!r} is not a number") from e
            if not (value > 0 and math.isfinite(value)):
                raise AllocatorError(f"weight of role {role!r} must be positive, got {weight}")
            if not role:
                raise AllocatorError("weight given for an empty role name")
            parsed[role] = value
        self._weights.update(parsed)
        self._role_sorter.update_weights(self._weights)

    def update_quota(self, role: str, limits: Mapping[str, float] | None) -> None:
        """Set (or with ``None`` remove) ``role``'s quota limits on scalar resources."""
        if not role or role == "*":
            raise AllocatorError(f"cannot set quota on role {role!r}")
        if limits is None:
            self._quotas.pop(role, None)
            self._quota_consumed.pop(role, None)
            return
        parsed: dict[str, float] = {}
        for name, value in limits.items():
            if name == "ports":
                raise AllocatorError("quota limits apply to scalar resources only, not ports")
            try:
                amount = float(value)
            except (TypeError, ValueError) as e:
                raise AllocatorError(f"quota limit for {name} is not a number") from e
            if math.isnan(amount) or amount < 0:
                raise AllocatorError(f"quota limit for {name} must be non-negative")
            if math.isinf(amount):
                continue  # "Infinity" = no limit
            parsed[name] = amount
        if parsed:
            self._quotas[role] = parsed
            self._quota_consumed[role] = self._consumed(role)
        else:
            self._quotas.pop(role, None)
            self._quota_consumed.pop(role, None)

    # ---------------------------------------------------------------------------------------
    # read-only views

    def available(self, agent_id: AgentId) -> Resources:
        return self._agent(agent_id).available

    def allocation(self, agent_id: AgentId) -> dict[FrameworkId, Resources]:
        return dict(self._agent(agent_id).allocated)

    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    def quotas(self) -> dict[str, dict[str, float]]:
        return {role: dict(limits) for role, limits in self._quotas.items()}

    def consumed_quota(self, role: str) -> dict[str, float]:
        """Reservations plus unreserved allocations of ``role`` and its sub-roles (scalars)."""
        return self._consumed(role)

    def role_summary(self) -> dict[str, RoleSummary]:
        roles: set[str] = set(self._framework_sorters) | set(self._weights) | set(self._quotas)
        roles |= set(self._reserved)
        allocated: dict[str, list[Resource]] = {}
        for agent in self._agents.values():
            for held in agent.allocated.values():
                for res in held.items:
                    allocated.setdefault(res.allocation_role or "*", []).append(res)
        roles |= set(allocated)
        out: dict[str, RoleSummary] = {}
        for role in sorted(roles):
            frameworks = tuple(
                sorted(fid for fid, fw in self._frameworks.items() if role in fw.roles)
            )
            out[role] = RoleSummary(
                weight=self._weights.get(role, sorting.DEFAULT_WEIGHT),
                allocated=Resources.of(allocated.get(role, ())),
                frameworks=frameworks,
            )
        return out

    def _check_invariants(self) -> None:
        """Test hook: recompute all bookkeeping from scratch and compare (AssertionError)."""
        by_role: dict[str, dict[str, float]] = {}
        by_framework_role: dict[tuple[FrameworkId, str], dict[str, float]] = {}
        for agent in self._agents.values():
            for framework_id, held in agent.allocated.items():
                if framework_id not in self._frameworks:
                    continue
                for role, part in _by_allocation_role(held).items():
                    _add_q(by_role.setdefault(role, {}), _scalars(part))
                    _add_q(by_framework_role.setdefault((framework_id, role), {}), _scalars(part))
            used = agent.used()
            assert _same(agent.available, agent.total - used), f"agent {agent.id} books"
            assert agent.overcommitted or _same(agent.available + used, agent.total)
            assert agent.available_q == _quantities(agent.available), f"agent {agent.id} cache"
        for role in self._role_sorter.clients():
            assert self._role_sorter.allocation(role) == by_role.get(role, {}), f"role {role}"
        for role, fsorter in self._framework_sorters.items():
            for client in fsorter.clients():
                expected = by_framework_role.get((FrameworkId(client), role), {})
                assert fsorter.allocation(client) == expected, f"framework {client} in {role}"
        for (framework_id, role), quantities in by_framework_role.items():
            if quantities:
                tracked = self._framework_sorters.get(role)
                assert tracked is not None and tracked.contains(framework_id), "untracked"
        for role, consumed in self._quota_consumed.items():
            assert consumed == self._consumed(role), f"quota consumption of {role}"

    def framework_share(self, framework_id: FrameworkId, role: str) -> float:
        """The framework's dominant share within ``role`` (0.0 when it holds nothing there)."""
        fsorter = self._framework_sorters.get(role)
        if fsorter is None or not fsorter.contains(framework_id):
            return 0.0
        return fsorter.share(framework_id)

    def role_share(self, role: str) -> float:
        """The role's own dominant share divided by its weight."""
        if not self._role_sorter.contains(role):
            return 0.0
        return self._role_sorter.share(role)


def _same(left: Resources, right: Resources) -> bool:
    return left.contains(right) and right.contains(left)


def _agent_satisfies(groups: Sequence[Sequence[AttributeConstraint]], agent: _Agent) -> bool:
    return any(
        all(
            _constraint_holds(
                c,
                attributes=agent.attr_by_name,
                hostname=agent.hostname,
                region=agent.region,
                zone=agent.zone,
            )
            for c in group
        )
        for group in groups
    )


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
