"""Agent loss: a dropped link, missed pings (unreachable), and re-registration."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from k8sbridge.kernel import main
from tests.kernel.master import wire
from tests.kernel.master.conftest import agent_config, master_config


async def _launch(st: wire.Stream, task_id: str) -> str:
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    agent_id: str = offer["agent_id"]["value"]
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            wire.command_task(task_id, agent_id, "sleep 120")]}}],
        "filters": {"refuse_seconds": 3600}}})  # leave the rest to the other framework
    await wire.until_state(st, task_id, "TASK_RUNNING")
    return agent_id


async def test_unreachable_then_back(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    mcfg = master_config(agent_ping_interval=0.2, max_missed_pings=3)
    acfg = agent_config(tmp_path)
    async with main.running_kernel(master=mcfg) as kernel:
        await kernel.add_agent(acfg, _keep_tasks=True)
        aware = wire.Stream(session, kernel.master_url)
        await aware.subscribe(wire.framework_info(
            name="aware", checkpoint=True, failover_timeout=600,
            capabilities=[{"type": "PARTITION_AWARE"}]))
        agent_id = await _launch(aware, "aware-task")
        plain = wire.Stream(session, kernel.master_url)
        await plain.subscribe(wire.framework_info(name="plain", checkpoint=True,
                                                  failover_timeout=600))
        await aware.call({"type": "SUPPRESS"})
        await _launch(plain, "plain-task")
        # The agent goes away but keeps its tasks (as an agent restart with checkpointing).
        await kernel.stop_agent(0)
        status = (await aware.wait_for(
            "UPDATE", timeout=15,
            where=lambda e: e["update"]["status"]["state"] == "TASK_UNREACHABLE",
        ))["update"]["status"]
        assert status["reason"] == "REASON_AGENT_REMOVED" and "unreachable_time" in status
        assert "uuid" not in status
        lost = (await plain.wait_for(
            "UPDATE", timeout=15,
            where=lambda e: e["update"]["status"]["task_id"]["value"] == "plain-task",
        ))["update"]["status"]
        assert lost["state"] == "TASK_LOST"
        await aware.wait_for("FAILURE", timeout=5,
                             where=lambda e: e["failure"]["agent_id"]["value"] == agent_id)
        tasks = await wire.operator(session, kernel.master_url, {"type": "GET_TASKS"})
        unreachable = {t["task_id"]["value"]: t["state"]
                       for t in tasks["get_tasks"]["unreachable_tasks"]}
        assert unreachable == {"aware-task": "TASK_UNREACHABLE", "plain-task": "TASK_LOST"}
        await aware.call({"type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": "aware-task"}, "agent_id": {"value": agent_id}}]}})
        rec = (await aware.wait_for(
            "UPDATE", where=lambda e: e["update"]["status"].get("reason") ==
            "REASON_RECONCILIATION"))["update"]["status"]
        assert rec["state"] == "TASK_UNREACHABLE"
        # The agent comes back with the same work_dir: same id, tasks resume.
        await kernel.add_agent(acfg)
        for _ in range(100):
            agent = kernel.master.agents[agent_id]
            if agent.connected and "aware-task" in kernel.master.frameworks[
                aware.framework_id
            ].tasks:
                break
            await asyncio.sleep(0.1)
        fw = kernel.master.frameworks[aware.framework_id]
        assert "aware-task" in fw.tasks and "aware-task" not in fw.unreachable_tasks
        await aware.call({"type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": "aware-task"}}]}})
        rec = (await aware.wait_for(
            "UPDATE", where=lambda e: e["update"]["status"].get("reason") ==
            "REASON_RECONCILIATION"))["update"]["status"]
        assert rec["state"] == "TASK_RUNNING"
        # The non-partition-aware framework's task was killed on re-registration.
        assert "plain-task" not in kernel.master.frameworks[plain.framework_id].tasks
        await aware.call({"type": "TEARDOWN"})
        await plain.call({"type": "TEARDOWN"})
        await aware.close()
        await plain.close()


async def test_disconnect_loses_non_checkpointing_tasks(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with main.running_kernel(master=master_config()) as kernel:
        await kernel.add_agent(agent_config(tmp_path), _keep_tasks=True)
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe(wire.framework_info(checkpoint=False, failover_timeout=60))
        await _launch(st, "fragile")
        await kernel.stop_agent(0)
        status = (await st.wait_for(
            "UPDATE", timeout=10,
            where=lambda e: e["update"]["status"]["task_id"]["value"] == "fragile",
        ))["update"]["status"]
        assert status["state"] == "TASK_LOST"
        assert status["reason"] == "REASON_AGENT_DISCONNECTED"
        # Re-registration with the task still running: the master has it killed.
        await kernel.add_agent(agent_config(tmp_path))
        await asyncio.sleep(1.0)
        tasks = await wire.operator(session, kernel.master_url, {"type": "GET_TASKS"})
        assert "tasks" not in tasks["get_tasks"]
        await st.call({"type": "TEARDOWN"})
        await st.close()
