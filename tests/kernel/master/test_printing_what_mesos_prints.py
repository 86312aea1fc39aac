"""Every JSON document of a representative session is what Mesos' jsonify would print.

A real embedded master and agent; a framework subscribes, launches a task group and a command
task, kills, declines, reconciles and is torn down; an operator reads every GET_* and follows the
event stream. Each scheduler event, operator response and operator event is then checked
against the schema generated from Mesos' protos (tests/kernel/wire).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp

from k8sbridge.kernel import main
from tests.kernel.master import wire
from tests.kernel.master.conftest import agent_config, master_config
from tests.kernel.wire import jsonify

READS = ["GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS", "GET_STATE", "GET_AGENTS",
         "GET_FRAMEWORKS", "GET_EXECUTORS", "GET_TASKS", "GET_ROLES", "GET_WEIGHTS",
         "GET_MASTER", "GET_QUOTA"]


def _executor(framework_id: str) -> dict[str, Any]:
    return {
        "type": "DEFAULT", "executor_id": {"value": "pod"},
        "framework_id": {"value": framework_id},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                      {"name": "disk", "type": "SCALAR", "scalar": {"value": 10}}],
    }


async def _reads(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    return [await wire.operator(session, url, {"type": t}) for t in READS]


async def test_a_session_prints_only_mesos_json(kernel: main.Kernel,
                                                session: aiohttp.ClientSession) -> None:
    url = kernel.master_url
    events = wire.Stream(session, url)
    events.response = await session.post(f"{url}/api/v1", json={"type": "SUBSCRIBE"},
                                         headers={"Accept": "application/json"})
    await events.next_event()
    st = wire.Stream(session, url)
    await st.subscribe(wire.framework_info(
        roles=["web"], capabilities=[{"type": "MULTI_ROLE"}, {"type": "TASK_KILLING_STATE"}],
        failover_timeout=30))
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    agent_id = offer["agent_id"]["value"]
    group = [wire.command_task(f"pod.c{i}", agent_id, "sleep 60") for i in range(2)]
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH_GROUP", "launch_group": {"executor": _executor(st.framework_id),
                                                  "task_group": {"tasks": group}}},
        {"type": "LAUNCH", "launch": {"task_infos": [
            wire.command_task("fails", agent_id, "exit 3")]}}],
        "filters": {"refuse_seconds": 0}}})
    await wire.until_state(st, "pod.c0", "TASK_RUNNING")
    await wire.until_state(st, "fails", "TASK_FAILED")
    responses = await _reads(session, url)
    await st.call({"type": "RECONCILE", "reconcile": {}})
    await st.call({"type": "KILL", "kill": {"task_id": {"value": "pod.c0"},
                                            "agent_id": {"value": agent_id}}})
    await wire.until_state(st, "pod.c1", "TASK_KILLED")
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    await st.call({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]]}})
    await st.call({"type": "SUPPRESS", "suppress": {}})
    responses += await _reads(session, url)
    await st.call({"type": "TEARDOWN"})
    await events.wait_for("FRAMEWORK_REMOVED")
    responses += await _reads(session, url)
    await st.close()
    await events.close()

    assert {"SUBSCRIBED", "OFFERS", "UPDATE", "HEARTBEAT"} <= {e["type"] for e in st.events}
    assert {"SUBSCRIBED", "FRAMEWORK_ADDED", "TASK_ADDED", "TASK_UPDATED", "FRAMEWORK_REMOVED",
            "HEARTBEAT"} <= {e["type"] for e in events.events}
    found: list[str] = []
    for event in st.events:
        found += jsonify.problems(event, "mesos.v1.scheduler.Event", f"sched:{event['type']}")
    for event in events.events:
        found += jsonify.problems(event, "mesos.v1.master.Event", f"oper:{event['type']}")
    for response in responses:
        found += jsonify.problems(response, "mesos.v1.master.Response",
                                  f"resp:{response['type']}")
    unique = sorted({re.sub(r"\[\d+\]", "[]", p) for p in found})
    assert not unique, "\n".join(unique)


async def test_failures_and_failovers_print_only_mesos_json(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """Agent loss (RESCIND, FAILURE, TASK_UNREACHABLE, AGENT_REMOVED), a failed-over framework
    (ERROR), UPDATE_FRAMEWORK (FRAMEWORK_UPDATED), operation feedback and reconciliation of
    operations, and the reads in between."""
    mcfg = master_config(agent_ping_interval=0.2, max_missed_pings=2)
    async with main.running_kernel(master=mcfg, agents=[agent_config(tmp_path)]) as kernel:
        url = kernel.master_url
        events = wire.Stream(session, url)
        events.response = await session.post(f"{url}/api/v1", json={"type": "SUBSCRIBE"},
                                             headers={"Accept": "application/json"})
        await events.next_event()
        info = wire.framework_info(capabilities=[{"type": "PARTITION_AWARE"}],
                                   failover_timeout=60, checkpoint=True)
        st = wire.Stream(session, url)
        await st.subscribe(info)
        await kernel.add_agent(agent_config(tmp_path, 1), _keep_tasks=True)
        await events.wait_for("AGENT_ADDED")
        offers: list[dict[str, Any]] = []
        while len({o["agent_id"]["value"] for o in offers}) < 2:
            offers += (await st.wait_for("OFFERS"))["offers"]["offers"]
        second = next(o for o in offers if o["agent_id"]["value"] == kernel.agents[1].agent_id)
        await st.call({"type": "ACCEPT", "accept": {"offer_ids": [second["id"]], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": [wire.command_task(
                "away", second["agent_id"]["value"], "sleep 60")]}},
            {"type": "CREATE", "id": {"value": "op-1"}, "create": {"volumes": []}}]}})
        await wire.until_state(st, "away", "TASK_RUNNING")
        await st.call({"type": "RECONCILE_OPERATIONS", "reconcile_operations": {
            "operations": [{"operation_id": {"value": "op-2"}}]}})
        await st.call({"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info": {
            **info, "id": {"value": st.framework_id}, "name": "renamed"}}})
        await events.wait_for("FRAMEWORK_UPDATED")
        await kernel.stop_agent(1)
        await st.wait_for("FAILURE", timeout=20)
        responses = await _reads(session, url)
        again = wire.Stream(session, url)
        fid = {"value": st.framework_id}
        await again.open({"type": "SUBSCRIBE", "framework_id": fid,
                          "subscribe": {"framework_info": {**info, "id": fid}}})
        await st.wait_for("ERROR")
        responses += await _reads(session, url)
        await again.close()
        await st.close()
        await events.close()
    found: list[str] = []
    for event in st.events + again.events:
        found += jsonify.problems(event, "mesos.v1.scheduler.Event", f"sched:{event['type']}")
    for event in events.events:
        found += jsonify.problems(event, "mesos.v1.master.Event", f"oper:{event['type']}")
    for response in responses:
        found += jsonify.problems(response, "mesos.v1.master.Response",
                                  f"resp:{response['type']}")
    kinds = {e["type"] for e in st.events}
    assert {"FAILURE", "ERROR", "UPDATE_OPERATION_STATUS"} <= kinds, kinds
    assert {"AGENT_ADDED", "FRAMEWORK_UPDATED"} <= {e["type"] for e in events.events}
    unique = sorted({re.sub(r"\[\d+\]", "[]", p) for p in found})
    assert not unique, "\n".join(unique)
