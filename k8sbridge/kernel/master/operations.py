"""The operator API's view of the master: weights, quota, reservations, and read-only views.

Why a layer: GET_STATE and friends render the master's state as ``mesos.v1.master.Response``
messages; keeping them apart from the state changes keeps both short.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from k8sbridge.kernel import allocator as alloc
from k8sbridge.kernel import resources as res
from k8sbridge.kernel.master import calls, launching, state
from k8sbridge.kernel.master.base import (
    RawJson,
    id_value,
    idv,
)
from k8sbridge.kernel.master.errors import CallError
from k8sbridge.kernel.master.gone import GoneHandling
from k8sbridge.kernel.protocol import AgentId

log = logging.getLogger(__name__)


class OperatorHandling(GoneHandling):
    # ------------------------------------------------------------------------------------------
    # Operator: weights, quota, reservations

    def update_weights(self, infos: list[Any]) -> None:
        weights: dict[str, float] = {}
        for info in infos:
            if not isinstance(info, dict) or not isinstance(info.get("role"), str):
                raise CallError(400, "Failed to validate master::Call: weight_infos entries "
                                     "need a 'role'")
            role = info["role"]
            err = calls.validate_role(role)
            if err is not None or role == "*":
                raise CallError(400, f"Failed to validate master::Call: invalid role "
                                     f"'{role}': {err or 'cannot be *'}")
            try:
                weight = float(info.get("weight", 1.0))
            except (TypeError, ValueError) as e:
                raise CallError(400, f"Invalid weight for role '{role}'") from e
            if not weight > 0:
                raise CallError(400, f"Invalid weight '{weight}' for role '{role}': "
                                     "weights must be positive")
            weights[role] = weight
        self.allocator.update_weights(weights)
        for role, weight in weights.items():
            self.registry.put_weight(role, weight)
        self.trigger_allocation()

    def update_quota(self, configs: list[Any]) -> None:
        parsed: list[tuple[str, dict[str, float] | None]] = []
        for cfg in configs:
            if not isinstance(cfg, dict) or not isinstance(cfg.get("role"), str):
                raise CallError(400, "Invalid QuotaConfig: 'role' is required")
            role = cfg["role"]
            err = calls.validate_role(role)
            if err is not None or role == "*":
                raise CallError(400, f"Invalid QuotaConfig: invalid role '{role}'")
            limits: dict[str, float] = {}
            raw_limits = cfg.get("limits") or {}
            if not isinstance(raw_limits, dict):
                raise CallError(400, "Invalid QuotaConfig: 'limits' must be an object")
            for name, value in raw_limits.items():
                try:
                    number = float(value["value"] if isinstance(value, dict) else value)
                except (KeyError, TypeError, ValueError) as e:
                    raise CallError(400, f"Invalid QuotaConfig: bad limit for '{name}'") from e
                if number < 0:
                    raise CallError(400, f"Invalid QuotaConfig: negative limit for '{name}'")
                if name == "ports":
                    raise CallError(400, "Invalid QuotaConfig: quota on 'ports' is not "
                                         "supported (scalars only)")
                limits[str(name)] = number
            parsed.append((role, limits or None))
        for role, new_limits in parsed:
            try:
                self.allocator.update_quota(role, new_limits)
            except alloc.AllocatorError as e:
                raise CallError(400, f"Invalid QuotaConfig: {e}") from e
            self.registry.put_quota(role, new_limits)
            if new_limits is not None:
                self._rescind_over_quota(role)
        self.trigger_allocation()

    def _rescind_over_quota(self, role: str) -> None:
        for offer in [o for o in self.offers.values() if o.role == role]:
            self.rescind(offer)

    def operator_reserve(self, body: RawJson, *, unreserve: bool) -> None:
        """RESERVE_RESOURCES / UNRESERVE_RESOURCES: 202 when applied, 409 when impossible."""
        aid = id_value(body.get("agent_id"))
        if aid is None:
            raise CallError(400, "Failed to validate master::Call: Expecting 'agent_id'")
        agent = self.agents.get(aid)
        if agent is None or agent.recovered or agent.unreachable_time is not None:
            raise CallError(409, f"Agent {aid} is not registered")
        try:
            if unreserve:
                consumed, converted = launching.parse_unreserve(body.get("resources"))
            else:
                consumed, converted = launching.parse_reserve(
                    body.get("resources"), roles=None, principal=None
                )
        except ValueError as e:
            raise CallError(400, str(e)) from e
        available = self.allocator.available(AgentId(aid))
        if not available.contains(consumed):
            for offer in [o for o in self.offers.values() if o.agent_id == aid]:
                self.rescind(offer)
            available = self.allocator.available(AgentId(aid))
        if not available.contains(consumed):
            op = "UNRESERVE" if unreserve else "RESERVE"
            raise CallError(409, f"Invalid {op} Operation: {available} does not contain "
                                 f"{consumed}")
        self.allocator.convert(agent_id=AgentId(aid), framework_id=None, consumed=consumed,
                               converted=converted)
        agent.total = agent.total - consumed + converted
        self._persist_reservations(agent)
        self.trigger_allocation()

    # ------------------------------------------------------------------------------------------
    # Read-only views (operator API)

    def agent_raw(self, agent: state.Agent) -> RawJson:
        allocated = res.Resources()
        for r in agent.used().values():
            allocated = allocated + r
        offered = res.Resources()
        for offer in self.offers.values():
            if offer.agent_id == agent.agent_id:
                offered = offered + offer.resources
        raw: RawJson = {
            "agent_info": agent.info_raw(),
            "active": agent.active and agent.connected,
            "deactivated": False,
            "version": agent.version,
            "pid": agent.pid(),
            "registered_time": state.nanos(agent.registered_time),
            "total_resources": agent.total.to_raw(),
            "allocated_resources": allocated.to_raw(),
            "offered_resources": offered.to_raw(),
            "capabilities": [{"type": c} for c in launching.AGENT_CAPABILITIES],
        }
        if agent.reregistered_time is not None:
            raw["reregistered_time"] = state.nanos(agent.reregistered_time)
        return raw

    def all_executors(self) -> Iterator[state.Executor]:
        for agent in self.agents.values():
            yield from agent.executors.values()

    def framework_raw(self, fw: state.Framework) -> RawJson:
        raw: RawJson = {
            "framework_info": fw.info,
            "active": fw.active,
            "connected": fw.connected,
            "recovered": fw.recovered,
            "registered_time": state.nanos(fw.registered_time),
            "offers": [self.offer_raw(o, fw=fw) for o in fw.offers.values()
                       if o.agent_id in self.agents],
            "inverse_offers": [],
            "allocated_resources": fw.allocated(executors=self.all_executors()).to_raw(),
            "offered_resources": fw.offered().to_raw(),
        }
        if fw.reregistered_time is not None:
            raw["reregistered_time"] = state.nanos(fw.reregistered_time)
        if fw.unregistered_time is not None:
            raw["unregistered_time"] = state.nanos(fw.unregistered_time)
        return raw

    def get_agents(self) -> RawJson:
        return {
            "agents": [self.agent_raw(a) for a in self._registered_agents()],
            "recovered_agents": [a.info_raw() for a in self.agents.values() if a.recovered],
        }

    def get_frameworks(self) -> RawJson:
        return {
            "frameworks": [self.framework_raw(f) for f in self.frameworks.values()],
            "completed_frameworks": [self.framework_raw(f) for f in self.completed_frameworks],
        }

    def get_tasks(self) -> RawJson:
        tasks: list[RawJson] = []
        unreachable: list[RawJson] = []
        completed: list[RawJson] = []
        for fw in list(self.frameworks.values()) + list(self.completed_frameworks):
            tasks.extend(t.to_raw() for t in fw.tasks.values())
            unreachable.extend(t.to_raw() for t in fw.unreachable_tasks.values())
            completed.extend(t.to_raw() for t in fw.completed_tasks)
        return {"tasks": tasks, "unreachable_tasks": unreachable, "completed_tasks": completed}

    def get_executors(self) -> RawJson:
        return {
            "executors": [
                {"executor_info": ex.info, "agent_id": idv(ex.agent_id)}
                for a in self.agents.values() for ex in a.executors.values()
            ]
        }

    def get_state(self) -> RawJson:
        return {
            "get_tasks": self.get_tasks(),
            "get_executors": self.get_executors(),
            "get_frameworks": self.get_frameworks(),
            "get_agents": self.get_agents(),
        }

    def get_roles(self) -> RawJson:
        """GET_ROLES: ``mesos.v1.Role`` has name, weight, frameworks and resources only."""
        keep = ("name", "weight", "frameworks", "resources")
        return {"roles": [{k: r[k] for k in keep if k in r}
                          for r in self.roles_detail()["roles"]]}

    def roles_detail(self) -> RawJson:
        """Every role with its allocation breakdown and quota (the legacy ``/roles`` data)."""
        summary = self.allocator.role_summary()
        weights = self.allocator.weights()
        quotas = self.allocator.quotas()
        names = set(summary) | set(weights) | set(quotas)
        for fw in self.frameworks.values():
            names.update(fw.roles)
        roles = []
        for name in sorted(names):
            entry = summary.get(name)
            allocated = entry.allocated if entry is not None else res.Resources()
            offered = res.Resources()
            frameworks: list[str] = []
            for fw in self.frameworks.values():
                if name in fw.roles:
                    frameworks.append(fw.framework_id)
                for offer in fw.offers.values():
                    if offer.role == name:
                        offered = offered + offer.resources
            reserved = res.Resources()
            for agent in self._registered_agents():
                reserved = reserved + agent.total.reserved(name)
            role: RawJson = {
                "name": name,
                "weight": weights.get(name, 1.0),
                "frameworks": [idv(f) for f in frameworks],
                "resources": allocated.to_raw(),
                "allocated": allocated.to_raw(),
                "offered": offered.to_raw(),
                "reserved": reserved.to_raw(),
            }
            if name in quotas:
                role["quota"] = {
                    "role": name,
                    "limits": {k: {"value": v} for k, v in quotas[name].items()},
                }
            roles.append(role)
        return {"roles": roles}
