"""The agent follows its containers on the container daemon's control connection (events in,
commands out); when that connection breaks, it follows each container on the container's own
socket instead, and nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.kernel.agent import fakemaster as fm


async def test_events_and_kills_go_over_the_control_connection(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        for i in range(5):
            await run.master.send(fm.run_task(fm.command_task(f"t{i}", "exec sleep 300")))
        for i in range(5):
            await run.master.wait_state(f"t{i}", "TASK_RUNNING")
        clients = [c.client for c in run.agent._containers.values()]
        assert clients and all(c is not None and c.following for c in clients)
        await run.master.send(fm.kill_task("t0", grace=0.5))
        killed = await run.master.wait_state("t0", "TASK_KILLED")
        assert killed["source"] == "SOURCE_EXECUTOR"
        for i in range(1, 5):  # the others run on
            states = {u["state"] for u in run.master.updates if u["task_id"]["value"] == f"t{i}"}
            assert states == {"TASK_STARTING", "TASK_RUNNING"}


async def test_a_broken_control_connection_falls_back_to_the_containers_socket(
    tmp_path: Path,
) -> None:
    # A checkpointing framework's container waits for its agent (recovery timeout), so the
    # agent can follow it again on the container's own socket and still kill it.
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("a", "exec sleep 300"),
                                          checkpoint=True))
        await run.master.wait_state("a", "TASK_RUNNING")
        [container] = run.agent._containers.values()
        client = container.client
        assert client is not None and client.following
        run.agent._daemon._drop()  # the control connection breaks
        async with asyncio.timeout(10):
            while client._writer is None:  # attached to the container's own socket
                await asyncio.sleep(0.01)
        assert not client.following and client.attached
        await run.master.send(fm.kill_task("a", grace=0.5))
        await run.master.wait_state("a", "TASK_KILLED")
        # New launches open a new control connection and are followed on it.
        await run.master.send(fm.run_task(fm.command_task("b", "exec sleep 300")))
        await run.master.wait_state("b", "TASK_RUNNING")
        assert run.agent._containers
        followed = [c.client for c in run.agent._containers.values()
                    if c.client is not None and c.client.following]
        assert len(followed) == 1


async def test_a_task_that_ends_before_its_launch_answer_is_taken_in_still_finishes(
    tmp_path: Path,
) -> None:
    # A busy agent may take the daemon's answer to a spawn in late: the container's events and
    # the news that its supervisor is gone are then already there. They must be seen in that
    # order (the task's exit, then GONE), not as "Executor terminated".
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("first", "exec sleep 300")))
        await run.master.wait_state("first", "TASK_RUNNING")
        daemon = run.agent._daemon
        assert daemon is not None
        real_spawn = daemon.spawn
        late: list[str] = []

        async def spawn_taken_in_late(spec: Any) -> Any:
            answer = await real_spawn(spec)
            await asyncio.sleep(1.0)  # meanwhile the task runs, ends, and its supervisor too
            late.append(str(spec.get("container_id", "")))
            return answer

        daemon.spawn = spawn_taken_in_late  # type: ignore[method-assign]
        await run.master.send(fm.run_task(fm.command_task("quick", "echo hi")))
        finished = await run.master.wait_state("quick", "TASK_FINISHED")
        assert late and finished["state"] == "TASK_FINISHED"
        states = [u["state"] for u in run.master.updates if u["task_id"]["value"] == "quick"]
        assert "TASK_FAILED" not in states, states
