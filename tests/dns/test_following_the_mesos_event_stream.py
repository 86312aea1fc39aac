"""Mesos names follow the master's operator event stream (SUBSCRIBE) of the real embedded
kernel over real HTTP: a task started after the subscription resolves by its Mesos name and
loses it when it ends; a master that goes away leaves the last names in place until a new
subscription's state replaces them; a master that refuses SUBSCRIBE (as one older than Mesos
1.1 does; the kernel cannot be made to) is polled with GET_STATE instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import aiohttp
import dns.name
import dns.rdatatype
from aiohttp import web

from k8sbridge.dns import sources
from k8sbridge.kernel.agent.agent import Agent
from k8sbridge.kernel.master.master import Master
from k8sbridge.mesos import framework, types
from k8sbridge.mesos import operator as mesos_operator
from k8sbridge.mesos import raw as wire
from k8sbridge.model.ids import TaskId
from tests.conftest import free_port
from tests.mesos.helpers import running
from tests.mesos.test_running_against_kernel import (
    Component,
    agent_config,
    group,
    make,
    master_config,
    next_offer,
    wait_state,
)

NAME = "web.client-it.mesos."  # the task "web" of the framework "client-it"


def web_task(fw: framework.Framework, offer: types.Offer) -> wire.RawOperation:
    """The LAUNCH_GROUP of one task, "web", that sleeps."""
    return cast(wire.RawOperation, group(fw, offer, {"web": "sleep 60"}))


def addresses(source: sources.MesosSource, name: str = NAME) -> list[str]:
    answer = source.table.lookup(dns.name.from_text(name), dns.rdatatype.A)
    return sorted(r.to_text() for _, r in answer.records)


async def eventually(check: Callable[[], bool], *, what: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def following(master: str, *, interval: float = 2.0) -> AsyncIterator[
        tuple[sources.MesosSource, mesos_operator.OperatorClient]]:
    client = mesos_operator.OperatorClient(masters=(master,))
    source = sources.MesosSource(operator=client, domain="mesos", interval=interval)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(source.run(stop=stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 20)
        yield source, client
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await client.close()


@contextlib.asynccontextmanager
async def kernel_parts(tmp_path: Path) -> AsyncIterator[tuple[list[Component], str]]:
    """A master and an agent started by hand (``parts[0]`` is the master, to restart)."""
    config = master_config(tmp_path, agent_reregister_timeout=30.0)
    parts = [Component(Master(config=config).run, "master")]
    await parts[0].started()
    agent = Agent(config=dataclasses.replace(agent_config(tmp_path),
                                             master=f"127.0.0.1:{config.port}",
                                             registration_backoff_max_seconds=0.5))
    parts.append(Component(agent.run, "agent"))
    try:
        await parts[1].started()
        yield parts, f"http://127.0.0.1:{config.port}"
    finally:
        for part in reversed(parts):
            await part.halt()


async def test_a_task_started_after_subscribing_resolves_by_its_mesos_name(
        tmp_path: Path) -> None:
    async with kernel_parts(tmp_path) as (_, master), following(master) as (source, client):
        assert source.subscriptions == 1 and not source.polling
        assert addresses(source) == []
        fw, rec = make(master)
        async with running(fw) as run:
            await run.ready()
            offer = await next_offer(rec)
            await fw.accept([offer.id], [web_task(fw, offer)])
            await wait_state(rec, "web", "TASK_RUNNING")
            await eventually(lambda: addresses(source) == ["127.0.0.1"],
                             what="the task's name from the stream")
            srv = source.table.lookup(dns.name.from_text("web.client-it.slave.mesos."),
                                      dns.rdatatype.A)
            assert [r.to_text() for _, r in srv.records] == ["127.0.0.1"]
            await fw.kill(TaskId("web"), grace_period_seconds=0.5)
            await wait_state(rec, "web", "TASK_KILLED")
            await eventually(lambda: addresses(source) == [], what="the ended task's name gone")
        # one subscription, no poll: the names came from events alone
        assert source.subscriptions == 1
        assert client.transport.metrics.get("calls/GET_STATE/ok") == 0


async def test_a_master_restart_keeps_the_last_names_and_resubscribes(tmp_path: Path) -> None:
    async with kernel_parts(tmp_path) as (parts, master), \
            following(master) as (source, client):
        fw, rec = make(master)
        async with running(fw) as run:
            await run.ready()
            offer = await next_offer(rec)
            await fw.accept([offer.id], [web_task(fw, offer)])
            await wait_state(rec, "web", "TASK_RUNNING")
            await eventually(lambda: addresses(source) == ["127.0.0.1"], what="the name")

            config = master_config(tmp_path)  # the same port and work dir again
            await parts[0].halt()
            await asyncio.sleep(2.0)  # the stream is gone, resubscribing fails meanwhile
            assert addresses(source) == ["127.0.0.1"]  # the last good names stay
            assert source.subscriptions == 1
            parts[0] = Component(Master(config=dataclasses.replace(
                config, port=int(master.rsplit(":", 1)[1]))).run, "master-2")
            await parts[0].started()
            await eventually(lambda: source.subscriptions >= 2, what="a new subscription")
            assert client.transport.metrics.get("calls/SUBSCRIBE/ConnectionLost") >= 1
            # once the agent re-registered, the new master knows the task again
            await eventually(lambda: addresses(source) == ["127.0.0.1"],
                             what="the name after the restart")
            await fw.kill(TaskId("web"), grace_period_seconds=0.5)
            await wait_state(rec, "web", "TASK_KILLED")
            await eventually(lambda: addresses(source) == [], what="the name gone")


@contextlib.asynccontextmanager
async def without_subscribe(master: str) -> AsyncIterator[str]:
    """A master of before Mesos 1.1 in front of ``master``: SUBSCRIBE is a 400 (an unknown
    call type), every other call goes through."""

    async def operator_api(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if b'"SUBSCRIBE"' in body:
            return web.Response(status=400, text="Failed to validate master::Call: unknown type")
        async with aiohttp.ClientSession() as session, session.post(
                master + "/api/v1", data=body, headers={"Content-Type": "application/json"}) \
                as answer:
            return web.Response(status=answer.status, body=await answer.read(),
                                content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/v1", operator_api)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_master_that_refuses_subscribe_is_polled(tmp_path: Path) -> None:
    async with kernel_parts(tmp_path) as (_, master), without_subscribe(master) as old, \
            following(old, interval=0.2) as (source, client):
        assert source.polling and source.subscriptions == 0
        fw, rec = make(master)
        async with running(fw) as run:
            await run.ready()
            offer = await next_offer(rec)
            await fw.accept([offer.id], [web_task(fw, offer)])
            await wait_state(rec, "web", "TASK_RUNNING")
            await eventually(lambda: addresses(source) == ["127.0.0.1"],
                             what="the name from GET_STATE")
            await fw.kill(TaskId("web"), grace_period_seconds=0.5)
            await wait_state(rec, "web", "TASK_KILLED")
        assert client.transport.metrics.get("calls/SUBSCRIBE/BadRequest") == 1
        assert client.transport.metrics.get("calls/GET_STATE/ok") >= 1
