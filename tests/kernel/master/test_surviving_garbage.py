"""Malformed calls of every shape get a 4xx (or 202 when Mesos would accept them), never a 500,
and the master keeps serving. Bodies are generated with hypothesis from a JSON-ish strategy."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from k8sbridge.kernel import main
from tests.kernel.master import wire

_leaf = hs.one_of(hs.none(), hs.booleans(), hs.integers(-5, 5), hs.text(max_size=5),
                  hs.just({"value": "x"}))
_json = hs.recursive(_leaf, lambda c: hs.lists(c, max_size=3)
                     | hs.dictionaries(hs.sampled_from(
                         ["value", "type", "tasks", "offer_ids", "operations", "task_infos",
                          "resources", "name", "scalar", "roles", "task_id", "agent_id"]),
                         c, max_size=3), max_leaves=8)

CALL_TYPES = ["ACCEPT", "DECLINE", "KILL", "ACKNOWLEDGE", "RECONCILE", "REVIVE", "SUPPRESS",
              "MESSAGE", "SHUTDOWN", "UPDATE_FRAMEWORK", "REQUEST", "RECONCILE_OPERATIONS",
              "ACKNOWLEDGE_OPERATION_STATUS", "TEARDOWN_LATER"]
SUBFIELD = {"ACCEPT": "accept", "DECLINE": "decline", "KILL": "kill",
            "ACKNOWLEDGE": "acknowledge", "RECONCILE": "reconcile", "REVIVE": "revive",
            "SUPPRESS": "suppress", "MESSAGE": "message", "SHUTDOWN": "shutdown",
            "UPDATE_FRAMEWORK": "update_framework", "REQUEST": "request",
            "RECONCILE_OPERATIONS": "reconcile_operations",
            "ACKNOWLEDGE_OPERATION_STATUS": "acknowledge_operation_status",
            "TEARDOWN_LATER": "teardown"}


async def test_scheduler_calls_never_500(kernel: main.Kernel,
                                         session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe(wire.framework_info(failover_timeout=60))
    await st.wait_for("OFFERS")
    bodies: list[dict[str, Any]] = []

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(ctype=hs.sampled_from(CALL_TYPES), body=_json)
    def collect(ctype: str, body: Any) -> None:
        bodies.append({"type": ctype, SUBFIELD[ctype]: body})

    collect()
    statuses = set()
    for body in bodies:
        code, text = await st.call(body)
        assert code < 500, (body, code, text)
        statuses.add(code)
    assert 400 in statuses and 202 in statuses
    for body in bodies[:40]:
        async with session.post(f"{kernel.master_url}/api/v1",
                                data=json.dumps({**body, "type": "GET_STATE"})) as resp:
            assert resp.status == 415  # no content type given: aiohttp sends octet-stream
        async with session.post(f"{kernel.master_url}/api/v1", json={
            "type": "RESERVE_RESOURCES", "reserve_resources": body.get(
                SUBFIELD[body["type"]])}) as resp:
            assert resp.status < 500, await resp.text()
        async with session.post(f"{kernel.master_url}/api/v1", json={
            "type": "UPDATE_QUOTA", "update_quota": body.get(SUBFIELD[body["type"]])
        }) as resp:
            assert resp.status < 500, await resp.text()
    health = await wire.operator(session, kernel.master_url, {"type": "GET_HEALTH"})
    assert health["get_health"]["healthy"] is True
    assert (await st.call({"type": "REVIVE"}))[0] == 202
    await st.close()
