"""Offers in the master: allocation into OFFERS, rescind, decline, and ACCEPT's operations.

Why a layer: ``Master::accept`` (LAUNCH, LAUNCH_GROUP, RESERVE, UNRESERVE) is the one place
where offered resources become tasks, executors and reservations; validation itself is pure and
lives in ``launching``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from k8sbridge.kernel import resources as res
from k8sbridge.kernel.master import acls, calls, launching, state
from k8sbridge.kernel.master.base import (
    _STORED_INFO_KEYS,
    RawJson,
    _KnownIds,
    _status,
    id_value,
    idv,
)
from k8sbridge.kernel.master.errors import TaskInvalid
from k8sbridge.kernel.master.frameworks import FrameworkHandling
from k8sbridge.kernel.protocol import AgentId, FrameworkId

log = logging.getLogger(__name__)


class OfferHandling(FrameworkHandling):
    # ------------------------------------------------------------------------------------------
    # Offers

    def allocate(self, *, agent_ids: Iterable[str] | None = None) -> None:
        grants = self.allocator.allocate(
            now=time.monotonic(),
            agent_ids=None if agent_ids is None else [AgentId(a) for a in agent_ids],
        )
        batches: dict[str, list[RawJson]] = {}
        for grant in grants:
            fw = self.frameworks.get(grant.framework_id)
            agent = self.agents.get(grant.agent_id)
            if fw is None or not fw.connected or agent is None or not agent.connected:
                self.allocator.recover(
                    agent_id=grant.agent_id, framework_id=grant.framework_id,
                    resources=grant.resources, now=time.monotonic(),
                )
                continue
            offer = state.Offer(
                offer_id=self._new_offer_id(), framework_id=fw.framework_id,
                agent_id=agent.agent_id, role=grant.role, resources=grant.resources,
                created=time.time(),
            )
            self.offers[offer.offer_id] = offer
            fw.offers[offer.offer_id] = offer
            if self.config.offer_timeout is not None:
                offer.timer = asyncio.get_running_loop().call_later(
                    self.config.offer_timeout, self._offer_expired, offer.offer_id
                )
            batches.setdefault(fw.framework_id, []).append(self.offer_raw(offer, fw=fw))
        for fid, offers in batches.items():
            self._send(self.frameworks[fid], {"type": "OFFERS", "offers": {"offers": offers}})

    def offer_raw(self, offer: state.Offer, *, fw: state.Framework) -> RawJson:
        agent = self.agents[offer.agent_id]
        raw: RawJson = {
            "id": idv(offer.offer_id),
            "framework_id": idv(offer.framework_id),
            "agent_id": idv(offer.agent_id),
            "hostname": agent.hostname,
            "url": agent.url(scheme=self.config.tls.scheme),
            "resources": offer.resources.to_raw(refined=fw.refined),
            "attributes": [a.to_raw() for a in agent.attributes],
            "executor_ids": [
                idv(eid) for (f, eid) in agent.executors if f == offer.framework_id
            ],
            "allocation_info": {"role": offer.role},
        }
        if "domain" in agent.info:
            raw["domain"] = agent.info["domain"]
        return raw

    def _offer_expired(self, offer_id: str) -> None:
        offer = self.offers.get(offer_id)
        if offer is not None:
            self.rescind(offer)

    def _drop_offer(self, offer: state.Offer) -> None:
        self.offers.pop(offer.offer_id, None)
        fw = self.frameworks.get(offer.framework_id)
        if fw is not None:
            fw.offers.pop(offer.offer_id, None)
        if offer.timer is not None:
            offer.timer.cancel()

    def rescind(self, offer: state.Offer, *, notify: bool = True) -> None:
        """Take an offer back: its resources return to the allocator; RESCIND to the owner."""
        self._drop_offer(offer)
        self.allocator.recover(
            agent_id=AgentId(offer.agent_id), framework_id=FrameworkId(offer.framework_id),
            resources=offer.resources, now=time.monotonic(),
        )
        fw = self.frameworks.get(offer.framework_id)
        if notify and fw is not None:
            self._send(fw, {"type": "RESCIND", "rescind": {"offer_id": idv(offer.offer_id)}})

    def decline(self, fw: state.Framework, body: RawJson) -> None:
        seconds = calls.refuse_seconds(body.get("filters"),
                                       default=self.config.refuse_seconds_default)
        for raw in body.get("offer_ids") or []:
            oid = id_value(raw)
            offer = self.offers.get(oid or "")
            if offer is None or offer.framework_id != fw.framework_id:
                log.info("ignoring decline of offer %s: no longer valid", oid)
                continue
            self._drop_offer(offer)
            self.allocator.recover(
                agent_id=AgentId(offer.agent_id), framework_id=FrameworkId(fw.framework_id),
                resources=offer.resources, now=time.monotonic(), refuse_seconds=seconds,
            )

    # ------------------------------------------------------------------------------------------
    # ACCEPT

    def accept(self, fw: state.Framework, body: RawJson) -> None:
        offer_ids = [id_value(o) or "" for o in calls.as_list(body.get("offer_ids"))]
        operations = [op for op in calls.as_list(body.get("operations")) if isinstance(op, dict)]
        seconds = calls.refuse_seconds(body.get("filters"),
                                       default=self.config.refuse_seconds_default)
        book = {
            oid: (o.framework_id, o.agent_id, o.role) for oid, o in self.offers.items()
        }
        try:
            calls.validate_offer_ids(offer_ids, offers=book, framework_id=fw.framework_id)
        except ValueError as e:
            self._accept_invalid_offers(fw, offer_ids, operations, str(e))
            return
        offers = [self.offers[oid] for oid in offer_ids]
        agent = self.agents[offers[0].agent_id]
        role = offers[0].role
        remaining = res.Resources()
        for offer in offers:
            self._drop_offer(offer)
            remaining = remaining + offer.resources
        for op in operations:
            optype = op.get("type")
            try:
                if optype == "LAUNCH":
                    remaining = self._launch(fw, agent, role, op, remaining)
                elif optype == "LAUNCH_GROUP":
                    remaining = self._launch_group(fw, agent, role, op, remaining)
                elif optype in ("RESERVE", "UNRESERVE"):
                    remaining = self._reserve_in_accept(fw, agent, role, op, remaining)
                elif optype in ("CREATE", "DESTROY", "GROW_VOLUME", "SHRINK_VOLUME",
                                "CREATE_DISK", "DESTROY_DISK"):
                    self._drop_operation(
                        fw, agent, op,
                        f"Operation {optype} is not supported by the embedded kernel "
                        "(no persistent volumes or resource providers)",
                    )
                else:
                    log.warning("ignoring unknown operation %r in ACCEPT", optype)
            except Exception:
                log.exception("operation %s of framework %s failed", optype, fw.framework_id)
        if not remaining.is_empty():
            self.allocator.recover(
                agent_id=AgentId(agent.agent_id), framework_id=FrameworkId(fw.framework_id),
                resources=remaining, now=time.monotonic(), refuse_seconds=seconds,
            )

    def _accept_invalid_offers(
        self, fw: state.Framework, offer_ids: list[str], operations: list[RawJson], error: str
    ) -> None:
        for oid in offer_ids:
            offer = self.offers.get(oid)
            if offer is not None and offer.framework_id == fw.framework_id:
                self.rescind(offer, notify=False)
        log.warning("ACCEPT call used invalid offers %s: %s", offer_ids, error)
        new_state = "TASK_DROPPED" if fw.partition_aware else "TASK_LOST"
        for op in operations:
            optype = op.get("type")
            if optype == "LAUNCH":
                tasks = calls.as_list((op.get("launch") or {}).get("task_infos"))
            elif optype == "LAUNCH_GROUP":
                tasks = calls.as_list(
                    ((op.get("launch_group") or {}).get("task_group") or {}).get("tasks")
                )
            else:
                self._drop_operation(fw, None, op,
                                     "Operation attempted with invalid offers: " + error)
                continue
            for task in tasks:
                tid = id_value(task.get("task_id")) if isinstance(task, dict) else None
                if tid is None:
                    continue
                self._forward_status(fw, _status(
                    task_id=tid, state_=new_state,
                    message="Task launched with invalid offers: " + error,
                    reason="REASON_INVALID_OFFERS",
                    agent_id=id_value(task.get("agent_id")),
                ))

    def _drop_operation(
        self, fw: state.Framework, agent: state.Agent | None, op: RawJson, message: str
    ) -> None:
        """An operation that cannot be applied: OPERATION_ERROR if feedback was asked for."""
        op_id = id_value(op.get("id"))
        log.info("dropping %s operation of framework %s: %s", op.get("type"),
                 fw.framework_id, message)
        if op_id is None:
            return
        status: RawJson = {
            "operation_id": idv(op_id), "state": "OPERATION_ERROR", "message": message,
        }
        if agent is not None:
            status["agent_id"] = idv(agent.agent_id)
        self._send(fw, {"type": "UPDATE_OPERATION_STATUS",
                        "update_operation_status": {"status": status}})

    def _task_error(self, fw: state.Framework, tasks: list[Any], reason: str, message: str
                    ) -> None:
        for task in tasks:
            tid = id_value(task.get("task_id")) if isinstance(task, dict) else None
            if tid is None:
                continue
            self._forward_status(fw, _status(
                task_id=tid, state_="TASK_ERROR", message=message, reason=reason,
                agent_id=id_value(task.get("agent_id")),
            ))

    def _known_executors(self, fw: state.Framework, agent: state.Agent) -> dict[str, Any]:
        return {
            eid: ex.info for (f, eid), ex in agent.executors.items() if f == fw.framework_id
        }

    def _executor_task_containers(self, fw: state.Framework, agent: state.Agent,
                                  eid: str | None) -> list[Any]:
        tasks = list(fw.tasks.values()) + list(fw.unreachable_tasks.values())
        return [t.info.get("container") for t in tasks
                if t.agent_id == agent.agent_id and eid is not None and t.executor_id == eid]

    def _launch(self, fw: state.Framework, agent: state.Agent, role: str, op: RawJson,
                remaining: res.Resources) -> res.Resources:
        tasks = calls.as_list((op.get("launch") or {}).get("task_infos"))
        if op.get("id") is not None:
            self._task_error(fw, tasks, "REASON_TASK_INVALID",
                             "The `id` field cannot be set on LAUNCH operations")
            return remaining
        if not tasks:
            log.info("implicitly declining offers: LAUNCH with no tasks")
        for task in tasks:
            denied = self._run_task_denied(fw, task, in_group=False)
            if denied is not None:
                self._task_error(fw, [task], "REASON_TASK_UNAUTHORIZED", denied)
                continue
            try:
                tid, task_res, eid, exec_res = launching.validate_launch_task(
                    task, framework_id=fw.framework_id, agent_id=agent.agent_id, role=role,
                    known_task_ids=_KnownIds(fw),
                    known_executors=self._known_executors(fw, agent),
                    offered=remaining,
                )
            except TaskInvalid as e:
                self._task_error(fw, [task], "REASON_TASK_INVALID", str(e))
                continue
            remaining = remaining - task_res - exec_res
            info = dict(task)
            info["resources"] = task_res.to_raw()
            if eid is not None:
                executor = dict(task["executor"])
                if not exec_res.is_empty():
                    executor["resources"] = exec_res.to_raw()
                    agent.executors[(fw.framework_id, eid)] = state.Executor(
                        framework_id=fw.framework_id, agent_id=agent.agent_id, executor_id=eid,
                        info=executor, resources=exec_res,
                    )
                info["executor"] = executor
            self._add_task(fw, agent, tid, info, task_res, role, eid)
            assert agent.conn is not None
            agent.conn.send({"type": "RUN_TASK", "framework": fw.info,
                             "task": state.with_task_defaults(info)})
        return remaining

    def _launch_group(self, fw: state.Framework, agent: state.Agent, role: str, op: RawJson,
                      remaining: res.Resources) -> res.Resources:
        body = op.get("launch_group") or {}
        executor = body.get("executor")
        tasks = (body.get("task_group") or {}).get("tasks")
        task_list = calls.as_list(tasks)
        if op.get("id") is not None:
            self._task_error(fw, task_list, "REASON_TASK_GROUP_INVALID",
                             "The `id` field cannot be set on LAUNCH_GROUP operations")
            return remaining
        # Mesos authorizes every task of the group and reports the last refusal (its
        # message has no space after "to", as Mesos writes it) before validating the group.
        denied = None
        for task in task_list:
            refusal = self._run_task_denied(fw, task, in_group=True)
            if refusal is not None:
                tid_text = calls.id_value(task.get("task_id")) if isinstance(task, dict) else ""
                action = refusal[len("Not authorized to "):]
                denied = f"Task '{tid_text}' is not authorized to{action}"
        if denied is not None:
            self._task_error(fw, task_list, "REASON_TASK_GROUP_UNAUTHORIZED", denied)
            return remaining
        try:
            eid, parsed, exec_res = launching.validate_task_group(
                executor, task_list, framework_id=fw.framework_id, agent_id=agent.agent_id,
                role=role, known_task_ids=_KnownIds(fw),
                known_executors=self._known_executors(fw, agent), offered=remaining,
                executor_task_containers=self._executor_task_containers(
                    fw, agent, calls.id_value((executor or {}).get("executor_id"))
                    if isinstance(executor, dict) else None),
            )
        except TaskInvalid as e:
            self._task_error(fw, task_list, "REASON_TASK_GROUP_INVALID", str(e))
            return remaining
        assert isinstance(executor, dict)
        executor = dict(executor)
        if not exec_res.is_empty():
            executor["resources"] = exec_res.to_raw()
            agent.executors[(fw.framework_id, eid)] = state.Executor(
                framework_id=fw.framework_id, agent_id=agent.agent_id, executor_id=eid,
                info=executor, resources=exec_res,
            )
        remaining = remaining - exec_res
        infos = []
        for task, (tid, task_res) in zip(task_list, parsed, strict=True):
            remaining = remaining - task_res
            info = dict(task)
            info["resources"] = task_res.to_raw()
            self._add_task(fw, agent, tid, info, task_res, role, eid)
            infos.append(state.with_task_defaults(info))
        assert agent.conn is not None
        agent.conn.send({
            "type": "RUN_TASK_GROUP", "framework": fw.info, "executor": executor,
            "task_group": {"tasks": infos},
        })
        return remaining

    def _run_task_denied(self, fw: state.Framework, task: Any, *, in_group: bool
                         ) -> str | None:
        """RUN_TASK as the local authorizer decides it; the refusal as Mesos words it."""
        if self.authorizer is None or not isinstance(task, dict):
            return None
        user = acls.task_user(task, fw.info, in_group=in_group)
        principal = fw.info.get("principal")
        if self.authorizer.may_run_task(
                principal=principal if isinstance(principal, str) else None, user=user):
            return None
        tid = calls.id_value(task.get("task_id")) or ""
        return (f"Not authorized to launch task {tid} of framework {fw.framework_id} "
                f"under user '{user}'")

    def _add_task(self, fw: state.Framework, agent: state.Agent, tid: str, info: RawJson,
                  task_res: res.Resources, role: str, eid: str | None) -> state.Task:
        stored = {k: info[k] for k in _STORED_INFO_KEYS if k in info}
        task = state.Task(
            framework_id=fw.framework_id, agent_id=agent.agent_id, task_id=tid, info=stored,
            resources=task_res, role=role, executor_id=eid,
        )
        fw.tasks[tid] = task
        agent.tasks[(fw.framework_id, tid)] = task
        self.metrics["tasks_launched"] += 1
        if self.subscribers:
            self.broadcast({"type": "TASK_ADDED", "task_added": {"task": task.to_raw()}})
        return task

    def _reserve_in_accept(self, fw: state.Framework, agent: state.Agent, role: str,
                           op: RawJson, remaining: res.Resources) -> res.Resources:
        optype = op["type"]
        try:
            if optype == "RESERVE":
                body = op.get("reserve") or {}
                if body.get("source"):
                    raise ValueError(
                        "Reservation updates are not yet implemented for the scheduler API."
                    )
                consumed, converted = launching.parse_reserve(
                    body.get("resources"), roles=fw.roles, principal=fw.info.get("principal")
                )
            else:
                consumed, converted = launching.parse_unreserve(
                    (op.get("unreserve") or {}).get("resources")
                )
        except ValueError as e:
            self._drop_operation(fw, agent, op,
                                 "Operation attempted with invalid resources: " + str(e))
            return remaining
        consumed_a = consumed.allocated_to(role)
        converted_a = converted.allocated_to(role)
        if not remaining.contains(consumed_a):
            self._drop_operation(
                fw, agent, op,
                f"Invalid {optype} Operation: {remaining} does not contain {consumed_a}",
            )
            return remaining
        if op.get("id") is not None:
            self._drop_operation(
                fw, agent, op,
                f"Operation requested feedback, but agent {agent.agent_id} does not have the "
                "required RESOURCE_PROVIDER capability",
            )
            return remaining
        self.allocator.convert(
            agent_id=AgentId(agent.agent_id), framework_id=FrameworkId(fw.framework_id),
            consumed=consumed_a, converted=converted_a,
        )
        agent.total = agent.total - consumed + converted
        self._persist_reservations(agent)
        return remaining - consumed_a + converted_a

    def _persist_reservations(self, agent: state.Agent) -> None:
        dynamic = agent.total.filter(
            lambda r: bool(r.reservations) and r.reservations[-1].type == "DYNAMIC"
        )
        self.registry.put_reservations(agent.agent_id, dynamic.to_raw())
