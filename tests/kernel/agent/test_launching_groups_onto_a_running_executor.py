"""Later task groups onto a running DEFAULT executor join its container, as Mesos' default
executor runs every LAUNCH_GROUP with its ExecutorInfo: the same network namespace and IP,
the same executor sandbox; the executor ends with its last task, not its first group; a
group onto a terminating executor is dropped and one with a different ExecutorInfo refused.
Driven through the kernel's scheduler API as a framework would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kernel import main, network
from k8sbridge.kernel.agent import filesystems
from tests.kernel.agent.test_giving_task_groups_a_network_of_their_own import (
    Updates,
    _accept,
    _group,
    _ip,
    _leftovers,
)
from tests.kernel.master import wire
from tests.kernel.master.conftest import agent_config, master_config

# What a task sees of its network: its address on eth0 and its network namespace.
SHOW = ("busybox ip -4 -o addr show eth0 | busybox awk '{print $4}' > ip && "
        "readlink /proc/self/ns/net > netns && echo \"$MESOS_CONTAINER_IP\" > env_ip && "
        "echo hi > \"shared/from-$MESOS_TASK_ID\"")
# The executor's sandbox, shared by its groups' tasks (an emptyDir).
SHARED = {"type": "MESOS", "volumes": [{"container_path": "shared", "mode": "RW", "source": {
    "type": "SANDBOX_PATH", "sandbox_path": {"type": "PARENT", "path": "shared"}}}]}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _agent(tmp_path: Path, cluster: network.ClusterNetwork, **extra: Any) -> Any:
    flags = cluster.agent_flags(0, work_dir=tmp_path / "agent0")
    return agent_config(tmp_path, 0, isolation=filesystems.FULL_ISOLATION, **flags, **extra)


async def _offer(st: wire.Stream) -> dict[str, Any]:
    offer: dict[str, Any] = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    return offer


def _task_dir(tmp_path: Path, executor: str, task: str) -> Path:
    [found] = tmp_path.glob(f"agent0/slaves/*/frameworks/*/executors/{executor}/runs/latest/"
                            f"tasks/{task}")
    return found


async def test_later_groups_share_the_executors_ip_and_namespace_until_its_last_task(
        tmp_path: Path, cluster: network.ClusterNetwork, session: aiohttp.ClientSession) -> None:
    async with main.running_kernel(master=master_config(),
                                   agents=[_agent(tmp_path, cluster)]) as kernel:
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe()
        updates = Updates(st)
        offer = await _offer(st)
        agent_id = offer["agent_id"]["value"]
        await _accept(st, offer, [_group(st, agent_id, "pod", [
            wire.command_task("pause", agent_id, "exec sleep 1000", cpus=0.01, mem=1)])])
        pause_ip = _ip(await updates.until("pause", "TASK_RUNNING"))
        for name in ("first", "second"):
            offer = await _offer(st)
            await _accept(st, offer, [_group(st, agent_id, "pod", [
                wire.command_task(name, agent_id, SHOW, container=SHARED)])])
            done = await updates.until(name, "TASK_FINISHED")
            assert _ip(done) == pause_ip
            sandbox = _task_dir(tmp_path, "pod", name)
            assert (sandbox / "ip").read_text().strip().split("/")[0] == pause_ip
            assert (sandbox / "env_ip").read_text().strip() == pause_ip
            # The executor sandbox is shared: each group wrote into the same one.
            assert (sandbox.parent.parent / "shared" / f"from-{name}").read_text() == "hi\n"
        first, second = (_task_dir(tmp_path, "pod", n) / "netns" for n in ("first", "second"))
        assert first.read_text() == second.read_text()
        # The executor outlived both later groups: the sandbox task still runs, its IP kept.
        assert [s["state"] for s in updates.seen["pause"]][-1] == "TASK_RUNNING"
        assert _leftovers(tmp_path, cluster)
        code, text = await st.call({"type": "KILL", "kill": {
            "task_id": {"value": "pause"}, "agent_id": {"value": agent_id}}})
        assert code == 202, text
        await updates.until("pause", "TASK_KILLED")
        for _ in range(100):  # its last task ended: the executor and its namespace go
            if not _leftovers(tmp_path, cluster):
                break
            await asyncio.sleep(0.1)
        assert _leftovers(tmp_path, cluster) == []
        state = await wire.operator(session, kernel.master_url, {"type": "GET_EXECUTORS"})
        for _ in range(50):
            if not state["get_executors"].get("executors"):
                break
            await asyncio.sleep(0.1)
            state = await wire.operator(session, kernel.master_url, {"type": "GET_EXECUTORS"})
        assert not state["get_executors"].get("executors")
        await st.close()


async def test_a_group_onto_a_terminating_or_different_executor_never_runs(
        tmp_path: Path, cluster: network.ClusterNetwork, session: aiohttp.ClientSession) -> None:
    agent = _agent(tmp_path, cluster, executor_shutdown_grace_seconds=10.0)
    async with main.running_kernel(master=master_config(), agents=[agent]) as kernel:
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe(wire.framework_info(capabilities=[{"type": "PARTITION_AWARE"}]))
        updates = Updates(st)
        offer = await _offer(st)
        agent_id = offer["agent_id"]["value"]
        await _accept(st, offer, [_group(st, agent_id, "pod", [
            wire.command_task("stubborn", agent_id, "trap '' TERM; sleep 1000 & wait; "
                              "sleep 1000")])])
        await updates.until("stubborn", "TASK_RUNNING")
        # Another ExecutorInfo under the same id: the master refuses the group.
        offer = await _offer(st)
        other = _group(st, agent_id, "pod", [wire.command_task("odd", agent_id, "true")],
                       hostname="elsewhere")
        await _accept(st, offer, [other])
        error = await updates.until("odd", "TASK_ERROR")
        assert error["message"].startswith(
            "ExecutorInfo is not compatible with existing ExecutorInfo with same ExecutorID.")
        # Asked to shut down, the executor is terminating while its task ignores SIGTERM.
        code, text = await st.call({"type": "SHUTDOWN", "shutdown": {
            "executor_id": {"value": "pod"}, "agent_id": {"value": agent_id}}})
        assert code == 202, text
        offer = await _offer(st)
        await _accept(st, offer, [_group(st, agent_id, "pod", [
            wire.command_task("late", agent_id, "true")])])
        dropped = await updates.until("late", "TASK_DROPPED")
        assert (dropped["reason"], dropped["message"]) == (
            "REASON_EXECUTOR_TERMINATED", "Executor terminating")
        await updates.until("stubborn", "TASK_KILLED", timeout=30)
        await st.close()


async def test_a_restarted_agent_keeps_an_executor_of_several_groups(
        tmp_path: Path, cluster: network.ClusterNetwork, session: aiohttp.ClientSession) -> None:
    config = _agent(tmp_path, cluster)
    async with main.running_kernel(master=master_config()) as kernel:
        await kernel.add_agent(config, _keep_tasks=True)
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe(wire.framework_info(checkpoint=True, failover_timeout=3600))
        updates = Updates(st)
        offer = await _offer(st)
        agent_id = offer["agent_id"]["value"]
        await _accept(st, offer, [_group(st, agent_id, "pod", [
            wire.command_task("pause", agent_id, "exec sleep 1000", cpus=0.01, mem=1)])])
        ip = _ip(await updates.until("pause", "TASK_RUNNING"))
        offer = await _offer(st)
        await _accept(st, offer, [_group(st, agent_id, "pod", [
            wire.command_task("app", agent_id, "exec sleep 1000")])])
        assert _ip(await updates.until("app", "TASK_RUNNING")) == ip
        await kernel.stop_agent(0)
        agent = await kernel.add_agent(config, _keep_tasks=True)
        groups = agent.live_containers()
        assert len(groups) == 2
        assert {_ip({"container_status": agent.container_status(c)}) for c in groups} == {ip}
        # The pause task goes first: the executor lives on with the app's group.
        code, text = await st.call({"type": "KILL", "kill": {
            "task_id": {"value": "pause"}, "agent_id": {"value": agent_id}}})
        assert code == 202, text
        await updates.until("pause", "TASK_KILLED")
        offer = await _offer(st)
        await _accept(st, offer, [_group(st, agent_id, "pod", [
            wire.command_task("later", agent_id, SHOW, container=SHARED)])])
        assert _ip(await updates.until("later", "TASK_FINISHED")) == ip
        assert _leftovers(tmp_path, cluster)
        code, text = await st.call({"type": "KILL", "kill": {
            "task_id": {"value": "app"}, "agent_id": {"value": agent_id}}})
        assert code == 202, text
        await updates.until("app", "TASK_KILLED")
        for _ in range(100):
            if not _leftovers(tmp_path, cluster):
                break
            await asyncio.sleep(0.1)
        assert _leftovers(tmp_path, cluster) == []
        await st.close()


async def test_a_group_joining_an_executor_whose_launch_failed_fails_with_its_reason(
        tmp_path: Path, cluster: network.ClusterNetwork, session: aiohttp.ClientSession) -> None:
    async with main.running_kernel(master=master_config(),
                                   agents=[_agent(tmp_path, cluster)]) as kernel:
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe()
        updates = Updates(st)
        offer = await _offer(st)
        agent_id = offer["agent_id"]["value"]
        # Both groups in one ACCEPT, as a pod's sandbox and its first containers go.
        await _accept(st, offer, [
            _group(st, agent_id, "pod", [wire.command_task("pause", agent_id, "sleep 100",
                                                           cpus=0.01, mem=1)],
                   network_name="nowhere"),
            _group(st, agent_id, "pod", [wire.command_task("app", agent_id, "true")],
                   network_name="nowhere")])
        pause = await updates.until("pause", "TASK_FAILED")
        app = await updates.until("app", "TASK_FAILED")
        for status in (pause, app):
            assert status["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
            assert "nowhere" in status["message"], status["message"]
        assert app["message"] == pause["message"]
        await st.close()
