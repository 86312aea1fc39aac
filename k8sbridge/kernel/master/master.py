"""The master: frameworks, agents, offers and tasks, with Apache Mesos' semantics.

Why this module: ``Master`` is the top of the layer stack (see ``base``) and owns the lifecycle:
recovery from the registry, the HTTP and link servers, the allocation and ping loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import web

from k8sbridge.kernel import downgrade, link, tls
from k8sbridge.kernel import resources as res
from k8sbridge.kernel.master import http, state
from k8sbridge.kernel.master.base import (
    VERSION,
    apply_reservations,
)
from k8sbridge.kernel.master.errors import MasterError
from k8sbridge.kernel.master.operations import OperatorHandling

__all__ = ["VERSION", "Master", "apply_reservations"]

log = logging.getLogger(__name__)


class Master(OperatorHandling):
    """The whole master; ``run`` serves it until ``stop`` is set."""

    @property
    def url(self) -> str:
        return f"{self.config.tls.scheme}://{self.config.host}:{self.port}"

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        self._allocate_soon = asyncio.Event()
        ssl_context, link_credentials = None, None
        if self.config.tls.enabled:  # libprocess would exit with these messages
            try:
                ssl_context = tls.server_context(self.config.tls)
                link_credentials = tls.link_server_credentials(self.config.tls)
            except tls.TlsError as e:
                raise MasterError(str(e)) from e
        self._recover()
        self._link = link.LinkServer(
            host=self.config.host, port=self.config.link_port, handler=self._on_link,
            credentials=link_credentials,
        )
        self.link_port = await self._link.start()
        plain_link: link.LinkServer | None = None
        if self.config.tls.enabled and self.config.tls.support_downgrade:
            plain_link = link.LinkServer(host=self.config.host, port=0, handler=self._on_link)
            try:
                self.plain_link_port = await plain_link.start()
            except link.LinkError:
                await self._link.stop(grace=0)
                raise
        # aiohttp's keep-alive timer runs from the connection's start (and from each answer)
        # and is not pushed back by bytes of a request whose headers are incomplete, so it
        # bounds idle connections and slow headers alike; the body bound is in http.py.
        # An unread body (a 401, a 408) is drained for at most 2 s before the connection
        # closes, not aiohttp's default 10 s.
        runner = web.AppRunner(http.build_app(self), handler_cancellation=True, access_log=None,
                               keepalive_timeout=self.config.http_idle_timeout,
                               lingering_time=2.0)
        await runner.setup()
        loops: list[asyncio.Task[None]] = []
        try:
            site: web.BaseSite
            if ssl_context is not None and self.config.tls.support_downgrade:
                site = downgrade.DowngradeSite(runner, self.config.host, self.config.port,
                                               ssl_context=ssl_context)
            else:
                site = web.TCPSite(runner, self.config.host, self.config.port,
                                   reuse_address=True, ssl_context=ssl_context)
            await site.start()
            server: Any = site._server
            if server is not None and getattr(server, "sockets", None):
                self.port = int(server.sockets[0].getsockname()[1])
            loops.append(asyncio.create_task(self._allocation_loop(), name="master-allocation"))
            loops.append(asyncio.create_task(self._ping_loop(), name="master-pings"))
            log.info("master %s listening on %s (link %s)", self.master_id, self.url,
                     self.link_port)
            ready.set()
            await stop.wait()
        finally:
            for fw in self.frameworks.values():
                if fw.stream is not None:
                    fw.stream.close()
            for sub in self.subscribers:
                sub.close()
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for agent in self.agents.values():
                if agent.conn is not None:
                    agent.conn.close()
            await self._link.stop(grace=0.5)
            if plain_link is not None:
                await plain_link.stop(grace=0.5)
            await runner.cleanup()
            self.registry.close()

    def _recover(self) -> None:
        snap = self.registry.load()
        dynamic = {aid: res.Resources.parse(raw) for aid, raw in snap.reservations}
        for fid, info, completed in snap.frameworks:
            if completed:
                self.completed_ids.add(fid)
            else:
                self._recover_framework(info, persist=False)
        for aid, info, unreachable in snap.agents:
            try:
                static = res.Resources.parse(info.get("resources"))
            except res.ResourceError:
                static = res.Resources()
            agent = state.Agent(
                agent_id=aid, info=info, total=apply_reservations(static, dynamic.get(
                    aid, res.Resources())), registered_time=time.time(),
                recovered=unreachable is None, unreachable_time=unreachable, active=False,
            )
            self.agents[aid] = agent
        self.gone_agents.update(snap.gone)
        if snap.weights:
            self.allocator.update_weights(dict(snap.weights))
        for role, limits in snap.quotas:
            self.allocator.update_quota(role, limits)
        self._recovered_at = time.monotonic()

    async def _allocation_loop(self) -> None:
        assert self._allocate_soon is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.allocation_interval):
                    await self._allocate_soon.wait()
            self._allocate_soon.clear()
            try:
                self.allocate()
            except Exception:
                log.exception("allocation pass failed")
            await asyncio.sleep(0)

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.agent_ping_interval)
            try:
                self.ping_round()
            except Exception:
                log.exception("agent ping round failed")
