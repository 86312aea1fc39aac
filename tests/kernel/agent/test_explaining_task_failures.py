"""Every terminal failure says why: a reason from Mesos' enum and a message.

Under load some tasks ended TASK_FAILED with nothing to show a user. Each path is forced here
against a real agent and real processes: a non-zero exit, a task the daemon cannot spawn, an exit
event without a wait status (the supervisor could not reap the task), and a status a code path
emits without details (the agent fills them in rather than sending a bare failure).
"""

from __future__ import annotations

from pathlib import Path

from tests.kernel.agent import fakemaster as fm


async def test_nonzero_exit_carries_reason_and_message(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("bad", "exit 3")))
        failed = await run.master.wait_state("bad", "TASK_FAILED")
        assert failed["reason"] == "REASON_COMMAND_EXECUTOR_FAILED"
        assert failed["message"] == "Command exited with status 3"


async def test_spawn_error_carries_reason_and_message(tmp_path: Path) -> None:
    task = fm.command_task("nospawn", "/nonexistent/prog")
    task["command"] = {"value": "/nonexistent/prog", "shell": False}
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task))
        failed = await run.master.wait_state("nospawn", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert failed["message"].startswith("Failed to launch the command")


async def test_exit_without_a_wait_status_is_a_failure_that_says_so(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("lost", "sleep 30")))
        await run.master.wait_state("lost", "TASK_RUNNING")
        agent = run.agent
        container = next(c for c in agent._containers.values() if "lost" in c.tasks)
        # What the supervisor reports when it could not reap the task: no status, no error.
        agent._on_executor_event(container, {"type": "EXITED", "task_id": "lost",
                                             "status": None, "error": None, "oom": False})
        failed = await run.master.wait_state("lost", "TASK_FAILED")
        assert failed["reason"] == "REASON_EXECUTOR_TERMINATED"
        assert "without a wait status" in failed["message"]
        assert "TASK_FINISHED" not in run.master.states("lost")


async def test_a_bare_failure_gets_a_reason_and_message(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("bare", "sleep 30")))
        await run.master.wait_state("bare", "TASK_RUNNING")
        agent = run.agent
        container = next(c for c in agent._containers.values() if "bare" in c.tasks)
        agent._update(container, container.tasks["bare"], "TASK_FAILED")
        failed = await run.master.wait_state("bare", "TASK_FAILED")
        assert failed["reason"] == "REASON_EXECUTOR_TERMINATED"
        assert failed["message"] == "TASK_FAILED reported without details " \
            "(REASON_EXECUTOR_TERMINATED)"
