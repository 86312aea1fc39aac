"""The agent component: registers with the master over the link and runs its tasks.

Why one component with a single owner of all state: registration, launches, kills, executor
events, health checks and status retries all mutate the same task table; doing all of it on one
event loop without awaits inside a mutation keeps it free of locks and races. Slow work (asking
the container daemon for a supervisor, fetching URIs, probing a check) runs in background tasks
that report back through plain method calls on this object.

Lifecycle: ``run(stop, ready)`` recovers checkpointed containers from ``work_dir/meta``, serves
the agent HTTP API, then loops: discover the link (``GET /kernel/link`` on the master), REGISTER
(re-register with its id and tasks once it has one), answer PINGs and run what the master sends;
on losing the master it backs off (1 s doubling to ``registration_backoff_max_seconds``) and
registers again, keeping its tasks. Stopping kills every task unless ``_keep_tasks`` is set (the
test hook for an agent process restart: checkpointed tasks survive and are re-adopted). A
SHUTDOWN from the master (Mesos' ``ShutdownMessage``: the operator marked the agent gone, and
every later re-registration is refused the same way) stops the agent as Mesos' ``shutdown``
does: every container is killed, whatever ``_keep_tasks`` says, and ``run`` returns.

The agent is split by responsibility, as the Mesos agent splits its work: ``core`` (tables,
status updates, checkpoints), ``running`` (executor events, kills, probes), ``launching``
(containers from RUN_TASK / RUN_TASK_GROUP), ``recovery`` (re-adopting containers after a
restart) and this module (the link to the master: registration, re-registration with the
tasks it runs, the master's messages).

Containers: no image registry is reachable and there is no Docker engine, so a task's image
(``container.mesos.image`` or ``container.docker.image``) is recorded -- it shows in ``/state`` and
the master's task -- but the command runs on the host, in the sandbox, on the host network.
What cannot be honoured that way fails the task with REASON_CONTAINER_LAUNCH_FAILED and a
message saying why (DOCKER bridge networking and port mappings, CNI networks, volumes at absolute
paths, secret environment variables, custom executors); it never silently "succeeds".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
from aiohttp import web

from k8sbridge.kernel import downgrade, link, tls
from k8sbridge.kernel.agent import (
    cgroups,
    paths,
)
from k8sbridge.kernel.agent import http as agent_http
from k8sbridge.kernel.agent.errors import AgentError
from k8sbridge.kernel.agent.recovery import Recovery
from k8sbridge.kernel.agent.state import (
    VERSION,
    LaunchError,
    nested_container_id,
    parse_id,
)

log = logging.getLogger(__name__)

_REGISTER_TIMEOUT = 10.0

__all__ = ["Agent", "AgentError", "VERSION", "nested_container_id"]


class _ShutDownByMaster(Exception):
    """The master sent SHUTDOWN: the agent must kill its containers and stop."""


class Agent(Recovery):
    """One Mesos-like agent (contract C)."""

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event,
                  _keep_tasks: bool = False) -> None:
        try:
            self._work_dir.mkdir(parents=True, exist_ok=True)
            paths.private_meta_dir(work_dir=self._work_dir)
            for finished in paths.finish_interrupted_writes(work_dir=self._work_dir):
                log.info("agent: completed %s, whose write was interrupted", finished)
            for leftover in paths.clean_temp_files(work_dir=self._work_dir):
                log.info("agent: removed %s, left by an interrupted write", leftover)
        except OSError as e:
            raise AgentError(f"cannot use work dir {self._work_dir}: {e}") from e
        server_ssl = None
        if self._config.tls.enabled:  # libprocess would exit with these messages
            try:
                server_ssl = tls.server_context(self._config.tls)
                self._client_ssl = tls.client_context(self._config.tls)
                self._link_credentials = tls.link_channel_credentials(self._config.tls)
            except tls.TlsError as e:
                raise AgentError(str(e)) from e
        self._cgroups = cgroups.detect()
        app = agent_http.make_app(self)
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               keepalive_timeout=self._config.http_idle_timeout_seconds,
                               # what is left of an unread body is drained this long at most
                               lingering_time=min(10.0, self._config.http_body_timeout_seconds))
        await runner.setup()
        site: web.BaseSite
        if server_ssl is not None and self._config.tls.support_downgrade:
            site = downgrade.DowngradeSite(runner, self._config.host, self._config.port,
                                           ssl_context=server_ssl)
        else:
            site = web.TCPSite(runner, self._config.host, self._config.port,
                               ssl_context=server_ssl)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise AgentError(
                f"cannot serve the agent API on {self._config.host}:{self._config.port}: {e}"
            ) from e
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._http_port = int(sockets[0].getsockname()[1]) if sockets else self._config.port
        try:
            await self._recover()
        except BaseException:
            await self._shutdown(keep_tasks=True)
            await runner.cleanup()
            raise
        self._spawn(self._daemon.warm_up())
        log.info("agent API on %s://%s", self._config.tls.scheme, self.http_address)
        link_task = asyncio.create_task(self._link_loop(stop=stop, ready=ready), name="agent-link")
        retry_task = asyncio.create_task(self._retry_loop(stop=stop), name="agent-retries")
        gc_task = asyncio.create_task(
            self.gc.run(stop=stop, disk_watch_interval=self._config.disk_watch_interval_seconds),
            name="agent-gc")
        stopping = asyncio.create_task(stop.wait(), name="agent-stop")
        shut_down = False
        try:
            await asyncio.wait({stopping, link_task}, return_when=asyncio.FIRST_COMPLETED)
            shut_down = (link_task.done() and not link_task.cancelled()
                         and link_task.exception() is None and link_task.result())
            if not shut_down:
                await stop.wait()
        finally:
            stopping.cancel()
            for task in (link_task, retry_task, gc_task):
                task.cancel()
            for task in (link_task, retry_task, gc_task):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._shutdown(keep_tasks=_keep_tasks and not shut_down)
            stream, self._stream = self._stream, None
            if stream is not None:
                await stream.close()
            await runner.cleanup()
            self._runner = None

    async def _discover_link(self) -> str:
        url = f"{self._config.tls.scheme}://{self._config.master}/kernel/link"
        connector = aiohttp.TCPConnector(ssl=self._client_ssl) if self._client_ssl else None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5),
                                         connector=connector) as session:
            async with session.get(url) as response:
                if response.status != 200:
                    raise link.LinkError(f"{url} answered {response.status}")
                body = await response.json(content_type=None)
        address = body.get("address") if isinstance(body, dict) else None
        if not isinstance(address, str) or ":" not in address:
            raise link.LinkError(f"{url} gave no link address: {body!r}")
        return address

    async def _link_loop(self, *, stop: asyncio.Event, ready: asyncio.Event) -> bool:
        """Follow the master until ``stop``; True when the master told the agent to shut
        down."""
        try:
            await self._follow_master(stop=stop, ready=ready)
        except _ShutDownByMaster as e:
            log.warning("agent %s asked to shut down by the master because '%s'; killing its "
                        "containers and stopping", self._agent_id, e)
            return True
        return False

    async def _follow_master(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            stream: link.AgentStream | None = None
            try:
                address = await self._discover_link()
                stream = await link.connect(address, timeout=5.0,
                                            credentials=self._link_credentials)
                await stream.send(self._register_message())
                registered = await self._await_registered(stream)
            except _ShutDownByMaster:
                if stream is not None:
                    await stream.close()
                raise
            except (link.LinkError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
                log.info("agent: master %s not reachable (%s); retrying in %.0fs",
                         self._config.master, e, backoff)
                if stream is not None:
                    await stream.close()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await stop.wait()
                backoff = min(backoff * 2, max(1.0, self._config.registration_backoff_max_seconds))
                continue
            self._on_registered(registered)
            backoff = 1.0
            self._stream = stream
            ready.set()
            for message in self._updates.resend_all():
                self._post(message)
            try:
                async for message in stream:
                    try:
                        self._dispatch(message)
                    except (LaunchError, KeyError, TypeError, ValueError, AttributeError) as e:
                        log.warning("agent: dropped a malformed %s message: %s",
                                    message.get("type"), e)
            finally:
                self._stream = None
                self._registered.clear()
                await stream.close()
            if not stop.is_set():
                log.warning("agent %s lost its master; re-registering", self._agent_id)

    async def _await_registered(self, stream: link.AgentStream) -> str:
        async with asyncio.timeout(_REGISTER_TIMEOUT):
            async for message in stream:
                if message.get("type") == "REGISTERED":
                    agent_id = (message.get("agent_id") or {}).get("value")
                    if isinstance(agent_id, str) and agent_id:
                        return agent_id
                    raise ValueError("REGISTERED without an agent id")
                if message.get("type") == "PING":
                    await stream.send({"type": "PONG"})
                if message.get("type") == "SHUTDOWN":
                    raise _ShutDownByMaster(str(message.get("message", "")))
        raise link.LinkError("the master closed the link before REGISTERED")

    def _on_registered(self, agent_id: str) -> None:
        if self._agent_id is not None and agent_id != self._agent_id:
            log.warning("agent re-registered under a new id %s (was %s)", agent_id, self._agent_id)
        self._agent_id = agent_id
        paths.save_agent_id(work_dir=self._work_dir, agent_id=agent_id)
        self._registered.set()
        log.info("agent registered as %s", agent_id)

    async def _retry_loop(self, *, stop: asyncio.Event) -> None:
        tick = min(1.0, max(0.05, self._config.status_retry_seconds / 4))
        while not stop.is_set():
            await asyncio.sleep(tick)
            if self._stream is not None:
                for message in self._updates.due():
                    self._post(message)

    def _register_message(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "hostname": self._config.hostname or self._config.host,
            "port": self._http_port,
            "resources": self._resources.to_raw(),
            "attributes": [a.to_raw() for a in self._attributes],
        }
        if self._agent_id is not None:
            info["id"] = {"value": self._agent_id}
        domain = self.domain()
        if domain is not None:
            info["domain"] = domain
        live = [c for c in self._containers.values()]
        tasks = [self.task_json(t) for c in live for t in c.tasks.values()]
        # One ExecutorInfo per executor, however many task groups it runs.
        executors = list({(c.framework_id, c.executor_id): c.executor
                          for c in live if c.kind == "DEFAULT"}.values())
        fids = {c.framework_id for c in live}
        frameworks = [self._frameworks[f] for f in sorted(fids) if f in self._frameworks]
        return {"type": "REGISTER", "agent_info": info, "version": VERSION, "tasks": tasks,
                "executors": executors, "frameworks": frameworks}

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "PING":
            self._post({"type": "PONG"})
        elif kind == "RUN_TASK":
            self._run_task(message["framework"], message["task"])
        elif kind == "RUN_TASK_GROUP":
            self._run_task_group(
                message["framework"], message["executor"], message["task_group"]["tasks"]
            )
        elif kind == "KILL_TASK":
            self._kill_task(
                parse_id(message.get("framework_id"), "framework_id"),
                parse_id(message.get("task_id"), "task_id"),
                message.get("kill_policy"),
            )
        elif kind == "SHUTDOWN_EXECUTOR":
            self._shutdown_executor(
                parse_id(message.get("framework_id"), "framework_id"),
                parse_id(message.get("executor_id"), "executor_id"),
            )
        elif kind == "SHUTDOWN_FRAMEWORK":
            self._shutdown_framework(parse_id(message.get("framework_id"), "framework_id"))
        elif kind == "ACKNOWLEDGE":
            self._acknowledge(
                parse_id(message.get("framework_id"), "framework_id"),
                parse_id(message.get("task_id"), "task_id"),
                str(message.get("uuid", "")),
            )
        elif kind == "MESSAGE":
            executor_id = (message.get("executor_id") or {}).get("value")
            log.info("agent: dropped a framework message for executor %s (the command and "
                     "DEFAULT executors take none)", executor_id)
        elif kind == "REGISTERED":
            pass  # a duplicate reply to a retried REGISTER
        elif kind == "SHUTDOWN":
            raise _ShutDownByMaster(str(message.get("message", "")))
        else:
            log.warning("agent: ignored an unknown link message type %r", kind)
