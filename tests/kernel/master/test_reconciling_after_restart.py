"""After a master restart, reconciliation waits for the agents to bring their tasks back.

The chaos probe saw pods run twice: a restarted master had forgotten its tasks and the bridge
relaunched them. Mesos' ``Master::reconcile`` never calls a task lost while the agent it ran
on is *recovered* (known from the registry, not re-registered yet): such a reconciliation
gets no answer, and once the agent re-registers with its tasks the answer is their latest
state. Here the agent reaches the master through a gate the test holds closed across the
restart, so the order of events is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import aiohttp

from k8sbridge.kernel import main
from k8sbridge.kernel.agent.agent import Agent
from tests.conftest import free_port
from tests.kernel.master import wire
from tests.kernel.master.conftest import agent_config, master_config


class Gate:
    """A TCP forwarder to ``127.0.0.1:target`` that refuses connections while shut."""

    def __init__(self, *, target: int) -> None:
        self.target = target
        self.open = True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()
        except ConnectionError:
            return
        finally:
            dst.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


async def _no_update(stream: wire.Stream, *, within: float) -> None:
    try:
        event = await stream.wait_for("UPDATE", timeout=within)
    except TimeoutError:
        return
    raise AssertionError(f"no answer expected while the agent is recovered, got {event}")


async def _answer(stream: wire.Stream, task_id: str) -> dict[str, Any]:
    event = await stream.wait_for("UPDATE", where=lambda e: (
        e["update"]["status"]["source"] == "SOURCE_MASTER"
        and e["update"]["status"]["task_id"]["value"] == task_id))
    status: dict[str, Any] = event["update"]["status"]
    return status


async def test_reconciliation_is_answered_only_once_the_agent_is_back(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    port = free_port()
    gate = Gate(target=port)
    await gate.start()
    kernel = main.Kernel(master=main.Master(config=master_config(work_dir=tmp_path / "m",
                                                                 port=port)))
    await kernel.start(agents=[])
    agent = Agent(config=dataclasses.replace(agent_config(tmp_path),
                                             master=f"127.0.0.1:{gate.port}"))
    agent_stop, agent_ready = asyncio.Event(), asyncio.Event()
    agent_task = asyncio.create_task(agent.run(stop=agent_stop, ready=agent_ready,
                                               _keep_tasks=True))
    restarted: main.Master | None = None
    stop, ready = asyncio.Event(), asyncio.Event()
    master_task: asyncio.Task[None] | None = None
    caps = [{"type": "PARTITION_AWARE"}]
    try:
        await asyncio.wait_for(agent_ready.wait(), timeout=30)
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe(wire.framework_info(failover_timeout=3600, checkpoint=True,
                                               capabilities=caps))
        fid = st.framework_id
        offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
        agent_id = offer["agent_id"]["value"]
        await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": [
                wire.command_task("durable", agent_id, "sleep 120")]}}]}})
        await wire.until_state(st, "durable", "TASK_RUNNING")
        await st.close()
        gate.open = False  # the agent will not find the restarted master for now
        kernel._master_stop.set()
        assert kernel._master_task is not None
        await kernel._master_task

        restarted = main.Master(config=master_config(work_dir=tmp_path / "m", port=port))
        master_task = asyncio.create_task(restarted.run(stop=stop, ready=ready))
        await asyncio.wait_for(ready.wait(), timeout=10)
        st = wire.Stream(session, restarted.url)
        info = wire.framework_info(failover_timeout=3600, checkpoint=True, id={"value": fid},
                                   capabilities=caps)
        await st.open({"type": "SUBSCRIBE", "framework_id": {"value": fid},
                       "subscribe": {"framework_info": info}})
        agents = await wire.operator(session, restarted.url, {"type": "GET_AGENTS"})
        assert [a["id"]["value"] for a in agents["get_agents"]["recovered_agents"]] == [agent_id]
        explicit = {"type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": "durable"}, "agent_id": {"value": agent_id}}]}}
        anywhere = {"type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": "durable"}}]}}
        for body in (explicit, anywhere, {"type": "RECONCILE", "reconcile": {}}):
            code, text = await st.call(body)
            assert (code, text) == (202, "")
        # Neither TASK_GONE nor TASK_UNKNOWN (nor anything else) while the agent is away.
        await _no_update(st, within=1.5)

        gate.open = True
        for _ in range(300):
            if restarted.agents[agent_id].connected:
                break
            await asyncio.sleep(0.1)
        assert restarted.agents[agent_id].connected, "the agent did not re-register"
        await st.call(explicit)
        status = await _answer(st, "durable")
        assert status["state"] == "TASK_RUNNING"
        assert status["message"] == "Reconciliation: Latest task state"
        assert status["reason"] == "REASON_RECONCILIATION"
        assert status["agent_id"]["value"] == agent_id
        await st.call({"type": "RECONCILE", "reconcile": {}})
        assert (await _answer(st, "durable"))["state"] == "TASK_RUNNING"
        await st.call({"type": "TEARDOWN"})
        await st.close()
    finally:
        agent_stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await agent_task
        if master_task is not None:
            stop.set()
            await master_task
        if not kernel._master_stop.is_set():
            await kernel.stop()
        await gate.stop()
