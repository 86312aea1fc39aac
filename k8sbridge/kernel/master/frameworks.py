"""Frameworks in the master: SUBSCRIBE, UPDATE_FRAMEWORK, disconnection, failover, removal.

Why a layer of its own: a framework's life (Mesos' ``Master::subscribe``, ``updateFramework``,
``failoverFramework`` and ``removeFramework``) touches offers and tasks only through the hooks
the layers above define, so its rules read in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from k8sbridge.kernel import allocator as alloc
from k8sbridge.kernel.master import calls, state, streams
from k8sbridge.kernel.master.base import (
    MasterBase,
    RawJson,
    _error_event,
    _status,
    _transition,
    id_value,
    idv,
)
from k8sbridge.kernel.master.errors import CallError
from k8sbridge.kernel.protocol import FrameworkId

log = logging.getLogger(__name__)


class FrameworkHandling(MasterBase):
    # ------------------------------------------------------------------------------------------
    # Frameworks

    def _recover_framework(self, info: RawJson, *, persist: bool = True) -> state.Framework:
        """A framework known from the registry or an agent, not (yet) re-subscribed."""
        fid = id_value(info.get("id"))
        assert fid is not None
        fw = self.frameworks.get(fid)
        if fw is not None:
            return fw
        fw = state.Framework(
            framework_id=fid, info=calls.with_framework_defaults(info),
            registered_time=time.time(), recovered=True, active=False,
            completed_tasks=self._completed_deque(),
        )
        self.frameworks[fid] = fw
        self.allocator.add_framework(
            FrameworkId(fid), roles=fw.roles, capabilities=fw.capabilities, active=False,
            min_allocatable=calls.min_allocatable_of(fw.info.get("offer_filters")),
        )
        if persist:
            self.registry.put_framework(fid, fw.info)
        return fw

    def subscribe(self, subscribe: RawJson, stream: streams.EventStream) -> None:
        """SUBSCRIBE: a new framework, a failover, or a refusal (ERROR, then close)."""
        info = dict(subscribe["framework_info"])

        def refuse(message: str) -> None:
            log.info("refusing subscription of framework '%s': %s", info.get("name"), message)
            stream.send(_error_event(message))
            stream.close()

        error = calls.validate_framework_info(info)
        roles = calls.framework_roles(info)
        suppressed = [str(r) for r in subscribe.get("suppressed_roles") or []]
        constraints = subscribe.get("offer_constraints")
        if error is None:
            error = calls.validate_suppressed_and_constraints(roles, suppressed, constraints)
        fid = id_value(info.get("id")) or None
        if error is None and self.authorizer is not None:
            principal = info.get("principal")
            if not self.authorizer.may_register(
                    principal=principal if isinstance(principal, str) else None, roles=roles):
                # ``checkSubscribeAuthorization``: the ActionObject as Mesos prints it (an
                # id not yet assigned prints empty; the roles as a sorted set).
                error = (f"Not authorized to register framework {fid or ''} with roles "
                         f"{{ {', '.join(sorted(set(roles)))} }}")
        if error is None and fid is not None and fid in self.completed_ids:
            error = "Framework has been removed"
        if error is not None:
            refuse(error)
            return
        min_alloc = calls.min_allocatable_of(info.get("offer_filters"))
        now = time.time()
        if fid is None:
            fid = self._new_framework_id()
            info["id"] = idv(fid)
            fw = state.Framework(
                framework_id=fid, info=calls.with_framework_defaults(info), registered_time=now,
                completed_tasks=self._completed_deque(),
            )
            try:
                self.allocator.add_framework(
                    FrameworkId(fid), roles=roles, suppressed_roles=suppressed,
                    capabilities=fw.capabilities, offer_constraints=constraints,
                    min_allocatable=min_alloc, active=True,
                )
            except alloc.AllocatorError as e:
                refuse(str(e))
                return
            fw.stream = stream
            fw.active = True
            fw.suppressed_roles = set(suppressed)
            fw.offer_constraints = constraints
            self.frameworks[fid] = fw
            self.registry.put_framework(fid, fw.info)
            self._send_subscribed(fw)
            log.info("framework %s (%s) subscribed", fid, fw.name)
            self.broadcast({"type": "FRAMEWORK_ADDED",
                            "framework_added": {"framework": self.framework_raw(fw)}})
            self.trigger_allocation()
            return
        fw = self.frameworks.get(fid) or self._recover_framework(info)
        # preserveImmutableFields: user and checkpoint keep their old values.
        info["user"] = fw.info.get("user")
        info["checkpoint"] = fw.info.get("checkpoint", False)
        error = calls.validate_update(fw.info, info)
        if error is not None:
            refuse(error)
            return
        try:
            self._apply_framework_update(fw, info, suppressed, constraints, min_alloc)
        except alloc.AllocatorError as e:
            refuse(str(e))
            return
        if fw.stream is not None:
            old = fw.stream
            old.send(_error_event("Framework failed over"))
            old.close()
        if fw.failover_timer is not None:
            fw.failover_timer.cancel()
            fw.failover_timer = None
        for offer in list(fw.offers.values()):
            self.rescind(offer)
        fw.stream = stream
        fw.active = True
        was_recovered = fw.recovered
        fw.recovered = False
        fw.reregistered_time = now
        fw.unregistered_time = None
        self.allocator.activate_framework(FrameworkId(fid))
        self.registry.put_framework(fid, fw.info)
        self._send_subscribed(fw)
        log.info("framework %s (%s) re-subscribed%s", fid, fw.name,
                 " after master failover" if was_recovered else "")
        self.broadcast({"type": "FRAMEWORK_UPDATED",
                        "framework_updated": {"framework": self.framework_raw(fw)}})
        self.trigger_allocation()

    def _send_subscribed(self, fw: state.Framework) -> None:
        assert fw.stream is not None
        fw.stream.send({
            "type": "SUBSCRIBED",
            "subscribed": {
                "framework_id": idv(fw.framework_id),
                "heartbeat_interval_seconds": float(self.config.heartbeat_interval),
                "master_info": self.master_info(),
            },
        })
        fw.stream.heartbeat()

    def _apply_framework_update(
        self, fw: state.Framework, info: RawJson, suppressed: list[str], constraints: Any,
        min_alloc: Any,
    ) -> None:
        new_info = calls.with_framework_defaults(info)
        new_roles = calls.framework_roles(new_info)
        removed_roles = set(fw.roles) - set(new_roles)
        self.allocator.update_framework(
            FrameworkId(fw.framework_id), roles=new_roles, suppressed_roles=suppressed,
            capabilities=calls.capabilities(new_info), offer_constraints=constraints,
            min_allocatable=min_alloc,
        )
        fw.info = new_info
        fw.suppressed_roles = set(suppressed)
        fw.offer_constraints = constraints
        for offer in list(fw.offers.values()):
            if offer.role in removed_roles:
                self.rescind(offer)

    def update_framework(self, fw: state.Framework, body: RawJson) -> None:
        """UPDATE_FRAMEWORK: all-or-nothing; raises CallError(400) with Mesos' message."""
        info = dict(body["framework_info"])
        error = calls.validate_framework_info(info)
        roles = calls.framework_roles(info)
        suppressed = [str(r) for r in body.get("suppressed_roles") or []]
        constraints = body.get("offer_constraints")
        if error is None:
            error = calls.validate_suppressed_and_constraints(roles, suppressed, constraints)
        if error is None:
            error = calls.validate_update(fw.info, info)
        if error is not None:
            raise CallError(400, error)
        try:
            self._apply_framework_update(
                fw, info, suppressed, constraints,
                calls.min_allocatable_of(info.get("offer_filters")),
            )
        except alloc.AllocatorError as e:
            raise CallError(400, str(e)) from e
        self.registry.put_framework(fw.framework_id, fw.info)
        self.broadcast({"type": "FRAMEWORK_UPDATED",
                        "framework_updated": {"framework": self.framework_raw(fw)}})
        self.trigger_allocation()

    def stream_closed(self, framework_id: str, stream: streams.EventStream) -> None:
        """The SUBSCRIBE connection of a framework ended (client gone or failed over)."""
        fw = self.frameworks.get(framework_id)
        if fw is None or fw.stream is not stream:
            return
        log.info("framework %s disconnected; failover timeout %ss", framework_id,
                 fw.info.get("failover_timeout", 0.0))
        fw.stream = None
        fw.active = False
        fw.unregistered_time = time.time()
        self.allocator.deactivate_framework(FrameworkId(framework_id))
        for offer in list(fw.offers.values()):
            self.rescind(offer, notify=False)
        timeout = float(fw.info.get("failover_timeout", 0.0) or 0.0)
        loop = asyncio.get_running_loop()
        fw.failover_timer = loop.call_later(timeout, self._failover_expired, framework_id)

    def _failover_expired(self, framework_id: str) -> None:
        fw = self.frameworks.get(framework_id)
        if fw is not None and not fw.connected:
            log.info("framework %s failover timeout expired: tearing it down", framework_id)
            self.remove_framework(fw)

    def remove_framework(self, fw: state.Framework) -> None:
        """TEARDOWN or failover expiry: kill everything, forget offers, remember the id."""
        fid = fw.framework_id
        if fw.failover_timer is not None:
            fw.failover_timer.cancel()
            fw.failover_timer = None
        for offer in list(fw.offers.values()):
            self._drop_offer(offer)
        agents_to_tell: set[str] = set()
        for task in list(fw.tasks.values()) + list(fw.unreachable_tasks.values()):
            agents_to_tell.add(task.agent_id)
            if not task.terminal:
                status = _status(
                    task_id=task.task_id, state_="TASK_KILLED",
                    message=f"Framework {fid} removed", reason="REASON_FRAMEWORK_REMOVED",
                    agent_id=task.agent_id, executor_id=task.executor_id,
                )
                _transition(task, status)
                self._task_updated(fw, task)
            self._remove_task(task, recover=False)
        fw.unreachable_tasks.clear()
        for agent in self.agents.values():
            for key in [k for k in agent.executors if k[0] == fid]:
                del agent.executors[key]
                agents_to_tell.add(agent.agent_id)
        for aid in agents_to_tell:
            target = self.agents.get(aid)
            if target is not None and target.conn is not None:
                target.conn.send({"type": "SHUTDOWN_FRAMEWORK", "framework_id": idv(fid)})
        self.allocator.remove_framework(FrameworkId(fid))
        if fw.stream is not None:
            stream, fw.stream = fw.stream, None
            stream.close()
        fw.active = False
        fw.unregistered_time = time.time()
        del self.frameworks[fid]
        self.completed_frameworks.append(fw)
        self.completed_ids.add(fid)
        self.registry.complete_framework(fid, now=time.time())
        self.broadcast({"type": "FRAMEWORK_REMOVED",
                        "framework_removed": {"framework_info": fw.info}})
        log.info("framework %s removed", fid)
