"""The allocator's bookkeeping: frameworks and agents come and go, allocations are tracked.

Why a layer of its own: everything here keeps ``available = total - allocated`` per agent and
the sorters' view of who holds what consistent (Mesos' ``addFramework``, ``addSlave``,
``trackAllocatedResources``...), over the per-agent and per-framework records of Mesos'
``hierarchical.hpp``; ``allocator.Allocator`` builds the allocation pass, filters,
quota and recovery on top of it.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

from k8sbridge.kernel import sorter as sorting
from k8sbridge.kernel.allocation import (
    DEFAULT_MIN_ALLOCATABLE,
    AllocatorError,
    _add_q,
    _ancestors,
    _by_allocation_role,
    _is_ancestor_or_self,
    _is_revocable,
    _is_shared,
    _OfferFilter,
    _quantities,
    _scalars,
    _validate_requirements,
)
from k8sbridge.kernel.offer_constraints import (
    AttributeConstraint,
    OfferConstraints,
    _constraint_holds,
    parse_offer_constraints,
)
from k8sbridge.kernel.protocol import AgentId, FrameworkId
from k8sbridge.kernel.resources import Attribute, Resources

__all__ = ["AllocatorBooks", "_Agent", "_Framework", "_RoleView", "_agent_satisfies"]

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


class AllocatorBooks:
    """Frameworks, agents and what each holds (see the module docstring)."""
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
