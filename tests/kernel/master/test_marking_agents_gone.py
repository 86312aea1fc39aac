"""MARK_AGENT_GONE as Apache Mesos' master answers it, with real agents over real HTTP.

Mesos' ``MasterAPITest`` cases (MarkRegisteredAgentGone, ...Unauthorized,
TaskUpdatesUponAgentGone, UnreachableAgentMarkedGone) and what ``Master::markGone`` implies:
a registered agent is shut down (its containers killed) and its tasks are
TASK_GONE_BY_OPERATOR (TASK_LOST without PARTITION_AWARE); an unreachable agent's tasks move
from unreachable to completed; the agent is refused for good, by a restarted master too, and
an agent process started again on its work dir kills what it still ran and stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kernel import allocator, main
from k8sbridge.kernel.master.acls import parse_acls
from k8sbridge.kernel.master.authn import AuthConfigError
from k8sbridge.kernel.protocol import AgentId
from tests.kernel.master import wire
from tests.kernel.master.conftest import agent_config, master_config
from tests.kernel.master.test_locking_the_door import SECRET, basic, locked_config
from tests.kernel.wire import jsonify

GONE = "Agent has been marked gone"


def _gone(agent_id: str) -> dict[str, Any]:
    return {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": agent_id}}}


async def _post(session: aiohttp.ClientSession, url: str, body: Any,
                headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with session.post(f"{url}/api/v1", data=json.dumps(body),
                            headers={**wire.JSON, **(headers or {})}) as resp:
        return resp.status, await resp.text()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


async def _pid(work_dir: Path, task_id: str) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for run in work_dir.glob(f"slaves/*/frameworks/*/executors/{task_id}/runs/latest"):
            text = (run / "pid").read_text().strip() if (run / "pid").exists() else ""
            if text:
                return int(text)
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} never wrote its pid")


async def _dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return not _alive(pid)


async def _stopped(session: aiohttp.ClientSession, address: str) -> None:
    """The agent process has stopped: its API no longer answers."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            async with session.get(f"http://{address}/health"):
                pass
        except aiohttp.ClientConnectionError:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the agent at {address} still answers")


async def _launch(st: wire.Stream, task_id: str, *, refuse: float = 3600) -> str:
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    agent_id: str = offer["agent_id"]["value"]
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [wire.command_task(
            task_id, agent_id, "echo $$ > pid; exec sleep 120")]}}],
        "filters": {"refuse_seconds": refuse}}})
    await wire.until_state(st, task_id, "TASK_RUNNING")
    return agent_id


async def _update(st: wire.Stream, task_id: str, *, reason: str | None = None
                  ) -> dict[str, Any]:
    event = await st.wait_for("UPDATE", where=lambda e: (
        e["update"]["status"]["task_id"]["value"] == task_id
        and (reason is None or e["update"]["status"].get("reason") == reason)))
    status: dict[str, Any] = event["update"]["status"]
    return status


async def _refused(kernel: main.Kernel, cfg: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The agent process started again on its work dir: never registered, and it stops."""
    with pytest.raises(main.KernelError, match="failed to start"):
        await kernel.add_agent(cfg, _keep_tasks=True)
    assert any("Refusing re-registration" in r.getMessage() and "already marked gone"
               in r.getMessage() for r in caplog.records)
    assert any("asked to shut down by the master because 'Agent has been marked gone'"
               in r.getMessage() for r in caplog.records)


async def test_a_registered_agent_is_shut_down_and_its_tasks_are_gone_by_operator(
        tmp_path: Path, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    cfg = agent_config(tmp_path)
    async with main.running_kernel(master=master_config(), agents=[cfg]) as kernel:
        url = kernel.master_url
        events = wire.Stream(session, url)
        events.response = await session.post(f"{url}/api/v1", json={"type": "SUBSCRIBE"},
                                             headers={"Accept": "application/json"})
        await events.next_event()
        aware = wire.Stream(session, url)
        await aware.subscribe(wire.framework_info(
            name="aware", checkpoint=True, capabilities=[{"type": "PARTITION_AWARE"}]))
        agent_id = await _launch(aware, "aware-task")
        plain = wire.Stream(session, url)
        await plain.subscribe(wire.framework_info(name="plain", checkpoint=True))
        await _launch(plain, "plain-task", refuse=0)
        pids = [await _pid(cfg.work_dir, t) for t in ("aware-task", "plain-task")]
        await plain.wait_for("OFFERS")  # an outstanding offer on the agent, to be rescinded

        assert await _post(session, url, _gone(agent_id)) == (200, "")
        # Operators see the tasks' new states and, as in Mesos, no AGENT_REMOVED (everything
        # the master sent for the change precedes the next heartbeat).
        seen: set[str] = set()
        while not {"TASK_GONE_BY_OPERATOR", "TASK_LOST"} <= seen:
            seen.add((await events.wait_for("TASK_UPDATED"))["task_updated"]["state"])
        await events.wait_for("HEARTBEAT")
        assert "AGENT_REMOVED" not in {e["type"] for e in events.events}

        gone = await _update(aware, "aware-task", reason="REASON_AGENT_REMOVED_BY_OPERATOR")
        assert gone["state"] == "TASK_GONE_BY_OPERATOR"
        assert gone["source"] == "SOURCE_MASTER" and gone["message"] == GONE
        assert "uuid" not in gone and "unreachable_time" not in gone
        lost = await _update(plain, "plain-task", reason="REASON_AGENT_REMOVED")
        assert lost["state"] == "TASK_LOST" and lost["message"] == GONE
        await plain.wait_for("RESCIND")
        for st in (aware, plain):
            await st.wait_for("FAILURE", where=lambda e: e["failure"]["agent_id"]["value"]
                              == agent_id)
        # Shut down: the agent killed its containers and stopped.
        for pid in pids:
            assert await _dead(pid)
        await _stopped(session, kernel.agents[0].http_address)
        assert "asked to shut down by the master" in caplog.text

        state = (await wire.operator(session, url, {"type": "GET_STATE"}))["get_state"]
        assert "agents" not in state["get_agents"]
        tasks = state["get_tasks"]
        assert "tasks" not in tasks and "unreachable_tasks" not in tasks
        assert {t["task_id"]["value"]: t["state"] for t in tasks["completed_tasks"]} == {
            "aware-task": "TASK_GONE_BY_OPERATOR", "plain-task": "TASK_LOST"}
        async with session.get(f"{url}/state") as resp:
            assert (await resp.json())["slaves"] == []
        with pytest.raises(allocator.AllocatorError):
            kernel.master.allocator.available(AgentId(agent_id))
        assert not kernel.master.offers

        # Reconciliation (Master::reconcile case 5: the agent is gone).
        await aware.call({"type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": "aware-task"}, "agent_id": {"value": agent_id}}]}})
        rec = await _update(aware, "aware-task", reason="REASON_RECONCILIATION")
        assert (rec["state"], rec["message"]) == ("TASK_GONE_BY_OPERATOR",
                                                  "Reconciliation: Task is gone")
        await aware.call({"type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": "aware-task"}}]}})
        rec = await _update(aware, "aware-task", reason="REASON_RECONCILIATION")
        assert rec["state"] == "TASK_UNKNOWN"  # no agent id: case 6
        # A kill of the gone task is a reconciliation too: the same terminal answer.
        await aware.call({"type": "KILL", "kill": {"task_id": {"value": "aware-task"},
                                                   "agent_id": {"value": agent_id}}})
        rec = await _update(aware, "aware-task", reason="REASON_RECONCILIATION")
        assert rec["state"] == "TASK_GONE_BY_OPERATOR"
        await plain.call({"type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": "plain-task"}, "agent_id": {"value": agent_id}}]}})
        assert (await _update(plain, "plain-task", reason="REASON_RECONCILIATION"))[
            "state"] == "TASK_LOST"

        # Already gone: 200 again; the agent coming back is refused and stops.
        assert await _post(session, url, _gone(agent_id)) == (200, "")
        await _refused(kernel, cfg, caplog)

        found: list[str] = []
        for st in (aware, plain):
            for event in st.events:
                found += jsonify.problems(event, "mesos.v1.scheduler.Event", event["type"])
        for event in events.events:
            found += jsonify.problems(event, "mesos.v1.master.Event", event["type"])
        assert not found, found
        for st in (aware, plain, events):
            await st.close()


async def test_an_unreachable_agent_gone_stays_refused_after_a_master_restart(
        tmp_path: Path, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    mcfg = master_config(agent_ping_interval=0.2, max_missed_pings=2,
                         work_dir=tmp_path / "master")
    cfg = agent_config(tmp_path)
    async with main.running_kernel(master=mcfg) as kernel:
        url = kernel.master_url
        await kernel.add_agent(cfg, _keep_tasks=True)
        aware = wire.Stream(session, url)
        await aware.subscribe(wire.framework_info(
            name="aware", checkpoint=True, failover_timeout=600,
            capabilities=[{"type": "PARTITION_AWARE"}]))
        agent_id = await _launch(aware, "aware-task")
        pid = await _pid(cfg.work_dir, "aware-task")
        await kernel.stop_agent(0)  # the process stops; its task runs on
        await _update(aware, "aware-task", reason="REASON_AGENT_REMOVED")  # TASK_UNREACHABLE
        assert _alive(pid)

        assert await _post(session, url, _gone(agent_id)) == (200, "")
        gone = await _update(aware, "aware-task", reason="REASON_AGENT_REMOVED_BY_OPERATOR")
        assert gone["state"] == "TASK_GONE_BY_OPERATOR" and gone["message"] == GONE
        tasks = (await wire.operator(session, url, {"type": "GET_TASKS"}))["get_tasks"]
        assert "unreachable_tasks" not in tasks
        assert [t["task_id"]["value"] for t in tasks["completed_tasks"]] == ["aware-task"]
        agents = (await wire.operator(session, url, {"type": "GET_AGENTS"}))["get_agents"]
        assert agents == {}
        await aware.close()

    # A new master on the same registry still knows the agent is gone.
    restarted = master_config(agent_ping_interval=0.2, max_missed_pings=2,
                              work_dir=tmp_path / "master")
    async with main.running_kernel(master=restarted) as kernel:
        assert agent_id in kernel.master.gone_agents
        assert await _post(session, kernel.master_url, _gone(agent_id)) == (200, "")
        await _refused(kernel, cfg, caplog)
        assert await _dead(pid), "the refused agent left its task running"
        agents = (await wire.operator(session, kernel.master_url,
                                      {"type": "GET_AGENTS"}))["get_agents"]
        assert agents == {}


async def test_a_recovered_agent_marked_gone_is_refused_when_it_comes_back(
        tmp_path: Path, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture,
) -> None:
    """Mesos keeps a recovered agent marked gone among the recovered agents (it has no task
    metadata for it, MESOS-9739) and never marks it unreachable; it is refused on return."""
    caplog.set_level(logging.INFO)
    cfg = agent_config(tmp_path)
    mcfg = master_config(work_dir=tmp_path / "master", agent_ping_interval=0.2,
                         max_missed_pings=2, agent_reregister_timeout=0.5)
    async with main.running_kernel(master=mcfg, agents=[cfg]) as kernel:
        agent_id = kernel.agents[0].agent_id
        assert agent_id is not None
        await kernel.stop_agent(0)
    async with main.running_kernel(master=mcfg) as kernel:
        url = kernel.master_url
        assert await _post(session, url, _gone(agent_id)) == (200, "")
        await asyncio.sleep(1.5)  # past the re-registration timeout: not marked unreachable
        agents = (await wire.operator(session, url, {"type": "GET_AGENTS"}))["get_agents"]
        assert [a["id"]["value"] for a in agents["recovered_agents"]] == [agent_id]
        assert "is unreachable" not in caplog.text
        await _refused(kernel, cfg, caplog)


@pytest.mark.parametrize(("body", "status", "text"), [
    ({"type": "MARK_AGENT_GONE"}, 400,
     "Failed to validate master::Call: Expecting 'mark_agent_gone' to be present"),
    ({"type": "MARK_AGENT_GONE", "mark_agent_gone": None}, 400,
     "Failed to validate master::Call: Expecting 'mark_agent_gone' to be present"),
    ({"type": "MARK_AGENT_GONE", "mark_agent_gone": {}}, 400,
     "Failed to convert JSON into Call protobuf: Missing required fields: "
     "mark_agent_gone.agent_id"),
    ({"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {}}}, 400,
     "Failed to convert JSON into Call protobuf: Missing required fields: "
     "mark_agent_gone.agent_id.value"),
    ({"type": "MARK_AGENT_GONE", "mark_agent_gone": "a1"}, 400,
     "Failed to convert JSON into Call protobuf: Not expecting a JSON string for field "
     "'mark_agent_gone'"),
    ({"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": ["a1"]}}, 400,
     "Failed to convert JSON into Call protobuf: Not expecting a JSON array for field "
     "'agent_id'"),
    ({"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": 7}}}, 400,
     "Failed to convert JSON into Call protobuf: Not expecting a JSON number for field "
     "'value'"),
    (_gone("nope"), 404, "Agent 'nope' not found"),
])
async def test_malformed_and_unknown_agents_are_answered_as_mesos(
        kernel: main.Kernel, session: aiohttp.ClientSession, body: Any, status: int,
        text: str) -> None:
    assert await _post(session, kernel.master_url, body) == (status, text)
    assert kernel.agents[0].agent_id in kernel.master.agents  # nothing changed


async def test_only_principals_the_acls_allow_mark_agents_gone(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    acls = {"permissive": False, "mark_agents_gone": [
        {"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}},
        {"principals": {"values": ["mallory"]}, "agents": {"type": "NONE"}},
    ]}
    async with main.running_kernel(master=locked_config(tmp_path, acls=json.dumps(acls)),
                                   agents=[agent_config(tmp_path)]) as kernel:
        url = kernel.master_url
        agent_id = kernel.agents[0].agent_id
        assert agent_id is not None
        status, _ = await _post(session, url, _gone(agent_id))
        assert status == 401  # anonymous, with readwrite authentication on
        assert await _post(session, url, _gone(agent_id),
                           basic("mallory", "mallory-secret")) == (403, "")
        assert await _post(session, url, _gone(agent_id), basic("bridge", SECRET)) == (403, "")
        assert agent_id in kernel.master.agents
        # Authorization comes before the agent is looked up.
        assert await _post(session, url, _gone("nope"), basic("bridge", SECRET)) == (403, "")
        assert await _post(session, url, _gone(agent_id), basic("ops", "ops-secret")) == (200, "")
        assert agent_id not in kernel.master.agents


def test_the_mark_agents_gone_acl_is_read_as_the_local_authorizer_reads_it() -> None:
    acls = parse_acls(json.dumps({"mark_agents_gone": [
        {"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}},
        {"principals": {"values": ["eve"]}, "agents": {"type": "NONE"}},
        {"principals": {"values": ["bob"]}, "agents": {"values": ["a1"]}},
    ]}))
    assert acls.may_mark_agent_gone(principal="ops")
    assert not acls.may_mark_agent_gone(principal="eve")
    assert acls.may_mark_agent_gone(principal="bob")  # a SOME object never matches: permissive
    assert acls.may_mark_agent_gone(principal=None)  # nothing matches: permissive
    assert not parse_acls('{"permissive": false}').may_mark_agent_gone(principal="ops")
    with pytest.raises(AuthConfigError, match=r"mark_agents_gone\[0\]\.agents"):
        parse_acls('{"mark_agents_gone": [{"principals": {"type": "ANY"}}]}')
