"""Bad input to the scheduler API gets Mesos' answer and never hurts the master."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from k8sbridge.kernel import main
from tests.kernel.master import wire

URL = "/api/v1/scheduler"


async def _post(session: aiohttp.ClientSession, kernel: main.Kernel, body: bytes | str,
                headers: dict[str, str]) -> tuple[int, str]:
    async with session.post(f"{kernel.master_url}{URL}", data=body, headers=headers) as resp:
        return resp.status, await resp.text()


async def test_transport_errors(kernel: main.Kernel, session: aiohttp.ClientSession) -> None:
    sub = json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": wire.framework_info()}})
    cases: list[tuple[bytes | str, dict[str, str], int, str]] = [
        (sub, {"Content-Type": "application/x-protobuf"}, 415, "application/json"),
        (sub, {"Content-Type": "text/plain"}, 415, "Expecting 'Content-Type'"),
        ("{oops", {"Content-Type": "application/json"}, 400, "Failed to parse body into JSON"),
        ("{}", {"Content-Type": "application/json"}, 400, "Expecting 'type' to be present"),
        (json.dumps({"type": "NOPE"}), {"Content-Type": "application/json"}, 400,
         "Expecting 'type' to be present"),
        (json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}}),
         {"Content-Type": "application/json"}, 400, "Missing required fields"),
        (sub, {"Content-Type": "application/json", "Mesos-Stream-Id": "x"}, 400,
         "should not include the 'Mesos-Stream-Id' header"),
        (sub, {"Content-Type": "application/json", "Accept": "application/xml"}, 406,
         "Expecting 'Accept'"),
        (json.dumps({"type": "TEARDOWN", "framework_id": {"value": "nobody"}}),
         {"Content-Type": "application/json"}, 400, "Framework cannot be found"),
    ]
    for body, headers, status, text in cases:
        got = await _post(session, kernel, body, headers)
        assert got[0] == status and text in got[1], (body, headers, got)
    async with session.get(f"{kernel.master_url}{URL}") as resp:
        assert resp.status == 405
    # No content type at all (aiohttp would add one for str bodies).
    async with session.post(f"{kernel.master_url}{URL}", data=b"{}",
                            skip_auto_headers=["Content-Type"]) as resp:
        assert resp.status == 400
        assert "Expecting 'Content-Type' to be present" in await resp.text()


async def test_stream_id_rules(kernel: main.Kernel, session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    body = {"type": "REVIVE"}
    assert (await st.call(body))[0] == 202
    async with session.post(
        f"{kernel.master_url}{URL}",
        json={"type": "REVIVE", "framework_id": {"value": st.framework_id}},
    ) as resp:
        assert resp.status == 400
        assert "should include the 'Mesos-Stream-Id' header" in await resp.text()
    code, text = await st.call(body, headers={"Mesos-Stream-Id": "stale"})
    assert code == 400 and "didn't match the stream ID" in text
    code, text = await st.call({"type": "UNKNOWN"})
    assert code == 501
    code, text = await st.call({"type": "ACCEPT"})
    assert code == 400 and "Expecting 'accept' to be present" in text
    code, text = await st.call({"type": "ACKNOWLEDGE", "acknowledge": {
        "agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "c2hvcnQ="}})
    assert code == 400 and "Not a valid UUID" in text
    code, _ = await st.call({"type": "REQUEST", "request": {"requests": []}})
    assert code == 202
    await st.close()


def _status_of(event: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = event["update"]["status"]
    return status


async def test_invalid_offers_and_tasks(kernel: main.Kernel,
                                        session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    agent_id = offer["agent_id"]["value"]

    # Unknown offer: TASK_LOST (not partition-aware), REASON_INVALID_OFFERS, no uuid.
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [{"value": "no-such-offer"}],
                   "operations": [{"type": "LAUNCH", "launch": {"task_infos": [
                       wire.command_task("lost", agent_id, "true")]}}]}})
    status = _status_of(await st.wait_for("UPDATE"))
    assert status["state"] == "TASK_LOST" and status["reason"] == "REASON_INVALID_OFFERS"
    assert status["source"] == "SOURCE_MASTER" and "uuid" not in status
    assert "Offer no-such-offer is no longer valid" in status["message"]

    tasks = [
        wire.command_task("too-big", agent_id, "true", cpus=64),
        wire.command_task("ok", agent_id, "sleep 30"),
        wire.command_task("ok", agent_id, "sleep 30"),  # duplicate id
        {**wire.command_task("empty", agent_id, "true"), "resources": []},
    ]
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": tasks}}]}})
    errors: dict[str, str] = {}
    while len(errors) < 3:
        status = _status_of(await st.wait_for("UPDATE"))
        if status["state"] == "TASK_ERROR":
            assert status["reason"] == "REASON_TASK_INVALID" and "uuid" not in status
            errors[status["task_id"]["value"]] = status["message"]
    assert "is more than available" in errors["too-big"]
    assert errors["ok"] == "Task has duplicate ID: ok"
    assert errors["empty"] == "Task uses no resources"
    # A proto2 "required" field missing (or an unknown value of a required enum) anywhere in
    # the call fails the whole call with 400, as Mesos' JSON -> protobuf conversion does.
    weird = {**wire.command_task("weird", agent_id, "true"),
             "resources": [{"name": "cpus", "type": "NOT_A_TYPE"}]}
    code, text = await st.call({"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [weird]}}]}})
    assert code == 400
    assert "Missing required fields: accept.operations[0].launch.task_infos[0].resources[0].type"\
        in text
    nameless = {k: v for k, v in wire.command_task("x", agent_id, "true").items() if k != "name"}
    code, text = await st.call({"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [nameless]}}]}})
    assert code == 400 and "launch.task_infos[0].name" in text
    # The offer was used: accepting it again is an invalid-offer launch.
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            wire.command_task("again", agent_id, "true")]}}]}})
    status = _status_of(await st.wait_for(
        "UPDATE", where=lambda e: e["update"]["status"]["task_id"]["value"] == "again"))
    assert status["state"] == "TASK_LOST"
    await st.close()


async def test_partition_aware_drop(kernel: main.Kernel,
                                    session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe(wire.framework_info(capabilities=[{"type": "PARTITION_AWARE"}]))
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [{"value": "gone"}],
                   "operations": [{"type": "LAUNCH_GROUP", "launch_group": {
                       "executor": {"executor_id": {"value": "e"}},
                       "task_group": {"tasks": [wire.command_task("d", "a", "true")]}}}]}})
    status = _status_of(await st.wait_for("UPDATE"))
    assert status["state"] == "TASK_DROPPED" and status["reason"] == "REASON_INVALID_OFFERS"
    await st.close()


async def test_refused_subscriptions(kernel: main.Kernel,
                                     session: aiohttp.ClientSession) -> None:
    bad = [
        (wire.framework_info(roles=["a"]), "must not be set when the framework is not MULTI_ROLE"),
        (wire.framework_info(capabilities=[{"type": "MULTI_ROLE"}], roles=["a"]), None),
    ]
    for info, message in bad:
        st = wire.Stream(session, kernel.master_url)
        body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if message is None:
            body["subscribe"]["suppressed_roles"] = ["b"]
            message = "are not contained in the set of roles"
        event = await st.open(body, expect="ERROR")  # 200 + ERROR, as Mesos
        assert message in event["error"]["message"]
        await st.close()


async def test_client_dropping_mid_stream_keeps_tasks(
    kernel: main.Kernel, session: aiohttp.ClientSession
) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe(wire.framework_info(failover_timeout=300))
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    agent_id = offer["agent_id"]["value"]
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            wire.command_task("survivor", agent_id, "sleep 60")]}}]}})
    await wire.until_state(st, "survivor", "TASK_RUNNING")
    await st.close()  # drop the connection without a word
    for _ in range(50):
        fw = kernel.master.frameworks[st.framework_id]
        if not fw.connected:
            break
        await asyncio.sleep(0.1)
    assert not fw.connected
    code, text = await st.call({"type": "REVIVE"})
    assert (code, text) == (403, "Framework is not subscribed")
    tasks = await wire.operator(session, kernel.master_url, {"type": "GET_TASKS"})
    assert [t["task_id"]["value"] for t in tasks["get_tasks"]["tasks"]] == ["survivor"]
    # Re-subscribing with the id gets the same framework and its task back.
    again = wire.Stream(session, kernel.master_url)
    info = wire.framework_info(failover_timeout=300, id={"value": st.framework_id})
    await again.open({"type": "SUBSCRIBE", "framework_id": {"value": st.framework_id},
                      "subscribe": {"framework_info": info}})
    assert again.framework_id == st.framework_id
    await again.call({"type": "RECONCILE", "reconcile": {}})
    status = _status_of(await again.wait_for("UPDATE"))
    assert status["task_id"]["value"] == "survivor"
    await again.call({"type": "TEARDOWN"})
    await again.close()
