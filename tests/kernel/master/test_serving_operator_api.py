"""Operator API (``POST /api/v1``), legacy JSON endpoints, and a non-Python client (curl)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import aiohttp

from k8sbridge.kernel import main
from tests.kernel.master import wire


async def _call(session: aiohttp.ClientSession, kernel: main.Kernel, body: dict[str, Any]
                ) -> tuple[int, str]:
    async with session.post(f"{kernel.master_url}/api/v1", json=body) as resp:
        return resp.status, await resp.text()


async def test_reads(kernel: main.Kernel, session: aiohttp.ClientSession) -> None:
    health = await wire.operator(session, kernel.master_url, {"type": "GET_HEALTH"})
    assert health == {"type": "GET_HEALTH", "get_health": {"healthy": True}}
    version = await wire.operator(session, kernel.master_url, {"type": "GET_VERSION"})
    assert version["get_version"]["version_info"]["version"] == "1.12.0"
    agents = (await wire.operator(session, kernel.master_url, {"type": "GET_AGENTS"}))
    [agent] = agents["get_agents"]["agents"]
    assert agent["active"] is True and agent["agent_info"]["hostname"] == "127.0.0.1"
    assert agent["agent_info"]["id"]["value"] == kernel.agents[0].agent_id
    assert agent["pid"].startswith("slave(1)@127.0.0.1:")
    assert "nanoseconds" in agent["registered_time"]
    cpus = [r for r in agent["total_resources"] if r["name"] == "cpus"]
    assert cpus == [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}}]
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe(wire.framework_info(
        capabilities=[{"type": "MULTI_ROLE"}], roles=["web"]))
    frameworks = await wire.operator(session, kernel.master_url, {"type": "GET_FRAMEWORKS"})
    [fw] = frameworks["get_frameworks"]["frameworks"]
    info = fw["framework_info"]
    assert info["failover_timeout"] == 0.0 and info["checkpoint"] is False  # defaults
    assert fw["connected"] is True and fw["active"] is True and fw["recovered"] is False
    roles = await wire.operator(session, kernel.master_url, {"type": "GET_ROLES"})
    names = [r["name"] for r in roles["get_roles"]["roles"]]
    assert "web" in names
    master = await wire.operator(session, kernel.master_url, {"type": "GET_MASTER"})
    assert master["get_master"]["master_info"]["id"] == kernel.master.master_id
    code, text = await _call(session, kernel, {"type": "START_MAINTENANCE"})
    assert code == 501 and "START_MAINTENANCE" in text
    code, _ = await _call(session, kernel, {})
    assert code == 400
    await st.close()


async def test_weights_quota_and_reservations(kernel: main.Kernel,
                                              session: aiohttp.ClientSession) -> None:
    code, _ = await _call(session, kernel, {"type": "UPDATE_WEIGHTS", "update_weights": {
        "weight_infos": [{"role": "web", "weight": 3.0}]}})
    assert code == 200
    weights = await wire.operator(session, kernel.master_url, {"type": "GET_WEIGHTS"})
    assert {"role": "web", "weight": 3.0} in weights["get_weights"]["weight_infos"]
    code, _ = await _call(session, kernel, {"type": "UPDATE_WEIGHTS", "update_weights": {
        "weight_infos": [{"role": "web", "weight": -1}]}})
    assert code == 400
    code, _ = await _call(session, kernel, {"type": "UPDATE_QUOTA", "update_quota": {
        "quota_configs": [{"role": "web", "limits": {"cpus": {"value": 1}}}]}})
    assert code == 200
    quota = await wire.operator(session, kernel.master_url, {"type": "GET_QUOTA"})
    assert quota["get_quota"]["status"]["configs"] == [
        {"role": "web", "limits": {"cpus": {"value": 1.0}}}]
    agent_id = kernel.agents[0].agent_id
    reserve = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                "reservations": [{"type": "DYNAMIC", "role": "web", "principal": "ops"}]}]
    code, text = await _call(session, kernel, {"type": "RESERVE_RESOURCES",
                                               "reserve_resources": {
                                                   "agent_id": {"value": agent_id},
                                                   "resources": reserve}})
    assert code == 202, text
    agents = await wire.operator(session, kernel.master_url, {"type": "GET_AGENTS"})
    total = agents["get_agents"]["agents"][0]["total_resources"]
    reserved = [r for r in total if r.get("reservations")]
    assert reserved and reserved[0]["reservations"][0]["role"] == "web"
    # Only 1 of 2 cpus is unreserved now: reserving 5 more is a conflict.
    too_much = [{**reserve[0], "scalar": {"value": 5}}]
    code, text = await _call(session, kernel, {"type": "RESERVE_RESOURCES",
                                               "reserve_resources": {
                                                   "agent_id": {"value": agent_id},
                                                   "resources": too_much}})
    assert code == 409 and "does not contain" in text
    code, _ = await _call(session, kernel, {"type": "UNRESERVE_RESOURCES",
                                            "unreserve_resources": {
                                                "agent_id": {"value": agent_id},
                                                "resources": reserve}})
    assert code == 202
    state = await _legacy(session, kernel, "/state")
    assert state["slaves"][0]["reserved_resources"] == {}


async def _legacy(session: aiohttp.ClientSession, kernel: main.Kernel, path: str) -> Any:
    async with session.get(f"{kernel.master_url}{path}") as resp:
        assert resp.status == 200
        return await resp.json()


async def test_legacy_endpoints(kernel: main.Kernel, session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    agent_id = offer["agent_id"]["value"]
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            wire.command_task("legacy", agent_id, "sleep 30")]}}]}})
    await wire.until_state(st, "legacy", "TASK_RUNNING")
    state = await _legacy(session, kernel, "/state")
    assert state == await _legacy(session, kernel, "/master/state") | {
        "slaves": state["slaves"], "frameworks": state["frameworks"]}
    assert state["id"] == kernel.master.master_id and state["orphan_tasks"] == []
    [slave] = state["slaves"]
    assert slave["id"] == agent_id and slave["attributes"] == {"rack": "r0"}
    assert slave["resources"]["ports"] == "[31000-31099]"
    assert slave["used_resources"]["cpus"] == 0.1
    [fw] = state["frameworks"]
    [task] = fw["tasks"]
    assert (task["id"], task["slave_id"], task["state"]) == ("legacy", agent_id, "TASK_RUNNING")
    assert task["resources"]["mem"] == 32.0
    summary = await _legacy(session, kernel, "/state-summary")
    assert summary["slaves"][0]["TASK_RUNNING"] == 1
    assert summary["frameworks"][0]["slave_ids"] == [agent_id]
    version = await _legacy(session, kernel, "/version")
    assert version["version"] == "1.12.0"
    metrics = await _legacy(session, kernel, "/metrics/snapshot")
    assert metrics["master/tasks_running"] == 1.0 and metrics["master/slaves_active"] == 1.0
    async with session.get(f"{kernel.master_url}/health") as resp:
        assert resp.status == 200 and await resp.read() == b""
    link = await _legacy(session, kernel, "/kernel/link")
    assert link["address"] == f"127.0.0.1:{kernel.master.link_port}"
    await st.call({"type": "TEARDOWN"})
    await st.close()


async def test_operator_event_stream(kernel: main.Kernel,
                                     session: aiohttp.ClientSession) -> None:
    events = wire.Stream(session, kernel.master_url)
    events.response = await session.post(
        f"{kernel.master_url}/api/v1", json={"type": "SUBSCRIBE"},
        headers={"Accept": "application/json"})
    assert events.response.status == 200
    first = await events.next_event()
    assert first["type"] == "SUBSCRIBED"
    assert "get_agents" in first["subscribed"]["get_state"]
    assert (await events.next_event())["type"] == "HEARTBEAT"
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    added = await events.wait_for("FRAMEWORK_ADDED")
    assert added["framework_added"]["framework"]["framework_info"]["id"]["value"] == (
        st.framework_id)
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            wire.command_task("watched", offer["agent_id"]["value"], "true")]}}]}})
    task_added = await events.wait_for("TASK_ADDED")
    assert task_added["task_added"]["task"]["task_id"]["value"] == "watched"
    updated = await events.wait_for("TASK_UPDATED")
    assert updated["task_updated"]["framework_id"]["value"] == st.framework_id
    await st.call({"type": "TEARDOWN"})
    await events.wait_for("FRAMEWORK_REMOVED")
    await st.close()
    await events.close()


async def test_curl_speaks_the_api(kernel: main.Kernel) -> None:
    # A non-Python client (curl is part of the test machine's base image).
    argv = ["curl", "-sS", "-X", "POST", "-H", "Content-Type: application/json",
            "-d", json.dumps({"type": "GET_AGENTS"}), f"{kernel.master_url}/api/v1"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, err
    body = json.loads(out)
    assert body["type"] == "GET_AGENTS"
    assert body["get_agents"]["agents"][0]["agent_info"]["id"]["value"] == (
        kernel.agents[0].agent_id)
    # And a scheduler call with the wrong content type, as a shell user would make it.
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
            "-H", "Content-Type: application/x-protobuf", "-d", "x",
            f"{kernel.master_url}/api/v1/scheduler"]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert out == b"415"


async def test_teardown_reports_each_killed_task_to_operators(
        kernel: main.Kernel, session: aiohttp.ClientSession) -> None:
    """Mesos' removeFramework updates every live task to TASK_KILLED (a TASK_UPDATED event for
    operators), before FRAMEWORK_REMOVED; the framework's allocation counts its executors."""
    events = wire.Stream(session, kernel.master_url)
    events.response = await session.post(
        f"{kernel.master_url}/api/v1", json={"type": "SUBSCRIBE"},
        headers={"Accept": "application/json"})
    assert (await events.next_event())["type"] == "SUBSCRIBED"
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    agent_id = offer["agent_id"]["value"]
    executor = {
        "type": "DEFAULT", "executor_id": {"value": "pod"},
        "framework_id": {"value": st.framework_id},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                      {"name": "disk", "type": "SCALAR", "scalar": {"value": 10}}],
    }
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH_GROUP", "launch_group": {"executor": executor, "task_group": {
            "tasks": [wire.command_task("long", agent_id, "sleep 60")]}}}]}})
    await wire.until_state(st, "long", "TASK_RUNNING")
    frameworks = await wire.operator(session, kernel.master_url, {"type": "GET_FRAMEWORKS"})
    allocated = {r["name"]: r["scalar"]["value"] for r in
                 frameworks["get_frameworks"]["frameworks"][0]["allocated_resources"]
                 if r["type"] == "SCALAR"}
    assert allocated == {"cpus": 0.2, "mem": 64.0, "disk": 10.0}  # task + executor
    async with session.get(f"{kernel.master_url}/state") as resp:
        legacy = (await resp.json())["frameworks"][0]
    assert legacy["used_resources"]["cpus"] == 0.2
    await st.call({"type": "TEARDOWN"})
    order = []
    while "FRAMEWORK_REMOVED" not in order:
        event = await events.next_event()
        if event["type"] == "TASK_UPDATED" and \
                event["task_updated"]["status"]["task_id"]["value"] == "long":
            order.append(event["task_updated"]["state"])
            if order[-1] == "TASK_KILLED":
                assert event["task_updated"]["status"]["reason"] == "REASON_FRAMEWORK_REMOVED"
        elif event["type"] == "FRAMEWORK_REMOVED":
            order.append("FRAMEWORK_REMOVED")
    # Earlier updates (STARTING, RUNNING) may still be queued ahead of these.
    assert order[-2:] == ["TASK_KILLED", "FRAMEWORK_REMOVED"], order
    await st.close()
    await events.close()
