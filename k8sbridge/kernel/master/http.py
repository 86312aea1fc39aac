"""HTTP endpoints of the master: ``/api/v1/scheduler``, ``/api/v1`` and the legacy JSON.

Why a separate module: this is the wire boundary (status codes, headers, RecordIO streams, the
checks ``src/master/http.cpp`` makes before a call reaches the master). Handlers parse and
check, then call one synchronous ``OperatorHandling`` method; they hold no state of their own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from k8sbridge.kernel.master import authn, calls, legacy, streams, transport
from k8sbridge.kernel.master.base import VERSION
from k8sbridge.kernel.master.errors import CallError
from k8sbridge.kernel.master.operations import OperatorHandling

log = logging.getLogger(__name__)

RawJson = dict[str, Any]
MASTER_KEY = web.AppKey("master", OperatorHandling)


# Mesos' realm of each endpoint (``Master::initialize`` routes; ``/metrics/snapshot`` is
# libprocess' readonly realm). ``/health``, ``/version`` and the kernel-internal
# ``/kernel/link`` are not authenticated.
_READONLY_PATHS = ("state", "state-summary", "frameworks", "slaves", "tasks", "roles")
REALMS: dict[str, str] = {
    "/api/v1/scheduler": authn.SCHEDULER_REALM,
    "/api/v1": authn.READWRITE_REALM,
    "/api/v1/": authn.READWRITE_REALM,
    "/metrics/snapshot": authn.READONLY_REALM,
    **{f"{prefix}/{name}": authn.READONLY_REALM
       for prefix in ("", "/master") for name in _READONLY_PATHS},
}


@web.middleware
async def _authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
    """libprocess authenticates before the route's handler runs (so before 405 and 400)."""
    verdict = request.app[MASTER_KEY].authentication.authenticate(
        realm=REALMS.get(request.path), header=request.headers.get("Authorization"))
    if isinstance(verdict, authn.Unauthorized):
        return web.Response(status=401, headers={"WWW-Authenticate": verdict.challenge})
    if request.body_exists:
        # The whole body within the bound (aiohttp keeps it for the handler's ``read``): a
        # client trickling its body cannot hold a connection and a handler forever.
        try:
            async with asyncio.timeout(request.app[MASTER_KEY].config.http_body_timeout):
                await request.read()
        except TimeoutError:
            log.info("dropping %s %s from %s: body not received within %ss", request.method,
                     request.path, request.remote,
                     request.app[MASTER_KEY].config.http_body_timeout)
            return web.Response(status=408, text="Request body not received in time",
                                headers={"Connection": "close"})
    response: web.StreamResponse = await handler(request)
    return response


def _principal(request: web.Request) -> str | None:
    """The authenticated principal (the middleware already refused unauthenticated ones)."""
    verdict = request.app[MASTER_KEY].authentication.authenticate(
        realm=REALMS.get(request.path), header=request.headers.get("Authorization"))
    return verdict if isinstance(verdict, str) else None


def _mismatch(principal: str, info_principal: str) -> str:
    return (f"Authenticated principal '{principal}' does not match principal "
            f"'{info_principal}' set in `FrameworkInfo`")


def build_app(master: OperatorHandling) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_authenticate])
    app[MASTER_KEY] = master
    app.router.add_route("*", "/api/v1/scheduler", scheduler_api)
    app.router.add_route("*", "/api/v1", operator_api)
    app.router.add_route("*", "/api/v1/", operator_api)
    for prefix in ("", "/master"):
        app.router.add_get(f"{prefix}/state", legacy_state)
        app.router.add_get(f"{prefix}/state-summary", legacy_state_summary)
        app.router.add_get(f"{prefix}/health", legacy_health)
        app.router.add_get(f"{prefix}/frameworks", legacy_frameworks)
        app.router.add_get(f"{prefix}/slaves", legacy_slaves)
        app.router.add_get(f"{prefix}/tasks", legacy_tasks)
        app.router.add_get(f"{prefix}/roles", legacy_roles)
    app.router.add_get("/version", legacy_version)
    app.router.add_get("/metrics/snapshot", metrics_snapshot)
    app.router.add_get("/kernel/link", kernel_link)
    return app


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


def _json(body: Any, *, status: int = 200) -> web.Response:
    """A legacy (v0) JSON body: written as is."""
    return web.Response(
        status=status, body=json.dumps(body, separators=(",", ":")),
        content_type="application/json",
    )


def _v1(body: Any) -> web.Response:
    """A v1 operator API body: empty repeated fields left out, as Mesos prints protobuf."""
    return _json(streams.compact(body))


# --------------------------------------------------------------------------------------------
# Scheduler API


async def scheduler_api(request: web.Request) -> web.StreamResponse:
    master = request.app[MASTER_KEY]
    if request.method != "POST":
        return web.Response(status=405, headers={"Allow": "POST"},
                            text=f"Expecting one of {{ 'POST' }}, but received '{request.method}'")
    try:
        transport.check_content_type(request.headers.get("Content-Type"))
        body = await request.read()
        call = calls.normalize_call(transport.parse_body(body))
        calls.validate_call(call)
    except CallError as e:
        return _text(e.status, e.message)
    ctype = call["type"]
    principal = _principal(request)
    if ctype == "SUBSCRIBE" and principal is not None:
        info = call["subscribe"]["framework_info"]
        if isinstance(info.get("principal"), str) and info["principal"] != principal:
            return _text(400, "Failed to validate scheduler::Call: "
                              + _mismatch(principal, info["principal"]))
    if ctype in ("SUBSCRIBE", "RECONCILE_OPERATIONS") and not transport.accepts_json(
        request.headers.get("Accept")
    ):
        return _text(406, "Expecting 'Accept' to allow 'application/x-protobuf' or "
                          "'application/json'")
    if ctype == "SUBSCRIBE":
        if "Mesos-Stream-Id" in request.headers:
            return _text(400, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
        info = call["subscribe"]["framework_info"]
        if principal is not None and "principal" not in info:
            log.warning("Setting 'principal' in FrameworkInfo to '%s' because the framework "
                        "authenticated with that principal but did not set it in "
                        "FrameworkInfo", principal)
            info["principal"] = principal
        return await _subscribe(request, master, call["subscribe"])
    fid = calls.id_value(call["framework_id"]) or ""
    fw = master.frameworks.get(fid)
    if fw is None:
        return _text(400, "Framework cannot be found")
    if principal is not None and principal != fw.info.get("principal", ""):
        return _text(400, _mismatch(principal, str(fw.info.get("principal", ""))))
    if not fw.connected:
        return _text(403, "Framework is not subscribed")
    stream_id = request.headers.get("Mesos-Stream-Id")
    if stream_id is None:
        return _text(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
    assert fw.stream is not None
    if stream_id != fw.stream.stream_id:
        return _text(400, f"The stream ID '{stream_id}' included in this request didn't match "
                          f"the stream ID currently associated with framework ID {fid}")
    master.metrics[f"messages_{ctype.lower()}"] += 1
    try:
        if ctype == "TEARDOWN":
            master.remove_framework(fw)
        elif ctype == "ACCEPT":
            master.accept(fw, call["accept"])
        elif ctype == "DECLINE":
            master.decline(fw, call["decline"])
        elif ctype in ("ACCEPT_INVERSE_OFFERS", "DECLINE_INVERSE_OFFERS"):
            log.info("%s: no inverse offers exist (no maintenance schedules)", ctype)
        elif ctype == "REVIVE":
            master.revive(fw, call.get("revive"))
        elif ctype == "SUPPRESS":
            master.suppress(fw, call.get("suppress"))
        elif ctype == "KILL":
            master.kill(fw, call["kill"])
        elif ctype == "SHUTDOWN":
            master.shutdown_executor(fw, call["shutdown"])
        elif ctype == "ACKNOWLEDGE":
            master.acknowledge(fw, call["acknowledge"])
        elif ctype == "ACKNOWLEDGE_OPERATION_STATUS":
            log.info("ignoring operation acknowledgement: no operation feedback is pending")
        elif ctype == "RECONCILE":
            master.reconcile(fw, call["reconcile"])
        elif ctype == "RECONCILE_OPERATIONS":
            master.reconcile_operations(fw, call["reconcile_operations"])
        elif ctype == "MESSAGE":
            master.message(fw, call["message"])
        elif ctype == "REQUEST":
            log.info("ignoring REQUEST from framework %s (the allocator ignores requests)", fid)
        elif ctype == "UPDATE_FRAMEWORK":
            master.update_framework(fw, call["update_framework"])
            return web.Response(status=200)
        else:
            return _text(501, f"Call type {ctype} is not implemented")
    except CallError as e:
        return _text(e.status, e.message)
    except (TypeError, AttributeError, KeyError, ValueError, ArithmeticError) as e:
        # A shape the checks above did not anticipate: Mesos' protobuf conversion would have
        # refused it, so answer 400 rather than 500 (and log it: this is a gap to close).
        log.warning("malformed %s call from framework %s: %r", ctype, fid, e)
        return _text(400, f"Failed to convert JSON into Call protobuf: {e!r}")
    return web.Response(status=202)


async def _subscribe(request: web.Request, master: OperatorHandling, sub: RawJson
                     ) -> web.StreamResponse:
    stream = streams.EventStream(heartbeat_interval=master.config.heartbeat_interval)
    master.subscribe(sub, stream)
    framework_id = _framework_of(master, stream)
    response = web.StreamResponse(
        status=200,
        headers={"Content-Type": "application/json", "Mesos-Stream-Id": stream.stream_id,
                 "Cache-Control": "no-cache"},
    )
    response.enable_chunked_encoding()
    try:
        # Inside the try: a client gone before the headers went out still disconnects.
        await response.prepare(request)
        await stream.pump(response)
    finally:
        stream.closed = True
        if framework_id is not None:
            master.stream_closed(framework_id, stream)
    return response


def _framework_of(master: OperatorHandling, stream: streams.EventStream) -> str | None:
    for fid, fw in master.frameworks.items():
        if fw.stream is stream:
            return fid
    return None


# --------------------------------------------------------------------------------------------
# Operator API

_OPERATOR_READS = {
    "GET_AGENTS": "get_agents",
    "GET_FRAMEWORKS": "get_frameworks",
    "GET_TASKS": "get_tasks",
    "GET_EXECUTORS": "get_executors",
    "GET_STATE": "get_state",
    "GET_ROLES": "get_roles",
}


async def operator_api(request: web.Request) -> web.StreamResponse:
    master = request.app[MASTER_KEY]
    if request.method != "POST":
        return web.Response(status=405, headers={"Allow": "POST"},
                            text=f"Expecting one of {{ 'POST' }}, but received '{request.method}'")
    try:
        transport.check_content_type(request.headers.get("Content-Type"))
        call = transport.parse_body(await request.read())
    except CallError as e:
        return _text(e.status, e.message.replace("Call protobuf", "master::Call"))
    if not transport.accepts_json(request.headers.get("Accept")):
        return _text(406, "Expecting 'Accept' to allow 'application/x-protobuf' or "
                          "'application/json'")
    try:
        ctype = transport.operator_type(call)
    except CallError as e:
        return _text(e.status, e.message)
    if ctype == "UNKNOWN":
        return web.Response(status=501)  # as Mesos: NotImplemented, no body
    try:
        return await _operator_call(request, master, ctype, call)
    except CallError as e:
        return _text(e.status, e.message)
    except (TypeError, AttributeError, KeyError, ValueError, ArithmeticError) as e:
        log.warning("malformed operator call %s: %r", ctype, e)
        return _text(400, f"Failed to convert JSON into master::Call protobuf: {e!r}")


def _sub(call: RawJson, field: str) -> RawJson:
    body = call.get(field)
    if not isinstance(body, dict):
        raise CallError(400, f"Failed to validate master::Call: Expecting '{field}' to be present")
    return body


def _agent_to_mark_gone(call: RawJson) -> str:
    """``mark_agent_gone.agent_id.value``, else the 400 Mesos gives: first stout's JSON ->
    protobuf conversion (a wrong JSON kind; the required ``agent_id`` and its ``value``), then
    the call's validation (``mark_agent_gone`` absent)."""
    convert = "Failed to convert JSON into Call protobuf: "
    body = call.get("mark_agent_gone")
    if body is None:
        raise CallError(400, "Failed to validate master::Call: Expecting 'mark_agent_gone' to "
                             "be present")
    if not isinstance(body, dict):
        raise CallError(400, convert + transport.not_expecting(body, "mark_agent_gone"))
    agent_id = body.get("agent_id")
    if agent_id is None:
        raise CallError(400, convert + "Missing required fields: mark_agent_gone.agent_id")
    if not isinstance(agent_id, dict):
        raise CallError(400, convert + transport.not_expecting(agent_id, "agent_id"))
    value = agent_id.get("value")
    if value is None:
        raise CallError(400, convert + "Missing required fields: mark_agent_gone.agent_id.value")
    if not isinstance(value, str):
        raise CallError(400, convert + transport.not_expecting(value, "value"))
    return value


async def _operator_call(request: web.Request, master: OperatorHandling, ctype: str, call: RawJson
                         ) -> web.StreamResponse:
    if ctype == "GET_HEALTH":
        return _v1({"type": ctype, "get_health": {"healthy": True}})
    if ctype == "GET_VERSION":
        return _v1({"type": ctype, "get_version": {"version_info": legacy.version_info()}})
    if ctype == "GET_MASTER":
        return _v1({"type": ctype, "get_master": {
            "master_info": master.master_info(),
            "start_time": master.start_time,
            "elected_time": master.start_time,
        }})
    if ctype == "GET_FLAGS":
        return _v1({"type": ctype, "get_flags": {"flags": [
            {"name": k, "value": str(v)} for k, v in sorted(legacy.flags(master).items())
        ]}})
    if ctype == "GET_METRICS":
        return _v1({"type": ctype, "get_metrics": {"metrics": [
            {"name": k, "value": v} for k, v in sorted(legacy.metrics(master).items())
        ]}})
    if ctype in _OPERATOR_READS:
        key = _OPERATOR_READS[ctype]
        return _v1({"type": ctype, key: getattr(master, key)()})
    if ctype == "GET_WEIGHTS":
        return _v1({"type": ctype, "get_weights": {"weight_infos": [
            {"role": r, "weight": w} for r, w in sorted(master.allocator.weights().items())
        ]}})
    if ctype == "UPDATE_WEIGHTS":
        infos = _sub(call, "update_weights").get("weight_infos") or []
        master.update_weights(calls.as_list(infos))
        return web.Response(status=200)
    if ctype == "GET_QUOTA":
        configs = [
            {"role": r, "limits": {k: {"value": v} for k, v in limits.items()}}
            for r, limits in sorted(master.allocator.quotas().items())
        ]
        return _v1({"type": ctype, "get_quota": {"status": {"configs": configs}}})
    if ctype == "UPDATE_QUOTA":
        configs = _sub(call, "update_quota").get("quota_configs") or []
        master.update_quota(calls.as_list(configs))
        return web.Response(status=200)
    if ctype == "RESERVE_RESOURCES":
        master.operator_reserve(_sub(call, "reserve_resources"), unreserve=False)
        return web.Response(status=202)
    if ctype == "UNRESERVE_RESOURCES":
        master.operator_reserve(_sub(call, "unreserve_resources"), unreserve=True)
        return web.Response(status=202)
    if ctype == "TEARDOWN":
        fid = calls.id_value(_sub(call, "teardown").get("framework_id"))
        fw = master.frameworks.get(fid or "")
        if fw is None:
            return _text(400, f"Framework {fid} is not found")
        if master.authorizer is not None and not master.authorizer.may_teardown(
                principal=_principal(request),
                framework_principal=str(fw.info.get("principal", ""))):
            return web.Response(status=403)  # as Mesos' ``_teardown``: Forbidden, no body
        master.remove_framework(fw)
        return web.Response(status=200)
    if ctype == "MARK_AGENT_GONE":
        agent_id = _agent_to_mark_gone(call)
        if master.authorizer is not None and not master.authorizer.may_mark_agent_gone(
                principal=_principal(request)):
            return web.Response(status=403)  # as Mesos' ``markAgentGone``: Forbidden, no body
        master.mark_agent_gone(agent_id)
        return web.Response(status=200)
    if ctype == "SUBSCRIBE":
        return await _operator_subscribe(request, master)
    return _text(501, f"Operator call {ctype} is not implemented by the embedded kernel")


async def _operator_subscribe(request: web.Request, master: OperatorHandling) -> web.StreamResponse:
    stream = streams.EventStream(heartbeat_interval=master.config.heartbeat_interval)
    stream.send({"type": "SUBSCRIBED", "subscribed": {
        "get_state": master.get_state(),
        "heartbeat_interval_seconds": float(master.config.heartbeat_interval),
    }})
    stream.heartbeat()
    master.subscribers.add(stream)
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        await stream.pump(response)
    finally:
        master.subscribers.discard(stream)
    return response


# --------------------------------------------------------------------------------------------
# Legacy endpoints


async def legacy_state(request: web.Request) -> web.Response:
    return _json(legacy.state(request.app[MASTER_KEY]))


async def legacy_state_summary(request: web.Request) -> web.Response:
    return _json(legacy.state_summary(request.app[MASTER_KEY]))


async def legacy_frameworks(request: web.Request) -> web.Response:
    full = legacy.state(request.app[MASTER_KEY])
    return _json({k: full[k] for k in ("frameworks", "completed_frameworks",
                                       "unregistered_frameworks")})


async def legacy_slaves(request: web.Request) -> web.Response:
    full = legacy.state(request.app[MASTER_KEY])
    return _json({"slaves": full["slaves"], "recovered_slaves": full["recovered_slaves"]})


async def legacy_tasks(request: web.Request) -> web.Response:
    full = legacy.state(request.app[MASTER_KEY])
    tasks = [t for f in full["frameworks"] for t in f["tasks"] + f["completed_tasks"]]
    return _json({"tasks": tasks})


async def legacy_roles(request: web.Request) -> web.Response:
    return _json(legacy.roles(request.app[MASTER_KEY]))


async def legacy_health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def legacy_version(request: web.Request) -> web.Response:
    return _json(legacy.version_info())


async def metrics_snapshot(request: web.Request) -> web.Response:
    return _json(legacy.metrics(request.app[MASTER_KEY]))


async def kernel_link(request: web.Request) -> web.Response:
    master = request.app[MASTER_KEY]
    host = master.config.host
    if host in ("0.0.0.0", "::", ""):  # bound to every interface: the one the agent used
        host = request.url.host or "127.0.0.1"
    # With TLS downgrades allowed, an agent that asked over plain HTTP links in plain too.
    port = (master.plain_link_port if master.plain_link_port is not None and not request.secure
            else master.link_port)
    return _json({"address": f"{host}:{port}", "version": VERSION,
                  "time": time.time()})
