"""A test-only master that speaks contract B (the internal link) to a real agent.

Why acceptable: the link is our own internal protocol, not a public one; this fake lets the
agent's tests drive real processes without the master engineer's master. It serves
``/kernel/link`` over real HTTP and the link over real gRPC, assigns agent ids, records every
message, and acknowledges status updates unless told not to.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from k8sbridge.kernel import link
from k8sbridge.kernel.agent.agent import Agent
from k8sbridge.kernel.agent.config import AgentConfig

_ids = itertools.count(1)


class FakeMaster:
    def __init__(self, *, auto_ack: bool = True) -> None:
        self.auto_ack = auto_ack
        self.port = 0
        self.link_port = 0
        self.registrations: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []  # TaskStatus, in arrival order
        self.messages: list[dict[str, Any]] = []
        self.stream: link.AgentStream | None = None
        self.registered = asyncio.Event()
        self._changed = asyncio.Event()
        self._server: link.LinkServer | None = None
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, *, port: int = 0) -> None:
        self._server = link.LinkServer(host="127.0.0.1", port=0, handler=self._handle)
        self.link_port = await self._server.start()
        app = web.Application()
        app.router.add_get("/kernel/link", self._link_address)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0.2)
        if self._runner is not None:
            await self._runner.cleanup()
        self.stream = None
        self.registered.clear()

    async def _link_address(self, request: web.Request) -> web.Response:
        return web.json_response({"address": f"127.0.0.1:{self.link_port}"})

    async def _handle(self, stream: link.AgentStream) -> None:
        async for message in stream:
            self.messages.append(message)
            kind = message["type"]
            if kind == "REGISTER":
                self.registrations.append(message)
                given = (message["agent_info"].get("id") or {}).get("value")
                agent_id = given or f"fake-S{next(_ids)}"
                self.stream = stream
                await stream.send({"type": "REGISTERED", "agent_id": {"value": agent_id}})
                self.registered.set()
            elif kind == "STATUS_UPDATE":
                status = message["status"]
                self.updates.append(status)
                if self.auto_ack:
                    await self.ack(message["framework_id"]["value"], status)
            self._changed.set()

    async def ack(self, framework_id: str, status: dict[str, Any]) -> None:
        assert self.stream is not None
        await self.stream.send({
            "type": "ACKNOWLEDGE", "framework_id": {"value": framework_id},
            "task_id": status["task_id"], "uuid": status["uuid"],
        })

    async def send(self, message: dict[str, Any]) -> None:
        async with asyncio.timeout(10):
            await self.registered.wait()
        assert self.stream is not None
        await self.stream.send(message)

    async def wait_for(self, predicate: Callable[[], Any], *, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(u["task_id"]["value"], u["state"], u.get("message", ""))
                        for u in self.updates]
                raise TimeoutError(f"condition not met within {timeout}s; updates: {seen}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.2))

    def states(self, task_id: str) -> list[str]:
        return [u["state"] for u in self.updates if u["task_id"]["value"] == task_id]

    async def wait_state(self, task_id: str, state: str, *, timeout: float = 15.0
                         ) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for u in self.updates:
                if u["task_id"]["value"] == task_id and u["state"] == state:
                    return u
            return None
        result: dict[str, Any] = await self.wait_for(find, timeout=timeout)
        return result


FRAMEWORK_ID = "fw-0001"


def framework(*, checkpoint: bool = False, capabilities: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"id": {"value": FRAMEWORK_ID}, "user": "root", "name": "test",
            "checkpoint": checkpoint, "capabilities": [{"type": c} for c in capabilities]}


def command_task(task_id: str, command: str, *, mem: float = 64, cpus: float = 0.1,
                 **extra: Any) -> dict[str, Any]:
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": "ignored"},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
        ],
        "command": {"value": command, "shell": True},
        **extra,
    }


def run_task(task: dict[str, Any], **fw: Any) -> dict[str, Any]:
    return {"type": "RUN_TASK", "framework": framework(**fw), "task": task}


def kill_task(task_id: str, grace: float | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "KILL_TASK", "framework_id": {"value": FRAMEWORK_ID},
                               "task_id": {"value": task_id}}
    if grace is not None:
        message["kill_policy"] = {"grace_period": {"nanoseconds": int(grace * 1e9)}}
    return message


@dataclasses.dataclass
class Running:
    master: FakeMaster
    agent: Agent
    stop: asyncio.Event
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running_agent(work_dir: Path, *, master: FakeMaster | None = None,
                        keep_tasks: bool = False, **config: Any) -> AsyncIterator[Running]:
    own_master = master is None
    fake = master or FakeMaster()
    if own_master:
        await fake.start()
    agent = Agent(config=AgentConfig(master=fake.address, work_dir=work_dir,
                                     resources=config.pop("resources", "cpus:2;mem:1024"),
                                     **config))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(agent.run(stop=stop, ready=ready, _keep_tasks=keep_tasks))
    try:
        async with asyncio.timeout(20):
            done = asyncio.ensure_future(ready.wait())
            await asyncio.wait({done, task}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                done.cancel()
                task.result()
        yield Running(master=fake, agent=agent, stop=stop, task=task)
    finally:
        stop.set()
        try:
            async with asyncio.timeout(30):
                await task
        finally:  # also when the agent failed to start
            if own_master:
                await fake.stop()
