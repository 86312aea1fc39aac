"""The agent HTTP API (Mesos agent :5051): files, legacy ``/state``, ``/containers``, ``/api/v1``.

Why these shapes: tools that read sandboxes (the bridge's ``kubectl logs``, Marathon UIs, the
Mesos CLI) use ``/files/*`` with virtual paths and the legacy ``/state`` JSON, or v1
``READ_FILE``/``LIST_FILES``; they must not notice that this agent is not ``mesos-agent``.
Behaviour follows ``src/files/files.cpp`` and ``src/slave/http.cpp``: at most 16 pages per read,
``offset=-1`` gives the size, 400 without ``path``, 404 for a missing path.
"""

from __future__ import annotations

import asyncio
import base64
import grp
import os
import pwd
import stat
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from k8sbridge.kernel import resources as mres
from k8sbridge.kernel.agent import calls, http_sessions, httpauth, stats
from k8sbridge.kernel.agent.core import AgentCore
from k8sbridge.kernel.agent.state import VERSION, Container, Task

__all__ = ["make_app", "MAX_READ"]

MAX_READ = 16 * os.sysconf("SC_PAGE_SIZE")  # files.cpp caps a read at 16 pages
_AGENT_KEY = web.AppKey("agent", object)


class _PathError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def make_app(agent: AgentCore) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[_AGENT_KEY] = agent
    for prefix in ("", "/slave(1)"):
        app.router.add_get(prefix + "/state", _state)
        app.router.add_get(prefix + "/state.json", _gone_json)
        app.router.add_get(prefix + "/health", _health)
        app.router.add_get(prefix + "/flags", _flags)
    app.router.add_get("/containers", _containers)
    app.router.add_get("/monitor/statistics", _monitor_statistics)
    app.router.add_get("/monitor/statistics.json", _monitor_statistics)
    app.router.add_get("/version", _version)
    app.router.add_get("/files/browse", _browse)
    app.router.add_get("/files/read", _read)
    app.router.add_get("/files/download", _download)
    app.router.add_get("/files/debug", _debug)
    app.router.add_post("/api/v1", http_sessions.install(app, agent, _api_v1))
    config = agent.config
    httpauth.install(app, readonly=config.authenticate_http_readonly,
                     readwrite=config.authenticate_http_readwrite,
                     credentials_path=config.http_credentials)
    return app


def _agent(request: web.Request) -> AgentCore:
    return request.app[_AGENT_KEY]  # type: ignore[return-value]


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


# --------------------------------------------------------------------------------------------
# Files


def _virtual_roots(agent: AgentCore) -> dict[str, Path]:
    """Attached name -> real directory, like the agent's ``files->attach`` calls: each sandbox
    under its virtual path (``.../runs/<containerId>`` and ``.../runs/latest``) and its real path.
    """
    roots: dict[str, Path] = {}
    for container, _live in agent.all_containers():
        base = f"/frameworks/{container.framework_id}/executors/{container.executor_id}/runs"
        roots[f"{base}/{container.container_id}"] = container.directory
        roots.setdefault(f"{base}/latest", container.directory)
        roots[str(container.directory)] = container.directory
    for container in agent.live_containers():  # live containers win "latest"
        base = f"/frameworks/{container.framework_id}/executors/{container.executor_id}/runs"
        roots[f"{base}/latest"] = container.directory
    return roots


def _resolve(agent: AgentCore, raw: str | None) -> Path:
    """files.cpp ``resolve``: the longest attached prefix, then the rest below it; a path that
    leaves the attached directory is inaccessible (400), a missing one is not found (404)."""
    if raw is None or raw == "":
        raise _PathError(400, "Expecting 'path=value' in query.\n")
    roots = _virtual_roots(agent)
    tokens = raw.rstrip("/").split("/")
    suffix: list[str] = []
    while tokens:
        prefix = "/".join(tokens) or "/"
        directory = roots.get(prefix)
        if directory is None:
            suffix.insert(0, tokens.pop())
            continue
        try:
            base = directory.resolve(strict=True)
            resolved = (directory / "/".join(suffix)).resolve(strict=True)
        except (OSError, RuntimeError) as e:
            raise _PathError(404, "") from e
        except ValueError as e:  # an embedded NUL: no such file can exist
            raise _PathError(400, f"'{raw[:256]}' is not a valid path.\n") from e
        if not _within(resolved, base):
            raise _PathError(400, f"'{raw}' is inaccessible.\n")
        return resolved
    raise _PathError(404, "")


def _within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _file_info(virtual: str, st: os.stat_result) -> dict[str, Any]:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return {"path": virtual, "nlink": st.st_nlink, "size": st.st_size, "mtime": st.st_mtime,
            "mode": stat.filemode(st.st_mode), "uid": user, "gid": group}


def _list(agent: AgentCore, raw: str | None) -> list[dict[str, Any]]:
    real = _resolve(agent, raw)
    assert raw is not None
    out = []
    if real.is_dir():  # browsing a file lists nothing, as os::ls fails on it
        for entry in sorted(os.scandir(real), key=lambda e: e.name):
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError:
                continue
            out.append(_file_info(raw.rstrip("/") + "/" + entry.name, st))
    return out


async def _browse(request: web.Request) -> web.Response:
    try:
        infos = _list(_agent(request), request.query.get("path"))
    except _PathError as e:
        return _error(e.status, e.message)  # files.cpp: an invalid path is 400 here too
    return web.json_response(infos)


def _parse_int(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError as e:
        raise _PathError(400, f"Failed to parse {what}: {value[:64]!r}.\n") from e
    if not -(1 << 63) <= number < (1 << 63):  # numify<off_t> / numify<ssize_t>
        raise _PathError(400, f"Failed to parse {what}: {value[:64]!r} is out of range.\n")
    return number


def _read_file(agent: AgentCore, raw: str | None, offset: int | None, length: int | None
               ) -> tuple[int, bytes, int]:
    """(offset, data, size) for a read request, with files.cpp's rules."""
    if offset is None:
        offset = -1
    if offset < -1:
        raise _PathError(400, f"Negative offset provided: {offset}")
    if length is not None and length < -1:
        raise _PathError(400, f"Negative length provided: {length}")
    real = _resolve(agent, raw)
    if real.is_dir():
        raise _PathError(400, "Cannot read a directory.\n")
    size = real.stat().st_size
    if offset == -1:
        return size, b"", size
    if length is None or length == -1:
        length = MAX_READ
    length = min(length, MAX_READ)
    if offset >= size:  # files.cpp answers with the offset asked for, and no data
        return offset, b"", size
    with open(real, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    return offset, data, size


async def _read(request: web.Request) -> web.Response:
    try:
        offset, data, _size = _read_file(
            _agent(request), request.query.get("path"),
            _parse_int(request.query.get("offset"), "offset"),
            _parse_int(request.query.get("length"), "length"),
        )
    except _PathError as e:
        return _error(e.status, e.message)
    return web.json_response({"data": data.decode("utf-8", errors="replace"), "offset": offset})


async def _download(request: web.Request) -> web.StreamResponse:
    try:
        raw = request.query.get("path")
        real = _resolve(_agent(request), raw)
    except _PathError as e:
        return _error(e.status, e.message)
    if real.is_dir():
        return _error(400, "Cannot download a directory.\n")
    return web.FileResponse(real, headers={
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f"attachment; filename={real.name}",
    })


async def _debug(request: web.Request) -> web.Response:
    roots = _virtual_roots(_agent(request))
    return web.json_response({k: str(v) for k, v in sorted(roots.items())})


# --------------------------------------------------------------------------------------------
# Legacy state


def _legacy_task(agent: AgentCore, task: Task) -> dict[str, Any]:
    info = task.info
    out: dict[str, Any] = {
        "id": task.task_id,
        "name": info.get("name", ""),
        "framework_id": task.framework_id,
        "executor_id": task.executor_id,
        "slave_id": agent.agent_id or "",
        "state": task.state,
        "resources": mres.Resources.parse(info.get("resources")).to_legacy(),
        "statuses": [
            {k: v for k, v in s.items()
             if k in ("state", "timestamp", "container_status", "healthy", "check_status")}
            for s in task.statuses
        ],
    }
    if info.get("labels"):
        out["labels"] = (info["labels"] or {}).get("labels", [])
    for key in ("container", "discovery", "health_check"):
        if key in info:
            out[key] = info[key]
    return out


def _legacy_executor(agent: AgentCore, container: Container,
                     groups: list[Container]) -> dict[str, Any]:
    """``container``'s executor, with the tasks of all its task ``groups``."""
    tasks = [t for group in groups for t in group.tasks.values()]
    live = [_legacy_task(agent, t) for t in tasks if not t.terminal]
    done = [_legacy_task(agent, t) for t in tasks if t.terminal]
    resources = mres.Resources()
    for t in tasks:
        resources = resources + mres.Resources.parse(t.info.get("resources"))
    return {
        "id": container.executor_id,
        "name": container.executor.get("name", ""),
        "source": container.executor.get("source", ""),
        "container": container.container_id,
        "directory": str(container.directory),
        "resources": resources.to_legacy(),
        "type": "DEFAULT",
        "tasks": live,
        "queued_tasks": [],
        "completed_tasks": done,
    }


def _legacy_framework(agent: AgentCore, framework: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": (framework.get("id") or {}).get("value", ""),
        "name": framework.get("name", ""),
        "user": framework.get("user", ""),
        "hostname": framework.get("hostname", ""),
        "role": framework.get("role", "*"),
        "roles": framework.get("roles", []),
        "principal": framework.get("principal", ""),
        "checkpoint": bool(framework.get("checkpoint", False)),
        "failover_timeout": float(framework.get("failover_timeout", 0.0)),
        "capabilities": [c.get("type") for c in framework.get("capabilities") or []
                         if isinstance(c, dict)],
        "executors": [],
        "completed_executors": [],
    }


async def _state(request: web.Request) -> web.Response:
    agent = _agent(request)
    frameworks: dict[str, dict[str, Any]] = {}
    infos = agent.framework_infos()
    groups: dict[tuple[str, bool], list[Container]] = {}  # an executor's task groups
    for container, live in agent.all_containers():
        groups.setdefault((container.executor_root, live), []).append(container)
    for (_, live), executor_groups in groups.items():
        container = executor_groups[0]
        fw = frameworks.get(container.framework_id)
        if fw is None:
            fw = _legacy_framework(agent, infos.get(container.framework_id, container.framework))
            frameworks[container.framework_id] = fw
        key = "executors" if live else "completed_executors"
        fw[key].append(_legacy_executor(agent, container, executor_groups))
    config = agent.config
    body = {
        **_version_info(),
        "start_time": agent.start_time,
        "id": agent.agent_id or "",
        "pid": f"slave(1)@{agent.http_address}",
        "hostname": config.hostname or config.host,
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT",
                         "TASK_GROUPS_CHILDREN"],
        "resources": agent.resources.to_legacy(),
        "reserved_resources": {},
        "unreserved_resources": agent.resources.unreserved().to_legacy(),
        "attributes": {a.name: a.legacy_value() for a in agent.attributes},
        "master_hostname": config.master.rsplit(":", 1)[0],
        "log_dir": "",
        "flags": _flag_values(agent),
        "frameworks": [fw for fw in frameworks.values() if fw["executors"]],
        "completed_frameworks": [fw for fw in frameworks.values() if not fw["executors"]],
    }
    domain = agent.domain()
    if domain is not None:
        body["domain"] = domain
    return web.json_response(body)


_UNITS = (("weeks", 7 * 86400.0), ("days", 86400.0), ("hrs", 3600.0), ("mins", 60.0),
          ("secs", 1.0), ("ms", 1e-3), ("us", 1e-6))


def duration(seconds: float) -> str:
    """A Duration as stout prints it: in the largest unit it reaches (``1weeks``, ``500ms``)."""
    for name, size in _UNITS:
        if seconds >= size:
            return f"{seconds / size:g}{name}"
    return f"{seconds * 1e9:g}ns"


def _flag_values(agent: AgentCore) -> dict[str, str]:
    config = agent.config
    return {
        "master": config.master,
        "work_dir": str(agent.work_dir),
        "port": str(agent.http_address.rsplit(":", 1)[1]),
        "ip": config.host,
        "hostname": config.hostname or config.host,
        "resources": config.resources,
        "attributes": config.attributes,
        "executor_shutdown_grace_period": f"{config.executor_shutdown_grace_seconds:g}secs",
        "gc_delay": duration(config.gc_delay_seconds),
        "disk_watch_interval": duration(config.disk_watch_interval_seconds),
        "gc_disk_headroom": f"{config.gc_disk_headroom:g}",
        "authenticate_http_readonly": str(config.authenticate_http_readonly).lower(),
        "authenticate_http_readwrite": str(config.authenticate_http_readwrite).lower(),
        **({"http_credentials": str(config.http_credentials)}
           if config.http_credentials is not None else {}),
        "containerizers": "mesos",
        "default_role": "*",
        "isolation": config.isolation,
        **({"network_cni_config_dir": config.network_cni_config_dir,
            "network_cni_plugins_dir": config.network_cni_plugins_dir}
           if config.network_cni_config_dir else {}),
    }


async def _gone_json(request: web.Request) -> web.Response:
    return _error(404, "The .json endpoints were removed in Mesos 0.26; use /state")


async def _health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def _flags(request: web.Request) -> web.Response:
    return web.json_response({"flags": _flag_values(_agent(request))})


def _version_info() -> dict[str, Any]:
    return {"version": VERSION, "build_date": "2024-08-01 00:00:00", "build_time": 1722470400.0,
            "build_user": "k8sbridge"}


async def _version(request: web.Request) -> web.Response:
    return web.json_response(_version_info())


def _container_entries(
    agent: AgentCore, *, table: stats.ProcTable | None = None
) -> list[dict[str, Any]]:
    """Every launched container with its status and usage, all from one /proc snapshot."""
    if table is None:
        table = stats.proc_table()
    out = []
    for container in agent.live_containers():
        if not container.launched:
            continue
        status = agent.container_status(container)  # also learns the executor's pid
        # Its tasks' process trees only: the executor pid is the agent's container daemon,
        # which every container of this agent shares (its tree is all of their tasks).
        pids = {t.pid for t in container.tasks.values() if t.pid and not t.terminal}
        statistics = stats.sample(
            cgroup=container.cgroup, pids=pids, timestamp=time.time(),
            cpus_limit=container.cpus_limit, mem_limit_mb=container.mem_limit_mb,
            table=table,
        )
        out.append({
            "container": container,
            "framework_id": container.framework_id,
            "executor_id": container.executor_id,
            "executor_name": container.executor.get("name", ""),
            "source": container.executor.get("source", ""),
            "statistics": statistics,
            "status": status,
        })
    return out


def _executor_usage(e: dict[str, Any]) -> dict[str, Any]:
    """The fields ``/monitor/statistics`` and ``/containers`` share for one executor."""
    return {
        "framework_id": e["framework_id"],
        "executor_id": e["executor_id"],
        "executor_name": e["executor_name"],
        "source": e["source"],
        "statistics": e["statistics"],
    }


async def _containers(request: web.Request) -> web.Response:
    entries = _container_entries(_agent(request))
    return web.json_response([
        {**_executor_usage(e), "container_id": e["container"].container_id, "status": e["status"]}
        for e in entries
    ])


async def _monitor_statistics(request: web.Request) -> web.Response:
    """Mesos' ``/monitor/statistics``: one entry per running executor with its usage."""
    return web.json_response([_executor_usage(e) for e in _container_entries(_agent(request))])


# --------------------------------------------------------------------------------------------
# v1 API


async def _api_v1(request: web.Request) -> web.Response:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    if not content_type:
        return _error(400, "Expecting 'Content-Type' to be present")
    if content_type == "application/x-protobuf":
        return _error(415, "This agent speaks JSON only: use 'Content-Type: application/json'")
    if content_type != "application/json":
        return _error(415, f"Expecting 'Content-Type' of application/json or "
                      f"application/x-protobuf, got '{content_type}'")
    accept = request.headers.get("Accept", "application/json")
    if not any(a.split(";")[0].strip() in ("application/json", "*/*", "application/*")
               for a in accept.split(",")):
        return _error(406, "Expecting 'Accept' to allow application/json")
    agent = _agent(request)
    try:
        async with asyncio.timeout(agent.config.http_body_timeout_seconds):
            body = await request.read()
    except TimeoutError:
        response = _error(408, "Timed out reading the request body")
        response.force_close()
        return response
    try:
        call = calls.parse_call(body)
        kind = str(call["type"])
        if kind == "GET_HEALTH":
            return _v1(kind, {"healthy": True})
        if kind == "GET_VERSION":
            return _v1(kind, {"version_info": _version_info()})
        if kind == "GET_STATE":
            return _v1(kind, _get_state(agent))
        if kind == "GET_CONTAINERS":
            nested = calls.field(call, "show_nested", bool, required=False, default=False)
            return _v1(kind, {"containers": _v1_containers(agent, show_nested=nested)})
        if kind == "GET_FRAMEWORKS":
            return _v1(kind, _get_state(agent)["get_frameworks"])
        if kind == "GET_EXECUTORS":
            return _v1(kind, _get_state(agent)["get_executors"])
        if kind == "GET_TASKS":
            return _v1(kind, _get_state(agent)["get_tasks"])
        if kind == "GET_FLAGS":
            flags = [{"name": k, "value": v} for k, v in _flag_values(agent).items()]
            return _v1(kind, {"flags": flags})
        if kind == "GET_AGENT":
            return _v1(kind, {"agent_info": _agent_info(agent)})
        if kind == "LIST_FILES":
            infos = _list(agent, calls.field(call, "path", str, required=True))
            for info in infos:
                info["mtime"] = {"nanoseconds": int(info["mtime"] * 1e9)}
            return _v1(kind, {"file_infos": infos})
        if kind == "READ_FILE":
            path = calls.field(call, "path", str, required=True)
            offset = calls.uint64(call, "offset", required=True)
            length = calls.uint64(call, "length", required=False)
            _, data, size = _read_file(agent, path, offset, length)
            return _v1(kind, {"size": size, "data": base64.b64encode(data).decode("ascii")})
    except calls.CallError as e:
        return _error(400, str(e))
    except _PathError as e:
        return _error(e.status, e.message)
    if kind == "UNKNOWN":  # the agent's http.cpp: NotImplemented, as the master does
        return _error(501, "Call type UNKNOWN is not implemented")
    return _error(501, f"Unsupported call type {kind} on this agent")


def _v1(kind: str, body: dict[str, Any]) -> web.Response:
    return web.json_response({"type": kind, kind.lower(): body})


def _agent_info(agent: AgentCore) -> dict[str, Any]:
    config = agent.config
    info: dict[str, Any] = {
        "hostname": config.hostname or config.host,
        "port": int(agent.http_address.rsplit(":", 1)[1]),
        "resources": agent.resources.to_raw(),
        "attributes": [a.to_raw() for a in agent.attributes],
    }
    if agent.agent_id:
        info["id"] = {"value": agent.agent_id}
    domain = agent.domain()
    if domain is not None:
        info["domain"] = domain
    return info


def _get_state(agent: AgentCore) -> dict[str, Any]:
    launched: list[dict[str, Any]] = []
    terminated: list[dict[str, Any]] = []
    executors: list[dict[str, Any]] = []
    completed_executors: list[dict[str, Any]] = []
    fids: set[str] = set()
    listed: set[tuple[str, bool]] = set()
    for container, live in agent.all_containers():
        fids.add(container.framework_id)
        for task in container.tasks.values():
            (terminated if task.terminal else launched).append(agent.task_json(task))
        if (container.executor_root, live) in listed:
            continue  # a later task group of an executor already listed
        listed.add((container.executor_root, live))
        entry = {"executor_info": container.executor}
        (executors if live else completed_executors).append(entry)
    infos = agent.framework_infos()
    live_fids = {c.framework_id for c in agent.live_containers()}
    return {
        "get_tasks": {"launched_tasks": launched, "queued_tasks": [],
                      "terminated_tasks": terminated, "completed_tasks": []},
        "get_executors": {"executors": executors, "completed_executors": completed_executors},
        "get_frameworks": {
            "frameworks": [{"framework_info": infos[f]} for f in sorted(live_fids) if f in infos],
            "completed_frameworks": [{"framework_info": infos[f]}
                                     for f in sorted(fids - live_fids) if f in infos],
        },
    }


def _v1_containers(agent: AgentCore, *, show_nested: bool) -> list[dict[str, Any]]:
    out = []
    table = stats.proc_table()  # the executors' and their tasks' figures: the same instant
    for e in _container_entries(agent, table=table):
        base = {
            "framework_id": {"value": e["framework_id"]},
            "executor_id": {"value": e["executor_id"]},
            "executor_name": e["executor_name"],
        }
        container = e["container"]
        out.append({**base, "container_id": {"value": container.container_id},
                    "container_status": e["status"], "resource_statistics": e["statistics"]})
        if show_nested and container.kind == "DEFAULT":
            for task in container.tasks.values():
                status = agent.container_status(container, task)
                pids = {task.pid} if task.pid and not task.terminal else set()
                usage = stats.sample(cgroup=None, pids=pids, timestamp=time.time(),
                                     cpus_limit=None, mem_limit_mb=None, table=table)
                out.append({**base, "container_id": status["container_id"],
                            "container_status": status, "resource_statistics": usage})
    return out
