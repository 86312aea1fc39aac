"""Framework failover, failover_timeout, and a master restart with a work_dir."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from k8sbridge.kernel import main
from tests.kernel.master import wire
from tests.kernel.master.conftest import agent_config, master_config


async def test_failover_moves_the_stream(kernel: main.Kernel,
                                         session: aiohttp.ClientSession) -> None:
    first = wire.Stream(session, kernel.master_url)
    await first.subscribe(wire.framework_info(failover_timeout=60))
    fid = first.framework_id
    info = wire.framework_info(failover_timeout=60, id={"value": fid}, name="renamed")
    second = wire.Stream(session, kernel.master_url)
    await second.open({"type": "SUBSCRIBE", "framework_id": {"value": fid},
                       "subscribe": {"framework_info": info}})
    assert second.framework_id == fid and second.stream_id != first.stream_id
    error = await first.wait_for("ERROR")
    assert error["error"]["message"] == "Framework failed over"
    try:
        while True:
            await first.next_event(timeout=5)
    except EOFError:
        pass  # the old stream is closed after the ERROR
    # The old stream id is now stale; the new one works.
    code, text = await second.call({"type": "REVIVE"},
                                   headers={"Mesos-Stream-Id": first.stream_id})
    assert code == 400 and "didn't match" in text
    assert (await second.call({"type": "REVIVE"}))[0] == 202
    frameworks = await wire.operator(session, kernel.master_url, {"type": "GET_FRAMEWORKS"})
    [fw] = frameworks["get_frameworks"]["frameworks"]
    assert fw["framework_info"]["name"] == "renamed" and fw["connected"] is True
    # Changing the principal is refused with an ERROR event.
    third = wire.Stream(session, kernel.master_url)
    bad = {**info, "principal": "someone-else"}
    event = await third.open({"type": "SUBSCRIBE", "framework_id": {"value": fid},
                              "subscribe": {"framework_info": bad}}, expect="ERROR")
    assert event["error"]["message"] == "Changing framework's principal is not allowed."
    await second.close()


async def test_unknown_id_is_recovered_under_that_id(
    kernel: main.Kernel, session: aiohttp.ClientSession
) -> None:
    # Mesos (Master::_subscribe -> recoverFramework): an id this master never saw is taken as
    # a framework from before a master failover, and keeps its id; never a fresh one.
    fid = "a-framework-from-before"
    st = wire.Stream(session, kernel.master_url)
    info = wire.framework_info(id={"value": fid}, failover_timeout=60)
    event = await st.open({"type": "SUBSCRIBE", "framework_id": {"value": fid},
                           "subscribe": {"framework_info": info}})
    assert event["subscribed"]["framework_id"] == {"value": fid}
    assert (await st.call({"type": "MESSAGE", "message": {
        "agent_id": {"value": kernel.agents[0].agent_id}, "executor_id": {"value": "none"},
        "data": "aGk="}}))[0] == 202
    assert (await st.call({"type": "SHUTDOWN", "shutdown": {
        "agent_id": {"value": kernel.agents[0].agent_id},
        "executor_id": {"value": "none"}}}))[0] == 202
    await st.call({"type": "TEARDOWN"})
    await st.close()


async def test_failover_timeout_kills_only_when_it_expires(
    kernel: main.Kernel, session: aiohttp.ClientSession
) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe(wire.framework_info(failover_timeout=1.5))
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    agent_id = offer["agent_id"]["value"]
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            wire.command_task("short-lived", agent_id, "sleep 60")]}}]}})
    await wire.until_state(st, "short-lived", "TASK_RUNNING")
    await st.close()
    await asyncio.sleep(0.7)
    assert st.framework_id in kernel.master.frameworks  # still within the timeout
    assert "short-lived" in kernel.master.frameworks[st.framework_id].tasks
    for _ in range(60):
        if st.framework_id not in kernel.master.frameworks:
            break
        await asyncio.sleep(0.1)
    assert st.framework_id in kernel.master.completed_ids
    again = wire.Stream(session, kernel.master_url)
    info = wire.framework_info(failover_timeout=1.5, id={"value": st.framework_id})
    event = await again.open({"type": "SUBSCRIBE", "framework_id": {"value": st.framework_id},
                              "subscribe": {"framework_info": info}}, expect="ERROR")
    assert event["error"]["message"] == "Framework has been removed"


async def test_master_restart_keeps_registry_and_tasks(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    mcfg = master_config(work_dir=tmp_path / "master")
    acfg = agent_config(tmp_path)
    kernel = main.Kernel(master=main.Master(config=mcfg))
    await kernel.start(agents=[])
    agent = await kernel.add_agent(acfg, _keep_tasks=True)
    try:
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe(wire.framework_info(failover_timeout=3600, checkpoint=True,
                                               capabilities=[{"type": "PARTITION_AWARE"}]))
        fid = st.framework_id
        offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
        agent_id = offer["agent_id"]["value"]
        await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": [
                wire.command_task("durable", agent_id, "sleep 120")]}}]}})
        await wire.until_state(st, "durable", "TASK_RUNNING")
        for body in (
            {"type": "UPDATE_WEIGHTS",
             "update_weights": {"weight_infos": [{"role": "web", "weight": 2.5}]}},
            {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
                {"role": "web", "limits": {"cpus": {"value": 1.5}}}]}},
            {"type": "RESERVE_RESOURCES", "reserve_resources": {
                "agent_id": {"value": agent_id}, "resources": [
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 64},
                     "reservations": [{"type": "DYNAMIC", "role": "web"}]}]}},
        ):
            async with session.post(f"{kernel.master_url}/api/v1", json=body) as resp:
                assert resp.status in (200, 202), await resp.text()
        await st.close()
    finally:
        # Stop the master only; the agent keeps its tasks and keeps retrying the link.
        kernel._master_stop.set()
        assert kernel._master_task is not None
        await kernel._master_task
    old_port = kernel.master.port
    restarted = main.Master(config=master_config(work_dir=tmp_path / "master", port=old_port))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(restarted.run(stop=stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), timeout=10)
        for _ in range(200):
            if agent_id in restarted.agents and restarted.agents[agent_id].connected:
                break
            await asyncio.sleep(0.1)
        assert restarted.agents[agent_id].connected, "the agent did not re-register"
        assert restarted.allocator.weights().get("web") == 2.5
        assert restarted.allocator.quotas() == {"web": {"cpus": 1.5}}
        assert restarted.agents[agent_id].total.reserved("web").scalar("mem") == 64
        st = wire.Stream(session, restarted.url)
        info = wire.framework_info(failover_timeout=3600, checkpoint=True, id={"value": fid},
                                   capabilities=[{"type": "PARTITION_AWARE"}])
        await st.open({"type": "SUBSCRIBE", "framework_id": {"value": fid},
                       "subscribe": {"framework_info": info}})
        assert st.framework_id == fid
        await st.call({"type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": "durable"}, "agent_id": {"value": agent_id}}]}})
        status = (await st.wait_for(
            "UPDATE", where=lambda e: e["update"]["status"]["source"] == "SOURCE_MASTER"
        ))["update"]["status"]
        assert status["task_id"]["value"] == "durable" and status["state"] == "TASK_RUNNING"
        await st.call({"type": "TEARDOWN"})
        await st.close()
    finally:
        for s in kernel._agent_stops:
            s.set()
        await asyncio.gather(*kernel._agent_tasks, return_exceptions=True)
        stop.set()
        await task
    del agent


async def test_recovered_agents_that_never_return(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    work = tmp_path / "master"
    async with main.running_kernel(master=master_config(work_dir=work),
                                   agents=[agent_config(tmp_path)]) as kernel:
        agent_id = kernel.agents[0].agent_id
        assert agent_id is not None
    # The agent is gone for good; the new master knows it only from the registry.
    async with main.running_kernel(master=master_config(
        work_dir=work, agent_ping_interval=0.2, agent_reregister_timeout=1.5,
    )) as kernel:
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe(wire.framework_info(capabilities=[{"type": "PARTITION_AWARE"}]))
        agents = await wire.operator(session, kernel.master_url, {"type": "GET_AGENTS"})
        recovered = agents["get_agents"]["recovered_agents"]
        assert [a["id"]["value"] for a in recovered] == [agent_id]
        body = {"type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": "t"}, "agent_id": {"value": agent_id}}]}}
        await st.call(body)
        try:
            await st.wait_for("UPDATE", timeout=0.5)
            raise AssertionError("a task on a recovered agent must get no answer yet")
        except TimeoutError:
            pass
        for _ in range(40):
            if kernel.master.agents[agent_id].unreachable_time is not None:
                break
            await asyncio.sleep(0.1)
        await st.call(body)
        status = (await st.wait_for("UPDATE"))["update"]["status"]
        assert status["state"] == "TASK_UNREACHABLE"
        assert status["message"] == "Reconciliation: Task is unreachable"
        assert "unreachable_time" in status
        await st.close()
