"""Task resource limits and 'share_cgroups' are checked as Mesos 1.11's master checks them.

Everything goes through the real scheduler API of an embedded master with one agent: each case
is an ACCEPT whose LAUNCH or LAUNCH_GROUP Mesos answers with TASK_ERROR (the reason and the
message of ``master/validation.cpp``), and the valid forms are not refused.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from k8sbridge.kernel import main
from tests.kernel.master import wire

NO_SHARE = {"type": "MESOS", "linux_info": {"share_cgroups": False}}
SHARE = {"type": "MESOS", "linux_info": {"share_cgroups": True}}


def _limits(**values: float) -> dict[str, Any]:
    return {name: {"value": v} for name, v in values.items()}


def _executor(framework_id: str, eid: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "DEFAULT", "executor_id": {"value": eid},
        "framework_id": {"value": framework_id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
            {"name": "disk", "type": "SCALAR", "scalar": {"value": 10}},
        ],
        **extra,
    }


async def _first_update(st: wire.Stream, task_id: str) -> dict[str, Any]:
    event = await st.wait_for(
        "UPDATE", where=lambda e: e["update"]["status"]["task_id"]["value"] == task_id)
    status: dict[str, Any] = event["update"]["status"]
    return status


async def _offer(st: wire.Stream) -> dict[str, Any]:
    offer: dict[str, Any] = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    return offer


async def _group(st: wire.Stream, offer: dict[str, Any], executor: dict[str, Any],
                 tasks: list[dict[str, Any]]) -> None:
    code, text = await st.call({"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH_GROUP", "launch_group": {
            "executor": executor, "task_group": {"tasks": tasks}}}],
        "filters": {"refuse_seconds": 0}}})
    assert code == 202, text


async def test_task_group_limits_and_share_cgroups(kernel: main.Kernel,
                                                   session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    fid = st.framework_id
    cases: list[tuple[list[dict[str, Any]], dict[str, Any], str]] = []

    def task(tid: str, **extra: Any) -> dict[str, Any]:
        return wire.command_task(tid, "AGENT", "sleep 30", cpus=0.1, mem=32, **extra)

    cases = [
        ([task("g1.a", limits=_limits(cpus=1))], {},
         "Task 'g1.a' is invalid: Resource limits may only be set for tasks within a task "
         "group when the 'share_cgroups' field is set to 'false'."),
        ([task("g2.a", limits=_limits(cpus=1), container=SHARE)], {},
         "Task 'g2.a' is invalid: Resource limits may only be set for tasks within a task "
         "group when the 'share_cgroups' field is set to 'false'."),
        ([task("g3.a", limits=_limits(cpus=1, disk=5), container=NO_SHARE)], {},
         "Task 'g3.a' is invalid: Only cpus and mem may be included in a task's resource "
         "limits"),
        ([task("g4.a", limits=_limits(cpus=0.05), container=NO_SHARE)], {},
         "Task 'g4.a' is invalid: The cpu limit must be greater than or equal to the cpu "
         "request"),
        ([task("g5.a", limits=_limits(mem=16), container=NO_SHARE)], {},
         "Task 'g5.a' is invalid: The memory limit must be greater than or equal to the "
         "memory request"),
        ([task("g6.a", container=NO_SHARE), task("g6.b")], {},
         "If set, the value of 'share_cgroups' must be the same for all tasks in each task "
         "group and under a single executor"),
        ([task("g7.a", container=NO_SHARE)], {"container": SHARE},
         "The 'share_cgroups' field cannot be set to 'true' on executor containers"),
    ]
    for n, (tasks, executor_extra, message) in enumerate(cases):
        offer = await _offer(st)
        agent_id = offer["agent_id"]["value"]
        for t in tasks:
            t["agent_id"] = {"value": agent_id}
        await _group(st, offer, _executor(fid, f"e{n}", **executor_extra), tasks)
        for t in tasks:
            status = await _first_update(st, t["task_id"]["value"])
            assert status["state"] == "TASK_ERROR", status
            assert status["reason"] == "REASON_TASK_GROUP_INVALID"
            assert status["message"] == message
    # A CPU limit without a CPU request: the task asks for memory only.
    offer = await _offer(st)
    agent_id = offer["agent_id"]["value"]
    memory_only = {**task("g8.a", limits=_limits(cpus=1), container=NO_SHARE),
                   "resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
                   "agent_id": {"value": agent_id}}
    await _group(st, offer, _executor(fid, "e8"), [memory_only])
    status = await _first_update(st, "g8.a")
    assert status["message"] == ("Task 'g8.a' is invalid: When a CPU limit is specified, a CPU "
                                 "request must also be specified")
    # The form the bridge sends on Mesos >= 1.11 is accepted: every task share_cgroups false,
    # limits at or above the requests (an unlimited memory limit is allowed too).
    offer = await _offer(st)
    agent_id = offer["agent_id"]["value"]
    good = [task("ok.a", limits=_limits(cpus=0.5, mem=64), container=NO_SHARE),
            task("ok.b", limits=_limits(cpus=0.1), container=NO_SHARE)]
    for t in good:
        t["agent_id"] = {"value": agent_id}
    await _group(st, offer, _executor(fid, "ok"), good)
    for t in good:
        status = await _first_update(st, t["task_id"]["value"])
        assert status["state"] != "TASK_ERROR", status
    state = await wire.operator(session, kernel.master_url, {"type": "GET_TASKS"})
    launched = {t["task_id"]["value"]: t for t in state["get_tasks"]["tasks"]}
    assert launched["ok.a"]["limits"] == _limits(cpus=0.5, mem=64)
    await st.close()


async def test_plain_launch_limits_and_share_cgroups(kernel: main.Kernel,
                                                     session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    offer = await _offer(st)
    agent_id = offer["agent_id"]["value"]
    tasks = [
        wire.command_task("l1", agent_id, "sleep 30", limits=_limits(cpus=0.05)),
        wire.command_task("l2", agent_id, "sleep 30", container=NO_SHARE),
        # A plain LAUNCH may carry limits without 'share_cgroups' (its own container).
        wire.command_task("l3", agent_id, "sleep 30", limits=_limits(cpus=1, mem=64)),
    ]
    code, _ = await st.call({"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}]}})
    assert code == 202
    first = await _first_update(st, "l1")
    second = await _first_update(st, "l2")
    third = await _first_update(st, "l3")
    assert first["state"] == second["state"] == "TASK_ERROR"
    assert first["reason"] == second["reason"] == "REASON_TASK_INVALID"
    assert first["message"] == "The cpu limit must be greater than or equal to the cpu request"
    assert second["message"] == ("Only tasks in a task group may have 'share_cgroups' set to "
                                 "'false'")
    assert third["state"] != "TASK_ERROR", third
    # A limit that is not a number fails the whole call, as the JSON -> protobuf step does.
    bad = wire.command_task("l4", agent_id, "true", limits={"cpus": {"value": "lots"}})
    code, text = await st.call({"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [bad]}}]}})
    assert code == 400 and "limits.cpus.value" in text
    await st.close()
