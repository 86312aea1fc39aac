"""Every terminal failure says why in its message; reasons are exactly what Mesos sends.

Under load some tasks ended TASK_FAILED with nothing to show a user. Each path is forced here
against a real agent and real processes: a non-zero exit, a task the daemon cannot spawn, an exit
event without a wait status (the supervisor could not reap the task), and a status a code path
emits without details (the agent fills them in rather than sending a bare failure).
"""

from __future__ import annotations

from pathlib import Path

from tests.kernel.agent import fakemaster as fm


async def test_nonzero_exit_says_so_without_a_reason_as_mesos(tmp_path: Path) -> None:
    # Mesos' command executor (src/launcher/executor.cpp): TASK_FAILED, no reason, and the
    # message "Command exited with status N".
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("bad", "exit 3")))
        failed = await run.master.wait_state("bad", "TASK_FAILED")
        assert "reason" not in failed
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
        assert "reason" not in failed
        assert failed["message"] == "Failed to get exit status for Command"
        assert "TASK_FINISHED" not in run.master.states("lost")


async def test_a_bare_failure_gets_a_message(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("bare", "sleep 30")))
        await run.master.wait_state("bare", "TASK_RUNNING")
        agent = run.agent
        container = next(c for c in agent._containers.values() if "bare" in c.tasks)
        agent._update(container, container.tasks["bare"], "TASK_FAILED")
        failed = await run.master.wait_state("bare", "TASK_FAILED")
        assert failed["message"] == "TASK_FAILED reported by the agent without details"
