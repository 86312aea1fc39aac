"""A tiny Marathon-like framework for the e2e suite: keeps N long-running tasks in its role.

Built on the project's Mesos client (``k8sbridge.mesos.framework``): it launches one small
command task per usable offer until N tasks run, declines the rest with a refuse filter, and
relaunches a task that ends. It exists to show that k8sbridge shares the cluster fairly.
"""

from __future__ import annotations

import asyncio
import getpass
import itertools
from pathlib import Path
from typing import Any

from k8sbridge.mesos import client as mesos_client
from k8sbridge.mesos import events as mesos_events
from k8sbridge.mesos import framework as mesos_framework
from k8sbridge.mesos import types as mesos_types
from k8sbridge.model.resources import Resources

TASK = {"cpus": 0.1, "mem": 32.0}


class KeepN:
    def __init__(
        self, *, master: str, n: int, role: str = "marathon",
        auth: tuple[str, str] | None = None, ca_file: Path | None = None,
    ) -> None:
        self.n = n
        self.role = role
        self.running: set[str] = set()
        self.launched: set[str] = set()
        self._ids = itertools.count()
        self.framework = mesos_framework.Framework(
            settings=mesos_framework.FrameworkSettings(
                framework_info=mesos_types.FrameworkInfo(
                    name="marathon-like", user=getpass.getuser(), roles=(role,),
                    failover_timeout=0.0, checkpoint=False,
                    principal=auth[0] if auth is not None else None,
                ),
                client=mesos_client.ClientConfig(
                    masters=(master,), principal=auth[0] if auth is not None else None,
                    secret=auth[1] if auth is not None else None,
                    ca_file=str(ca_file) if ca_file is not None else None,
                ),
            ),
            handler=self.handle,
        )

    async def handle(self, event: Any) -> None:
        if isinstance(event, mesos_events.Offers):
            for offer in event.offers:
                await self._use(offer)
        elif isinstance(event, mesos_events.Update):
            tid = str(event.status.task_id)
            if event.status.state == "TASK_RUNNING":
                self.running.add(tid)
            elif event.status.is_terminal:
                self.running.discard(tid)
                self.launched.discard(tid)
                await self.framework.revive()

    async def _use(self, offer: mesos_types.Offer) -> None:
        need = len(self.launched) < self.n
        fits = all(offer.resources.scalar(k) >= v for k, v in TASK.items())
        if not (need and fits):
            await self.framework.decline([offer.id], refuse_seconds=5.0)
            return
        role = offer.allocation_role or self.role
        tid = f"keep-{next(self._ids)}"
        task = {
            "name": tid,
            "task_id": {"value": tid},
            "agent_id": {"value": offer.agent_id},
            "resources": Resources.from_scalars(TASK).allocated_to(role).to_raw(),
            "command": {"value": "sleep 3600"},
        }
        self.launched.add(tid)
        await self.framework.accept(
            [offer.id], [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
            refuse_seconds=1.0,
        )

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        await self.framework.run(stop=stop, ready=ready)

    async def teardown(self) -> None:
        await self.framework.teardown()
