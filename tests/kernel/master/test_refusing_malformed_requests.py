"""Hostile requests to the master's scheduler, operator and legacy endpoints get Mesos' 4xx.

A bounded hypothesis run builds bodies of the kinds that used to crash the master (JSON nested
hundreds of levels deep, a ``type`` that is an object, a list or an empty string, a duration of
10^60 nanoseconds, an id of 2^63, NaN and infinities) and sends each over real HTTP to a running
embedded master. No answer may be a 5xx; 501 only for what Mesos itself answers 501 (the
``UNKNOWN`` type); and afterwards the master still serves its framework and its operators.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from k8sbridge.kernel import main
from tests.kernel.master import wire

_SCHEDULER_TYPES = ["SUBSCRIBE", "TEARDOWN", "ACCEPT", "DECLINE", "REVIVE", "KILL", "SHUTDOWN",
                    "ACKNOWLEDGE", "RECONCILE", "MESSAGE", "REQUEST", "SUPPRESS",
                    "UPDATE_FRAMEWORK", "ACKNOWLEDGE_OPERATION_STATUS", "RECONCILE_OPERATIONS"]
_OPERATOR_TYPES = ["GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS", "GET_STATE",
                   "GET_AGENTS", "GET_FRAMEWORKS", "GET_EXECUTORS", "GET_TASKS", "GET_ROLES",
                   "GET_WEIGHTS", "UPDATE_WEIGHTS", "GET_MASTER", "RESERVE_RESOURCES",
                   "UNRESERVE_RESOURCES", "GET_QUOTA", "UPDATE_QUOTA", "TEARDOWN"]
_FIELDS = ["value", "type", "tasks", "offer_ids", "operations", "task_infos", "resources",
           "name", "scalar", "roles", "task_id", "agent_id", "framework_id", "filters",
           "refuse_seconds", "nanoseconds", "kill_policy", "grace_period", "uuid", "limits",
           "weight_infos", "quota_configs", "role", "weight", "framework_info", "launch",
           "launch_group", "executor", "task_group", "ranges", "range", "begin", "end"]

_numbers = hs.sampled_from([0, -1, 1, 2**63, 2**63 - 1, -(2**63) - 1, 2**64, 10**60, -(10**60),
                            1e60, 1e308, -1e308, 0.5, float("inf"), float("-inf"),
                            float("nan")])
_leaf = hs.one_of(hs.none(), hs.booleans(), _numbers, hs.text(max_size=4),
                  hs.sampled_from(["", "x", "SCALAR", "GET_STATE", "*", "a" * 300]))
_json = hs.recursive(
    _leaf,
    lambda inner: hs.lists(inner, max_size=3) | hs.dictionaries(
        hs.sampled_from(_FIELDS), inner, max_size=4),
    max_leaves=10,
)
_bad_types = hs.one_of(hs.sampled_from(["", "NOPE", "UNKNOWN", "get_state", " ACCEPT"]),
                       hs.dictionaries(hs.sampled_from(_FIELDS), _leaf, max_size=2),
                       hs.lists(_leaf, max_size=2), _numbers, hs.none(), hs.booleans())


def _nest(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    return '{"type":' * depth + '"ACCEPT"' + "}" * depth


_bodies = hs.one_of(
    hs.builds(lambda t, f, v: json.dumps({"type": t, f: v}),
              hs.sampled_from(_SCHEDULER_TYPES + _OPERATOR_TYPES), hs.sampled_from(_FIELDS),
              _json),
    hs.builds(lambda t, f, v: json.dumps({"type": t, f: v}), hs.sampled_from(
        _SCHEDULER_TYPES + _OPERATOR_TYPES), hs.sampled_from(
        ["accept", "decline", "kill", "acknowledge", "reconcile", "revive", "suppress",
         "message", "shutdown", "update_framework", "subscribe", "teardown",
         "update_weights", "update_quota", "reserve_resources", "unreserve_resources"]),
        _json),
    hs.builds(lambda t: json.dumps({"type": t}), _bad_types),
    hs.builds(_nest, hs.integers(50, 3000), hs.sampled_from(["list", "object"])),
    hs.builds(lambda d, v: json.dumps({"type": "DECLINE", "decline": {
        "offer_ids": [{"value": "o"}], "filters": {"refuse_seconds": v}}, "d": d}),
        hs.just(0), _numbers),
    hs.builds(lambda v: json.dumps({"type": "KILL", "kill": {
        "task_id": {"value": "t"}, "agent_id": {"value": v},
        "kill_policy": {"grace_period": {"nanoseconds": v}}}}), _numbers),
    hs.text(max_size=30),
)


def _collect(count: int) -> list[str]:
    bodies: list[str] = []

    @settings(max_examples=count, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=_bodies)
    def collect(body: str) -> None:
        bodies.append(body)

    collect()
    return bodies


def _allowed_501(body: str) -> bool:
    """Mesos answers 501 only for a call whose type is the enum's ``UNKNOWN`` value."""
    try:
        return bool(json.loads(body).get("type") == "UNKNOWN")
    except (ValueError, AttributeError, RecursionError):
        return False


async def test_malformed_requests_get_4xx_and_the_master_keeps_serving(
        kernel: main.Kernel, session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe(wire.framework_info(failover_timeout=60))
    await st.wait_for("OFFERS")
    answers: dict[int, int] = {}
    for body in _collect(400):
        for url, headers in (
            ("/api/v1/scheduler", {**wire.JSON, "Mesos-Stream-Id": st.stream_id}),
            ("/api/v1/scheduler", wire.JSON),
            ("/api/v1", wire.JSON),
        ):
            data = body
            if "Mesos-Stream-Id" in headers and body.startswith('{"type"'):
                data = f'{{"framework_id":{{"value":"{st.framework_id}"}},{body[1:]}'
            async with session.post(f"{kernel.master_url}{url}", data=data,
                                    headers=headers) as resp:
                answers[resp.status] = answers.get(resp.status, 0) + 1
                if resp.status == 200 and '"SUBSCRIBE"' in body:
                    resp.close()  # a stream was opened: it never ends by itself
                    continue
                text = await resp.text()
                assert resp.status < 500 or (resp.status == 501 and _allowed_501(body)), (
                    url, body[:300], resp.status, text[:300])
                if 400 <= resp.status < 500:  # a 4xx says what is wrong
                    assert text.strip(), (url, body[:300], resp.status)
    assert answers.get(400, 0) > 100, answers
    for path in ("/state", "/master/state", "/state-summary", "/master/slaves", "/tasks"):
        for query in ("", "?jsonp=x", "?framework_id=%00", "?x=" + "y" * 2000, "?limit=-1"):
            async with session.get(f"{kernel.master_url}{path}{query}") as resp:
                assert resp.status < 500, (path, query, resp.status)
                if resp.status == 200:
                    json.loads((await resp.text()).removeprefix("x(").removesuffix(");"))
    health = await wire.operator(session, kernel.master_url, {"type": "GET_HEALTH"})
    assert health["get_health"]["healthy"] is True
    await st.close()  # the fuzz may have torn its framework down (a valid TEARDOWN)
    fresh = wire.Stream(session, kernel.master_url)
    await fresh.subscribe()
    await fresh.wait_for("OFFERS")
    assert (await fresh.call({"type": "REVIVE"}))[0] == 202
    await fresh.close()


def _hostile_launches(count: int) -> list[dict[str, Any]]:
    """LAUNCH / LAUNCH_GROUP operations of the right skeleton with hostile values inside."""
    ops: list[dict[str, Any]] = []
    scalar = hs.fixed_dictionaries({"value": hs.one_of(hs.just(0.1), _numbers)})

    @settings(max_examples=count, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cpus=scalar, mem=hs.one_of(hs.just(32), _numbers), begin=_numbers, end=_numbers,
           grace=_numbers, limit=hs.one_of(hs.just(1), _numbers, _json),
           group=hs.booleans(), extra=hs.dictionaries(hs.sampled_from(_FIELDS), _json,
                                                       max_size=2))
    def collect(cpus: Any, mem: Any, begin: Any, end: Any, grace: Any, limit: Any,
                group: bool, extra: dict[str, Any]) -> None:
        task = {
            "name": "t", "task_id": {"value": f"t{len(ops)}"}, "agent_id": {"value": "AGENT"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": cpus},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
                          {"name": "ports", "type": "RANGES",
                           "ranges": {"range": [{"begin": begin, "end": end}]}}],
            "kill_policy": {"grace_period": {"nanoseconds": grace}},
            "limits": {"cpus": {"value": limit}},
            "command": {"value": "true"},
            **extra,
        }
        if group:
            ops.append({"type": "LAUNCH_GROUP", "launch_group": {
                "executor": {"type": "DEFAULT", "executor_id": {"value": f"e{len(ops)}"},
                             "framework_id": {"value": "FRAMEWORK"},
                             "shutdown_grace_period": {"nanoseconds": grace}},
                "task_group": {"tasks": [task]}}})
        else:
            ops.append({"type": "LAUNCH", "launch": {"task_infos": [task]}})

    collect()
    return ops


async def test_hostile_values_inside_launches(kernel: main.Kernel,
                                              session: aiohttp.ClientSession) -> None:
    ops = _hostile_launches(60)
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    offer: dict[str, Any] | None = None
    answers: dict[int, int] = {}
    for op in ops:
        if offer is None:  # the last one was used (202), or this is the first
            offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
        text = json.dumps(op).replace("AGENT", offer["agent_id"]["value"]).replace(
            "FRAMEWORK", st.framework_id)
        body = {"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]],
                                             "operations": [json.loads(text)],
                                             "filters": {"refuse_seconds": 0}}}
        code, answer = await st.call(body)
        assert code < 500, (text[:400], code, answer[:300])
        answers[code] = answers.get(code, 0) + 1
        if code == 202:  # accepted (tasks launched or refused with TASK_ERROR): offer used
            offer = None
    assert answers.get(400) and answers.get(202), answers
    health = await wire.operator(session, kernel.master_url, {"type": "GET_HEALTH"})
    assert health["get_health"]["healthy"] is True
    await st.close()


async def test_the_reported_shapes_get_mesos_answers(kernel: main.Kernel,
                                                     session: aiohttp.ClientSession) -> None:
    """The shapes of the issue's report, each with the status and message Mesos gives."""
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe()
    fid = {"value": st.framework_id}
    cases: list[tuple[str, str, int, str]] = [
        ("/api/v1/scheduler", "[" * 150 + "]" * 150, 400, "Failed to convert JSON"),
        ("/api/v1/scheduler", '{"a":' * 250 + "1" + "}" * 250, 400,
         "nested deeper than 200 levels"),
        ("/api/v1", "[" * 100000, 400, "nested deeper than 200 levels"),
        # Brackets in strings do not nest; an escaped quote does not end its string.
        ("/api/v1", json.dumps({"type": "GET_HEALTH", "x": "[{" * 300}), 200, "healthy"),
        ("/api/v1", json.dumps({"type": "GET_HEALTH", "x": '"\\' + "[" * 300}), 200,
         "healthy"),
        ("/api/v1", '{"x":"\\"]]]","y":' + "[" * 201 + "]" * 201 + "}", 400,
         "nested deeper than 200 levels"),
        ("/api/v1", '{"x":"\\"' + "[" * 300, 400, "Unterminated string"),
        ("/api/v1/scheduler", json.dumps({"type": {"x": 1}, "framework_id": fid}), 400,
         "Not expecting a JSON object for field 'type'"),
        ("/api/v1", json.dumps({"type": ["GET_STATE"]}), 400,
         "Not expecting a JSON array for field 'type'"),
        ("/api/v1/scheduler", json.dumps({"type": "", "framework_id": fid}), 400,
         "Expecting 'type' to be present"),
        ("/api/v1", json.dumps({"type": ""}), 400, "Expecting 'type' to be present"),
        ("/api/v1", json.dumps({"type": "NOT_A_CALL"}), 400, "Expecting 'type' to be present"),
        ("/api/v1", json.dumps({"type": "ACCEPT"}), 400, "Expecting 'type' to be present"),
        ("/api/v1", '{"type": "GET_STATE", "x": NaN}', 400, "Failed to parse body into JSON"),
        ("/api/v1", '{"type": "GET_STATE", "x": 1e999}', 400, "Value out of range"),
        ("/api/v1/scheduler", json.dumps({"type": "DECLINE", "framework_id": fid, "decline": {
            "offer_ids": [{"value": "o"}], "filters": {"refuse_seconds": 10**60}}}), 202, ""),
        ("/api/v1/scheduler", json.dumps({"type": "KILL", "framework_id": fid, "kill": {
            "task_id": {"value": "t"}, "agent_id": {"value": 2**63},
            "kill_policy": {"grace_period": {"nanoseconds": 10**60}}}}), 202, ""),
        ("/api/v1/scheduler", json.dumps({"type": "KILL", "framework_id": fid, "kill": {
            "task_id": {"value": 2**63}}}), 400, "Missing required fields: kill.task_id.value"),
    ]
    for url, body, status, message in cases:
        async with session.post(f"{kernel.master_url}{url}", data=body, headers={
                **wire.JSON, "Mesos-Stream-Id": st.stream_id}) as resp:
            text = await resp.text()
            assert resp.status == status and message in text, (body[:120], resp.status, text)
    async with session.post(f"{kernel.master_url}/api/v1", data='{"type": "UNKNOWN"}',
                            headers=wire.JSON) as resp:
        assert resp.status == 501  # Mesos: NotImplemented for the UNKNOWN value itself
    await st.close()
