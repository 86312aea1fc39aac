"""Health checks (``health_check`` -> ``healthy``) and checks (``check`` -> ``check_status``).

Why in the agent rather than in the executor process: both only need the task's sandbox,
environment and ports, and running them here keeps the supervisor process tiny. A command
check of a task with a view of its own runs inside it, as Mesos runs it in the task's
namespaces: ``nsenter`` into the task's mount and pid namespaces, its root and working
directory, as its user (``wrap``); an HTTP or TCP check of a container on a CNI network dials
its IP from a socket made inside its network namespace (Mesos' checker enters it). Timing follows
Mesos: wait ``delay_seconds``, probe every ``interval_seconds`` with ``timeout_seconds``; a health
failure inside ``grace_period_seconds`` before the first success is ignored, and
``consecutive_failures`` failures in a row ask for the task to be killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from k8sbridge.kernel.agent import mounting, reaping

__all__ = ["CheckResult", "HealthVerdict", "Wrap", "in_view", "probe", "run_check",
           "run_health_check"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class CheckResult:
    """One probe: ``ok`` for health; the raw ``check_status`` body for checks."""

    ok: bool
    check_status: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class HealthVerdict:
    healthy: bool
    kill: bool
    consecutive_failures: int


def _seconds(raw: Mapping[str, Any], name: str, default: float) -> float:
    value = raw.get(name, default)
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return default


def _command_argv(command: Mapping[str, Any]) -> tuple[list[str], str | None]:
    value = str(command.get("value", ""))
    if command.get("shell", True):
        return ["/bin/sh", "-c", value], None
    args = [str(a) for a in command.get("arguments", [])] or [value]
    return args, value


Wrap = Callable[[], Sequence[str] | None]  # the argv prefix that enters the task's view


async def _probe_command(command: Mapping[str, Any], *, cwd: str, env: Mapping[str, str],
                         timeout: float, wrap: Wrap | None = None) -> tuple[bool, int | None]:
    argv, executable = _command_argv(command)
    prefix = wrap() if wrap is not None else None
    if prefix is not None:  # nsenter execs the program by its argv[0]
        argv, executable = [*prefix, executable or argv[0], *argv[1:]], None
    check_env = dict(env)
    for var in (command.get("environment") or {}).get("variables", []):
        if isinstance(var, dict) and "name" in var:
            check_env[str(var["name"])] = str(var.get("value", ""))
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, executable=executable, cwd=cwd if prefix is None else None, env=check_env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
        )
    except OSError as e:
        log.info("check command could not start: %s", e)
        return False, None
    try:
        async with asyncio.timeout(timeout or None):
            code = await proc.wait()
    except (TimeoutError, asyncio.CancelledError) as e:
        # Never leave a probe behind (nor its un-reaped process): kill it and wait for it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await reaping.wait_killed(proc)
        if isinstance(e, asyncio.CancelledError):
            raise
        return False, None
    return code == 0, code


def _socket_in(netns: str, family: socket.AddressFamily) -> socket.socket:
    """A TCP socket of the network namespace ``netns`` (a socket stays in the namespace it
    was made in); run in a worker thread, which goes back to its own namespace after."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        mounting.setns(target, mounting.CLONE_NEWNET)
        try:
            return socket.socket(family, socket.SOCK_STREAM)
        finally:
            mounting.setns(home, mounting.CLONE_NEWNET)
    finally:
        os.close(home)
        os.close(target)


async def _dial_in(network: Mapping[str, Any], port: int, *, scheme: str = "tcp"
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the container's IP made inside its network namespace."""
    ip = str(network["ip"])
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = await asyncio.to_thread(_socket_in, str(network["netns"]), family)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (ip, port))
    except BaseException:
        sock.close()
        raise
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return await asyncio.open_connection(sock=sock, ssl=context, server_hostname=ip)
    return await asyncio.open_connection(sock=sock)


async def _http_status_in(network: Mapping[str, Any], port: int, path: str, scheme: str
                          ) -> int:
    """An HTTP GET of ``path`` on the container's IP from inside its namespace: the status."""
    reader, writer = await _dial_in(network, port, scheme=scheme)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {network['ip']}:{port}\r\n"
                     "User-Agent: k8sbridge-checker\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise OSError("not an HTTP response")
    return int(parts[1])


async def _probe_http(http: Mapping[str, Any], *, timeout: float, health: bool,
                      network: Mapping[str, Any] | None = None) -> tuple[bool, int | None]:
    port = int(http.get("port", 0))
    path = str(http.get("path", "/") or "/")
    if not path.startswith("/"):
        path = "/" + path
    scheme = str(http.get("scheme", "http") or "http")
    url = f"{scheme}://127.0.0.1:{port}{path}"
    statuses = [int(s) for s in http.get("statuses", [])] if health else []
    if network is not None:
        try:
            async with asyncio.timeout(timeout or None):
                code = await _http_status_in(network, port, path, scheme)
        except (OSError, TimeoutError, ssl.SSLError, ValueError):
            return False, None
        return (code in statuses if statuses else 200 <= code < 400), code
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout or None)
        ) as session, session.get(url, ssl=False) as response:
            code = response.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False, None
    ok = code in statuses if statuses else 200 <= code < 400
    return ok, code


async def _probe_tcp(tcp: Mapping[str, Any], *, timeout: float,
                     network: Mapping[str, Any] | None = None) -> bool:
    port = int(tcp.get("port", 0))
    try:
        async with asyncio.timeout(timeout or None):
            if network is not None:
                _, writer = await _dial_in(network, port)
            else:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def probe(spec: Mapping[str, Any], *, cwd: str, env: Mapping[str, str],
                health: bool, wrap: Wrap | None = None,
                network: Mapping[str, Any] | None = None) -> CheckResult:
    """Run one probe of a HealthCheck (``health``) or CheckInfo; HTTP and TCP ones of a
    container with a network namespace of its own (``network``: its ``netns`` and ``ip``)
    dial its IP from inside that namespace."""
    kind = str(spec.get("type", ""))
    timeout = _seconds(spec, "timeout_seconds", 20.0)
    if kind == "COMMAND":
        command = spec.get("command") or {}
        if not health:
            command = command.get("command") or {}  # CheckInfo.Command wraps CommandInfo
        ok, code = await _probe_command(command, cwd=cwd, env=env, timeout=timeout, wrap=wrap)
        body: dict[str, Any] = {"exit_code": code} if code is not None else {}
        return CheckResult(ok=ok, check_status={"type": "COMMAND", "command": body})
    if kind == "HTTP":
        ok, status = await _probe_http(spec.get("http") or {}, timeout=timeout, health=health,
                                       network=network)
        body = {"status_code": status} if status is not None else {}
        return CheckResult(ok=ok, check_status={"type": "HTTP", "http": body})
    if kind == "TCP":
        ok = await _probe_tcp(spec.get("tcp") or {}, timeout=timeout, network=network)
        return CheckResult(ok=ok, check_status={"type": "TCP", "tcp": {"succeeded": ok}})
    return CheckResult(ok=False, check_status={"type": kind or "UNKNOWN"})


def validate(spec: Mapping[str, Any]) -> str | None:
    """Why a HealthCheck/CheckInfo cannot run, or None."""
    kind = spec.get("type")
    if kind not in ("COMMAND", "HTTP", "TCP"):
        return f"unsupported check type {kind!r}"
    if kind in ("HTTP", "TCP"):
        sub = spec.get(kind.lower()) or {}
        try:
            port = int(sub.get("port", 0))
        except (TypeError, ValueError):
            port = 0
        if not 0 < port < 65536:
            return f"{kind} check needs a valid port"
    return None


async def run_health_check(spec: Mapping[str, Any], *, cwd: str, env: Mapping[str, str],
                           report: Callable[[HealthVerdict], Awaitable[None]],
                           wrap: Wrap | None = None,
                           network: Mapping[str, Any] | None = None) -> None:
    """Probe forever (until cancelled); ``report`` every change of health and every kill verdict."""
    delay = _seconds(spec, "delay_seconds", 15.0)
    interval = _seconds(spec, "interval_seconds", 10.0)
    grace = _seconds(spec, "grace_period_seconds", 10.0)
    max_failures = max(1, int(spec.get("consecutive_failures", 3)))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.sleep(delay)
    healthy: bool | None = None
    failures = 0
    while True:
        result = await probe(spec, cwd=cwd, env=env, health=True, wrap=wrap, network=network)
        if result.ok:
            failures = 0
            if healthy is not True:
                healthy = True
                await report(HealthVerdict(healthy=True, kill=False, consecutive_failures=0))
        elif healthy is None and loop.time() - started < grace:
            pass  # still starting up: failures in the grace period do not count
        else:
            failures += 1
            kill = failures >= max_failures
            if healthy is not False or kill:
                healthy = False
                await report(
                    HealthVerdict(healthy=False, kill=kill, consecutive_failures=failures)
                )
            if kill:
                return
        await asyncio.sleep(interval)


async def run_check(spec: Mapping[str, Any], *, cwd: str, env: Mapping[str, str],
                    report: Callable[[dict[str, Any]], Awaitable[None]],
                    wrap: Wrap | None = None,
                    network: Mapping[str, Any] | None = None) -> None:
    """Probe forever (until cancelled); ``report`` the ``check_status`` whenever it changes."""
    delay = _seconds(spec, "delay_seconds", 15.0)
    interval = _seconds(spec, "interval_seconds", 10.0)
    await asyncio.sleep(delay)
    last: dict[str, Any] | None = None
    while True:
        result = await probe(spec, cwd=cwd, env=env, health=False, wrap=wrap, network=network)
        if result.check_status != last:
            last = result.check_status
            await report(result.check_status)
        await asyncio.sleep(interval)


def in_view(pid: int | None, *, cwd: str, user: Mapping[str, Any] | None,
            net: bool = False) -> list[str] | None:
    """The ``nsenter`` prefix that runs a command in the view of the task whose process is
    ``pid`` (None once it is gone: the probe then fails), as ``user`` if it has one."""
    if pid is None:
        return None
    # nsenter opens --wd before it enters: the directory is named as the host reaches it.
    prefix = ["nsenter", f"--target={pid}", "--mount", "--pid", "--root",
              f"--wd=/proc/{pid}/root{cwd}"]
    if net:  # a CNI container: its network and UTS namespaces too
        prefix[3:3] = ["--net", "--uts"]
    if user is not None:
        prefix += [f"--setgid={int(user['gid'])}", f"--setuid={int(user['uid'])}"]
    return [*prefix, "--"]
