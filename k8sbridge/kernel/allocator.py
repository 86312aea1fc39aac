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

import heapq
import itertools
import math
from collections.abc import Collection, Mapping

from k8sbridge.kernel import sorter as sorting
from k8sbridge.kernel.allocation import (
    DEFAULT_MIN_ALLOCATABLE,
    DEFAULT_REFUSE_SECONDS,
    GPU_RESOURCES,
    MAX_REFUSE_SECONDS,
    RESERVATION_REFINEMENT,
    REVOCABLE_RESOURCES,
    SHARED_RESOURCES,
    AllocatorError,
    OfferGrant,
    RoleSummary,
    _add_q,
    _allocated_to,
    _by_allocation_role,
    _is_revocable,
    _is_shared,
    _meets,
    _OfferFilter,
    _quantities,
    _same,
    _scalars,
    _shrink,
    refuse_timeout,
)
from k8sbridge.kernel.allocator_books import (
    AllocatorBooks,
    _Agent,
    _agent_satisfies,
    _Framework,
    _RoleView,
)
from k8sbridge.kernel.offer_constraints import (
    AttributeConstraint,
    OfferConstraints,
    agent_matches,
    parse_offer_constraints,
)
from k8sbridge.kernel.protocol import AgentId, FrameworkId
from k8sbridge.kernel.resources import Resource, Resources

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


class Allocator(AllocatorBooks):
    """Hierarchical weighted DRF allocator with Mesos' semantics (see the module docstring)."""

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
