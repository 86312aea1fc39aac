"""Wiring of the embedded kernel: one master plus in-process agents (contract D).

Why here and not in the CLI: tests of other packages (the Mesos client, the bridge e2e) need the
same "start a master and N agents, wait until they are all registered, stop everything cleanly"
as ``k8sbridge kernel`` does; ``running_kernel`` is that, as an async context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence

from k8sbridge.kernel import aio
from k8sbridge.kernel.agent.agent import Agent
from k8sbridge.kernel.agent.config import AgentConfig
from k8sbridge.kernel.master.config import MasterConfig
from k8sbridge.kernel.master.master import Master

__all__ = ["Kernel", "KernelError", "MasterConfig", "run_kernel", "running_kernel"]

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0


class KernelError(RuntimeError):
    """The kernel could not start (a part failed or did not become ready in time)."""


class Kernel:
    """A running master and its in-process agents."""

    def __init__(self, *, master: Master) -> None:
        self.master = master
        self.agents: list[Agent] = []
        self._stop = asyncio.Event()
        self._agent_stops: list[asyncio.Event] = []
        self._agent_tasks: list[asyncio.Task[None]] = []
        self._master_stop = asyncio.Event()
        self._master_task: asyncio.Task[None] | None = None

    @property
    def master_url(self) -> str:
        return self.master.url

    @property
    def master_address(self) -> str:
        return f"{self.master.config.host}:{self.master.port}"

    async def start(self, *, agents: Sequence[AgentConfig]) -> None:
        ready = asyncio.Event()
        self._master_task = asyncio.create_task(
            self.master.run(stop=self._master_stop, ready=ready), name="kernel-master"
        )
        await aio.started(ready, self._master_task, name="master", within=START_TIMEOUT,
                          error=KernelError)
        for cfg in agents:
            await self.add_agent(cfg)

    async def add_agent(self, config: AgentConfig, *, _keep_tasks: bool = False) -> Agent:
        """Start one more in-process agent linked to this master; returns once registered."""
        cfg = dataclasses.replace(config, master=self.master_address)
        agent = Agent(config=cfg)
        stop = asyncio.Event()
        ready = asyncio.Event()
        task = asyncio.create_task(
            agent.run(stop=stop, ready=ready, _keep_tasks=_keep_tasks),
            name=f"kernel-agent-{len(self.agents)}",
        )
        self.agents.append(agent)
        self._agent_stops.append(stop)
        self._agent_tasks.append(task)
        await aio.started(ready, task, name=f"agent {len(self.agents) - 1}",
                          within=START_TIMEOUT, error=KernelError)
        return agent

    async def stop_agent(self, index: int) -> None:
        """Stop one in-process agent (its tasks are killed unless it was started to keep them)."""
        self._agent_stops[index].set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._agent_tasks[index]

    async def stop(self) -> None:
        for stop in self._agent_stops:
            stop.set()
        results = await asyncio.gather(*self._agent_tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(
                result, asyncio.CancelledError
            ):
                log.error("agent stopped with an error: %r", result)
        self._master_stop.set()
        if self._master_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._master_task


@contextlib.asynccontextmanager
async def running_kernel(
    *, master: MasterConfig, agents: Sequence[AgentConfig] = ()
) -> AsyncIterator[Kernel]:
    kernel = Kernel(master=Master(config=master))
    try:
        await kernel.start(agents=agents)
        yield kernel
    finally:
        await kernel.stop()


async def run_kernel(
    *,
    master: MasterConfig,
    agents: Sequence[AgentConfig],
    stop: asyncio.Event,
    ready: asyncio.Event,
) -> None:
    async with running_kernel(master=master, agents=agents) as kernel:
        log.info("kernel ready: master %s with %d agents", kernel.master_url, len(kernel.agents))
        ready.set()
        await stop.wait()
