"""Command tasks as real processes: exit codes, shell vs argv, environment, statuses."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.kernel.agent import fakemaster as fm


async def test_registers_and_answers_ping(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path, attributes="rack:r1;level:3", region="eu",
                                zone="eu-1") as run:
        reg = run.master.registrations[0]
        info = reg["agent_info"]
        assert "id" not in info
        assert info["port"] == int(run.agent.http_address.rsplit(":", 1)[1])
        assert reg["version"] == "1.12.0"
        assert {a["name"]: a for a in info["attributes"]}["level"]["scalar"] == {"value": 3.0}
        assert info["domain"] == {"fault_domain": {"region": {"name": "eu"},
                                                   "zone": {"name": "eu-1"}}}
        names = {r["name"] for r in info["resources"]}
        assert names == {"cpus", "mem", "disk", "ports"}
        assert run.agent.agent_id is not None
        await run.master.send({"type": "PING"})
        await run.master.wait_for(lambda: any(m["type"] == "PONG" for m in run.master.messages))


async def test_exit_zero_is_finished_with_full_status(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("t1", "echo hello; exit 0")))
        done = await run.master.wait_state("t1", "TASK_FINISHED")
        assert run.master.states("t1") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        assert len(base64.b64decode(done["uuid"])) == 16
        assert done["source"] == "SOURCE_EXECUTOR"
        assert done["agent_id"] == {"value": run.agent.agent_id}
        assert done["executor_id"] == {"value": "t1"}
        assert done["message"] == "Command exited with status 0"
        assert isinstance(done["timestamp"], float)
        cs = done["container_status"]
        assert cs["network_infos"][0]["ip_addresses"][0]["ip_address"] == "127.0.0.1"
        assert cs["container_id"]["value"]
        sandbox = (tmp_path / "slaves" / run.agent.agent_id / "frameworks" / fm.FRAMEWORK_ID
                   / "executors" / "t1" / "runs" / "latest")
        assert (sandbox / "stdout").read_text() == "hello\n"
        assert sandbox.resolve().name == cs["container_id"]["value"]
        await run.master.wait_for(
            lambda: any(m["type"] == "EXECUTOR_EXITED" for m in run.master.messages))


async def test_nonzero_exit_is_failed(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("t2", "exit 3")))
        failed = await run.master.wait_state("t2", "TASK_FAILED")
        assert failed["message"] == "Command exited with status 3"


async def test_shell_false_runs_argv_with_argv0_and_environment(tmp_path: Path) -> None:
    task = fm.command_task("t3", "/bin/sh")
    task["command"] = {
        "value": "/bin/sh", "shell": False,
        "arguments": ["my-argv0", "-c",
                      'echo "$GREETING $MESOS_TASK_ID"; pwd; tr "\\0" " " < /proc/$$/cmdline'],
        "environment": {"variables": [{"name": "GREETING", "value": "hi there"}]},
    }
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task))
        await run.master.wait_state("t3", "TASK_FINISHED")
        sandbox = next((tmp_path / "slaves").glob("*/frameworks/*/executors/t3/runs/latest"))
        lines = (sandbox / "stdout").read_text().splitlines()
        assert lines[0] == "hi there t3"
        assert Path(lines[1]).resolve() == sandbox.resolve()
        assert lines[2].startswith("my-argv0 -c ")


async def test_shell_true_does_not_split_arguments(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(fm.command_task("t4", "for a in 1 2; do echo $a; done")))
        await run.master.wait_state("t4", "TASK_FINISHED")
        sandbox = next((tmp_path / "slaves").glob("*/frameworks/*/executors/t4/runs/latest"))
        assert (sandbox / "stdout").read_text() == "1\n2\n"


async def test_missing_executable_fails_with_launch_reason(tmp_path: Path) -> None:
    task = fm.command_task("t5", "/no/such/binary")
    task["command"] = {"value": "/no/such/binary", "shell": False}
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task))
        failed = await run.master.wait_state("t5", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert "/no/such/binary" in failed["message"]


async def test_docker_bridge_network_is_refused_not_faked(tmp_path: Path) -> None:
    task = fm.command_task("t6", "sleep 10", container={
        "type": "DOCKER",
        "docker": {"image": "nginx:1", "network": "BRIDGE",
                   "port_mappings": [{"host_port": 31000, "container_port": 80}]},
    })
    image_task = fm.command_task("t7", "echo ran", container={
        "type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": "alpine:3"}}},
    })
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task))
        failed = await run.master.wait_state("t6", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert "BRIDGE" in failed["message"]
        assert run.master.states("t6") == ["TASK_FAILED"]
        await run.master.send(fm.run_task(image_task))
        await run.master.wait_state("t7", "TASK_FINISHED")


async def test_malformed_messages_do_not_crash_the_agent(tmp_path: Path) -> None:
    async with fm.running_agent(tmp_path) as run:
        await run.master.send({"type": "RUN_TASK"})
        await run.master.send({"type": "RUN_TASK", "framework": {}, "task": {}})
        await run.master.send({"type": "KILL_TASK"})
        await run.master.send({"type": "WHATEVER"})
        await run.master.send({"type": "ACKNOWLEDGE", "framework_id": {"value": "x"},
                               "task_id": {"value": "y"}, "uuid": "zz"})
        await run.master.send(fm.run_task(fm.command_task("ok", "true")))
        await run.master.wait_state("ok", "TASK_FINISHED")
        assert not run.task.done()


async def test_custom_executor_and_duplicate_ids_fail_clearly(tmp_path: Path) -> None:
    custom = fm.command_task("c1", "true", executor={
        "executor_id": {"value": "mine"}, "command": {"value": "./my-executor"}})
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(custom))
        failed = await run.master.wait_state("c1", "TASK_FAILED")
        assert "custom executors are not supported" in failed["message"]
        await run.master.send(fm.run_task(fm.command_task("dup", "sleep 300")))
        await run.master.wait_state("dup", "TASK_RUNNING")
        await run.master.send(fm.run_task(fm.command_task("dup", "echo second")))
        # A duplicate (the master rejects those) is dropped: the first one is untouched.
        await run.master.send(fm.kill_task("dup", grace=0.5))
        await run.master.wait_state("dup", "TASK_KILLED")
        assert run.master.states("dup") == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"]


async def test_environment_secrets_are_refused(tmp_path: Path) -> None:
    task = fm.command_task("sec", "true")
    task["command"]["environment"] = {"variables": [
        {"name": "TOKEN", "type": "SECRET", "secret": {"type": "REFERENCE"}}]}
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task))
        failed = await run.master.wait_state("sec", "TASK_FAILED")
        assert "TOKEN" in failed["message"]
