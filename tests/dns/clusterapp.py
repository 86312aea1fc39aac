"""A Marathon-like framework for the DNS tests: registers as ``marathon`` and keeps one command
task on the cluster network (``ContainerInfo.network_infos`` naming the CNI network), as
Marathon runs an app with ``networks: [{mode: container, name: ...}]``.

Built on the project's Mesos client; it launches its task on the first offer that fits and
declines the rest.
"""

from __future__ import annotations

import asyncio
import getpass
from typing import Any

from k8sbridge.mesos import client as mesos_client
from k8sbridge.mesos import events as mesos_events
from k8sbridge.mesos import framework as mesos_framework
from k8sbridge.mesos import types as mesos_types
from k8sbridge.model.resources import Resources

TASK = {"cpus": 0.1, "mem": 32.0}


class ClusterApp:
    def __init__(self, *, master: str, auth: tuple[str, str] | None, name: str, command: str,
                 network: str = "k8sbridge", role: str = "marathon",
                 ca_file: str | None = None) -> None:
        self.name = name
        self.command = command
        self.network = network
        self.role = role
        self.launched = False
        self.statuses: list[Any] = []
        self.framework = mesos_framework.Framework(
            settings=mesos_framework.FrameworkSettings(
                framework_info=mesos_types.FrameworkInfo(
                    name="marathon", user=getpass.getuser(), roles=(role,),
                    failover_timeout=0.0, checkpoint=False,
                    principal=auth[0] if auth is not None else None),
                client=mesos_client.ClientConfig(
                    masters=(master,), principal=auth[0] if auth is not None else None,
                    secret=auth[1] if auth is not None else None, ca_file=ca_file)),
            handler=self.handle)

    async def handle(self, event: Any) -> None:
        if isinstance(event, mesos_events.Offers):
            for offer in event.offers:
                await self._use(offer)
        elif isinstance(event, mesos_events.Update):
            self.statuses.append(event.status)

    async def _use(self, offer: mesos_types.Offer) -> None:
        fits = all(offer.resources.scalar(k) >= v for k, v in TASK.items())
        if self.launched or not fits:
            await self.framework.decline([offer.id], refuse_seconds=30.0)
            return
        role = offer.allocation_role or self.role
        task: Any = {
            "name": self.name,
            "task_id": {"value": f"{self.name}.1"},
            "agent_id": {"value": offer.agent_id},
            "resources": Resources.from_scalars(TASK).allocated_to(role).to_raw(),
            "command": {"value": self.command, "shell": True},
            "container": {"type": "MESOS", "network_infos": [{"name": self.network}]},
        }
        self.launched = True
        await self.framework.accept(
            [offer.id], [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
            refuse_seconds=30.0)

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        await self.framework.run(stop=stop, ready=ready)

    async def teardown(self) -> None:
        await self.framework.teardown()
