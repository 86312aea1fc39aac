"""The local authorizer's ACLs on the embedded master, over real HTTP.

A probe found that any framework could launch tasks as root and any caller could tear down
another's framework. With ``--acls`` the master answers as Mesos' local authorizer: a role the
principal may not register is an ERROR event, a task user it may not run as is TASK_ERROR
(REASON_TASK_UNAUTHORIZED) with Mesos' message, and tearing down another principal's framework
is 403.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from k8sbridge.kernel import main
from k8sbridge.kernel.master.acls import parse_acls
from k8sbridge.kernel.master.authn import AuthConfigError
from tests.kernel.master import wire
from tests.kernel.master.conftest import agent_config
from tests.kernel.master.test_locking_the_door import SECRET, basic, locked_config

ACLS = {
    "register_frameworks": [
        {"principals": {"values": ["bridge"]}, "roles": {"values": ["k8s", "*"]}},
        {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}},
    ],
    "run_tasks": [
        {"principals": {"values": ["bridge"]}, "users": {"values": ["tester"]}},
        {"principals": {"type": "ANY"}, "users": {"type": "NONE"}},
    ],
    "teardown_frameworks": [
        {"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}},
        {"principals": {"type": "ANY"}, "framework_principals": {"type": "NONE"}},
    ],
}


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[main.Kernel]:
    async with main.running_kernel(master=locked_config(tmp_path, acls=json.dumps(ACLS)),
                                   agents=[agent_config(tmp_path)]) as k:
        yield k


async def _bridge(url: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(headers=basic("bridge", SECRET))


async def _teardown(session: aiohttp.ClientSession, url: str, fid: str,
                    headers: dict[str, str]) -> int:
    body = {"type": "TEARDOWN", "teardown": {"framework_id": {"value": fid}}}
    async with session.post(f"{url}/api/v1", data=json.dumps(body),
                            headers={**wire.JSON, **headers}) as resp:
        return resp.status


async def test_a_principal_registers_only_its_roles(guarded: main.Kernel) -> None:
    async with await _bridge(guarded.master_url) as bridge:
        st = wire.Stream(bridge, guarded.master_url)
        event = await st.open({"type": "SUBSCRIBE", "subscribe": {"framework_info":
                               wire.framework_info(roles=["k8s", "prod"],
                                                   capabilities=[{"type": "MULTI_ROLE"}])}},
                              expect="ERROR")
        assert event["error"]["message"] == (
            "Not authorized to register framework  with roles { k8s, prod }")
        await st.close()
        st = wire.Stream(bridge, guarded.master_url)
        await st.subscribe(wire.framework_info(roles=["k8s"],
                                               capabilities=[{"type": "MULTI_ROLE"}]))
        await st.close()


async def test_a_principal_tears_down_only_what_acls_allow(
        guarded: main.Kernel, session: aiohttp.ClientSession) -> None:
    url = guarded.master_url
    async with await _bridge(url) as bridge:
        st = wire.Stream(bridge, url)
        await st.subscribe()
        # mallory authenticates, but tearing down bridge's framework is not hers to do.
        assert await _teardown(session, url, st.framework_id,
                               basic("mallory", "mallory-secret")) == 403
        code, _ = await st.call({"type": "REVIVE"})
        assert code == 202  # still there
        assert await _teardown(session, url, st.framework_id, basic("ops", "ops-secret")) == 200
        await st.close()


async def _offer(st: wire.Stream) -> dict[str, Any]:
    event = await st.wait_for("OFFERS")
    offer: dict[str, Any] = event["offers"]["offers"][0]
    return offer


async def test_a_task_user_the_principal_may_not_use_is_task_error(
        guarded: main.Kernel) -> None:
    async with await _bridge(guarded.master_url) as bridge:
        st = wire.Stream(bridge, guarded.master_url)
        await st.subscribe()  # user "tester", principal "bridge"
        offer = await _offer(st)
        aid = offer["agent_id"]["value"]
        as_root = wire.command_task("as-root", aid, "true")
        as_root["command"]["user"] = "root"
        allowed = wire.command_task("as-tester", aid, "true")
        code, _ = await st.call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [as_root, allowed]}}],
            "filters": {"refuse_seconds": 0}}})
        assert code == 202
        error = (await st.wait_for("UPDATE", where=lambda e: e["update"]["status"]["task_id"][
            "value"] == "as-root"))["update"]["status"]
        assert error["state"] == "TASK_ERROR"
        assert error["reason"] == "REASON_TASK_UNAUTHORIZED"
        assert error["source"] == "SOURCE_MASTER"
        assert error["message"] == (f"Not authorized to launch task as-root of framework "
                                    f"{st.framework_id} under user 'root'")
        states = await wire.until_state(st, "as-tester", "TASK_FINISHED")
        assert "TASK_ERROR" not in [s["state"] for s in states]
        # A task group: every task is refused with the group reason and Mesos' wording.
        offer = await _offer(st)
        executor = {"type": "DEFAULT", "executor_id": {"value": "pod"},
                    "framework_id": {"value": st.framework_id}, "resources": [
                        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                        {"name": "disk", "type": "SCALAR", "scalar": {"value": 10}}]}
        ok = wire.command_task("pod.ok", aid, "sleep 5")
        bad = wire.command_task("pod.root", aid, "sleep 5")
        bad["command"]["user"] = "root"
        code, _ = await st.call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH_GROUP", "launch_group": {
                "executor": executor, "task_group": {"tasks": [ok, bad]}}}]}})
        assert code == 202
        for tid in ("pod.ok", "pod.root"):
            status = (await st.wait_for("UPDATE", where=lambda e, t=tid: e["update"]["status"][
                "task_id"]["value"] == t))["update"]["status"]
            assert status["state"] == "TASK_ERROR"
            assert status["reason"] == "REASON_TASK_GROUP_UNAUTHORIZED"
            assert status["message"] == (
                f"Task 'pod.root' is not authorized tolaunch task pod.root of framework "
                f"{st.framework_id} under user 'root'")
        await st.close()


def test_acl_matching_follows_the_local_authorizer(tmp_path: Path) -> None:
    acls = parse_acls(json.dumps({
        "permissive": False,
        "register_frameworks": [
            {"principals": {"values": ["a"]}, "roles": {"values": ["eng/%"]}},
            {"principals": {"type": "ANY"}, "roles": {"values": ["public"]}},
        ],
        "run_tasks": [{"principals": {"values": ["a", "b"]}, "users": {"type": "ANY"}}],
    }))
    assert acls.may_register(principal="a", roles=["eng/web", "eng/web/x"])
    assert not acls.may_register(principal="a", roles=["eng"])  # only strictly nested roles
    assert acls.may_register(principal=None, roles=["public"])
    assert not acls.may_register(principal="c", roles=["other"])  # nothing matches: permissive
    assert acls.may_run_task(principal="b", user="root")
    assert not acls.may_run_task(principal=None, user="root")  # ANY is allowed by ANY only
    assert not acls.may_teardown(principal="a", framework_principal="a")
    default = parse_acls("{}")
    assert default.permissive and default.may_teardown(principal=None, framework_principal="x")
    path = tmp_path / "acls.json"
    path.write_text(json.dumps({"permissive": False}))
    assert not parse_acls(f"file://{path}").permissive
    assert not parse_acls(str(path)).permissive
    with pytest.raises(AuthConfigError, match="Failed to load flag 'acls'"):
        parse_acls("{not json")
    with pytest.raises(AuthConfigError, match="Missing required fields"):
        parse_acls('{"run_tasks": [{"principals": {"type": "ANY"}}]}')
