"""A framework's life on the embedded master, driven over the literal v1 scheduler wire.

Real master, real in-process agent, real processes; the test reads RecordIO by hand.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from k8sbridge.kernel import main
from tests.kernel.master import wire


def _offer(event: dict[str, Any]) -> dict[str, Any]:
    offers = event["offers"]["offers"]  # doubly nested, as Mesos
    assert isinstance(offers, list) and offers
    return offers[0]


async def _ack(stream: wire.Stream, status: dict[str, Any]) -> None:
    code, text = await stream.call({"type": "ACKNOWLEDGE", "acknowledge": {
        "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})
    assert code == 202, text


async def _states(stream: wire.Stream, task_id: str, until: str, *, ack: bool = True,
                  timeout: float = 20.0) -> list[dict[str, Any]]:
    seen = []
    while True:
        event = await stream.wait_for(
            "UPDATE", timeout=timeout,
            where=lambda e: e["update"]["status"]["task_id"]["value"] == task_id,
        )
        status = event["update"]["status"]
        seen.append(status)
        if ack and "uuid" in status:
            await _ack(stream, status)
        if status["state"] == until:
            return seen


async def test_subscribe_stream_shape(kernel: main.Kernel,
                                      session: aiohttp.ClientSession) -> None:
    async with session.post(
        f"{kernel.master_url}/api/v1/scheduler",
        json={"type": "SUBSCRIBE", "subscribe": {"framework_info": wire.framework_info()}},
        headers={"Accept": "application/json"},
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in resp.headers
        stream_id = resp.headers["Mesos-Stream-Id"]
        assert 0 < len(stream_id) <= 128
        raw = b""
        while raw.count(b"\n") < 2 or b"HEARTBEAT" not in raw:
            raw += await asyncio.wait_for(resp.content.readany(), timeout=5)
        length, rest = raw.split(b"\n", 1)
        first = rest[: int(length)]
        assert first.startswith(b'{"type":"SUBSCRIBED"')
        assert rest[int(length):].startswith(b"20\n{\"type\":\"HEARTBEAT\"}")
    st = wire.Stream(session, kernel.master_url)
    event = await st.subscribe(wire.framework_info(failover_timeout=60))
    sub = event["subscribed"]
    assert sub["framework_id"]["value"].startswith(sub["master_info"]["id"] + "-")
    assert sub["heartbeat_interval_seconds"] == 2.0
    info = sub["master_info"]
    assert info["port"] == kernel.master.port and info["version"] == "1.12.0"
    assert isinstance(info["ip"], int) and info["address"]["ip"] == "127.0.0.1"
    assert (await st.next_event())["type"] == "HEARTBEAT"  # right after SUBSCRIBED
    start = time.monotonic()
    await st.wait_for("HEARTBEAT", timeout=5)
    assert time.monotonic() - start > 1.0  # then every interval
    await st.close()


async def test_launch_command_task_to_finished(kernel: main.Kernel,
                                               session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    offer = _offer(await st.wait_for("OFFERS"))
    agent_id = offer["agent_id"]["value"]
    assert offer["framework_id"]["value"] == st.framework_id
    assert offer["allocation_info"] == {"role": "*"}
    assert offer["url"]["address"]["port"] == int(kernel.agents[0].http_address.split(":")[1])
    assert {"name": "rack", "type": "TEXT", "text": {"value": "r0"}} in offer["attributes"]
    names = {r["name"] for r in offer["resources"]}
    assert names == {"cpus", "mem", "disk", "ports"}
    task = wire.command_task("hello", agent_id, "echo hello; sleep 0.5")
    code, text = await st.call({"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
        "filters": {"refuse_seconds": 0}}})
    assert (code, text) == (202, "")
    statuses = await _states(st, "hello", "TASK_FINISHED")
    states = [s["state"] for s in statuses]
    assert states[-1] == "TASK_FINISHED" and "TASK_RUNNING" in states
    running = next(s for s in statuses if s["state"] == "TASK_RUNNING")
    assert running["agent_id"]["value"] == agent_id and running["executor_id"]["value"] == "hello"
    tasks = await wire.operator(session, kernel.master_url, {"type": "GET_TASKS"})
    done = tasks["get_tasks"]
    assert [t["task_id"]["value"] for t in done["completed_tasks"]] == ["hello"]
    assert done["completed_tasks"][0]["state"] == "TASK_FINISHED"
    assert "tasks" not in done  # an empty repeated field is left out, as Mesos prints it
    await st.close()


async def test_launch_group_and_kill_with_grace(kernel: main.Kernel,
                                                session: aiohttp.ClientSession) -> None:
    info = wire.framework_info(capabilities=[{"type": "TASK_KILLING_STATE"}])
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe(info)
    offer = _offer(await st.wait_for("OFFERS"))
    agent_id = offer["agent_id"]["value"]
    executor = {
        "type": "DEFAULT", "executor_id": {"value": "pod-1"},
        "framework_id": {"value": st.framework_id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
            {"name": "disk", "type": "SCALAR", "scalar": {"value": 10}},
        ],
    }
    tasks = [wire.command_task(f"pod-1.c{i}", agent_id, "sleep 60") for i in range(2)]
    code, _ = await st.call({"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH_GROUP", "launch_group": {
            "executor": executor, "task_group": {"tasks": tasks}}}]}})
    assert code == 202
    await _states(st, "pod-1.c0", "TASK_RUNNING")
    state = await wire.operator(session, kernel.master_url, {"type": "GET_STATE"})
    running = state["get_state"]["get_tasks"]["tasks"]
    assert {t["task_id"]["value"] for t in running} == {"pod-1.c0", "pod-1.c1"}
    assert all(t["executor_id"]["value"] == "pod-1" for t in running)
    executors = state["get_state"]["get_executors"]["executors"]
    assert [e["executor_info"]["executor_id"]["value"] for e in executors] == ["pod-1"]
    frameworks = state["get_state"]["get_frameworks"]["frameworks"]
    allocated = {r["name"]: r.get("scalar", {}).get("value")
                 for r in frameworks[0]["allocated_resources"]}
    assert abs(allocated["cpus"] - 0.3) < 1e-9  # two tasks and their executor (Mesos)
    start = time.monotonic()
    code, _ = await st.call({"type": "KILL", "kill": {
        "task_id": {"value": "pod-1.c0"}, "agent_id": {"value": agent_id},
        "kill_policy": {"grace_period": {"nanoseconds": 1_000_000_000}}}})
    assert code == 202
    seen = await _states(st, "pod-1.c0", "TASK_KILLED")
    assert time.monotonic() - start < 15
    assert "TASK_KILLING" in [s["state"] for s in seen]
    # The whole group shares the lifecycle (DEFAULT executor): the sibling is killed too.
    await _states(st, "pod-1.c1", "TASK_KILLED")
    await st.close()


async def test_decline_filter_and_suppress_revive(kernel: main.Kernel,
                                                  session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    offer = _offer(await st.wait_for("OFFERS"))
    code, _ = await st.call({"type": "DECLINE", "decline": {
        "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 3600}}})
    assert code == 202
    try:
        await st.wait_for("OFFERS", timeout=1.5)
        raise AssertionError("a declined agent was re-offered while filtered")
    except TimeoutError:
        pass
    assert (await st.call({"type": "REVIVE", "revive": {}}))[0] == 202
    offer = _offer(await st.wait_for("OFFERS", timeout=5))  # REVIVE clears filters
    assert (await st.call({"type": "SUPPRESS", "suppress": {"roles": ["*"]}}))[0] == 202
    assert (await st.call({"type": "DECLINE", "decline": {
        "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0}}}))[0] == 202
    try:
        await st.wait_for("OFFERS", timeout=1.5)
        raise AssertionError("a suppressed framework got offers")
    except TimeoutError:
        pass
    assert (await st.call({"type": "REVIVE", "revive": {"roles": ["*"]}}))[0] == 202
    await st.wait_for("OFFERS", timeout=5)
    await st.close()


async def test_reconciliation(kernel: main.Kernel, session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe(wire.framework_info(capabilities=[{"type": "PARTITION_AWARE"}]))
    offer = _offer(await st.wait_for("OFFERS"))
    agent_id = offer["agent_id"]["value"]
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            wire.command_task("sleeper", agent_id, "sleep 60")]}}]}})
    await _states(st, "sleeper", "TASK_RUNNING")
    assert (await st.call({"type": "RECONCILE", "reconcile": {"tasks": []}}))[0] == 202
    status = (await st.wait_for("UPDATE"))["update"]["status"]
    assert status["state"] == "TASK_RUNNING" and status["source"] == "SOURCE_MASTER"
    assert status["reason"] == "REASON_RECONCILIATION" and "uuid" not in status
    assert status["message"] == "Reconciliation: Latest task state"
    await st.call({"type": "RECONCILE", "reconcile": {"tasks": [
        {"task_id": {"value": "ghost"}, "agent_id": {"value": agent_id}},
        {"task_id": {"value": "nowhere"}}]}})
    first = (await st.wait_for("UPDATE"))["update"]["status"]
    second = (await st.wait_for("UPDATE"))["update"]["status"]
    assert (first["task_id"]["value"], first["state"]) == ("ghost", "TASK_GONE")
    assert (second["task_id"]["value"], second["state"]) == ("nowhere", "TASK_UNKNOWN")
    # KILL of an unknown task is answered by reconciliation, too.
    await st.call({"type": "KILL", "kill": {"task_id": {"value": "nowhere"}}})
    status = (await st.wait_for("UPDATE"))["update"]["status"]
    assert status["state"] == "TASK_UNKNOWN"
    await st.call({"type": "KILL", "kill": {"task_id": {"value": "sleeper"}}})
    await _states(st, "sleeper", "TASK_KILLED")
    await st.close()


async def test_teardown_kills_tasks(kernel: main.Kernel, session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe(wire.framework_info(failover_timeout=3600))
    offer = _offer(await st.wait_for("OFFERS"))
    agent_id = offer["agent_id"]["value"]
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            wire.command_task("doomed", agent_id, "sleep 60")]}}]}})
    await _states(st, "doomed", "TASK_RUNNING")
    assert (await st.call({"type": "TEARDOWN"}))[0] == 202
    with_end = await _read_to_end(st)
    assert with_end  # the stream is closed by the master
    frameworks = await wire.operator(session, kernel.master_url, {"type": "GET_FRAMEWORKS"})
    assert "frameworks" not in frameworks["get_frameworks"]
    completed = frameworks["get_frameworks"]["completed_frameworks"]
    assert [f["framework_info"]["id"]["value"] for f in completed] == [st.framework_id]
    agent_state = await _agent_tasks(session, kernel)
    deadline = time.monotonic() + 15
    while agent_state and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        agent_state = await _agent_tasks(session, kernel)
    assert agent_state == []  # the agent really killed the process
    # A removed framework id can never come back.
    again = wire.Stream(session, kernel.master_url)
    event = await again.open({"type": "SUBSCRIBE", "framework_id": {"value": st.framework_id},
                              "subscribe": {"framework_info": wire.framework_info(
                                  id={"value": st.framework_id})}}, expect="ERROR")
    assert event["error"]["message"] == "Framework has been removed"


async def _read_to_end(st: wire.Stream) -> bool:
    try:
        while True:
            await st.next_event(timeout=5)
    except EOFError:
        return True


async def _agent_tasks(session: aiohttp.ClientSession, kernel: main.Kernel) -> list[Any]:
    async with session.get(f"http://{kernel.agents[0].http_address}/state") as resp:
        body = await resp.json()
    return [t for f in body.get("frameworks", []) for e in f.get("executors", [])
            for t in e.get("tasks", []) if t.get("state") in ("TASK_RUNNING", "TASK_STARTING")]
